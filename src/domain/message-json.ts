// A stored message (as the database holds it) and its client-facing JSON shape (the contract's Message).
import type { MessageJson } from "../contract/responses.ts";

export type StoredAttachment = { filename: string; size: number; flags: number; type: string; filepath: string };

/** A recipient row's delivery columns as fmsgd (or local delivery) wrote them. */
export type StoredDelivery = { addr: string; time_delivered: number | null; response_code: number | null };

export type StoredBatch = { batch_id: number; add_to_from: string; time_added: number; recipients: StoredDelivery[] };

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
  /** The `to` recipients in row order. */
  to_delivery: StoredDelivery[];
  /** Add-to batches, oldest first, each with its recipients in insertion order. */
  batches: StoredBatch[];
  /** When the reading identity marked it read as a recipient; null otherwise. */
  time_read: number | null;
  attachments: StoredAttachment[];
};

/** Attachment flag bit fmsgd sets on a part it received compressed (and stored decompressed). */
export const ATTACHMENT_DEFLATE_FLAG = 2;

export const attachmentIsCompressed = (a: StoredAttachment) => (a.flags & ATTACHMENT_DEFLATE_FLAG) !== 0;

/**
 * What is read from the files rather than the row: the real sizes of parts fmsgd received
 * compressed (their stored size is the wire size, while the file on disk is already decompressed,
 * and clients must see the length of what /data serves), and the body's opening text.
 */
export type FromFiles = { body?: number; attachments?: Map<string, number>; shortText?: string };

/** Codes fmsgd and local delivery record for a delivered recipient. */
const DELIVERED_CODES = new Set([200, 11]);

/**
 * A recipient's delivery as clients see it: the time as RFC 3339, and a code only for a failed
 * attempt — the sentinels -1 (no answer yet, will retry) and -2 (another host's recipient, recorded
 * from a received message) and the delivered codes are not failures.
 */
export function deliveryJson(d: StoredDelivery) {
  const failed = d.response_code !== null && d.response_code > 0 && !DELIVERED_CODES.has(d.response_code);
  return {
    addr: d.addr,
    time_delivered: d.time_delivered === null ? null : new Date(d.time_delivered * 1000).toISOString(),
    response_code: failed ? d.response_code : null,
  };
}

export function messageJson(m: StoredMessage, files: FromFiles = {}): MessageJson {
  const batches = m.batches.map((b) => ({
    batch_id: b.batch_id,
    add_to_from: b.add_to_from,
    to: b.recipients.map((r) => r.addr),
    to_delivery: b.recipients.map(deliveryJson),
    // A draft's batch is the pending one: it gets its time when the draft is sent.
    time: m.time_sent === null ? null : b.time_added,
  }));
  return {
    id: m.id,
    version: m.version,
    has_pid: m.pid !== null,
    has_add_to: batches.length > 0,
    common_type: false,
    important: m.is_important,
    no_reply: m.no_reply,
    deflate: m.is_deflate,
    pid: m.pid,
    from: m.from_addr,
    to: m.to_delivery.map((d) => d.addr),
    add_to: batches.flatMap((b) => b.to),
    add_to_from: batches.at(-1)?.add_to_from ?? null,
    time: m.time_sent,
    topic: m.topic,
    type: m.type,
    size: files.body ?? m.size,
    attachments: m.attachments.map((a) => ({
      filename: a.filename,
      size: files.attachments?.get(a.filename) ?? a.size,
    })),
    add_to_batches: batches,
    to_delivery: m.to_delivery.map(deliveryJson),
    ...(files.shortText ? { short_text: files.shortText } : {}),
    read: m.time_read !== null,
    time_read: m.time_read,
  };
}
