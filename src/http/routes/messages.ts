// Routes of /fmsg: inbox, drafts (create, read, replace, delete), send, add-to and the body download.
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { AddToBody, IdempotencyHeaders, IdParams, InboxQuery, MessageBody } from "../../contract/requests.ts";
import { AddToResult, Created, Message, MessageList, SendResult } from "../../contract/responses.ts";
import { bodyExtension } from "../../domain/media-type.ts";
import { addRecipients } from "../../messages/add-recipients.ts";
import { createDraft, replaceDraft } from "../../messages/compose-draft.ts";
import type { MessageDeps } from "../../messages/context.ts";
import type { Once } from "../../messages/idempotency.ts";
import { deleteDraft } from "../../messages/delete-draft.ts";
import { inbox, readOneMessage, sentFolder, visibleMessage } from "../../messages/read-messages.ts";
import { sendDraft } from "../../messages/send-draft.ts";
import type { AppEnv } from "../app-env.ts";
import { DOWNLOAD_ANSWERS, serveDownload } from "../download.ts";
import { boundedJsonBody } from "../json-body.ts";
import { nextLink, NEXT_LINK_HEADERS } from "../next-link.ts";
import { answerOnce, fingerprintOf, jsonDigest } from "../idempotency.ts";
import { answers, BEARER, json, REPLAY_HEADERS, STORAGE_ERRORS, withKeyErrors } from "../openapi.ts";
import { inRequestProfile } from "../profile.ts";
import { refuseInvalid } from "../validation.ts";

/** Small JSON bodies (add-to lists): 255 addresses of 255 bytes fit easily. */
export const SMALL_JSON_LIMIT = 256 * 1024;

/**
 * A message body arrives inside a JSON string, where escaping can double it; the cap leaves room
 * for that and for the other fields, and the exact data limit is checked after parsing.
 */
export const messageJsonLimit = (maxDataBytes: number) => 2 * maxDataBytes + 1024 * 1024;

const security = [{ [BEARER]: [] }];
const tags = ["messages"];
const jsonBody = <T extends typeof MessageBody | typeof AddToBody>(schema: T, description: string) => ({
  required: true,
  description,
  content: { "application/json": { schema } },
});

const BAD_ID = "Invalid message id (`invalid message id`).";
const NO_MESSAGE = "No such message (`message not found`), or an id beyond what this host issues.";
const NOT_VISIBLE = "A message the identity does not take part in, or another owner's draft (`access denied`).";
const BAD_BODY = "A field breaks its rule (the text names the field), duplicate recipients (`duplicate recipient: <addr>`), `PID <pid> not found`, malformed JSON or a body that is not a JSON object.";
const NOT_JSON = "The body is not `application/json` (`content type must be application/json`).";

const listInbox = createRoute({
  operationId: "listInbox",
  method: "get",
  path: "/",
  tags,
  security,
  summary: "The inbox: sent messages the identity received, newest first",
  request: { query: InboxQuery },
  responses: answers(
    { 200: { ...json(MessageList, "A page of the inbox."), headers: NEXT_LINK_HEADERS } },
    { 400: "Invalid paging (`invalid limit`, `invalid offset`, `invalid before_id`)." },
  ),
});

const listSentFolder = createRoute({
  operationId: "listSent",
  method: "get",
  path: "/sent",
  tags,
  security,
  summary: "The sent folder: messages the identity wrote, drafts included, newest first",
  request: { query: InboxQuery },
  responses: answers(
    { 200: { ...json(MessageList, "A page of the sent folder."), headers: NEXT_LINK_HEADERS } },
    { 400: "Invalid paging (`invalid limit`, `invalid offset`, `invalid before_id`)." },
  ),
});

