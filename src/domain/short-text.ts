// short_text: the opening of a text body, cut back to a whole UTF-8 character.
import { BoundedMap } from "../lib/bounded-map.ts";
import { parseMediaType } from "./media-type.ts";

const UTF8_CHARSETS = new Set(["utf-8", "utf8", "us-ascii"]);

/**
 * Whether a body of this type has a short text: text/* in UTF-8 (or ASCII, or no charset named).
 * Another charset is left out rather than guessed at: cutting it back needs its own rules.
 */
export function hasShortText(type: string): boolean {
  return decided.getOrCompute(type, decide);
}

/** A host sees few distinct media types; every listed message asks about one. */
const decided = new BoundedMap<string, boolean>(256);

function decide(type: string): boolean {
  const parsed = parseMediaType(type);
  if (!parsed?.essence.startsWith("text/")) return false;
  const charset = parsed.params.find(([name]) => name === "charset")?.[1].toLowerCase();
  return charset === undefined || UTF8_CHARSETS.has(charset);
}

/**
 * The text of `head`, the first bytes of a body (`truncated`: the body goes on past them). A cut
 * that falls inside a multi-byte character drops that character's leading bytes; bytes that are
 * not UTF-8 at all become U+FFFD, as any reader would show them.
 */
export function shortText(head: Uint8Array, truncated: boolean): string {
  let end = head.length;
  if (truncated) {
    // Step back over continuation bytes (10xxxxxx) to the start of the last character.
    let start = end - 1;
    while (start > 0 && start > end - 4 && (head[start]! & 0xc0) === 0x80) start--;
    const lead = head[start] ?? 0;
    const width = lead < 0x80 ? 1 : lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (start + width > end) end = start;
  }
  return new TextDecoder("utf-8").decode(head.subarray(0, end));
}
