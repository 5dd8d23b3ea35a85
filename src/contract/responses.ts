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
  })
  .meta({ id: "Message", description: "A message as its owner or recipients see it. Bodies and attachment contents are never inlined." });

export type MessageJson = z.infer<typeof Message>;

export const MessageList = z.array(Message).meta({ description: "Newest (highest id) first; [] when empty." });

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
    schema: z.array(z.string()).optional().meta({ description: "Differences from what migrate installs (the server still works)." }),
  })
  .meta({ id: "Readiness" });
