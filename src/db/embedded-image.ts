// Owns the prepared database image: a migrated PGlite data directory packed as a zstd-compressed tar.
//
// A new embedded database starts by unpacking this image instead of running initdb inside WebAssembly
// (about 10 s and 1 GB of memory on first start; docs/design/embedded-findings.md (h)). scripts/embedded-image.ts makes it.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, writeFileSync, writeSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { constants as zlib, createZstdDecompress, zstdCompressSync } from "node:zlib";

/** What the image holds, stored beside it (embedded-image.json). */
export type ImageManifest = {
  /** schemaFingerprint() of the sql/ the image was migrated with. */
  fingerprint: string;
  /** The @electric-sql/pglite version that made it (its PostgreSQL must read the files). */
  pglite: string;
  /** Uncompressed bytes of the data directory files. */
  bytes: number;
};

/** PostgreSQL's marker of a complete data directory: unpacked last, so an interrupted unpack is redone. */
const MARKER = "PG_VERSION";
const BLOCK = 512;

/** Files under base/<database>/ sort by file name first: the three databases' near-identical copies of
 * each catalog then sit side by side, which lets zstd store each repeat as a short back-reference. */
function packOrder(path: string): string {
  const m = /^base\/(\d+)\/(.+)$/.exec(path);
  return m ? `base/${m[2]}\0${m[1]!.padStart(10, "0")}` : path;
}

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

