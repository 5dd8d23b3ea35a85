// Crash-safe file writes: a fully written temp file, renamed under a name no committed row uses.
import { mkdir, open, rename, rm, rmdir, unlink, type FileHandle } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { crashPoint } from "../lib/crash-point.ts";
import { inside } from "./data-dir.ts";
import { onDisk, StorageFailedError, StorageFullError, storageError } from "./errors.ts";

export const DIR_MODE = 0o750;
export const FILE_MODE = 0o640;
export const TEMP_PREFIX = ".tmp-";
/**
 * The second slot of a file that is replaced under the same name: `<dir>/.alt/<name>`. A name
 * starting with "." is never a valid attachment name nor a body name, so it cannot collide.
 */
export const ALT_SLOT = ".alt";

/** A file written and synced under a temporary name in its folder, waiting to be placed (or discarded). */
export type StagedFile = {
  tempPath: string;
  /** The folder and name it will have: `<dir>/<name>`, or `<dir>/.alt/<name>` (see finalPathFor). */
  dir: string;
  name: string;
  /** Bytes on disk, read back with fstat after fsync. */
  size: number;
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
  await onDisk(async () => {
    // A folder that another request creates, or removes (as empty, see discard; or a deleted
    // draft's), at the same moment fails this with EEXIST or ENOENT: then it is tried again.
    for (let attempt = 1; ; attempt++) {
      try {
        return await makeDir(dir);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        if ((code !== "EEXIST" && code !== "ENOENT") || attempt === 3) throw err;
      }
    }
  });
}

async function makeDir(dir: string): Promise<void> {
  const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
  if (first === undefined) return;
  for (let d = dir; ; d = dirname(d)) {
    await fsyncDir(dirname(d));
    if (d === first || dirname(d) === d) break;
  }
}

function tempName(dir: string, name: string): string {
  return join(dir, `${TEMP_PREFIX}${name.slice(0, 40)}-${crypto.randomUUID()}`);
}

export class SizeLimitError extends Error {}

/**
 * Runs a step that creates an entry in `dir` (opening a temp file, renaming a file there). The
 * folder exists (ensureDir), unless a write failing next door just removed it as empty (discard),
 * or a deleted draft's: then it is made again and the step retried.
 */
async function inFolder<T>(dir: string, step: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (err) {
      if ((err as { code?: unknown }).code !== "ENOENT" || attempt === 3) throw storageError(err);
      await ensureDir(dir);
    }
  }
}

/** Folders inside a message's folder; a file's emptied folders are removed up to the message's own. */
const INNER_FOLDERS = new Set([ALT_SLOT, "attach"]);

/**
 * Removes a file that no row points to, then every folder it leaves empty up to and including the
 * message's own: a refused first upload leaves no attach/ folder behind, a refused new draft no
 * message folder, a deleted last attachment no attach/ folder, a replaced file in the other slot no
 * .alt/ folder, and an upload that lost the race with its draft's deletion nothing at all.
 */
async function discard(path: string): Promise<void> {
  await unlink(path).catch(() => {});
  await removeEmptyFolders(dirname(path));
}

/** Removes `dir` and the folders above it up to the message's own, as long as each is empty. */
async function removeEmptyFolders(dir: string): Promise<void> {
  for (; ; dir = dirname(dir)) {
    const removed = await rmdir(dir).then(() => true, () => false); // only when empty
    if (!removed || !INNER_FOLDERS.has(basename(dir))) return;
  }
}


/** write(2) may write less than asked (a filling disk, a signal): keep going until all is written. */
async function writeFully(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const { bytesWritten } = await onDisk(() => fh.write(chunk, offset, chunk.byteLength - offset));
    // No progress and no error: the file system cannot take more (seen on a full tmpfs).
    if (bytesWritten <= 0) throw new StorageFullError("no bytes written");
    offset += bytesWritten;
  }
}

async function* chunksOf(source: Uint8Array | AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  if (source instanceof Uint8Array) yield source;
  else yield* source;
}

/**
 * Streams `source` into a fresh temp file in `dir` (opened with O_EXCL, so never an old file's
 * tail), failing with SizeLimitError as soon as more than `maxBytes` arrive. Every byte is written
 * or the call fails; the size returned is what fstat reports after fsync. On any failure — the
 * source erroring or ending early included — the handle is closed and the temp file removed.
 */
