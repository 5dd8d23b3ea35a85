// What clients send: path parameters, queries and JSON bodies of every route, with the API's error texts.
import { z } from "zod";
import { isValidFilename } from "../domain/filename.ts";
import { MAX_RECIPIENTS, MAX_TOPIC_BYTES } from "../domain/limits.ts";
import { isValidMediaType, parseMediaType } from "../domain/media-type.ts";
import { parseProfile, PROFILES } from "../domain/profile.ts";
import { address, addressList, count, firstValue, issue, messageId, optionalAddressList } from "./fields.ts";

const utf8Length = (s: string) => Buffer.byteLength(s, "utf8");

/** An optional boolean: absent or null is false. */
const flag = (field: string, description: string) =>
  z
    .boolean({ error: `${field} must be a boolean` })
    .nullish()
    .transform((v) => v ?? false)
    .meta({ description });

/** An optional string checked by `valid`; absent or null is "". */
const text = (error: string, valid: (s: string) => boolean, description: string) =>
  z
    .string({ error })
    .refine(valid, error)
    .nullish()
    .transform((v) => v ?? "")
    .meta({ description });

export const CHARSET_MISMATCH = "type's charset must be utf-8: data is stored as UTF-8";

/**
 * `data` is JSON text, stored as its UTF-8 bytes: a `charset` parameter in `type` must describe
 * those bytes, that is, read them back as `data` (always so for utf-8; for an ASCII-compatible
 * charset such as iso-8859-1 when `data` is ASCII). Otherwise every reader (recipients, remote
 * hosts, this server's thread view) would show "café" as "cafÃ©". A type without a charset, a
 * label no decoder knows (readers fall back to UTF-8) or an invalid type (refused on its own) pass.
 */
function charsetFits(type: string, data: string): boolean {
  const charset = parseMediaType(type)?.params.find(([name]) => name === "charset")?.[1];
  if (charset === undefined) return true;
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(charset as ConstructorParameters<typeof TextDecoder>[0]);
  } catch {
    return true;
  }
  return decoder.encoding === "utf-8" || decoder.decode(new TextEncoder().encode(data)) === data;
}

export const MessageBody = z
  .object(
    {
      version: z.literal(1, { error: "version must be 1" }).meta({ description: "The fmsg version; always 1." }),
      from: address(() => "from must be a valid address").meta({
        description: "The sender: must be the authenticated identity (and on FMSG_DOMAIN when the host sets one).",
      }),
      to: addressList("to", "to list must not be empty").meta({
        description: `Recipients: 1–${MAX_RECIPIENTS} addresses, no address twice (case-insensitively).`,
      }),
      add_to: optionalAddressList("add_to").meta({
        description: `Recipients added as one add-to batch when the draft is sent (0–${MAX_RECIPIENTS}). On PUT, an absent (or null) add_to keeps the draft's pending batch, a list replaces it, and [] clears it.`,
      }),
      pid: z
        .number({ error: "pid must be a positive integer message id" })
        .int("pid must be a positive integer message id")
        .positive("pid must be a positive integer message id")
        .max(Number.MAX_SAFE_INTEGER, "pid must be a positive integer message id")
        .nullish()
        .transform((v) => v ?? null)
        .meta({ description: "The id of the sent message this one replies to (the author must take part in it)." }),
      topic: text(
        `topic must be a string of at most ${MAX_TOPIC_BYTES} bytes`,
        (s) => s.isWellFormed() && utf8Length(s) <= MAX_TOPIC_BYTES,
        `At most ${MAX_TOPIC_BYTES} bytes of UTF-8, no NUL character; must be empty when pid is given.`,
      ),
      type: z
        .string({ error: "type must be a valid media type" })
        .refine(isValidMediaType, "type must be a valid media type")
        .meta({ description: "The body's media type (US-ASCII, RFC 6838 shape, parameters allowed, ≤ 255 bytes).", example: "text/plain; charset=utf-8" }),
      size: z.unknown().optional().meta({ description: "Accepted and ignored: the server computes the size." }),
      important: flag("important", "Marks the message important."),
      no_reply: flag("no_reply", "Asks recipients not to reply."),
      // A lone surrogate (JSON "\ud800") has no UTF-8 form: storing it would silently change the body.
      data: text("data must be a string of valid Unicode text", (s) => s.isWellFormed(), "The body as UTF-8 text (default empty)."),
    },
    { error: "request body must be a JSON object" },
  )
  .superRefine((m, ctx) => {
    // PostgreSQL's text cannot hold U+0000 (the body can: it is a file).
    if (m.topic.includes("\u0000")) ctx.addIssue({ code: "custom", message: "topic must not contain the NUL character", path: ["topic"] });
    if (m.pid !== null && m.topic !== "") ctx.addIssue({ code: "custom", message: "topic must be empty when pid is given", path: ["topic"] });
    if (!charsetFits(m.type, m.data)) ctx.addIssue({ code: "custom", message: CHARSET_MISMATCH, path: ["type"] });
  })
  .transform(({ size: _ignored, ...m }) => m)
  .meta({ id: "MessageInput", description: "A draft: every field of the message a client chooses. Unknown fields are ignored." });

