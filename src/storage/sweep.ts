// Start-up sweep of the API's own out/ folders: temp files, and files or folders no row points to.
import { readdir, rmdir, unlink } from "node:fs/promises";
import { join } from "node:path";
import { ALT_SLOT, removeTree, TEMP_PREFIX } from "./atomic-file.ts";

/** What the database says about message folders: the files each existing message's rows point to. */
export type FileRows = {
  /** For each id that has a msg row: its body path and attachment paths. Ids without a row are absent. */
  filesOf(ids: number[]): Promise<Map<number, Set<string>>>;
  /** The highest message id ever handed out (ids above it were never ours to clean). */
  highestId(): Promise<number>;
};

export type SweepCounts = { tempFiles: number; orphanFiles: number; orphanFolders: number };

const BATCH = 500;

async function entries(dir: string) {
  return readdir(dir, { withFileTypes: true }).catch(() => []);
}

async function subdirs(dir: string): Promise<string[]> {
  return (await entries(dir)).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
}

/** Regular files of a message folder, its attach/ folder and their alternate slots. */
async function filesIn(folder: string): Promise<string[]> {
  const out: string[] = [];
  for (const dir of [folder, join(folder, ALT_SLOT), join(folder, "attach"), join(folder, "attach", ALT_SLOT)]) {
    for (const e of await entries(dir)) if (e.isFile()) out.push(join(dir, e.name));
  }
  return out;
}

/**
 * Visits `<root>/<domain>/<user>/out/<id>/` only (never fmsgd's folders) and removes:
 * - temp files (a write that never finished);
 * - files of an existing message that none of its rows points to (a replacement or delete that
 *   crashed between COMMIT and removing the old file, or before COMMIT after placing the new one);
 * - the folder of an id that was handed out but has no row (a create that never committed, or a
 *   delete that crashed before removing the folder).
 * Runs before the server accepts requests, so no write of this process is in flight. A folder whose
 * message row lives elsewhere is left alone: that is not a state this API creates.
 */
export async function sweepDataDir(root: string, rows: FileRows): Promise<SweepCounts> {
  const counts: SweepCounts = { tempFiles: 0, orphanFiles: 0, orphanFolders: 0 };
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
    const known = await rows.filesOf(batch);
    for (const id of batch) {
      const folder = folders.get(id)!;
      const files = await filesIn(folder);
      for (const f of files.filter((f) => f.slice(f.lastIndexOf("/") + 1).startsWith(TEMP_PREFIX))) {
        await unlink(f).catch(() => {});
        counts.tempFiles++;
      }
      const referenced = known.get(id);
      if (referenced === undefined) {
        if (id <= highest) {
          await removeTree(folder).catch(() => {});
          counts.orphanFolders++;
        }
        continue;
      }
      if (![...referenced].some((p) => p.startsWith(`${folder}/`))) continue;
      for (const f of files) {
        const name = f.slice(f.lastIndexOf("/") + 1);
        if (name.startsWith(TEMP_PREFIX) || referenced.has(f)) continue;
        await unlink(f).catch(() => {});
        counts.orphanFiles++;
      }
      for (const alt of [join(folder, ALT_SLOT), join(folder, "attach", ALT_SLOT)]) await rmdir(alt).catch(() => {});
    }
  }
  return counts;
}
