// Size and a strong validator of a stored file, read through the data-directory safety check.
import type { BigIntStats } from "node:fs";
import { stat } from "node:fs/promises";
import { insideReal, resolvedInside } from "./data-dir.ts";

export type FileInfo = { size: number; etag: string };

/** Size and a strong validator. A replaced draft body is a new inode (rename), so the tag changes. */
export async function fileInfo(path: string): Promise<FileInfo | null> {
  try {
    return infoOf(await stat(path, { bigint: true }));
  } catch {
    return null;
  }
}

/** fileInfo from a stat result (of a path, or of an open handle): null for anything but a file. */
export function infoOf(s: BigIntStats): FileInfo | null {
  if (!s.isFile()) return null;
  return { size: Number(s.size), etag: `"${s.ino.toString(36)}-${s.size.toString(36)}-${s.mtimeNs.toString(36)}"` };
}

/** Real length of a stored file (for parts fmsgd stored decompressed), or null when missing. */
export async function fileSize(dataDir: string, filepath: string): Promise<number | null> {
  try {
    return (await fileInfo(await insideReal(dataDir, filepath)))?.size ?? null;
  } catch {
    return null;
  }
}


/**
 * Up to `maxBytes` from the start of a stored file, and whether the file goes on past them; null
 * when it is missing or outside the data directory.
 */
export async function readHead(dataDir: string, filepath: string, maxBytes: number): Promise<{ bytes: Uint8Array; truncated: boolean } | null> {
  // A row pointing outside the data directory is never followed (and costs no exception here).
  if (resolvedInside(dataDir, filepath) === null) return null;
  try {
    const file = Bun.file(await insideReal(dataDir, filepath));
    // One byte more than wanted tells whether there is more.
    const bytes = await file.slice(0, maxBytes + 1).bytes();
    return bytes.length > maxBytes ? { bytes: bytes.subarray(0, maxBytes), truncated: true } : { bytes, truncated: false };
  } catch {
    return null;
  }
}
