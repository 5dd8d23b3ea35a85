// Attachment file names: validation by fmsgd's rules (docs/API.md §3) and Content-Disposition.

const MAX_FILENAME_BYTES = 255;

/**
 * Letters and numbers with single `-`, `_`, space or `.` between them — so no path separators, no `..`,
 * no hidden or trailing-dot names. As for addresses, combining marks are refused (fmsgd would refuse them).
 */
const FILENAME_PATTERN = /^[\p{L}\p{N}]+(?:[-_ .][\p{L}\p{N}]+)*$/u;

const utf8 = new TextEncoder();

/** UTF-8, 1–255 bytes (the wire carries the length in one byte), and the character rules above. */
export function isValidFilename(s: unknown): s is string {
  if (typeof s !== "string" || s.length === 0 || s.length > MAX_FILENAME_BYTES) return false;
  return FILENAME_PATTERN.test(s) && utf8.encode(s).length <= MAX_FILENAME_BYTES;
}

/** RFC 8187 attr-char: what may stand unencoded in `filename*`. */
function isAttrChar(byte: number): boolean {
  return (
    (byte >= 0x30 && byte <= 0x39) ||
    (byte >= 0x41 && byte <= 0x5a) ||
    (byte >= 0x61 && byte <= 0x7a) ||
    "!#$&+-.^_`|~".includes(String.fromCharCode(byte))
  );
}

function percentEncode(s: string): string {
  let out = "";
  for (const byte of utf8.encode(s)) {
    out += isAttrChar(byte) ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * `attachment` with an ASCII `filename` for old clients and, when that had to lose characters, the exact
 * name as `filename*` (RFC 6266 / RFC 8187). Non-ASCII, control characters, `"` and `\` become `_`
 * (one per code point) so the quoted value can never break out of the header.
 */
export function contentDisposition(filename: string): string {
  let fallback = "";
  for (const ch of filename) {
    const code = ch.codePointAt(0)!;
    fallback += code < 0x20 || code > 0x7e || ch === '"' || ch === "\\" ? "_" : ch;
  }
  const header = `attachment; filename="${fallback}"`;
  return fallback === filename ? header : `${header}; filename*=UTF-8''${percentEncode(filename)}`;
}
