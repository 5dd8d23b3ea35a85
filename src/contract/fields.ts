// Field rules shared by the request schemas: addresses, ids, counts, lists — each failing with the API's exact text.
import { z } from "zod";
import { isValidAddress } from "../domain/address.ts";
import { MAX_RECIPIENTS } from "../domain/limits.ts";

/** Largest PostgreSQL bigint: the range of message ids. */
const MAX_BIGINT = 9223372036854775807n;

/** Hostile input is echoed in error texts only in a bounded, printable form. */
export function shown(v: unknown): string {
  const text = typeof v === "string" ? v : (JSON.stringify(v) ?? String(v));
  const printable = text.replace(/[\u0000-\u001f\u007f]/g, "?");
  return printable.length > 80 ? `${printable.slice(0, 80)}…` : printable;
}

/** JSON null counts as an absent key for every optional field. */
export const isAbsent = (v: unknown) => v === undefined || v === null;

/** A fail-closed issue carrying the status the API answers with, when it is not 400. */
export function issue(ctx: z.RefinementCtx, message: string, status?: 404): never {
  ctx.addIssue({ code: "custom", message, ...(status ? { params: { status } } : {}) });
  return z.NEVER as never;
}

/** An fmsg address; `error` builds the text from the refused value. */
export const address = (error: (input: unknown) => string) =>
  z
    .string({ error: (iss) => error(iss.input) })
    .refine(isValidAddress, { error: (iss) => error(iss.input) })
    .meta({
      description: "An fmsg address `@user@domain`: user of Unicode letters and digits with single `-_.` between them (1–64 UTF-8 bytes); domain `localhost` or DNS labels; 255 bytes at most. Compared case-insensitively, stored as sent.",
      example: "@alice@example.com",
    });

/**
 * A list of recipient addresses. Its length is checked before any element, so a hostile list of a
 * million entries is refused at once instead of producing a million issues. Repeats are not checked
 * here: whether two addresses are the same is PostgreSQL's lower() to decide, where the list is written.
 */
function addressArray(field: string, emptyText: string | null) {
  const tooMany = `${field} list must hold at most ${MAX_RECIPIENTS} addresses`;
  const list = z
    .array(address((a) => `invalid address in ${field}: ${shown(a)}`), {
      error: (iss) => (isAbsent(iss.input) && emptyText ? emptyText : `${field} must be a list of addresses`),
    })
    .max(MAX_RECIPIENTS, tooMany);
  const lengthFirst = (v: unknown, ctx: z.RefinementCtx) => {
    if (Array.isArray(v) && v.length > MAX_RECIPIENTS) return issue(ctx, tooMany);
    if (emptyText && Array.isArray(v) && v.length === 0) return issue(ctx, emptyText);
    return isAbsent(v) && !emptyText ? undefined : v;
  };
  return { list, lengthFirst };
}

/** A required list of 1–255 addresses; `emptyText` is the error for a missing or empty one. */
export function addressList(field: string, emptyText: string) {
  const { list, lengthFirst } = addressArray(field, emptyText);
  return z.preprocess(lengthFirst, list.min(1, emptyText));
}

/** An optional list of 0–255 addresses; absent or null gives undefined ("not given": the route decides). */
export function optionalAddressList(field: string) {
  const { list, lengthFirst } = addressArray(field, null);
  return z.preprocess(lengthFirst, list.optional());
}

/**
 * Words under /fmsg that name routes (here, in the FMSG-003 standard, or in upstream's API), never
 * messages: one this server does not serve is "not found", never "invalid message id".
 */
export const RESERVED_WORDS: ReadonlySet<string> = new Set(["sent", "wait", "events", "ws", "token", "sub-accounts"]);

/** A `:id` path segment: a positive base-10 integer that fits a bigint, as plain digits. */
export const messageId = z
  .string()
  .transform((raw, ctx) => {
    if (RESERVED_WORDS.has(raw)) return issue(ctx, "not found", 404);
    if (!/^[1-9][0-9]{0,18}$/.test(raw) || BigInt(raw) > MAX_BIGINT) return issue(ctx, "invalid message id");
    const id = Number(raw);
    // Valid bigints above 2^53 cannot be JSON numbers; this host never issues them, so no such message exists.
    if (!Number.isSafeInteger(id)) return issue(ctx, "message not found", 404);
    return id;
  })
  .meta({ type: "integer", minimum: 1, description: "A message id: a positive base-10 integer (PostgreSQL bigserial)." } as Record<string, unknown>);

/**
 * A non-negative integer query parameter (the first, when repeated). Values past 2^53 saturate:
 * they mean pages or ids beyond any data. `min` and `max` bound it; `clamp` brings larger values down.
 */
/** A query parameter given more than once counts with its first value (as Hono's c.req.query() reads it). */
export const firstValue = (v: unknown) => (Array.isArray(v) ? v[0] : v);

export function count<D extends number | null>(opts: {
  name: string;
  /** The value when the parameter is absent (null: "not given", and no default is documented). */
  dflt: D;
  min?: number;
  max?: number;
  clamp?: number;
  description: string;
}) {
  const error = `invalid ${opts.name}`;
  return z
    .preprocess(
      firstValue,
      z
        .string()
        .optional()
        .transform((raw, ctx): number | D => {
          if (raw === undefined) return opts.dflt;
          if (!/^[0-9]+$/.test(raw)) return issue(ctx, error);
          const n = Number.isSafeInteger(Number(raw)) ? Number(raw) : Number.MAX_SAFE_INTEGER;
          if ((opts.min !== undefined && n < opts.min) || (opts.max !== undefined && n > opts.max)) return issue(ctx, error);
          return opts.clamp !== undefined ? Math.min(n, opts.clamp) : n;
        }),
    )
    .meta({
      type: "integer",
      ...(opts.min !== undefined ? { minimum: opts.min } : { minimum: 0 }),
      ...(opts.max !== undefined ? { maximum: opts.max } : {}),
      ...(opts.dflt !== null ? { default: opts.dflt } : {}),
      description: opts.description,
    } as Record<string, unknown>);
}
