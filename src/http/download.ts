// Serving stored files: safe headers, strong ETag / 304, single byte ranges / 206 / 416, JSON 404s.
import type { Context } from "hono";
import { open, type FileHandle } from "node:fs/promises";
import { contentDisposition } from "../domain/filename.ts";
import { downloadContentType } from "../domain/media-type.ts";
import { insideReal } from "../storage/data-dir.ts";
import { absentOrFault, fileInfo, infoOf, piecesOf, type FileInfo } from "../storage/file-info.ts";
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
  /**
   * The file belongs to a draft: a concurrent edit may replace it, and remove it, at any moment
   * (a sent message's files never change). It is opened before anything is answered and served
   * from that open handle, so the headers and the bytes are one version, and a removal that comes
   * after the opening changes nothing.
   */
  draft: boolean;
};

/** Where a download's size, validator and bytes come from. */
type Source = {
  info: FileInfo;
  /**
   * The bytes from `start` to `end` (inclusive), for an answer of `status` (200 or 206) to a request
   * with or without a Range header (`rangeAsked`).
   */
  body(start: number, end: number, status: 200 | 206, rangeAsked: boolean): Promise<Blob | Uint8Array | ReadableStream<Uint8Array>>;
  /** Gives up the source when no body is sent (a 304, a 416, a HEAD). */
  close(): void;
};

/** A sent message's file: never replaced, served by Bun from its path. */
async function pathSource(path: string): Promise<Source | null> {
  const info = await fileInfo(path);
  if (!info) return null;
  const file = Bun.file(path);
  return {
    info,
    // Bun 1.4.5 applies a request's Range itself, on its own reading of the header, to a 200 whose
    // body is a whole file (measured: also to file.slice(0, size) and to file.stream()): a reversed
    // range starting past the end became its own empty 416 while this answer (and its log line)
    // said 200. It leaves a 206 alone, and a slice that is not the whole file. So: the whole file
    // as it is for a 200 without Range and for a 206 of all of it; for a Range ignored here (a 200),
    // a slice reaching one byte past the end, which Bun serves as it is and which ends where the
    // file does (a sent message's file never grows). Each keeps its Content-Length, which a stream
    // past a few KiB loses (tests/http/attachments.test.ts checks both).
    body: async (start, end, status, rangeAsked) =>
      start === 0 && end === info.size - 1 ? (status === 206 || !rangeAsked ? file : file.slice(0, info.size + 1)) : file.slice(start, end + 1),
    close: () => {},
  };
}

/**
 * A draft's file (or range) up to this size is read whole and answered as bytes, which keeps its
 * Content-Length: Bun 1.4.5 drops that header from any streamed body past a few KiB
 * (oven-sh/bun#10507) and sends it chunked.
 */
const ONE_READ = 1024 * 1024;
/**
 * Bytes read at a time from a larger draft file. Each becomes garbage once sent: 1 MiB pieces
 * raised the RSS by 52 MiB while 200 MiB went out (64 KiB: 28 MiB, bench scenario 5).
 */
const CHUNK = 64 * 1024;

/** A draft's file, opened now: later replacements and removals do not reach the bytes served. */
async function handleSource(path: string): Promise<Source | null> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (err) {
    return absentOrFault(err); // out of descriptors is a 503, not "not available"
  }
  const close = () => void fh.close().catch(() => {});
  const info = await fh.stat({ bigint: true }).then(infoOf, () => null);
  if (!info) {
    close();
    return null;
  }
  return {
    info,
    async body(start, end) {
      if (end + 1 - start <= ONE_READ) {
        try {
          const want = end + 1 - start;
          const { bytesRead, buffer } = await fh.read(new Uint8Array(want), 0, want, start);
          return buffer.subarray(0, bytesRead);
        } finally {
          close();
        }
      }
      const pieces = piecesOf(fh, start, end + 1 - start, CHUNK);
      return new ReadableStream<Uint8Array>({
        async pull(controller) {
          try {
            const next = await pieces.next();
            if (next.done) {
              close();
              controller.close();
              return;
            }
            controller.enqueue(next.value);
          } catch (err) {
            close();
            controller.error(err);
          }
        },
        cancel: close,
      });
    },
    close,
  };
}

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

/**
 * Serves the file `find` names. A draft's file that is gone when opened was most likely replaced
 * since its row was read: the row is read once more before the answer is 404.
 */
export async function serveDownload(c: Context, find: () => Promise<Download>): Promise<Response> {
  let d = await find();
  let source = await sourceOf(d);
  // Read again, the answer's type and name come from the row that named the file served.
  if (!source && d.draft) source = await sourceOf((d = await find()));
  if (!source) throw new ApiError(404, d.missing);
  return await answer(c, d, source);
}

async function sourceOf(d: Download): Promise<Source | null> {
  let path: string;
  try {
    path = await insideReal(d.dataDir, d.filepath);
  } catch (err) {
    return absentOrFault(err); // a row pointing outside FMSG_DATA_DIR is never followed
  }
  return d.draft ? handleSource(path) : pathSource(path);
}

/**
 * The answer, built by Hono's c.body() so that it carries the headers the middleware set before the
 * route ran (request id, profile, rate limit). A Response built here would lack them, and each one
 * the middleware then added would make Hono wrap the whole response again, its body becoming a
 * stream of the file: Bun applies a request's Range to that as well (see pathSource).
 */
function reply(c: Context, body: Blob | Uint8Array | ReadableStream<Uint8Array> | string | null, status: number, headers: Headers): Response {
  return c.body(body as never, { status, headers } as never);
}

async function answer(c: Context, d: Download, source: Source): Promise<Response> {
  const req = c.req.raw;
  const { info } = source;
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
  if (inm !== null && etagMatches(inm, info.etag)) {
    source.close();
    return reply(c, null, 304, headers);
  }

  const ifRange = req.headers.get("if-range");
  const range = ifRange !== null && ifRange.trim() !== info.etag ? null : parseRange(req.headers.get("range") ?? undefined, info.size);
  if (range === "unsatisfiable") {
    source.close();
    headers.set("Content-Range", `bytes */${info.size}`);
    headers.set("Content-Type", "application/json");
    headers.delete("Content-Disposition");
    return reply(c, JSON.stringify({ error: "range not satisfiable" }), 416, headers);
  }
  const { start, end } = range ?? { start: 0, end: info.size - 1 };
  const status = range ? 206 : 200;
  if (range) headers.set("Content-Range", `bytes ${start}-${end}/${info.size}`);
  headers.set("Content-Length", String(end - start + 1));
  if (info.size === 0 || req.method === "HEAD") {
    source.close();
    return reply(c, info.size === 0 ? "" : null, status, headers);
  }
  return reply(c, await source.body(start, end, status, req.headers.has("range")), status, headers);
}
