// A stored message (as the database holds it) and its client-facing JSON shape (the contract's Message).
import type { MessageJson } from "../contract/responses.ts";

export type StoredAttachment = { filename: string; size: number; flags: number; type: string; filepath: string };

export type StoredMessage = {
  id: number;
  version: number;
  pid: number | null;
  no_reply: boolean;
  is_important: boolean;
  is_deflate: boolean;
  time_sent: number | null;
  from_addr: string;
  topic: string;
  type: string;
  size: number;
  filepath: string;
  to: string[];
  add_to: string[];
  /** The adder of the newest batch; null exactly when the message has no batch. */
  add_to_from: string | null;
  attachments: StoredAttachment[];
};


/** Attachment flag bit fmsgd sets on a part it received compressed (and stored decompressed). */
export const ATTACHMENT_DEFLATE_FLAG = 2;

export const attachmentIsCompressed = (a: StoredAttachment) => (a.flags & ATTACHMENT_DEFLATE_FLAG) !== 0;

/**
 * Sizes measured on disk for parts fmsgd received compressed: their stored size is the wire size,
 * while the file on disk is already decompressed, and clients must see the length of what /data serves.
 */
export type MeasuredSizes = { body?: number; attachments?: Map<string, number> };

export function messageJson(m: StoredMessage, measured: MeasuredSizes = {}): MessageJson {
  return {
    id: m.id,
    version: m.version,
    has_pid: m.pid !== null,
    has_add_to: m.add_to_from !== null, // every batch row names its adder
    common_type: false,
    important: m.is_important,
    no_reply: m.no_reply,
    deflate: m.is_deflate,
    pid: m.pid,
    from: m.from_addr,
    to: m.to ?? [],
    add_to: m.add_to ?? [],
    add_to_from: m.add_to_from,
    time: m.time_sent,
    topic: m.topic,
    type: m.type,
    size: measured.body ?? m.size,
    attachments: (m.attachments ?? []).map((a) => ({
      filename: a.filename,
      size: measured.attachments?.get(a.filename) ?? a.size,
    })),
  };
}
