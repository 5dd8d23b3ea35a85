// Media types: validation of the `type` field (RFC 6838 shape), the fixed type↔extension table, and safe download types.

export type MediaType = {
  /** `type/subtype`, lower-cased. */
  essence: string;
  /** Parameters in order; names lower-cased, values unquoted and otherwise as sent. */
  params: ReadonlyArray<readonly [name: string, value: string]>;
};

const MAX_MEDIA_TYPE_BYTES = 255;
const OCTET_STREAM = "application/octet-stream";

// RFC 6838 §4.2 restricted-name: first char alphanumeric, at most 127 chars.
const RESTRICTED_NAME = "[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}";
const ESSENCE_PATTERN = new RegExp(`^(${RESTRICTED_NAME})/(${RESTRICTED_NAME})`);
// RFC 9110 token and quoted-string, US-ASCII only; spaces (never tabs: no control chars) around `;`.
const TOKEN = "[A-Za-z0-9!#$%&'*+.^_`|~-]+";
const QUOTED_STRING = '"(?:[\\x20\\x21\\x23-\\x5B\\x5D-\\x7E]|\\\\[\\x20-\\x7E])*"';
const PARAMETER_PATTERN = new RegExp(`^ *; *(${TOKEN})=(${TOKEN}|${QUOTED_STRING})`);

/**
 * Parses `type/subtype *( OWS ";" OWS name=value )`, or null. Leading/trailing blanks, a dangling `;`
 * and a repeated parameter name (which charset would win?) are refused.
 */
export function parseMediaType(s: string): MediaType | null {
  if (s.length === 0 || s.length > MAX_MEDIA_TYPE_BYTES || !/^[\x20-\x7E]+$/.test(s)) return null;
  const head = ESSENCE_PATTERN.exec(s);
  if (!head) return null;
  const essence = `${head[1]}/${head[2]}`.toLowerCase();
  const params: Array<readonly [string, string]> = [];
  let rest = s.slice(head[0].length);
  while (rest.length > 0) {
    const m = PARAMETER_PATTERN.exec(rest);
    if (!m) return null;
    const name = m[1]!.toLowerCase();
    if (params.some(([seen]) => seen === name)) return null;
    const raw = m[2]!;
    const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, "$1") : raw;
    params.push([name, value]);
    rest = rest.slice(m[0].length);
  }
  return { essence, params };
}

export function isValidMediaType(s: unknown): s is string {
  return typeof s === "string" && parseMediaType(s) !== null;
}

/** `type/subtype` lower-cased, parameters dropped, for table look-ups of types that may be malformed. */
function essenceOf(type: string): string {
  const semicolon = type.indexOf(";");
  return (semicolon === -1 ? type : type.slice(0, semicolon)).trim().toLowerCase();
}

/** One extension per type and one type per extension: the pairs used in both directions. */
const CANONICAL: ReadonlyArray<readonly [type: string, extension: string]> = [
  ["text/plain", ".txt"],
  ["text/markdown", ".md"],
  ["text/html", ".html"],
  ["text/csv", ".csv"],
  ["text/css", ".css"],
  ["text/calendar", ".ics"],
  ["text/vcard", ".vcf"],
  ["text/javascript", ".js"],
  ["application/json", ".json"],
  ["application/xml", ".xml"],
  ["application/pdf", ".pdf"],
  ["application/rtf", ".rtf"],
  ["application/zip", ".zip"],
  ["application/gzip", ".gz"],
  ["application/x-tar", ".tar"],
  ["application/epub+zip", ".epub"],
  ["application/msword", ".doc"],
  ["application/vnd.openxmlformats-officedocument.wordprocessingml.document", ".docx"],
  ["application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"],
  ["application/vnd.openxmlformats-officedocument.presentationml.presentation", ".pptx"],
  ["application/vnd.oasis.opendocument.text", ".odt"],
  ["application/octet-stream", ".bin"],
  ["image/png", ".png"],
  ["image/jpeg", ".jpg"],
  ["image/gif", ".gif"],
  ["image/webp", ".webp"],
  ["image/svg+xml", ".svg"],
  ["image/avif", ".avif"],
  ["image/bmp", ".bmp"],
  ["image/tiff", ".tiff"],
  ["audio/mpeg", ".mp3"],
  ["audio/ogg", ".oga"],
  ["audio/opus", ".opus"],
  ["audio/wav", ".wav"],
  ["audio/aac", ".aac"],
  ["audio/flac", ".flac"],
  ["audio/webm", ".weba"],
  ["video/mp4", ".mp4"],
  ["video/webm", ".webm"],
  ["video/ogg", ".ogv"],
];

