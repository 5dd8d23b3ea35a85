// Start-up sweep of the API's own out/ folders: temp files, and files or folders no row points to, once old enough.
import { lstat, readdir, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { ALT_SLOT, removeTree, TEMP_PREFIX } from "./atomic-file.ts";

/**
 * How long a leftover must have been untouched before the sweep removes it. Several instances may
 * share the data directory, and a write of another instance puts its files on disk before its row
 * commits; the sweep cannot tell those files from a crash's until that row can no longer come.
 *
 * The bound, from the server's own settings: a write renames its file into place inside its
 * transaction (which sets the file's ctime and its folder's mtime), after the checks and row locks
 * that decide the write; what follows is a few short statements and the COMMIT, at most nine (a
 * draft update with add_to). Each ends within statement_timeout (FMSG_API_DB_STATEMENT_TIMEOUT_MS,
 * default 10 s; a lock wait, cut at lock_timeout, counts inside it) and each pause before one
 * within the pool's idle_in_transaction_session_timeout (60 s), or PostgreSQL ends the
 * transaction. So even if every step ran to its limit, a file untouched for 9 × 70 s = 10.5 min
 * can no longer be committed by anyone; 15 min leaves a few minutes for the clocks of hosts
 * sharing a network file system. A longer statement_timeout lengthens the grace with it
 * (sweepGraceMs).
 *
 * Before the rename there is no such bound (a request may wait for a pool connection), and none is
 * needed: a temp file (or a new draft's whole folder) the sweep removes then only makes that write
 * fail, because the rename finds nothing and the transaction rolls back. While an upload streams,
 * every chunk written updates its temp file's mtime, and an upload that stops sending is cut by
 * the server's idle timeout.
 */
export const SWEEP_GRACE_MS = 15 * 60_000;

/** Statements a write may still run after placing its file (COMMIT included). */
const STEPS_AFTER_PLACING = 9;
/** What SWEEP_GRACE_MS leaves over the default worst case (9 × (10 s + 60 s)), for clocks that differ. */
const CLOCK_MARGIN_MS = 4.5 * 60_000;

/**
 * The grace period for a server whose statements end within `statementTimeoutMs` and whose
 * transactions may idle `idleInTransactionMs` before each (never below SWEEP_GRACE_MS).
 */
export function sweepGraceMs(statementTimeoutMs: number, idleInTransactionMs: number): number {
  return Math.max(SWEEP_GRACE_MS, STEPS_AFTER_PLACING * (statementTimeoutMs + idleInTransactionMs) + CLOCK_MARGIN_MS);
}

/** What the database says about message folders: the files each existing message's rows point to. */
export type FileRows = {
  /** For each id that has a msg row: its body path and attachment paths. Ids without a row are absent. */
  filesOf(ids: number[]): Promise<Map<number, Set<string>>>;
  /** The highest message id ever handed out (ids above it were never ours to clean). */
  highestId(): Promise<number>;
};

export type SweepOptions = {
  /** Now, in ms since the epoch (tests move it past the grace period instead of waiting). */
  now?: () => number;
  /** How long a leftover must be untouched (default SWEEP_GRACE_MS; the server passes sweepGraceMs). */
  graceMs?: number;
};

export type SweepCounts = {
  tempFiles: number;
  orphanFiles: number;
  orphanFolders: number;
  /** Leftovers touched within the grace period (perhaps a write in flight elsewhere): kept for a later start. */
  tooRecent: number;
};

/** A path as the sweep first saw it; it is removed only if still the same inode, unchanged since. */
type Seen = { path: string; ino: number; mtimeMs: number; ctimeMs: number };

/** One message folder, looked at before the rows are read (see sweepDataDir). */
type FolderView = {
  folder: string;
  /** Regular files of the folder, its attach/ folder and their alternate slots. */
  files: Seen[];
  /** The `.alt/` slots that exist. */
  alts: Seen[];
  /** The latest mtime or ctime anywhere in the folder, the folder itself included. */
  newest: number;
  lookedAt: number;
};

const BATCH = 500;

async function entries(dir: string) {
  return readdir(dir, { withFileTypes: true }).catch(() => []);
}

async function subdirs(dir: string): Promise<string[]> {
  return (await entries(dir)).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
}

async function look(path: string): Promise<Seen | null> {
  const st = await lstat(path).catch(() => null);
  return st && { path, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

/** ctime too: a rename leaves the file's mtime at when it was written, but sets its ctime. */
const touched = (s: Seen) => Math.max(s.mtimeMs, s.ctimeMs);

async function newestIn(dir: string): Promise<number> {
  const self = await look(dir);
  let newest = self ? touched(self) : 0;
  for (const e of await entries(dir)) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      newest = Math.max(newest, await newestIn(path));
    } else {
      const seen = await look(path);
      if (seen) newest = Math.max(newest, touched(seen));
    }
  }
  return newest;
}

async function lookAt(folder: string, now: () => number): Promise<FolderView> {
  const view: FolderView = { folder, files: [], alts: [], newest: 0, lookedAt: now() };
  for (const dir of [folder, join(folder, ALT_SLOT), join(folder, "attach"), join(folder, "attach", ALT_SLOT)]) {
    for (const e of await entries(dir)) {
      const seen = e.isFile() ? await look(join(dir, e.name)) : null;
      if (seen) view.files.push(seen);
    }
    if (dir.endsWith(ALT_SLOT)) {
      const alt = await look(dir);
      if (alt) view.alts.push(alt);
    }
  }
  view.newest = await newestIn(folder);
  return view;
}

/**
 * Removes a file or empty folder seen old enough, unless it changed since: a writer may have
 * renamed a new file to that very name (a replacement reusing a leftover's slot) in between.
 */
async function removeIfUnchanged(seen: Seen, remove: (path: string) => Promise<void>): Promise<"removed" | "kept" | "gone"> {
  const current = await look(seen.path);
  if (current === null) return "gone";
  if (current.ino !== seen.ino || current.mtimeMs !== seen.mtimeMs || current.ctimeMs !== seen.ctimeMs) return "kept";
  return remove(seen.path).then(
    () => "removed" as const,
    () => "kept" as const,
  );
}

const isTemp = (s: Seen) => s.path.slice(s.path.lastIndexOf("/") + 1).startsWith(TEMP_PREFIX);

/**
 * Visits `<root>/<domain>/<user>/out/<id>/` only (never fmsgd's folders) and removes:
 * - temp files (a write that never finished);
 * - files of an existing message that none of its rows points to (a replacement or delete that
 *   crashed between COMMIT and removing the old file, or before COMMIT after placing the new one);
 * - the folder of an id that was handed out but has no row (a create that never committed, or a
 *   delete that crashed before removing the folder).
 * Each only once it (for a folder: everything in it) is older than the grace period; younger ones are
 * counted as tooRecent and left to a later start. Other instances may be writing meanwhile, so every
 * folder is looked at before its rows are read: a write that touched a file longer than the grace
 * period before that look has committed by then, and the rows show it. A folder whose message row
 * lives elsewhere is left alone: that is not a state this API creates.
 */
export async function sweepDataDir(root: string, rows: FileRows, opts: SweepOptions = {}): Promise<SweepCounts> {
  const now = opts.now ?? Date.now;
  const grace = opts.graceMs ?? SWEEP_GRACE_MS;
  const counts: SweepCounts = { tempFiles: 0, orphanFiles: 0, orphanFolders: 0, tooRecent: 0 };
  const folders = new Map<number, string>();
  for (const domain of await subdirs(root)) {
    for (const user of await subdirs(domain)) {
      for (const e of await entries(join(user, "out"))) {
        if (e.isDirectory() && /^[1-9][0-9]{0,15}$/.test(e.name)) folders.set(Number(e.name), join(user, "out", e.name));
      }
    }
  }
  if (folders.size === 0) return counts;
  const highest = await rows.highestId();
  const ids = [...folders.keys()];
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const views = new Map<number, FolderView>();
    for (const id of batch) views.set(id, await lookAt(folders.get(id)!, now));
    const known = await rows.filesOf(batch);
    for (const id of batch) {
      const view = views.get(id)!;
      const old = (t: number) => t <= view.lookedAt - grace;
      const removeFile = async (seen: Seen, count: "tempFiles" | "orphanFiles") => {
        const outcome = old(touched(seen)) ? await removeIfUnchanged(seen, unlink) : "kept";
        if (outcome === "removed") counts[count]++;
        if (outcome === "kept") counts.tooRecent++;
      };
      for (const f of view.files.filter(isTemp)) await removeFile(f, "tempFiles");
      const referenced = known.get(id);
      if (referenced === undefined) {
        if (id > highest) continue;
        // Old when looked at, no row since: the create of this id is over, and ids are never reused.
        if (old(view.newest)) {
          await removeTree(view.folder).catch(() => {});
          counts.orphanFolders++;
        } else {
          counts.tooRecent++;
        }
        continue;
      }
      if (![...referenced].some((p) => p.startsWith(`${view.folder}/`))) continue;
      for (const f of view.files) {
        if (!isTemp(f) && !referenced.has(f.path)) await removeFile(f, "orphanFiles");
      }
      // Only an empty slot goes, and only an old one: a writer creates it just before renaming into it.
      for (const alt of view.alts) if (old(touched(alt))) await removeIfUnchanged(alt, rmdir);
    }
  }
  return counts;
}
