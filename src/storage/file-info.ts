// Size and a strong validator of a stored file, read through the data-directory safety check.
import { stat } from "node:fs/promises";
import { insideReal } from "./data-dir.ts";

export type FileInfo = { size: number; etag: string };

/** Size and a strong validator. A replaced draft body is a new inode (rename), so the tag changes. */
export async function fileInfo(path: string): Promise<FileInfo | null> {
  try {
    const s = await stat(path, { bigint: true });
    if (!s.isFile()) return null;
    return { size: Number(s.size), etag: `"${s.ino.toString(36)}-${s.size.toString(36)}-${s.mtimeNs.toString(36)}"` };
  } catch {
    return null;
  }
}

/** Real length of a stored file (for parts fmsgd stored decompressed), or null when missing. */
export async function fileSize(dataDir: string, filepath: string): Promise<number | null> {
  try {
    return (await fileInfo(await insideReal(dataDir, filepath)))?.size ?? null;
  } catch {
    return null;
  }
}

