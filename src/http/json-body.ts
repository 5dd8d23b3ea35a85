// Reads JSON request bodies with a byte cap enforced while streaming, then hands them to zValidator.
import type { MiddlewareHandler } from "hono";
import { ApiError } from "./errors.ts";

const JSON_TYPE = /^application\/json\s*(;\s*charset\s*=\s*"?utf-8"?\s*)?$/i;
/** No body of this API nests deeper than 3; JSON.parse of a deep `[[[[…` blocks the event loop for seconds. */
export const MAX_JSON_DEPTH = 32;

/**
 * Tracks bracket depth over raw JSON bytes as they stream in (outside strings; `[`, `{`, `"` and `\`
 * are ASCII, so UTF-8 continuation bytes never look like them). Reports when MAX_JSON_DEPTH is passed.
 */
export class JsonDepthGuard {
  private depth = 0;
  private inString = false;
  private escaped = false;

  /** False as soon as the bytes seen so far nest deeper than the cap. */
  feed(bytes: Uint8Array): boolean {
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === 0x5c) this.escaped = true;
        else if (b === 0x22) this.inString = false;
      } else if (b === 0x22) this.inString = true;
      else if (b === 0x5b || b === 0x7b) {
        if (++this.depth > MAX_JSON_DEPTH) return false;
      } else if (b === 0x5d || b === 0x7d) this.depth--;
    }
    return true;
  }
}

/**
 * Reads at most `maxBytes` of the body (413 `tooLarge` beyond, without buffering the rest),
 * requires a JSON content type (415), and caches the text where c.req.json() finds it.
 */
export function boundedJsonBody(maxBytes: number, tooLarge: string): MiddlewareHandler {
  return async (c, next) => {
    const type = c.req.header("content-type") ?? "";
    if (!JSON_TYPE.test(type.trim())) throw new ApiError(415, "content type must be application/json");
    const declared = c.req.header("content-length");
    if (declared !== undefined && Number(declared) > maxBytes) throw new ApiError(413, tooLarge);
    const text = await readCapped(c.req.raw, maxBytes, tooLarge);
    if (text.trim() === "") throw new ApiError(400, "request body must be a JSON object");
    // hono's HonoRequest keeps parsed bodies in bodyCache; zValidator("json") reads from it.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    await next();
  };
}

async function readCapped(req: Request, maxBytes: number, tooLarge: string): Promise<string> {
  if (!req.body) return "";
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  const depth = new JsonDepthGuard();
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new ApiError(413, tooLarge);
    }
    if (!depth.feed(value)) {
      await reader.cancel().catch(() => {});
      throw new ApiError(400, "request body is nested too deeply");
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new ApiError(400, "request body is not valid UTF-8");
  }
}
