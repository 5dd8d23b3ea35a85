// busboy's grammar for part headers and for the boundary parameter, mirrored so that the raw body reads as busboy reads it.
// Mirrors busboy 1.6.0 (lib/types/multipart.js, lib/utils.js); tests/http/part-content-type.test.ts runs busboy itself against it.

const CR = 13;
const LF = 10;
const SP = 32;
const HT = 9;

/**
 * A part's header block as sent: its first Content-Type value with surrounding blanks removed and a
 * folded line joined by a space, or null when the part had no Content-Type header.
 */
export type SentPartHeader = { contentType: string | null };

/** busboy's limits on one part's header block (lib/types/multipart.js). */
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_HEADER_PAIRS = 2000;
const CONTENT_TYPE = "content-type";

export const HEADER_MORE = 0;
export const HEADER_DONE = 1;
export const HEADER_MALFORMED = 2;
type HeaderState = typeof HEADER_MORE | typeof HEADER_DONE | typeof HEADER_MALFORMED;

const NAME = 0;
const BEFORE_VALUE = 1;
const VALUE = 2;

/** RFC 9110 tchar: what busboy accepts in a header name (and in a parameter name or token value). */
const isToken = (c: number) =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c));
/** What busboy accepts in a header value: tab, visible ASCII, space and obs-text. */
const isValueByte = (c: number) => c === HT || (c >= SP && c !== 0x7f);

/**
 * busboy's part-header parser, byte by byte, with its byte and pair counts (a byte it reads twice
 * counts twice), keeping only the first Content-Type value. Where busboy would fail the body, so
 * does this, and it never holds more than busboy's 16 KiB header limit.
 */
export class HeaderReader {
  #state = NAME;
  /** CR/LF seen at the end of a value line: 1 CR, 2 CRLF, 3 CRLF CR. */
  #crlf = 0;
  #bytes = 0;
  #pairs = 0;
  /** The current header name, lower-cased, while it can still be `content-type`. */
  #name = "";
  #nameLength = 0;
  /** The current value's bytes when this header is the first Content-Type; else null. */
  #value: number[] | null = null;
  #contentType: string | null = null;

  result(): SentPartHeader {
    return { contentType: this.#contentType };
  }

  push(b: number): HeaderState {
    for (;;) {
      if (this.#bytes === MAX_HEADER_BYTES) return HEADER_MALFORMED;
      this.#bytes++;
      switch (this.#state) {
        case NAME:
          if (isToken(b)) {
            if (++this.#nameLength <= CONTENT_TYPE.length) this.#name += String.fromCharCode(b).toLowerCase();
            return HEADER_MORE;
          }
          if (b !== 0x3a || this.#nameLength === 0) return HEADER_MALFORMED;
          this.#state = BEFORE_VALUE;
          this.#value = this.#contentType === null && this.#name === CONTENT_TYPE && this.#nameLength === CONTENT_TYPE.length ? [] : null;
          return HEADER_MORE;
        case BEFORE_VALUE:
          if (b === SP || b === HT) return HEADER_MORE;
          this.#state = VALUE;
          continue; // busboy reads this byte again as the value's first
        default:
          switch (this.#crlf) {
            case 0:
              if (isValueByte(b)) {
                this.#value?.push(b);
                return HEADER_MORE;
              }
              if (b !== CR) return HEADER_MALFORMED;
              this.#crlf = 1;
              return HEADER_MORE;
            case 1:
              if (b !== LF) return HEADER_MALFORMED;
              this.#crlf = 2;
              return HEADER_MORE;
            case 2:
              if (b === SP || b === HT) {
                // A folded line (obs-fold), read by RFC 9110 as a space; busboy reads the byte again.
                this.#crlf = 0;
                b = SP;
                continue;
              }
              this.#endPair();
              if (b === CR) {
                this.#crlf = 3;
                return HEADER_MORE;
              }
              this.#state = NAME;
              this.#crlf = 0;
              this.#name = "";
              this.#nameLength = 0;
              continue; // busboy reads this byte again as the next name's first
            default:
              return b === LF ? HEADER_DONE : HEADER_MALFORMED;
          }
      }
    }
  }

  #endPair(): void {
    const value = this.#value;
    this.#value = null;
    // busboy drops the pairs past its limit.
    if (++this.#pairs >= MAX_HEADER_PAIRS || value === null) return;
    this.#contentType = Buffer.from(value).toString("latin1").replace(/^[ \t]+|[ \t]+$/g, "");
  }
}

/**
 * The `boundary` parameter of the request's Content-Type, read as busboy reads it (the first one;
 * token or quoted string, its escapes included), or null.
 */
export function boundaryOf(contentType: string): string | null {
  const s = contentType;
  const n = s.length;
  let i = 0;
  while (i < n && isToken(s.charCodeAt(i))) i++;
  if (i === 0 || i === n || s.charCodeAt(i) !== 0x2f) return null;
  const subtype = ++i;
  while (i < n && isToken(s.charCodeAt(i))) i++;
  if (i === subtype) return null;
  let boundary: string | null = null;
  const skipBlanks = () => {
    while (i < n && (s.charCodeAt(i) === SP || s.charCodeAt(i) === HT)) i++;
  };
  while (i < n) {
    skipBlanks();
    if (i === n) break;
    if (s.charCodeAt(i++) !== 0x3b) return null;
    skipBlanks();
    if (i === n) return null;
    const nameStart = i;
    while (i < n && isToken(s.charCodeAt(i))) i++;
    if (i === n || s.charCodeAt(i) !== 0x3d) return null;
    const name = s.slice(nameStart, i++).toLowerCase();
    if (i === n) return null;
    let value = "";
    if (s.charCodeAt(i) === 0x22) {
      let from = ++i;
      let escaping = false;
      for (; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c === 0x5c) {
          if (escaping) from = i;
          else value += s.slice(from, i);
          escaping = !escaping;
          continue;
        }
        if (c === 0x22) {
          if (escaping) {
            from = i;
            escaping = false;
            continue;
          }
          value += s.slice(from, i);
          break;
        }
        if (escaping) {
          from = i - 1; // busboy keeps the backslash of an escaped ordinary character
          escaping = false;
        }
        if (!isQuotedText(c)) return null;
      }
      if (i === n) return null;
      i++;
    } else {
      const from = i;
      while (i < n && isToken(s.charCodeAt(i))) i++;
      if (i === from) return null;
      value = s.slice(from, i);
    }
    if (name === "boundary" && boundary === null) boundary = value;
  }
  return boundary;
}

/** busboy's qdtext: tab, space, visible ASCII but `"` and `\`, and obs-text. */
const isQuotedText = (c: number) => c === HT || (c >= SP && c !== 0x22 && c !== 0x5c && c !== 0x7f && c <= 0xff);