const createMessage = (limit: number) =>
  createRoute({
    operationId: "createDraft",
    method: "post",
    path: "/",
    tags,
    security,
    summary: "Create a draft",
    middleware: [boundedJsonBody({ maxBytes: limit, tooLarge: "message data exceeds maximum size" })],
    request: { headers: IdempotencyHeaders, body: jsonBody(MessageBody, "The draft.") },
    responses: answers(
      { 201: { ...json(Created, "The draft was stored with its recipients and body."), headers: REPLAY_HEADERS } },
      withKeyErrors({
        400: BAD_BODY,
        403: "`from` is not the identity (`from address must match authenticated user`) or not on this host's domain.",
        413: "The body is over the data limit (`message data exceeds maximum size`).",
        415: NOT_JSON,
        ...STORAGE_ERRORS,
      }),
    ),
  });

const readMessage = createRoute({
  operationId: "getMessage",
  method: "get",
  path: "/{id}",
  tags,
  security,
  summary: "One message",
  request: { params: IdParams },
  responses: answers({ 200: json(Message, "The message.") }, { 400: BAD_ID, 403: NOT_VISIBLE, 404: NO_MESSAGE }),
});

const replaceMessage = (limit: number) =>
  createRoute({
    operationId: "replaceDraft",
    method: "put",
    path: "/{id}",
    tags,
    security,
    summary: "Replace a draft: every field and the recipient lists (attachments are kept)",
    middleware: [boundedJsonBody({ maxBytes: limit, tooLarge: "message data exceeds maximum size", params: IdParams })],
    request: { params: IdParams, body: jsonBody(MessageBody, "Every field of the draft.") },
    responses: answers(
      { 200: json(Created, "The draft was replaced.") },
      {
        400: `${BAD_ID} Or: ${BAD_BODY}`,
        403: "Not the owner (`only the owner may update a message`), already sent (`sent messages are immutable`), or `from` is not the identity.",
        404: NO_MESSAGE,
        413: "Over the data limit, or body and attachments over the message limit (`total message size exceeds limit`).",
        415: NOT_JSON,
        ...STORAGE_ERRORS,
      },
    ),
  });

const deleteMessage = createRoute({
  operationId: "deleteDraft",
  method: "delete",
  path: "/{id}",
  tags,
  security,
  summary: "Delete a draft with its recipients, attachments and files",
  request: { params: IdParams },
  responses: answers(
    { 204: { description: "Deleted." } },
    {
      400: BAD_ID,
      403: "Not the owner (`only the owner may delete a message`) or already sent (`sent messages cannot be deleted`).",
      404: NO_MESSAGE,
    },
  ),
});

const sendMessage = createRoute({
  operationId: "sendDraft",
  method: "post",
  path: "/{id}/send",
  tags,
  security,
  summary: "Send a draft",
  request: { params: IdParams, headers: IdempotencyHeaders },
  responses: answers(
    { 200: { ...json(SendResult, "Sent; `time` is the send time."), headers: REPLAY_HEADERS } },
    withKeyErrors({
      400: BAD_ID,
      403: "Not the owner (`only the owner may send a message`).",
      404: NO_MESSAGE,
      409: "Already sent (`message already sent`); of concurrent sends exactly one wins.",
    }),
  ),
});

const addTo = createRoute({
  operationId: "addRecipients",
  method: "post",
  path: "/{id}/add-to",
  tags,
  security,
  summary: "Add recipients (a new batch on a sent message; the pending batch of a draft)",
  middleware: [boundedJsonBody({ maxBytes: SMALL_JSON_LIMIT, tooLarge: "request body too large", params: IdParams })],
  request: { params: IdParams, headers: IdempotencyHeaders, body: jsonBody(AddToBody, "The addresses to add.") },
  responses: answers(
    { 200: { ...json(AddToResult, "Added."), headers: REPLAY_HEADERS } },
    withKeyErrors({
      400: `${BAD_ID} Or: an invalid, duplicate or already-present address, or a list over its limits.`,
      403: "Neither the owner nor a `to` recipient (`only existing participants may add recipients`).",
      404: NO_MESSAGE,
      413: "The body is over 256 KiB (`request body too large`).",
      415: NOT_JSON,
    }),
  ),
});

