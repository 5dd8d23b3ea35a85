// Routes of /fmsg/{id}/read and /fmsg/{id}/thread: a recipient's read mark, and the reply chain as text or JSON.
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import { IdParams } from "../../contract/requests.ts";
import { Message, ReadResult } from "../../contract/responses.ts";
import type { MessageDeps } from "../../messages/context.ts";
import { markRead } from "../../messages/mark-read.ts";
import { threadMessages, threadText } from "../../messages/threads.ts";
import type { AppEnv } from "../app-env.ts";
import { answers, BEARER, json } from "../openapi.ts";
import { inRequestProfile } from "../profile.ts";
import { refuseInvalid } from "../validation.ts";

const security = [{ [BEARER]: [] }];
const tags = ["messages"];

const BAD_ID = "Invalid message id (`invalid message id`).";
const NO_MESSAGE = "No such message (`message not found`), or an id beyond what this host issues.";
const NOT_VISIBLE = "A message the identity does not take part in, or another owner's draft (`access denied`).";

const read = createRoute({
  operationId: "markRead",
  method: "post",
  path: "/{id}/read",
  tags,
  security,
  summary: "Mark a received message read (the first time is kept; a repeat returns it)",
  request: { params: IdParams },
  responses: answers(
    { 200: json(ReadResult, "Marked; `time_read` is when the identity first marked it read.") },
    {
      400: BAD_ID,
      403: "Not a `to` or add-to recipient of a sent message: the owner alone, anyone else, and every draft (`only recipients of a sent message may mark it read`).",
      404: NO_MESSAGE,
    },
  ),
});

const CHAIN = "The message's ancestors by pid (at most 100, root first), then the message itself.";

const threadAsText = createRoute({
  operationId: "getThread",
  method: "get",
  path: "/{id}/thread",
  tags,
  security,
  summary: "The thread as text",
  request: { params: IdParams },
  responses: answers(
    {
      200: {
        description: `${CHAIN} \`text/plain; charset=utf-8\`: each entry starts with \`--- <from> <RFC 3339 UTC time or "draft"> ---\`, then the body (text/* and application/json that the identity may see; longer than FMSG_API_MAX_DATA_SIZE is cut with \`[message truncated after <n> bytes]\`), or \`[message not visible to you]\`, \`[non-text message: <type>, <size> bytes]\` or \`[message data not available]\`. One blank line between entries; ends with a line break.`,
        content: { "text/plain": { schema: z.string() } },
      },
    },
    { 400: BAD_ID, 403: NOT_VISIBLE, 404: NO_MESSAGE },
  ),
});

const threadAsMessages = createRoute({
  operationId: "getThreadMessages",
  method: "get",
  path: "/{id}/thread/messages",
  tags,
  security,
  summary: "The thread as message objects",
  request: { params: IdParams },
  responses: answers(
    { 200: json(z.array(Message), `${CHAIN} Only the messages the identity may see.`) },
    { 400: BAD_ID, 403: NOT_VISIBLE, 404: NO_MESSAGE },
  ),
});

export function threadRoutes(deps: MessageDeps) {
  return new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid })
    .openapi(read, async (c) => {
      const { id } = c.req.valid("param");
      const time_read = await markRead(deps, c.get("identity"), id);
      return c.json({ id, time_read }, 200);
    })
    .openapi(threadAsText, async (c) => {
      const pieces = await threadText(deps, c.get("identity"), c.req.valid("param").id);
      return c.body(textStream(pieces), 200, { "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff" });
    })
    .openapi(threadAsMessages, async (c) => {
      const chain = await threadMessages(deps, c.get("identity"), c.req.valid("param").id);
      return c.json(chain.map((m) => inRequestProfile(c, m)), 200);
    });
}


/** Pulls one piece at a time, so only the entry being sent is in memory; a client that leaves stops the reads. */
function textStream(pieces: AsyncGenerator<string>): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const next = await pieces.next();
      if (next.done) controller.close();
      else controller.enqueue(encoder.encode(next.value));
    },
    async cancel() {
      await pieces.return(undefined);
    },
  });
}
