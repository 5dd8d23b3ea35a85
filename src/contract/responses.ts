// What the server answers: the message object, the small result objects, health, and the one error shape.
import { z } from "zod";

export const ErrorBody = z
  .object({ error: z.string().meta({ description: "A short, stable, human-readable reason.", example: "message not found" }) })
  .meta({ id: "Error", description: "Every error answer. Clients key on the status; the text is stable and fine to show." });

const id = z.number().int().min(1).meta({ description: "The message id." });
const time = z.number().meta({ description: "POSIX seconds with a fractional part (microseconds).", example: 1796448032.365884 });

export const AttachmentEntry = z
  .object({
    filename: z.string(),
    size: z.number().int().min(0).meta({ description: "Bytes, as served by the download route." }),
  })
  .meta({ id: "Attachment" });

const rfc3339 = z.string().meta({ description: "RFC 3339 UTC time.", example: "2026-12-05T07:00:00.000Z" });

export const Delivery = z
  .object({
    addr: z.string(),
    time_delivered: rfc3339.nullable().meta({ description: "When the recipient's host accepted it; null while pending or failed." }),
    response_code: z.number().int().nullable().meta({ description: "The fmsg per-recipient code of a failed attempt; null when delivered or pending." }),
  })
  .meta({ id: "Delivery", description: "Delivery state of one recipient." });

export const AddToBatch = z
  .object({
    batch_id: z.number().int().min(1),
    add_to_from: z.string().meta({ description: "Who added this batch." }),
    to: z.array(z.string()).meta({ description: "The batch's recipients in insertion order." }),
    to_delivery: z.array(Delivery).meta({ description: "One per address of `to`, same order." }),
    time: time.nullable().meta({ description: "When the batch was added; null for a draft's pending batch." }),
  })
  .meta({ id: "AddToBatch", description: "One add-to: who added which recipients, and when." });

/** The fields FMSG-003 added to the message object; both profiles have them. */
const standardFields = {
  to_delivery: z.array(Delivery).meta({ description: "One per `to` address, same order." }),
  short_text: z
    .string()
    .optional()
    .meta({ description: "For text/* bodies: the first bytes (FMSG_API_SHORT_TEXT_SIZE, default 768), cut back to a whole character. Absent when empty or not text." }),
  read: z.boolean().meta({ description: "The identity, as a recipient, has marked it read." }),
  time_read: time.nullable().meta({ description: "When the identity marked it read." }),
};

export const Message = z
  .object({
    id,
    version: z.number().int().meta({ description: "The fmsg version (1)." }),
    has_pid: z.boolean().meta({ description: "pid is not null." }),
    has_add_to: z.boolean().meta({ description: "At least one add-to batch exists." }),
    common_type: z.literal(false).meta({ description: "Always false: media types are stored as strings." }),
    important: z.boolean(),
    no_reply: z.boolean(),
    deflate: z.boolean().meta({ description: "The message arrived compressed (sizes are still those of what is served)." }),
    pid: id.nullable().meta({ description: "The message this one replies to." }),
    from: z.string().meta({ description: "The sender's address, as stored." }),
    to: z.array(z.string()).meta({ description: "Recipients in stored order." }),
    add_to: z.array(z.string()).meta({ description: "Every add-to recipient, batch by batch, in insertion order." }),
    add_to_from: z.string().nullable().meta({ description: "Who added the most recent batch." }),
    time: time.nullable().meta({ description: "When it was sent; null for a draft." }),
    topic: z.string(),
    type: z.string().meta({ description: "The body's media type." }),
    size: z.number().int().min(0).meta({ description: "Body bytes, as served by /fmsg/{id}/data." }),
    attachments: z.array(AttachmentEntry).meta({ description: "In stored order." }),
    add_to_batches: z.array(AddToBatch).meta({ description: "Every add-to batch, oldest first (a draft's pending one last, with time null)." }),
    ...standardFields,
  })
  .meta({ id: "Message", description: "A message as its owner or recipients see it (profile seed). Bodies and attachment contents are never inlined." });

export type MessageJson = z.infer<typeof Message>;

/** The message object under the fmsg-003 profile: add_to is the batch list; three seed-only keys are left out. */
export const Message003 = Message.omit({ add_to_from: true, common_type: true, add_to_batches: true })
  .extend({ add_to: z.array(AddToBatch).meta({ description: "Every add-to batch, oldest first (a draft's pending one last, with time null)." }) })
  .meta({ id: "Message003", description: "A message as its owner or recipients see it (profile fmsg-003)." });

export type MessageJson003 = z.infer<typeof Message003>;

export const MessageList = z.array(Message).meta({ description: "Newest (highest id) first; [] when empty." });
export const MessageList003 = z.array(Message003).meta({ description: "Newest (highest id) first; [] when empty." });

export const ReadResult = z
  .object({ id, time_read: time.meta({ description: "When the identity first marked it read." }) })
  .meta({ id: "ReadResult" });

export const Created = z.object({ id }).meta({ id: "Created" });

export const SendResult = z.object({ id, time }).meta({ id: "SendResult" });

export const AddToResult = z
  .object({ id, added: z.number().int().min(1).meta({ description: "How many addresses were added." }) })
  .meta({ id: "AddToResult" });

export const AttachmentSaved = z
  .object({ filename: z.string(), size: z.number().int().min(0) })
  .meta({ id: "AttachmentSaved", description: "The stored attachment: its name as sent and its size in bytes." });

export const WaitNews = z
  .object({ has_new: z.literal(true), latest_id: id.meta({ description: "The highest id of a message newer than since_id." }) })
  .meta({ id: "WaitNews" });

export const Health = z.object({ status: z.literal("ok") }).meta({ id: "Health" });

export const Readiness = z
  .object({
    status: z.enum(["ready", "not ready"]),
    database: z.boolean().meta({ description: "The database answered a query within 2 s." }),
    listener: z.boolean().meta({ description: "The LISTEN connection hears notifications." }),
    storage: z.literal(false).optional().meta({ description: "Present, false, when the data directory is missing, read-only or not writable (then 503)." }),
    schema: z.array(z.string()).optional().meta({ description: "Differences from what migrate installs (the server still works)." }),
  })
  .meta({ id: "Readiness" });

export const TokenGrant = z
  .object({
    access_token: z.string().meta({ description: "A bearer token for every other /fmsg route (HS256 JWT carrying `api_key_id` and `api_key_gen`)." }),
    token_type: z.literal("Bearer"),
    expires_in: z.number().int().min(1).meta({ description: "Seconds until it expires." }),
    expires_at: rfc3339.meta({ description: "When it expires (RFC 3339 UTC): never after the key's own expiry." }),
  })
  .meta({ id: "TokenGrant", description: "A short-lived token minted from an API key (POST /fmsg/token)." });
