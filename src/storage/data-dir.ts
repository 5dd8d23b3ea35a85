// Layout of the data directory shared with fmsgd, and the check that every path stays inside it.
import { realpath } from "node:fs/promises";
import { dirname, resolve, sep } from "node:path";
import { parseAddress } from "../domain/address.ts";
import { BoundedMap } from "../lib/bounded-map.ts";

export class UnsafePathError extends Error {}

/** `<dataDir>/<domain>/<user>/out/<id>`: where this API keeps a message's own files. */
export function messageDir(dataDir: string, from: { user: string; domain: string }, id: number): string {
  return inside(dataDir, resolve(dataDir, from.domain.toLowerCase(), from.user.toLowerCase(), "out", String(id)));
}

/** The body's file name: `data` plus the extension of its media type. */
export function bodyName(extension: string): string {
  return `data${extension}`;
}

/**
 * The `<...>/out/<id>` folder a draft's body file lives in (its `.alt` slot included), or null
 * when the path is not one of ours. Replacements keep using it, so a draft never spreads over two
 * folders when its owner spells `from` differently.
 */
function draftFolder(dataDir: string, filepath: string, id: number): string | null {
  const marker = `/out/${id}/`;
  const at = filepath.lastIndexOf(marker);
  if (at < 0) return null;
  try {
    return inside(dataDir, filepath.slice(0, at + marker.length - 1));
  } catch {
    return null;
  }
}

/**
 * The folder of a draft's files: where its body is now (see draftFolder), else the one its owner's
 * address names; null only for a row whose `from_addr` is not a valid address (never ours).
 */
export function folderOfDraft(dataDir: string, id: number, head: { filepath: string; from_addr: string }): string | null {
  const owner = parseAddress(head.from_addr);
  return draftFolder(dataDir, head.filepath, id) ?? (owner ? messageDir(dataDir, owner, id) : null);
}

/** `<message folder>/attach`: attachments live apart from the body, so a name can never collide with it. */
export function attachmentDir(dataDir: string, messageFolder: string): string {
  return inside(dataDir, resolve(messageFolder, "attach"));
}

/** `path` resolved, when it lies strictly inside `dataDir`; null otherwise (no exception on hot read paths). */
export function resolvedInside(dataDir: string, path: string): string | null {
  const full = resolve(path);
  return full.startsWith(resolve(dataDir) + sep) ? full : null;
}

/** Throws unless `path`, after resolution, lies strictly inside `dataDir`. */
export function inside(dataDir: string, path: string): string {
  const full = resolvedInside(dataDir, path);
  if (full === null) throw new UnsafePathError(`path escapes the data directory`);
  return full;
}

/** The data directory's own real path, per configured spelling (only tests open many); only a successful answer is kept. */
const realRoots = new BoundedMap<string, string>(64);

/**
 * The root as resolved the last time (every read used to pay a realpath() for it); `fresh` resolves
 * it again, for when the operator moved it under a running server (a symlink to a bigger disk).
 */
async function realRoot(dataDir: string, fresh = false): Promise<string> {
  const known = fresh ? undefined : realRoots.get(dataDir);
  if (known !== undefined) return known;
  const root = await realpath(resolve(dataDir)).catch(() => null);
  if (root === null) return resolve(dataDir);
  realRoots.set(dataDir, root);
  return root;
}

/**
 * Like `inside`, and also follows symlinks of the deepest existing ancestor, so a link planted in
 * the tree cannot lead a read or write outside FMSG_DATA_DIR.
 */
export async function insideReal(dataDir: string, path: string): Promise<string> {
  try {
    return await insideRoot(dataDir, path, await realRoot(dataDir));
  } catch (err) {
    // Outside the root as it was: unless the root itself moved since, it is outside.
    if (!(err instanceof UnsafePathError)) throw err;
    return insideRoot(dataDir, path, await realRoot(dataDir, true));
  }
}

async function insideRoot(dataDir: string, path: string, root: string): Promise<string> {
  const full = inside(dataDir, path);
  let probe = full;
  for (;;) {
    try {
      const real = await realpath(probe);
      if (real !== root && !real.startsWith(root + sep)) throw new UnsafePathError("path escapes the data directory");
      return full;
    } catch (err) {
      if (err instanceof UnsafePathError) throw err;
      // Only a part that does not exist yet is looked past. Any other failure (out of descriptors:
      // EMFILE) is thrown: walking up past it reached a folder above the root, and a file inside
      // was taken for one outside it (404 for a file that is there).
      const code = (err as { code?: unknown }).code;
      if (code !== "ENOENT" && code !== "ENOTDIR") throw err;
      const parent = dirname(probe);
      if (parent === probe) return full;
      probe = parent;
    }
  }
}