function tarHeader(name: string, size: number, dir: boolean): Uint8Array {
  if (Buffer.byteLength(name) > 100) throw new Error(`image path too long for tar: ${name}`);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0);
  h.write(octal(dir ? 0o700 : 0o600, 8), 100);
  h.write(octal(0, 8), 108);
  h.write(octal(0, 8), 116);
  h.write(octal(size, 12), 124);
  h.write(octal(0, 12), 136); // mtime 0: the same directory packs to the same bytes
  h.write(" ".repeat(8), 148);
  h.write(dir ? "5" : "0", 156);
  h.write("ustar\0" + "00", 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

/** Packs a closed data directory (without `skip`) into `outPath`; returns the uncompressed file bytes. */
export function packImage(dir: string, outPath: string, skip: readonly string[] = []): number {
  const dirs: string[] = [];
  const files: string[] = [];
  const walk = (abs: string) => {
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      const path = join(abs, entry.name);
      const rel = relative(dir, path).split(sep).join("/");
      if (skip.includes(rel)) continue;
      if (entry.isDirectory()) {
        dirs.push(rel);
        walk(path);
      } else if (entry.isFile()) files.push(rel);
      else throw new Error(`unexpected entry in data directory: ${rel}`);
    }
  };
  walk(dir);
  if (!files.includes(MARKER)) throw new Error(`${dir} is not a data directory (no ${MARKER})`);
  dirs.sort();
  files.sort((a, b) => (a === MARKER ? 1 : b === MARKER ? -1 : packOrder(a) < packOrder(b) ? -1 : 1));
  const parts: Uint8Array[] = dirs.map((d) => tarHeader(`${d}/`, 0, true));
  let bytes = 0;
  for (const f of files) {
    const data = readFileSync(join(dir, f));
    bytes += data.length;
    parts.push(tarHeader(f, data.length, false), data, new Uint8Array((BLOCK - (data.length % BLOCK)) % BLOCK));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  const compressed = zstdCompressSync(Buffer.concat(parts), {
    params: {
      [zlib.ZSTD_c_compressionLevel]: 22,
      // An 8 MiB window: enough to reach the previous database's copy of a file, and what unpacking
      // must hold at most (the decoder's buffer), instead of the whole 40 MB directory.
      [zlib.ZSTD_c_windowLog]: 23,
      [zlib.ZSTD_c_checksumFlag]: 1,
    },
  });
  writeFileSync(`${outPath}.tmp`, compressed);
  renameSync(`${outPath}.tmp`, outPath);
  return bytes;
}

function field(h: Uint8Array, start: number, length: number): string {
  const raw = h.subarray(start, start + length);
  const end = raw.indexOf(0);
  return new TextDecoder().decode(end === -1 ? raw : raw.subarray(0, end));
}

/** A tar entry's path inside `dir`, refusing anything that would land outside it. */
function target(dir: string, name: string): string {
  const clean = name.replace(/\/+$/, "");
  if (clean === "" || clean.startsWith("/") || clean.split("/").some((p) => p === ".." || p === "." || p === "")) {
    throw new Error(`bad path in database image: ${name}`);
  }
  return join(dir, clean);
}

/**
 * Unpacks the image into `dir` (which holds no database yet), streaming: memory stays near the
 * decoder's 8 MiB window however large the directory is. Files of an earlier, interrupted unpack are
 * overwritten; PG_VERSION is written last, so until it exists the directory is not a database.
 */
export async function unpackImage(imagePath: string, dir: string): Promise<void> {
  const decoder = createZstdDecompress({ chunkSize: 256 * 1024 }); // 16 KiB chunks made unpacking 3× slower
  decoder.end(await Bun.file(imagePath).bytes());
  let header = new Uint8Array(0);
  let fd: number | null = null;
  let left = 0; // bytes of the current file still to come
  let pad = 0; // zero bytes after it up to the next block
  let marker: Uint8Array | null = null; // PG_VERSION's content, held back until the end
  let markerAt = 0;
  let intoMarker = false;
  let ended = false;
  try {
    for await (const chunk of decoder as AsyncIterable<Buffer>) {
      let at = 0;
      while (at < chunk.length && !ended) {
        if (left > 0) {
          const n = Math.min(left, chunk.length - at);
          const piece = chunk.subarray(at, at + n);
          if (intoMarker) {
            marker!.set(piece, markerAt);
            markerAt += n;
          } else writeSync(fd!, piece);
          at += n;
          left -= n;
          if (left === 0 && fd !== null) {
            closeSync(fd);
            fd = null;
          }
        } else if (pad > 0) {
          const n = Math.min(pad, chunk.length - at);
          at += n;
          pad -= n;
        } else {
          const n = Math.min(BLOCK - header.length, chunk.length - at);
          const h = new Uint8Array(header.length + n);
          h.set(header);
          h.set(chunk.subarray(at, at + n), header.length);
          header = h;
          at += n;
          if (header.length < BLOCK) continue;
          const name = field(header, 0, 100);
          const prefix = field(header, 345, 155);
          const size = Number.parseInt(field(header, 124, 12).trim() || "0", 8);
          const type = String.fromCharCode(header[156]!);
          header = new Uint8Array(0);
          if (name === "") {
            ended = true; // the end-of-archive block
            break;
          }
          const path = target(dir, prefix ? `${prefix}/${name}` : name);
          if (type === "5") {
            mkdirSync(path, { recursive: true, mode: 0o700 });
          } else if (type === "0" || type === "\0") {
            if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad size in database image: ${name}`);
            mkdirSync(join(path, ".."), { recursive: true, mode: 0o700 });
            intoMarker = name === MARKER && !prefix;
            if (intoMarker) {
              marker = new Uint8Array(size);
              markerAt = 0;
            } else {
              fd = openSync(path, "w", 0o600);
            }
            left = size;
            pad = (BLOCK - (size % BLOCK)) % BLOCK;
            if (size === 0 && fd !== null) {
              closeSync(fd);
              fd = null;
            }
          } else {
            throw new Error(`unexpected entry type "${type}" in database image: ${name}`);
          }
        }
      }
    }
  } finally {
    if (fd !== null) closeSync(fd);
    decoder.destroy();
  }
  if (!ended || left > 0 || marker === null || markerAt !== marker.length) {
    throw new Error(`database image ${imagePath} is incomplete`);
  }
  writeFileSync(join(dir, MARKER), marker, { mode: 0o600 });
}
