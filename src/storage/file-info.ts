// Size and a strong validator of a stored file, read through the data-directory safety check.
import type { BigIntStats } from "node:fs";
import { open, stat, type FileHandle } from "node:fs/promises";
import { insideReal, resolvedInside, UnsafePathError } from "./data-dir.ts";
import { storageError } from "./errors.ts";

/** The failures that mean "no such file here" (or one outside the data directory), as opposed to a failing disk. */
const ABSENT_CODES = new Set(["ENOENT", "ENOTDIR", "ELOOP", "EISDIR"]);

/**
 * null for a file that is not there; a storage error (503) for everything else: out of descriptors
 * (EMFILE), EIO, EACCES… Taking those for "missing" answered 404 "message data not available" for a
 * body that exists, and showed it as such in threads, while a retry would have found it.
 */
export function absentOrFault(err: unknown): null {
  if (err instanceof UnsafePathError) return null;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && ABSENT_CODES.has(code)) return null;
  throw storageError(err);
}

export type FileInfo = { size: number; etag: string };

/** Size and a strong validator (null when missing; a failing disk throws). A replaced draft body is a new inode (rename), so the tag changes. */
export async function fileInfo(path: string): Promise<FileInfo | null> {
  try {
    return infoOf(await stat(path, { bigint: true }));
  } catch (err) {
    return absentOrFault(err);
  }
}

/** fileInfo from a stat result (of a path, or of an open handle): null for anything but a file. */
export function infoOf(s: BigIntStats): FileInfo | null {
  if (!s.isFile()) return null;
  return { size: Number(s.size), etag: `"${s.ino.toString(36)}-${s.size.toString(36)}-${s.mtimeNs.toString(36)}"` };
}

/** Real length of a stored file (for parts fmsgd stored decompressed), or null when missing (a failing disk throws). */
export async function fileSize(dataDir: string, filepath: string): Promise<number | null> {
  try {
    return (await fileInfo(await insideReal(dataDir, filepath)))?.size ?? null;
  } catch (err) {
    return absentOrFault(err);
  }
}


/**
 * Up to `maxBytes` from the start of a stored file, and whether the file goes on past them; null
 * when it is missing or outside the data directory (a failing disk throws a storage error).
 */
export async function readHead(dataDir: string, filepath: string, maxBytes: number): Promise<{ bytes: Uint8Array; truncated: boolean } | null> {
  // A row pointing outside the data directory is never followed (and costs no exception here).
  if (resolvedInside(dataDir, filepath) === null) return null;
  try {
    const file = Bun.file(await insideReal(dataDir, filepath));
    // One byte more than wanted tells whether there is more.
    const bytes = await file.slice(0, maxBytes + 1).bytes();
    return bytes.length > maxBytes ? { bytes: bytes.subarray(0, maxBytes), truncated: true } : { bytes, truncated: false };
  } catch (err) {
    return absentOrFault(err);
  }
}

/** A stored file opened for reading; null when it is missing or outside the data directory (a failing disk throws). */
export async function openStored(dataDir: string, filepath: string): Promise<FileHandle | null> {
  // A row pointing outside the data directory is never followed.
  if (resolvedInside(dataDir, filepath) === null) return null;
  try {
    return await open(await insideReal(dataDir, filepath), "r");
  } catch (err) {
    return absentOrFault(err);
  }
}

/**
 * `length` bytes of an open file from `start`, read `chunk` at a time (fewer when the file ends
 * first): what a slow reader holds is one piece, not the file.
 */
export async function* piecesOf(fh: FileHandle, start: number, length: number, chunk: number): AsyncGenerator<Uint8Array> {
  for (let at = start, end = start + length; at < end; ) {
    const want = Math.min(chunk, end - at);
    const { bytesRead, buffer } = await fh.read(new Uint8Array(want), 0, want, at);
    if (bytesRead === 0) return;
    at += bytesRead;
    yield buffer.subarray(0, bytesRead);
  }
}
