// Routes of /fmsg: inbox, drafts (create, read, replace, delete), send, add-to and the body download.
import { Hono, type MiddlewareHandler } from "hono";
import { bodyExtension } from "../../domain/media-type.ts";
import { addRecipients } from "../../messages/add-recipients.ts";
import { createDraft, replaceDraft } from "../../messages/compose-draft.ts";
import type { MessageDeps } from "../../messages/context.ts";
import { deleteDraft } from "../../messages/delete-draft.ts";
import { inbox, shapeMessage, visibleMessage } from "../../messages/read-messages.ts";
import { sendDraft } from "../../messages/send-draft.ts";
import type { AppEnv } from "../app-env.ts";
import { serveDownload } from "../download.ts";
import { boundedJsonBody } from "../json-body.ts";
import { addToBody, messageBody, parseMessageId, parsePage } from "../message-input.ts";
import { validate } from "../validation.ts";

/** Small JSON bodies (add-to lists): 255 addresses of 255 bytes fit easily. */
export const SMALL_JSON_LIMIT = 256 * 1024;

/**
 * A message body arrives inside a JSON string, where escaping can double it; the cap leaves room
 * for that and for the other fields, and the exact data limit is checked after parsing.
 */
export const messageJsonLimit = (maxDataBytes: number) => 2 * maxDataBytes + 1024 * 1024;

/** Rejects a bad `:id` before the body is read (API.md §1: 400 before anything else of the route). */
export const validId: MiddlewareHandler<AppEnv> = async (c, next) => {
  parseMessageId(c.req.param("id"));
  await next();
};

export function messageRoutes(deps: MessageDeps) {
  const messageJson = boundedJsonBody(messageJsonLimit(deps.maxDataBytes), "message data exceeds maximum size");
  const smallJson = boundedJsonBody(SMALL_JSON_LIMIT, "request body too large");

  return new Hono<AppEnv>()
    .get("/", async (c) => {
      const page = parsePage((name) => c.req.query(name));
      return c.json(await inbox(deps, c.var.identity, page));
    })
    .post("/", messageJson, validate("json", messageBody), async (c) => {
      const id = await createDraft(deps, c.var.identity, c.req.valid("json"));
      return c.json({ id }, 201);
    })
    .get("/:id", async (c) => {
      const m = await visibleMessage(deps, c.var.identity, parseMessageId(c.req.param("id")));
      return c.json(await shapeMessage(deps.dataDir, m));
    })
    .put("/:id", validId, messageJson, validate("json", messageBody), async (c) => {
      const id = parseMessageId(c.req.param("id"));
      await replaceDraft(deps, c.var.identity, id, c.req.valid("json"));
      return c.json({ id });
    })
    .delete("/:id", async (c) => {
      await deleteDraft(deps, c.var.identity, parseMessageId(c.req.param("id")));
      return c.body(null, 204);
    })
    .post("/:id/send", async (c) => {
      const id = parseMessageId(c.req.param("id"));
      const time = await sendDraft(deps, c.var.identity, id);
      return c.json({ id, time });
    })
    .post("/:id/add-to", validId, smallJson, validate("json", addToBody), async (c) => {
      const id = parseMessageId(c.req.param("id"));
      const added = await addRecipients(deps, c.var.identity, id, c.req.valid("json").add_to);
      return c.json({ id, added });
    })
    .get("/:id/data", async (c) => {
      const m = await visibleMessage(deps, c.var.identity, parseMessageId(c.req.param("id")));
      return serveDownload(c.req.raw, {
        dataDir: deps.dataDir,
        filepath: m.filepath,
        type: m.type,
        filename: `message-${m.id}${bodyExtension(m.type)}`,
        missing: "message data not available",
      });
    });
}