/** What POST /fmsg and PUT /fmsg/{id} hand to the use cases. */
export type MessageInput = z.output<typeof MessageBody>;

export const AddToBody = z
  .object({ add_to: addressList("add_to", "add_to list must not be empty") }, { error: "request body must be a JSON object" })
  .meta({ id: "AddToInput", description: `1–${MAX_RECIPIENTS} addresses, none already a recipient of the message.` });

export const IdParams = z.object({ id: messageId });

export const AttachmentParams = z.object({
  id: messageId,
  filename: z
    .string()
    .refine(isValidFilename, "invalid filename")
    .meta({ description: "An attachment's name: Unicode letters and digits with single `-_ .` between them, < 256 bytes." }),
});

export const InboxQuery = z.object({
  limit: count({ name: "limit", dflt: 20, min: 1, clamp: 100, description: "Page size, 1–100 (larger values are clamped to 100)." }),
  offset: count({ name: "offset", dflt: 0, description: "Messages to skip." }),
  before_id: count({ name: "before_id", dflt: null, min: 1, description: "Only messages with a lower id (keyset paging)." }),
});

export const MAX_WAIT_SECONDS = 60;

export const WaitQuery = z.object({
  since_id: count({ name: "since_id", dflt: 0, description: "Answer only for messages with a higher id." }),
  timeout: count({ name: "timeout", dflt: 25, min: 1, max: MAX_WAIT_SECONDS, description: "Seconds to wait, 1–60." }),
});

export const WebSocketQuery = z.object({
  access_token: z
    .preprocess(firstValue, z.string().optional())
    .meta({ description: "The bearer token, for clients that cannot send an Authorization header on a WebSocket (browsers). The header wins when both are given." }),
});


export const DocumentQuery = z.object({
  profile: z
    .preprocess(firstValue, z.string().optional())
    .transform((v, ctx) => {
      if (v === undefined) return undefined;
      return parseProfile(v) ?? issue(ctx, "invalid profile");
    })
    .meta({ type: "string", enum: [...PROFILES], description: "The message shape to describe (default: the host's FMSG_API_PROFILE)." } as Record<string, unknown>),
});

/** The request header of the four idempotent writes (docs/API.md "Idempotent writes"); lower-case, as Hono reads headers. */
export const IdempotencyHeaders = z.object({
  "idempotency-key": z
    .string()
    .regex(/^[\x21-\x7e]{1,255}$/, "invalid Idempotency-Key: 1 to 255 visible ASCII characters")
    .optional()
    .meta({
      description:
        "Idempotency-Key: 1–255 visible ASCII characters. A retry with the same key by the same identity within 24 h gets the first answer again (with `Idempotent-Replayed: true`) and changes nothing; the same key with a different request → 422. Concurrent requests with one key wait for the first, then get its answer.",
    }),
});
