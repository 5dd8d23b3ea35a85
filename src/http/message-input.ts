// zod schemas for what clients send: message bodies, add-to lists, ids and paging parameters.
import { z } from "zod";
import { isValidAddress } from "../domain/address.ts";
import { isValidMediaType } from "../domain/media-type.ts";
import { ApiError } from "./errors.ts";

export const MAX_RECIPIENTS = 255;
const MAX_TOPIC_BYTES = 255;
const MAX_BIGINT = 9223372036854775807n;

const utf8Length = (s: string) => Buffer.byteLength(s, "utf8");
/** Hostile input is echoed in error texts only in a bounded, printable form. */
const shown = (v: unknown) => {
  const text = typeof v === "string" ? v : JSON.stringify(v) ?? String(v);
  const printable = text.replace(/[\u0000-\u001f\u007f]/g, "?");
  return printable.length > 80 ? `${printable.slice(0, 80)}…` : printable;
};

/** Optional fields treat JSON null like an absent key. */
const absent = (v: unknown) => v === undefined || v === null;

/**
 * A list of recipient addresses: a JSON array of valid addresses. Whether two of them are the same
 * address is PostgreSQL's lower() to decide, so repeats are found where the list is written
 * (docs/design/address-case.md).
 * `emptyText` is the error for a missing or empty list (null: an absent list is allowed).
 */
export function addressList(field: string, emptyText: string | null) {
  return z.unknown().optional().transform((v, ctx): string[] => {
    const fail = (message: string) => {
      ctx.addIssue({ code: "custom", message, path: [field] });
      return z.NEVER;
    };
    if (absent(v) || (Array.isArray(v) && v.length === 0)) return emptyText ? fail(emptyText) : [];
    if (!Array.isArray(v)) return fail(`${field} must be a list of addresses`);
    if (v.length > MAX_RECIPIENTS) return fail(`${field} list must hold at most ${MAX_RECIPIENTS} addresses`);
    for (const a of v) if (!isValidAddress(a)) return fail(`invalid address in ${field}: ${shown(a)}`);
    return v as string[];
  });
}

/** A required field that must pass `check` (missing counts as failing it). */
const checked = <T>(field: string, check: (v: unknown) => v is T, message: string) =>
  z.unknown().optional().transform((v, ctx): T => {
    if (check(v)) return v;
    ctx.addIssue({ code: "custom", message, path: [field] });
    return z.NEVER;
  });

const flag = (field: string) =>
  z.unknown().optional().transform((v, ctx): boolean => {
    if (absent(v)) return false;
    if (typeof v === "boolean") return v;
    ctx.addIssue({ code: "custom", message: `${field} must be a boolean`, path: [field] });
    return z.NEVER;
  });

/** POST /fmsg and PUT /fmsg/:id (API.md §7). `size` is accepted and ignored. */
export const messageBody = z
  .object({
    version: checked("version", (v): v is 1 => v === 1, "version must be 1"),
    from: checked("from", isValidAddress, "from must be a valid address"),
    to: addressList("to", "to list must not be empty"),
    add_to: addressList("add_to", null),
    pid: z.unknown().optional().transform((v, ctx): number | null => {
      if (absent(v)) return null;
      if (typeof v === "number" && Number.isSafeInteger(v) && v > 0) return v;
      ctx.addIssue({ code: "custom", message: "pid must be a positive integer message id", path: ["pid"] });
      return z.NEVER;
    }),
    topic: z.unknown().optional().transform((v, ctx): string => {
      if (absent(v)) return "";
      if (typeof v === "string" && v.isWellFormed() && utf8Length(v) <= MAX_TOPIC_BYTES) return v;
      ctx.addIssue({ code: "custom", message: `topic must be a string of at most ${MAX_TOPIC_BYTES} bytes`, path: ["topic"] });
      return z.NEVER;
    }),
    type: checked("type", isValidMediaType, "type must be a valid media type"),
    important: flag("important"),
    no_reply: flag("no_reply"),
    data: z.unknown().optional().transform((v, ctx): string => {
      if (absent(v)) return "";
      // A lone surrogate (JSON "\ud800") has no UTF-8 form: storing it would silently change the body.
      if (typeof v === "string" && v.isWellFormed()) return v;
      ctx.addIssue({ code: "custom", message: "data must be a string of valid Unicode text", path: ["data"] });
      return z.NEVER;
    }),
  })
  .transform((m, ctx) => {
    if (m.pid !== null && m.topic !== "") {
      ctx.addIssue({ code: "custom", message: "topic must be empty when pid is given", path: ["topic"] });
      return z.NEVER;
    }
    return m;
  });

export type MessageInput = z.output<typeof messageBody>;

export const addToBody = z.object({ add_to: addressList("add_to", "add_to list must not be empty") });

/** `:id` path segments: a positive base-10 integer that fits a bigint (API.md §1). */
export function parseMessageId(raw: string | undefined): number {
  if (raw === undefined || !/^[1-9][0-9]{0,18}$/.test(raw) || BigInt(raw) > MAX_BIGINT) {
    throw new ApiError(400, "invalid message id");
  }
  const id = Number(raw);
  // Ids above 2^53 are valid bigints but cannot be represented as JSON numbers; this host never
  // issues them (see README), so no such message exists.
  if (!Number.isSafeInteger(id)) throw new ApiError(404, "message not found");
  return id;
}

/** A non-negative base-10 integer query parameter; values past 2^53 saturate (pages beyond any data). */
export function parseCount(raw: string | undefined, dflt: number, error: string): number {
  if (raw === undefined) return dflt;
  if (!/^[0-9]+$/.test(raw)) throw new ApiError(400, error);
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : Number.MAX_SAFE_INTEGER;
}

export type PageQuery = { limit: number; offset: number; beforeId: number | null };

/** `limit` 1–100 (default 20; larger values clamp to 100), `offset` ≥ 0, `before_id` > 0. */
export function parsePage(query: (name: string) => string | undefined): PageQuery {
  const limit = parseCount(query("limit"), 20, "invalid limit");
  if (limit < 1) throw new ApiError(400, "invalid limit");
  const offset = parseCount(query("offset"), 0, "invalid offset");
  const before = query("before_id");
  let beforeId: number | null = null;
  if (before !== undefined) {
    beforeId = parseCount(before, 0, "invalid before_id");
    if (beforeId < 1) throw new ApiError(400, "invalid before_id");
  }
  return { limit: Math.min(limit, 100), offset, beforeId };
}
