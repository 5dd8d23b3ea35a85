// Reading an answer from another service (fmsgid, a JWKS) without trusting its size.

export class BodyTooLargeError extends Error {}

/**
 * The body of `res` as UTF-8 text, read while it streams and given up (the rest cancelled) as soon
 * as more than `maxBytes` arrive: a service that answers gigabytes costs at most `maxBytes` of
 * memory, where `res.text()` or `res.json()` would hold all of it first.
 */
export async function cappedText(res: Response, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? Number.NaN);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw new BodyTooLargeError(`answer of ${declared} bytes, over ${maxBytes}`);
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw new BodyTooLargeError(`answer over ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks, total));
}