const downloadBody = createRoute({
  operationId: "downloadBody",
  method: "get",
  path: "/{id}/data",
  tags,
  security,
  summary: "The message body (Range and If-None-Match supported)",
  request: { params: IdParams },
  responses: answers(DOWNLOAD_ANSWERS, {
    400: BAD_ID,
    403: NOT_VISIBLE,
    404: `${NO_MESSAGE} Or: the body file is missing (\`message data not available\`).`,
    416: "The Range lies outside the body (`range not satisfiable`).",
  }),
});

export function messageRoutes(deps: MessageDeps) {
  const dataLimit = messageJsonLimit(deps.maxDataBytes);
  return new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid })
    .openapi(listInbox, async (c) => {
      const page = await inbox(deps, c.get("identity"), toPage(c.req.valid("query")));
      if (page.nextBeforeId !== null) c.header("Link", nextLink(c.req.url, page.nextBeforeId));
      return c.json(page.messages.map((m) => inRequestProfile(c, m)), 200);
    })
    // Before /{id}: "sent" is a route, never an id.
    .openapi(listSentFolder, async (c) => {
      const page = await sentFolder(deps, c.get("identity"), toPage(c.req.valid("query")));
      if (page.nextBeforeId !== null) c.header("Link", nextLink(c.req.url, page.nextBeforeId));
      return c.json(page.messages.map((m) => inRequestProfile(c, m)), 200);
    })
    .openapi(createMessage(dataLimit), async (c) => {
      const input = c.req.valid("json");
      const keyed = { key: c.req.valid("header")["idempotency-key"], fingerprint: () => fingerprintOf("POST", "/fmsg", {}, jsonDigest(input)) };
      return answerOnce(c, deps.sql, keyed, (id: number) => ({ status: 201, body: { id } }), (once) => createDraft(deps, c.get("identity"), input, once));
    })
    .openapi(readMessage, async (c) => {
      return c.json(inRequestProfile(c, await readOneMessage(deps, c.get("identity"), c.req.valid("param").id)), 200);
    })
    .openapi(replaceMessage(dataLimit), async (c) => {
      const { id } = c.req.valid("param");
      await replaceDraft(deps, c.get("identity"), id, c.req.valid("json"));
      return c.json({ id }, 200);
    })
    .openapi(deleteMessage, async (c) => {
      await deleteDraft(deps, c.get("identity"), c.req.valid("param").id);
      return c.body(null, 204);
    })
    .openapi(sendMessage, async (c) => {
      const { id } = c.req.valid("param");
      const keyed = { key: c.req.valid("header")["idempotency-key"], fingerprint: () => fingerprintOf("POST", "/fmsg/{id}/send", { id }, "") };
      return answerOnce(c, deps.sql, keyed, (time: number) => ({ status: 200, body: { id, time } }), (once) => sendDraft(deps, c.get("identity"), id, once));
    })
    .openapi(addTo, async (c) => {
      const { id } = c.req.valid("param");
      const input = c.req.valid("json");
      const keyed = { key: c.req.valid("header")["idempotency-key"], fingerprint: () => fingerprintOf("POST", "/fmsg/{id}/add-to", { id }, jsonDigest(input)) };
      const write = (once?: Once<number>) => addRecipients(deps, c.get("identity"), id, input.add_to, once);
      return answerOnce(c, deps.sql, keyed, (added: number) => ({ status: 200, body: { id, added } }), write);
    })
    .openapi(downloadBody, async (c) => {
      return serveDownload(c, async () => {
        const m = await visibleMessage(deps, c.get("identity"), c.req.valid("param").id);
        return {
          dataDir: deps.dataDir,
          filepath: m.filepath,
          type: m.type,
          filename: `message-${m.id}${bodyExtension(m.type)}`,
          missing: "message data not available",
          draft: m.time_sent === null,
        };
      });
    });
}


function toPage(q: { limit: number; offset: number; before_id: number | null }) {
  return { limit: q.limit, offset: q.offset, beforeId: q.before_id };
}