export async function stageFile(
  dir: string,
  name: string,
  source: Uint8Array | AsyncIterable<Uint8Array>,
  maxBytes = Number.POSITIVE_INFINITY,
): Promise<StagedFile> {
  const tempPath = tempName(dir, name);
  let fh: FileHandle;
  try {
    await ensureDir(dir);
    fh = await inFolder(dir, () => open(tempPath, "wx", FILE_MODE)); // O_EXCL: never an old file's tail
  } catch (err) {
    // Folders this made before failing (a draft deleted meanwhile keeps removing them) go again.
    await removeEmptyFolders(dir);
    throw err;
  }
  try {
    let written = 0;
    for await (const chunk of chunksOf(source)) {
      written += chunk.byteLength;
      if (written > maxBytes) throw new SizeLimitError();
      await writeFully(fh, chunk);
    }
    await onDisk(() => fh.sync());
    const { size } = await onDisk(() => fh.stat());
    if (size !== written) throw new StorageFailedError(`wrote ${written} bytes but the file holds ${size}`);
    await onDisk(() => fh.close());
    return { tempPath, dir, name, size };
  } catch (err) {
    await fh.close().catch(() => {});
    await discard(tempPath);
    throw err;
  }
}

/** The canonical `<dir>/<name>`, unless the committed row points there now: then the other slot. */
export function finalPathFor(file: Pick<StagedFile, "dir" | "name">, current: string | null): string {
  const canonical = join(file.dir, file.name);
  return canonical === current ? join(file.dir, ALT_SLOT, file.name) : canonical;
}

/**
 * The one write protocol for a row that points at a file (docs/design/file-writes.md).
 * `dbWork` runs the transaction (or, for a new row, one statement atomic by itself); under its row
 * lock it calls `place(current)` with the path the committed row uses now (null for a new row),
 * which renames the staged file to a path that no committed row uses, fsyncs the folder and
 * returns that path for the row. So at every instant the
 * committed row points at a complete file: the old one until COMMIT, the new one after. On failure
 * the temp file is removed, and the placed file goes to `release` — unless the COMMIT may have
 * happened (`mayHaveCommitted`, a connection lost with it in flight); after success the file the
 * row used before goes to `release`, which removes it unless a later write has placed its own file
 * there by then (see releaseFile in src/messages/files.ts). A crash leaves at worst an unreferenced
 * file, which the start-up sweep removes.
 */
export async function writeWithRow<T>(
  operation: string,
  staged: StagedFile,
  release: (path: string) => Promise<void>,
  dbWork: (place: (current: string | null) => Promise<string>) => Promise<T>,
  mayHaveCommitted: (err: unknown) => boolean,
): Promise<T> {
  let placed: string | null = null;
  let previous: string | null = null;
  crashPoint(operation, "staged");
  try {
    const result = await dbWork(async (current) => {
      const target = finalPathFor(staged, current);
      // The staged file's own folder exists (and ensureDir synced its entry when it made it): only
      // the other slot may still be missing.
      if (dirname(target) !== staged.dir) await ensureDir(dirname(target));
      await inFolder(dirname(target), () => rename(staged.tempPath, target));
      placed = target;
      await onDisk(() => fsyncDir(dirname(target)));
      previous = current;
      crashPoint(operation, "placed");
      return target;
    });
    crashPoint(operation, "committed");
    // finalPathFor never picks the path the row used before, so that file is nobody's now — until
    // the next write of this row, which may pick that path again: `release` decides under its lock.
    if (previous !== null) await release(previous);
    return result;
  } catch (err) {
    if (placed === null) await discard(staged.tempPath);
    // A COMMIT lost with its connection may have happened: then the row points at the placed file,
    // which must stay (the start-up sweep removes it if no row does). Otherwise it is nobody's —
    // but the next write of this row took the lock at the ROLLBACK and may have placed its own
    // file at the same free path by now: `release` decides under the lock, as after a commit.
    else if (!mayHaveCommitted(err)) await release(placed);
    throw err;
  }
}

/** Removes a file of ours that no committed row points to any more (best effort: the sweep retries). */
export async function removeOwnFile(dataDir: string, path: string): Promise<void> {
  let full: string;
  try {
    full = inside(dataDir, path);
  } catch {
    return; // never delete outside FMSG_DATA_DIR, whatever a row says
  }
  await discard(full);
}

export async function removeTree(path: string): Promise<void> {
  await onDisk(() => rm(path, { recursive: true, force: true }));
}
