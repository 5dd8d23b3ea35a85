// The text form of a thread (docs/API.md §10.3): each entry's header line, its body or a bracketed note.
import { parseMediaType } from "./media-type.ts";
import { shortText } from "./short-text.ts";

export const NOT_VISIBLE_NOTE = "[message not visible to you]";
export const DATA_MISSING_NOTE = "[message data not available]";

export const nonTextNote = (type: string, size: number) => `[non-text message: ${type}, ${size} bytes]`;
export const truncatedNote = (shownBytes: number) => `[message truncated after ${shownBytes} bytes]`;

/** `--- <from> <RFC 3339 UTC time or "draft"> ---`; times as in to_delivery (toISOString). */
export function entryHeader(from: string, timeSent: number | null): string {
  return `--- ${from} ${timeSent === null ? "draft" : new Date(timeSent * 1000).toISOString()} ---`;
}

/** Whether a thread shows this body as text: text/* and application/json. */
export function isThreadText(type: string): boolean {
  const essence = parseMediaType(type)?.essence;
  return essence !== undefined && (essence.startsWith("text/") || essence === "application/json");
}

/**
 * The body's bytes as text (`truncated`: the body goes on past them). UTF-8 unless the type names
 * another charset this runtime can decode; a UTF-8 cut inside a character drops that character.
 * One final line break is dropped: the entry's own line structure supplies it.
 */
export function bodyText(type: string, bytes: Uint8Array, truncated: boolean): string {
  const charset = parseMediaType(type)?.params.find(([name]) => name === "charset")?.[1];
  let text: string;
  const decoder = charset === undefined ? null : decoderFor(charset);
  if (decoder === null || decoder.encoding === "utf-8") text = shortText(bytes, truncated);
  else text = decoder.decode(bytes);
  return truncated ? text : text.replace(/\r?\n$/, "");
}

function decoderFor(charset: string): TextDecoder | null {
  try {
    // Any WHATWG label is accepted at run time; the types list only a few.
    return new TextDecoder(charset as ConstructorParameters<typeof TextDecoder>[0]);
  } catch {
    return null; // an unknown label: read as UTF-8, as the response is
  }
}

/** One entry: the header, then the body or note unless there is nothing to show. */
export function entryText(header: string, content: string): string {
  return content === "" ? header : `${header}\n${content}`;
}
