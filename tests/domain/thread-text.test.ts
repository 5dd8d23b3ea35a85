// bodyTextPieces: a thread entry's body decoded piece by piece as it is read gives the same text as
// the whole body decoded at once, wherever the chunks fall (inside a UTF-8 character, between the
// halves of a surrogate pair, inside the final line break).
import { describe, expect, test } from "bun:test";
import { bodyTextPieces } from "../../src/domain/thread-text.ts";

async function* chunked(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function text(type: string, bytes: Uint8Array, truncated: boolean, size: number): Promise<{ text: string; pieces: string[] }> {
  const pieces: string[] = [];
  for await (const p of bodyTextPieces(type, chunked(bytes, size), truncated)) pieces.push(p);
  return { text: pieces.join(""), pieces };
}

const utf8 = (s: string) => new TextEncoder().encode(s);

describe("bodyTextPieces", () => {
  const body = "café 😀 naïve\r\nline two ✓\n";
  for (const size of [1, 2, 3, 5, 64, 4096]) {
    test(`UTF-8 in chunks of ${size}: the whole text, one final line break dropped, no piece splitting a pair`, async () => {
      const { text: t, pieces } = await text("text/plain; charset=utf-8", utf8(body), false, size);
      expect(t).toBe("café 😀 naïve\r\nline two ✓");
      for (const p of pieces) expect(p.isWellFormed()).toBe(true);
      expect(pieces.every((p) => p !== "")).toBe(true);
    });
  }

  test("a cut body keeps its final line break and drops a character cut in half", async () => {
    const bytes = utf8("ab\n😀");
    expect((await text("text/plain", bytes.subarray(0, 5), true, 2)).text).toBe("ab\n");
    expect((await text("text/plain", bytes.subarray(0, 3), true, 1)).text).toBe("ab\n");
  });

  test("a whole body ending in a broken character shows U+FFFD, as any reader would", async () => {
    expect((await text("text/plain", utf8("ok😀").subarray(0, 4), false, 1)).text).toBe("ok\uFFFD");
  });

  test("another charset is decoded by its own rules; an unknown one as UTF-8", async () => {
    const latin1 = new Uint8Array([0x63, 0x61, 0x66, 0xe9, 0x0a]);
    expect((await text("text/plain; charset=iso-8859-1", latin1, false, 2)).text).toBe("café");
    expect((await text("text/plain; charset=x-unknown", utf8("été\n"), false, 1)).text).toBe("été");
  });

  test("an empty body yields nothing; a lone line break yields nothing", async () => {
    expect((await text("text/plain", new Uint8Array(0), false, 4)).pieces).toEqual([]);
    expect((await text("text/plain", utf8("\n"), false, 4)).pieces).toEqual([]);
  });
});
