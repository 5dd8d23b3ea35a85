// Serving stored files: safe headers, strong ETag / 304, single byte ranges / 206 / 416, JSON 404s.
import { contentDisposition } from "../domain/filename.ts";
import { downloadContentType } from "../domain/media-type.ts";
import { insideReal } from "../storage/data-dir.ts";
import { fileInfo } from "../storage/file-info.ts";
import { ApiError } from "./errors.ts";

const bytes = { "*/*": { schema: { type: "string" as const, contentMediaType: "application/octet-stream" } } };
const fileHeaders = {
  ETag: { description: "Strong validator; send it back in If-None-Match.", schema: { type: "string" as const } },
  "Content-Disposition": { description: "`attachment` with the file name.", schema: { type: "string" as const } },
};

/** How a download answers, for the OpenAPI document (errors are added by each route). */
export const DOWNLOAD_ANSWERS = {
  200: { description: "The file's bytes; Content-Type from the stored type when it is safe to serve, with nosniff.", headers: fileHeaders, content: bytes },
  206: { description: "The requested byte range (one `bytes=` range).", headers: fileHeaders, content: bytes },
  304: { description: "If-None-Match matched the ETag." },
};

export type Download = {
  dataDir: string;
  filepath: string;
  /** The stored media type; served only when it is passive (see downloadContentType). */
  type: string;
  filename: string;
  /** Error text when the file is missing on disk. */
  missing: string;
};

const etagMatches = (header: string, etag: string) =>
  header.trim() === "*" || header.split(",").some((t) => t.trim() === etag);

type Range = { start: number; end: number } | "unsatisfiable" | null;

/** One `bytes=` range (RFC 9110 §14); several ranges or a malformed header mean "send it all". */
export function parseRange(header: string | undefined, size: number): Range {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return size === 0 ? "unsatisfiable" : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== "" && Number(m[2]) < start) return null;
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

export async function serveDownload(req: Request, d: Download): Promise<Response> {
  let path: string;
  try {
    path = await insideReal(d.dataDir, d.filepath);
  } catch {
    throw new ApiError(404, d.missing); // a row pointing outside FMSG_DATA_DIR is never followed
  }
  const info = await fileInfo(path);
  if (!info) throw new ApiError(404, d.missing);

  const headers = new Headers({
    "Content-Type": downloadContentType(d.type),
    "Content-Disposition": contentDisposition(d.filename),
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox",
    "Cache-Control": "private, no-cache",
    "Accept-Ranges": "bytes",
    ETag: info.etag,
  });
  const inm = req.headers.get("if-none-match");
  if (inm !== null && etagMatches(inm, info.etag)) return new Response(null, { status: 304, headers });

  const ifRange = req.headers.get("if-range");
  const range = ifRange !== null && ifRange.trim() !== info.etag ? null : parseRange(req.headers.get("range") ?? undefined, info.size);
  const file = Bun.file(path);
  if (range === "unsatisfiable") {
    headers.set("Content-Range", `bytes */${info.size}`);
    headers.set("Content-Type", "application/json");
    headers.delete("Content-Disposition");
    return new Response(JSON.stringify({ error: "range not satisfiable" }), { status: 416, headers });
  }
  if (range) {
    headers.set("Content-Range", `bytes ${range.start}-${range.end}/${info.size}`);
    headers.set("Content-Length", String(range.end - range.start + 1));
    return new Response(file.slice(range.start, range.end + 1), { status: 206, headers });
  }
  headers.set("Content-Length", String(info.size));
  if (info.size === 0) return new Response("", { status: 200, headers });
  // Bun applies a request's Range to a file body on its own reading of the header: a reversed range
  // starting past the end became its own 416, empty, while this answer (and its log line) said 200.
  // A Range ignored here gets the whole file through a plain stream: Bun knows file.stream() as the
  // file and would cut that too.
  return new Response(req.headers.has("range") ? file.stream().pipeThrough(new TransformStream()) : file, { status: 200, headers });
}
