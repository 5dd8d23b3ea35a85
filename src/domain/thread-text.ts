// The text form of a thread (docs/API.md §10.3): each entry's header line, its body or a bracketed note.
import { parseMediaType } from "./media-type.ts";

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
 * The body's bytes as text, piece by piece as they are read (`chunks`: the bytes shown, in order;
 * `truncated`: the body goes on past them). UTF-8 unless the type names another charset this
 * runtime can decode; a UTF-8 cut inside a character drops that character. One final line break
 * is dropped: the entry's own line structure supplies it. Only a chunk's worth of text is held at
 * a time, so a 10 MiB body sent to a client that reads slowly is not held whole (twice over).
 */
export async function* bodyTextPieces(type: string, chunks: AsyncIterable<Uint8Array>, truncated: boolean): AsyncGenerator<string> {
  const charset = parseMediaType(type)?.params.find(([name]) => name === "charset")?.[1];
  const named = charset === undefined ? null : decoderFor(charset);
  const utf8 = named === null || named.encoding === "utf-8";
  const decoder = utf8 ? new TextDecoder("utf-8") : named;
  // The last two characters wait: at the end, a final line break among them is dropped.
  let held = "";
  const pass = (text: string): string => {
    const all = held + text;
    let cut = all.length - 2;
    // Never between the two halves of a surrogate pair: a lone half would be encoded as U+FFFD.
    const code = all.charCodeAt(cut);
    if (cut > 0 && code >= 0xdc00 && code <= 0xdfff) cut--;
    if (cut <= 0) {
      held = all;
      return "";
    }
    held = all.slice(cut);
    return all.slice(0, cut);
  };
  for await (const chunk of chunks) {
    const piece = pass(decoder.decode(chunk, { stream: true }));
    if (piece !== "") yield piece;
  }
  // A cut body's incomplete last UTF-8 character stays in the decoder, never shown (as shortText);
  // a whole body's is flushed (U+FFFD, as any reader would show it).
  const rest = held + (truncated && utf8 ? "" : decoder.decode());
  const last = truncated ? rest : rest.replace(/\r?\n$/, "");
  if (last !== "") yield last;
}

function decoderFor(charset: string): TextDecoder | null {
  try {
    // Any WHATWG label is accepted at run time; the types list only a few.
    return new TextDecoder(charset as ConstructorParameters<typeof TextDecoder>[0]);
  } catch {
    return null; // an unknown label: read as UTF-8, as the response is
  }
}
