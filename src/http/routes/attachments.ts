// Routes of /fmsg/{id}/attach: streamed upload, download and delete of a draft's attachments.
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { AttachmentParams, IdempotencyHeaders, IdParams } from "../../contract/requests.ts";
import { AttachmentSaved } from "../../contract/responses.ts";
import { findAttachment } from "../../db/attachments.ts";
import { checkUploadAllowed, invalidFilename, removeAttachment, uploadAttachment } from "../../messages/attachments.ts";
import type { MessageDeps } from "../../messages/context.ts";
import { earlierAnswer, replayOrRefuse, type Once } from "../../messages/idempotency.ts";
import { visibleMessage } from "../../messages/read-messages.ts";
import type { AppEnv } from "../app-env.ts";
import { DOWNLOAD_ANSWERS, serveDownload } from "../download.ts";
import { ApiError } from "../errors.ts";
import { withFilePart } from "../multipart-upload.ts";
import { answerOnce, fingerprintOf, StreamDigest } from "../idempotency.ts";
import { answers, BEARER, json, REPLAY_HEADERS, STORAGE_ERRORS, withKeyErrors } from "../openapi.ts";
import { refuseInvalid } from "../validation.ts";

const security = [{ [BEARER]: [] }];
const tags = ["attachments"];
const BAD_PARAMS = "Invalid message id (`invalid message id`) or file name (`invalid filename`).";
const NO_MESSAGE = "No such message (`message not found`).";

const upload = createRoute({
  operationId: "uploadAttachment",
  method: "post",
  path: "/{id}/attach",
  tags,
  security,
  summary: "Upload an attachment to a draft (same name, case-insensitively, replaces it)",
  request: {
    params: IdParams,
    headers: IdempotencyHeaders,
    // Documented here, read by our streaming parser: a zod schema would make the router buffer the form.
    body: {
      required: true,
      content: {
        "multipart/form-data": {
          schema: {
            type: "object",
            properties: {
              file: {
                type: "string",
                contentMediaType: "application/octet-stream",
                description: "The file; its part's filename is the attachment's name exactly as sent, its Content-Type (if a valid type) the stored type.",
              },
            },
            required: ["file"],
          },
        },
      },
    },
  },
  responses: answers(
    { 201: { ...json(AttachmentSaved, "Stored."), headers: REPLAY_HEADERS } },
    withKeyErrors({
      400: "Invalid id, missing part (`file field required`), bad name (`invalid filename`), a malformed or interrupted body, or 255 attachments already.",
      403: "Not the owner (`only the owner may upload attachments`) or already sent (`attachments cannot be added to a sent message`).",
      404: NO_MESSAGE,
      413: "Over the attachment limit (`attachment exceeds maximum size`) or the message limit (`total message size exceeds limit`).",
      415: "The body is not `multipart/form-data` (`content type must be multipart/form-data`).",
      ...STORAGE_ERRORS,
    }),
  ),
});

const download = createRoute({
  operationId: "downloadAttachment",
  method: "get",
  path: "/{id}/attach/{filename}",
  tags,
  security,
  summary: "An attachment's bytes (Range and If-None-Match supported)",
  request: { params: AttachmentParams },
  responses: answers(DOWNLOAD_ANSWERS, {
    400: BAD_PARAMS,
    403: "A message the identity does not take part in, or another owner's draft (`access denied`).",
    404: `${NO_MESSAGE} Or: no such attachment, or its file is missing (\`attachment not found\`).`,
    416: "The Range lies outside the file (`range not satisfiable`).",
  }),
});

const remove = createRoute({
  operationId: "deleteAttachment",
  method: "delete",
  path: "/{id}/attach/{filename}",
  tags,
  security,
  summary: "Delete an attachment of a draft",
  request: { params: AttachmentParams },
  responses: answers(
    { 204: { description: "Deleted." } },
    {
      400: BAD_PARAMS,
      403: "Not the owner (`only the owner may delete attachments`) or already sent (`attachments of a sent message cannot be deleted`).",
      404: `${NO_MESSAGE} Or: no such attachment (\`attachment not found\`).`,
    },
  ),
});

type Saved = { filename: string; size: number };

export function attachmentRoutes(deps: MessageDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid })
    .openapi(upload, async (c) => {
      const { id } = c.req.valid("param");
      const identity = c.get("identity");
      const key = c.req.valid("header")["idempotency-key"];
      // The fingerprint holds the part's name and a hash of its bytes, known once the part is read.
      const digest = new StreamDigest();
      let filename = "";
      const fingerprint = () => fingerprintOf("POST", "/fmsg/{id}/attach", { id }, `${filename}\n${digest.digest()}`);
      /** A retry of a finished upload (the draft may be sent by now): hash the bytes, store nothing. */
      const replayIfAnswered = async (): Promise<void> => {
        const prior = key === undefined ? null : await earlierAnswer(deps.sql, identity, key);
        if (prior === null) return;
        await withFilePart(c.req.raw, async (part) => {
          filename = part.filename;
          for await (const _chunk of digest.pass(part.stream));
        });
        replayOrRefuse(prior, fingerprint());
      };
      const store = async (once?: Once<Saved>): Promise<Saved> => {
        await replayIfAnswered();
        const dir = await checkUploadAllowed(deps, identity, id).catch(async (err: unknown) => {
          // A concurrent upload with this key may have committed since the look-up, and the draft
          // been sent or deleted: then this is its retry, and gets its answer.
          await replayIfAnswered();
          throw err;
        });
        return withFilePart(c.req.raw, (part) => {
          filename = part.filename;
          return uploadAttachment(deps, identity, id, dir, key === undefined ? part : { ...part, stream: digest.pass(part.stream) }, once);
        });
      };
      return answerOnce(c, deps.sql, { key, fingerprint }, (saved: Saved) => ({ status: 201, body: saved }), store, { early: false });
    })
    .openapi(download, async (c) => {
      const { id, filename } = c.req.valid("param");
      return serveDownload(c, async () => {
        const m = await visibleMessage(deps, c.get("identity"), id);
        const a = await findAttachment(deps.sql, id, filename);
        if (!a) throw new ApiError(404, "attachment not found");
        return { dataDir: deps.dataDir, filepath: a.filepath, type: a.type, filename: a.filename, missing: "attachment not found", draft: m.time_sent === null };
      });
    })
    .openapi(remove, async (c) => {
      const { id, filename } = c.req.valid("param");
      await removeAttachment(deps, c.get("identity"), id, filename);
      return c.body(null, 204);
    });
  // More segments than one: the name held a "/" (perhaps sent as %2F, which the router decodes).
  // None at all ("/fmsg/1/attach", "/fmsg/1/attach/"): that path takes only POST (API §1: 404).
  app.on(["GET", "DELETE"], "/:id/attach/*", (c) => {
    refuseInvalid(IdParams.safeParse(c.req.param()));
    if (/\/attach\/?$/.test(c.req.path)) throw new ApiError(404, "not found");
    throw invalidFilename();
  });
  return app;
}
