// Routes of /fmsg/:id/attach: streamed upload, download and delete of a draft's attachments.
import { Hono } from "hono";
import { isValidFilename } from "../../domain/filename.ts";
import { findAttachment } from "../../db/attachments.ts";
import { checkUploadAllowed, invalidFilename, removeAttachment, uploadAttachment } from "../../messages/attachments.ts";
import type { MessageDeps } from "../../messages/context.ts";
import { visibleMessage } from "../../messages/read-messages.ts";
import type { AppEnv } from "../app-env.ts";
import { serveDownload } from "../download.ts";
import { ApiError } from "../errors.ts";
import { parseMessageId } from "../message-input.ts";
import { withFilePart } from "../multipart-upload.ts";

/** The :filename segment, decoded by the router; checked before any look-up (a %2F becomes "/" and fails). */
function filenameParam(raw: string | undefined): string {
  if (!isValidFilename(raw)) throw invalidFilename();
  return raw;
}

export function attachmentRoutes(deps: MessageDeps) {
  return new Hono<AppEnv>()
    .post("/:id/attach", async (c) => {
      const id = parseMessageId(c.req.param("id"));
      const dir = await checkUploadAllowed(deps, c.var.identity, id);
      const saved = await withFilePart(c.req.raw, (part) => uploadAttachment(deps, c.var.identity, id, dir, part));
      return c.json(saved, 201);
    })
    .get("/:id/attach/:filename", async (c) => {
      const id = parseMessageId(c.req.param("id"));
      const filename = filenameParam(c.req.param("filename"));
      await visibleMessage(deps, c.var.identity, id);
      const a = await findAttachment(deps.sql, id, filename);
      if (!a) throw new ApiError(404, "attachment not found");
      return serveDownload(c.req.raw, {
        dataDir: deps.dataDir,
        filepath: a.filepath,
        type: a.type,
        filename: a.filename,
        missing: "attachment not found",
      });
    })
    .delete("/:id/attach/:filename", async (c) => {
      const id = parseMessageId(c.req.param("id"));
      await removeAttachment(deps, c.var.identity, id, filenameParam(c.req.param("filename")));
      return c.body(null, 204);
    })
    .on(["GET", "DELETE"], "/:id/attach/*", (c) => {
      // More segments than one: the name held a "/" (perhaps sent as %2F, which the router decodes).
      parseMessageId(c.req.param("id"));
      throw invalidFilename();
    });
}
