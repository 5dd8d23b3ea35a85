// Reads JSON request bodies with a byte cap enforced while streaming, then hands them to the route's validator.
import type { MiddlewareHandler } from "hono";
import type { ZodType } from "zod";
import { ApiError, RETRY_AFTER_SECONDS } from "./errors.ts";
import { refuseInvalid } from "./validation.ts";

const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
/** No body of this API nests deeper than 3; JSON.parse of a deep `[[[[…` blocks the event loop for seconds. */
export const MAX_JSON_DEPTH = 32;
/**
 * Values (objects, arrays, and members after a comma) one body may hold. The largest valid body is
 * a draft with 255 `to` and 1,000 add-to addresses and a dozen fields. Without a cap, 20 MiB of
 * `{},{},…` parses into ~7 million objects: ~600 MiB of heap for one request that is refused anyway.
 */
export const MAX_JSON_VALUES = 10_000;

/**
 * Tracks bracket depth and counts values over raw JSON bytes as they stream in (outside strings;
 * `[`, `{`, `,`, `"` and `\` are ASCII, so UTF-8 continuation bytes never look like them). Reports
 * when MAX_JSON_DEPTH or MAX_JSON_VALUES is passed, before anything is parsed.
 */
export class JsonShapeGuard {
  private depth = 0;
  private values = 0;
  private inString = false;
  private escaped = false;

  /** The refusal as soon as the bytes seen so far nest too deeply or hold too many values; else null. */
  feed(bytes: Uint8Array): ApiError | null {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === 0x5c) this.escaped = true;
        else if (b === 0x22) this.inString = false;
      } else if (b === 0x22) this.inString = true;
      else if (b === 0x5b || b === 0x7b) {
        if (++this.depth > MAX_JSON_DEPTH) return new ApiError(400, "request body is nested too deeply");
        if (++this.values > MAX_JSON_VALUES) return tooMany();
      } else if (b === 0x5d || b === 0x7d) this.depth--;
      else if (b === 0x2c && ++this.values > MAX_JSON_VALUES) return tooMany();
    }
    return null;
  }
}

const tooMany = () => new ApiError(400, "request body holds too many values");

/**
 * Bytes of JSON bodies this process holds at once, read or being handled. A body is held about four
 * times over while it is handled (the bytes, the decoded text, the request rebuilt from it, the
 * parsed value), so 32 MiB of bodies cost ~130 MiB. Without a bound, 20 bodies of 21 MiB sent
 * together took the RSS from 90 to 950 MiB (probe B), on hosts sized for 512 MiB–1 GiB.
 */
export const JSON_BODY_BUDGET_BYTES = 32 * 1024 * 1024;
/** How long a body waits for room before it is refused with 503 `server busy`. */
export const JSON_BODY_WAIT_MS = 10_000;

/** A count of bytes shared first come, first served; a claim larger than the whole waits until it is alone. */
export class ByteBudget {
  private used = 0;
  private readonly waiting: { bytes: number; admit: () => void }[] = [];

  constructor(private readonly capacity: number) {}

  /** Takes `bytes` (at most the capacity: what to give back), waiting up to `waitMs`; null when there was no room in time. */
  async take(bytes: number, waitMs: number): Promise<number | null> {
    const n = Number.isFinite(bytes) && bytes >= 0 ? Math.min(bytes, this.capacity) : this.capacity;
    if (this.waiting.length === 0 && this.used + n <= this.capacity) {
      this.used += n;
      return n;
    }
    return new Promise<number | null>((resolve) => {
      const entry = {
        bytes: n,
        admit: () => {
          clearTimeout(timer);
          this.used += n;
          resolve(n);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(entry), 1);
        resolve(null);
        this.admitWaiting(); // a large claim giving up may let smaller ones behind it in
      }, waitMs);
      this.waiting.push(entry);
    });
  }

  give(bytes: number): void {
    this.used -= bytes;
    this.admitWaiting();
  }

  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.bytes <= this.capacity) this.waiting.shift()!.admit();
  }
}

const jsonBudget = new ByteBudget(JSON_BODY_BUDGET_BYTES);

export type JsonBodyOptions = {
  maxBytes: number;
  /** The 413 text of this route. */
  tooLarge: string;
  /** The route's path parameters: checked first, so a bad id is answered before any body byte is read. */
  params?: ZodType;
};

/**
 * Route middleware in front of the JSON validator: requires a JSON content type (415), reads at
 * most `maxBytes` while the body streams in (413 beyond, without buffering the rest), refuses deep
 * nesting, bodies of too many values and invalid UTF-8, and hands the text on as the request's body (Hono's public
 * `c.req.raw`, the way its own bodyLimit does), so the validator parses what was read here.
 */
export function boundedJsonBody(opts: JsonBodyOptions): MiddlewareHandler {
  return async (c, next) => {
    if (opts.params) refuseInvalid(opts.params.safeParse(c.req.param()));
    const type = c.req.header("content-type") ?? "";
    if (!JSON_TYPE.test(type.trim())) throw new ApiError(415, "content type must be application/json");
    const declared = c.req.header("content-length");
    if (declared !== undefined && Number(declared) > opts.maxBytes) throw new ApiError(413, opts.tooLarge);
    // Room for the body before a byte of it is read: a declared one as large as it says, one
    // without a length as large as it may grow. Held until the route is done with it.
    const held = await jsonBudget.take(declared !== undefined ? Number(declared) : opts.maxBytes, JSON_BODY_WAIT_MS);
    if (held === null) throw new ApiError(503, "server busy", { "Retry-After": RETRY_AFTER_SECONDS });
    try {
      const raw = c.req.raw;
      const text = declared !== undefined ? await readDeclared(raw) : await readCapped(raw, opts.maxBytes, opts.tooLarge);
      if (text.trim() === "") throw new ApiError(400, "request body must be a JSON object");
      const headers = new Headers(raw.headers);
      headers.set("content-type", "application/json"); // the one spelling every JSON validator accepts
      headers.delete("content-length");
      c.req.raw = new Request(raw.url, { method: raw.method, headers, body: text, signal: raw.signal });
      await next();
    } finally {
      jsonBudget.give(held);
    }
  };
}

/** The client went away (or the connection broke) before the body was complete. */
const interrupted = () => new ApiError(400, "request body interrupted");

/**
 * A body with a Content-Length already checked against the cap: Bun reads exactly that many bytes
 * (the HTTP framing ends the body there), in one native read instead of a JS stream reader per chunk.
 * Depth and UTF-8 are checked on the whole, which is no larger than the cap.
 */
async function readDeclared(req: Request): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await req.bytes();
  } catch {
    // The client went away before the declared length arrived.
    throw interrupted();
  }
  const refused = new JsonShapeGuard().feed(bytes);
  if (refused) throw refused;
  return decodeUtf8(bytes);
}

function decodeUtf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ApiError(400, "request body is not valid UTF-8");
  }
}

async function readCapped(req: Request, maxBytes: number, tooLarge: string): Promise<string> {
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  const shape = new JsonShapeGuard();
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read().catch(() => {
      throw interrupted();
    });
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new ApiError(413, tooLarge);
    }
    const refused = shape.feed(value);
    if (refused) {
      await reader.cancel().catch(() => {});
      throw refused;
    }
    chunks.push(value);
  }
  return decodeUtf8(Buffer.concat(chunks));
}
