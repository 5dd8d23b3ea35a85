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
 * Bytes of JSON bodies this process holds at once, read or being handled. A body is held several
 * times over while it is handled (the bytes, the decoded text, the request rebuilt from it, the
 * parsed value): with this bound, 10 to 300 concurrent 21 MiB bodies peaked at 250–440 MiB RSS
 * (probe F). Without one, 20 of them took the RSS from 90 to 950 MiB (probe B), on hosts sized
 * for 512 MiB–1 GiB.
 */
export const JSON_BODY_BUDGET_BYTES = 32 * 1024 * 1024;
/** How long a body waits for room before it is refused with 503 `server busy`. */
export const JSON_BODY_WAIT_MS = 10_000;

/**
 * A count of bytes shared first come, first served, with a cap per holder (an identity): one
 * holder's claims beyond its cap wait for its own room, out of everyone else's way. A claim larger
 * than the cap (or the whole) takes all of it, once it is alone.
 */
export class ByteBudget {
  private used = 0;
  private readonly byHolder = new Map<string, number>();
  /** Claims that fit their holder's cap, waiting for room in the whole, in order. */
  private readonly waiting: { holder: string; bytes: number; admit: () => void }[] = [];
  /** Claims waiting for room within their own holder's cap. */
  private readonly holderWaiting = new Map<string, { bytes: number; enter: () => void }[]>();

  constructor(
    private readonly capacity: number,
    private readonly perHolder = capacity,
  ) {}

  /** Takes `bytes` for `holder` (at most its cap: what to give back), waiting up to `waitMs`; null when there was no room in time. */
  async take(holder: string, bytes: number, waitMs: number): Promise<number | null> {
    const most = Math.min(this.perHolder, this.capacity);
    const n = Number.isFinite(bytes) && bytes >= 0 ? Math.min(bytes, most) : most;
    return new Promise<number | null>((resolve) => {
      let done = false;
      const timer = setTimeout(() => {
        done = true;
        this.forget(holder, entry, own);
        resolve(null);
        this.admit(); // a claim giving up may let others in
      }, waitMs);
      const entry = {
        holder,
        bytes: n,
        admit: () => {
          clearTimeout(timer);
          done = true;
          this.used += n;
          resolve(n);
        },
      };
      const own = { bytes: n, enter: () => !done && (this.waiting.push(entry), this.admit()) };
      // The holder's own queue first: a holder at its cap waits there, not in everyone's way.
      const queue = this.holderWaiting.get(holder) ?? [];
      queue.push(own);
      this.holderWaiting.set(holder, queue);
      this.enterFrom(holder);
    });
  }

  give(holder: string, bytes: number): void {
    this.used -= bytes;
    this.unhold(holder, bytes);
    this.admit();
  }

  /** Takes `bytes` off what `holder` holds, and lets its next claims in while they fit its cap. */
  private unhold(holder: string, bytes: number): void {
    const left = (this.byHolder.get(holder) ?? 0) - bytes;
    if (left > 0) this.byHolder.set(holder, left);
    else this.byHolder.delete(holder);
    this.enterFrom(holder);
  }

  /** Moves the holder's next claims into the common queue while they fit its cap. */
  private enterFrom(holder: string): void {
    const queue = this.holderWaiting.get(holder);
    while (queue && queue.length > 0) {
      const next = queue[0]!;
      const holding = this.byHolder.get(holder) ?? 0;
      if (holding > 0 && holding + next.bytes > this.perHolder) return;
      queue.shift();
      this.byHolder.set(holder, holding + next.bytes);
      next.enter();
    }
    this.holderWaiting.delete(holder);
  }

  private forget(holder: string, entry: { bytes: number }, own: { bytes: number }): void {
    const queue = this.holderWaiting.get(holder);
    const at = queue?.indexOf(own as never) ?? -1;
    if (at >= 0) {
      queue!.splice(at, 1); // still waiting for its holder's room: nothing was counted
      return;
    }
    const common = this.waiting.indexOf(entry as never);
    if (common >= 0) this.waiting.splice(common, 1);
    // Counted against its holder when it entered the common queue: given back.
    this.unhold(holder, entry.bytes);
  }

  private admit(): void {
    while (this.waiting.length > 0 && (this.used === 0 || this.used + this.waiting[0]!.bytes <= this.capacity)) this.waiting.shift()!.admit();
  }
}

/**
 * What one identity may hold of it: as much as the largest body a route takes by default
 * (2 × 10 MiB of data + 1 MiB), so a single client, however slow, always leaves room for others.
 */
export const JSON_BODY_PER_IDENTITY_BYTES = 21 * 1024 * 1024;

const jsonBudget = new ByteBudget(JSON_BODY_BUDGET_BYTES, JSON_BODY_PER_IDENTITY_BYTES);

/**
 * The Content-Length as a number, or a 400: one length, or the same one repeated (RFC 9110 lets a
 * proxy merge duplicates into "N, N"). Read as a number, "N, N" was NaN, which passed the size
 * check and claimed the whole budget: a 1 GiB body to a 256 KiB route was read (probe F).
 */
function declaredLength(header: string): number {
  const parts = header.split(",").map((p) => p.trim());
  if (!parts.every((p) => /^\d{1,15}$/.test(p) && p === parts[0])) throw new ApiError(400, "invalid Content-Length");
  return Number(parts[0]);
}

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
    const header = c.req.header("content-length");
    const declared = header === undefined ? undefined : declaredLength(header);
    if (declared !== undefined && declared > opts.maxBytes) throw new ApiError(413, opts.tooLarge);
    // Room for the body before a byte of it is read: a declared one as large as it says, one
    // without a length as large as it may grow. Held until the route is done with it.
    const holder: string = c.get("identity") ?? "";
    const held = await jsonBudget.take(holder, declared ?? opts.maxBytes, JSON_BODY_WAIT_MS);
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
      jsonBudget.give(holder, held);
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