/** Other spellings of a type in the table (fmsgd's common-type list says audio/vnd.wave). */
const TYPE_ALIASES: Readonly<Record<string, string>> = {
  "audio/vnd.wave": ".wav",
  "audio/x-wav": ".wav",
  "audio/mp3": ".mp3",
  "text/x-markdown": ".md",
  "application/x-gzip": ".gz",
};

/** Other extensions of a type in the table. */
const EXTENSION_ALIASES: Readonly<Record<string, string>> = {
  ".text": "text/plain",
  ".markdown": "text/markdown",
  ".htm": "text/html",
  ".jpeg": "image/jpeg",
  ".tif": "image/tiff",
  ".ogg": "audio/ogg",
  ".mjs": "text/javascript",
};

const EXTENSION_BY_TYPE = new Map<string, string>([...CANONICAL, ...Object.entries(TYPE_ALIASES)]);
const TYPE_BY_EXTENSION = new Map<string, string>([
  ...CANONICAL.map(([type, extension]) => [extension, type] as const),
  ...Object.entries(EXTENSION_ALIASES),
]);

/** The extension (with its dot) the body file is stored under; `.bin` for types not in the table. */
export function bodyExtension(type: string): string {
  return EXTENSION_BY_TYPE.get(essenceOf(type)) ?? ".bin";
}

/** The media type inferred from a file name's last extension; application/octet-stream when unknown. */
export function typeFromFilename(name: string): string {
  const dot = name.lastIndexOf(".");
  if (dot === -1) return OCTET_STREAM;
  return TYPE_BY_EXTENSION.get(name.slice(dot).toLowerCase()) ?? OCTET_STREAM;
}

/**
 * Types a browser shows or plays without running anything. HTML, SVG, any XML, JavaScript and everything
 * unknown could execute script in our origin if rendered, so they are served as opaque bytes.
 */
const PASSIVE_TYPES: ReadonlySet<string> = new Set([
  "text/plain",
  "text/markdown",
  "text/csv",
  "application/json",
  "application/pdf",
  "application/zip",
  "application/gzip",
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/bmp",
  "audio/mpeg",
  "audio/ogg",
  "audio/opus",
  "audio/wav",
  "audio/aac",
  "audio/flac",
  "audio/webm",
  "video/mp4",
  "video/webm",
  "video/ogg",
]);

/** A charset name that cannot smuggle anything into the header (IANA names fit). */
const SAFE_CHARSET = /^[A-Za-z0-9][A-Za-z0-9._:+-]{0,39}$/;

/**
 * The Content-Type to serve stored bytes with. Passive types keep their essence; text and JSON get a
 * charset (the stored one when it is a plain name, else utf-8); other parameters are dropped.
 */
export function downloadContentType(type: string): string {
  const parsed = parseMediaType(type);
  if (!parsed || !PASSIVE_TYPES.has(parsed.essence)) return OCTET_STREAM;
  const { essence, params } = parsed;
  if (!essence.startsWith("text/") && essence !== "application/json") return essence;
  const stored = params.find(([name]) => name === "charset")?.[1];
  const charset = stored !== undefined && SAFE_CHARSET.test(stored) ? stored.toLowerCase() : "utf-8";
  return `${essence}; charset=${charset}`;
}
