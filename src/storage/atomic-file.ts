// Crash-safe file writes: temp file in the target folder, fsync, then rename into place at commit.
import { mkdir, open, rename, rm, unlink, link, readdir, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

export const DIR_MODE = 0o750;
export const FILE_MODE = 0o640;
export const TEMP_PREFIX = ".tmp-";

/** A file written under a temporary name, waiting to be renamed into place (or discarded). */
export type StagedFile = {
  tempPath: string;
  finalPath: string;
  size: number;
  /** Renames into place and fsyncs the folder. Keeps a hard-linked backup of what it replaced. */
  commit(): Promise<void>;
  /** Undoes: removes the temp file, or puts back what commit() replaced. */
  rollback(): Promise<void>;
  /** After the database commit: forget the backup. */
  finish(): Promise<void>;
};

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Creates `dir` (and missing parents) and fsyncs the parent of every folder it created, so that
 * after a power cut a committed row never points into a folder whose entry was lost.
 */
export async function ensureDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  for (let d = dir; ; d = dirname(d)) {
    await fsyncDir(dirname(d));
    if (d === first || dirname(d) === d) break;
  }
}

function tempName(dir: string, finalPath: string): string {
  return join(dir, `${TEMP_PREFIX}${basename(finalPath).slice(0, 40)}-${crypto.randomUUID()}`);
}

export class SizeLimitError extends Error {}

/**
 * Streams `source` into a fresh temp file beside `finalPath` (opened with O_EXCL, so never an old
 * file's tail), failing with SizeLimitError as soon as more than `maxBytes` arrive.
 */
export async function stageFile(
  finalPath: string,
  source: Uint8Array | ReadableStream<Uint8Array> | AsyncIterable<Uint8Array>,
  maxBytes = Number.POSITIVE_INFINITY,
): Promise<StagedFile> {
  const dir = dirname(finalPath);
  await ensureDir(dir);
  const tempPath = tempName(dir, finalPath);
  const fh: FileHandle = await open(tempPath, "wx", FILE_MODE);
  let size = 0;
  try {
    if (source instanceof Uint8Array) {
      if (source.byteLength > maxBytes) throw new SizeLimitError();
      await fh.write(source);
      size = source.byteLength;
    } else if (!(source instanceof ReadableStream)) {
      // Node streams (the multipart parser's file parts): awaiting each write is the backpressure.
      for await (const chunk of source) {
        size += chunk.byteLength;
        if (size > maxBytes) throw new SizeLimitError();
        await fh.write(chunk);
      }
    } else {
      const reader = source.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          size += value.byteLength;
          if (size > maxBytes) throw new SizeLimitError();
          await fh.write(value);
        }
      } finally {
        reader.releaseLock();
      }
    }
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await unlink(tempPath).catch(() => {});
    throw err;
  }
  await fh.close();

  let backup: string | null = null;
  let committed = false;
  return {
    tempPath,
    finalPath,
    size,
    async commit() {
      backup = tempName(dir, `${basename(finalPath)}.old`);
      try {
        await link(finalPath, backup);
      } catch {
        backup = null; // nothing to replace
      }
      await rename(tempPath, finalPath);
      committed = true;
      await fsyncDir(dir);
    },
    async rollback() {
      if (!committed) {
        await unlink(tempPath).catch(() => {});
        return;
      }
      if (backup) await rename(backup, finalPath).catch(() => {});
      else await unlink(finalPath).catch(() => {});
      backup = null;
    },
    async finish() {
      if (backup) await unlink(backup).catch(() => {});
      backup = null;
    },
  };
}

/**
 * Runs `dbWork` (a database transaction) around the file protocol of DATABASE.md: files are renamed
 * into place inside the transaction, just before it commits; any failure undoes the renames.
 */
export async function withStagedFiles<T>(
  files: StagedFile[],
  dbWork: (placeFiles: () => Promise<void>) => Promise<T>,
): Promise<T> {
  let placed = false;
  try {
    const result = await dbWork(async () => {
      for (const f of files) await f.commit();
      placed = true;
    });
    for (const f of files) await f.finish();
    return result;
  } catch (err) {
    for (const f of files) await f.rollback();
    void placed;
    throw err;
  }
}

export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

/**
 * Start-up sweep: deletes temp files a crash left behind. Only the API's own folders are visited
 * (`<domain>/<user>/out/<id>/` and its `attach/`), never fmsgd's, and only our own prefix.
 */
export async function sweepTempFiles(root: string): Promise<number> {
  const dirs = async (dir: string): Promise<string[]> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
  };
  let removed = 0;
  const sweep = async (dir: string) => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isFile() && e.name.startsWith(TEMP_PREFIX)) {
        await unlink(join(dir, e.name)).catch(() => {});
        removed++;
      }
    }
  };
  for (const domain of await dirs(root)) {
    for (const user of await dirs(domain)) {
      for (const message of await dirs(join(user, "out"))) {
        await sweep(message);
        await sweep(join(message, "attach"));
      }
    }
  }
  return removed;
}
