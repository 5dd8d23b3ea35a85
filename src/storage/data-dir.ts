// Layout of the data directory shared with fmsgd, and the check that every path stays inside it.
import { realpath } from "node:fs/promises";
import { dirname, resolve, sep } from "node:path";

export class UnsafePathError extends Error {}

/** `<dataDir>/<domain>/<user>/out/<id>`: where this API keeps a message's own files. */
export function messageDir(dataDir: string, from: { user: string; domain: string }, id: number): string {
  return inside(dataDir, resolve(dataDir, from.domain.toLowerCase(), from.user.toLowerCase(), "out", String(id)));
}

export function bodyPath(dir: string, extension: string): string {
  return resolve(dir, `data${extension}`);
}

export function attachmentPath(dataDir: string, dir: string, filename: string): string {
  return inside(dataDir, resolve(dir, "attach", filename));
}

/** Throws unless `path`, after resolution, lies strictly inside `dataDir`. */
export function inside(dataDir: string, path: string): string {
  const root = resolve(dataDir);
  const full = resolve(path);
  if (!full.startsWith(root + sep)) throw new UnsafePathError(`path escapes the data directory`);
  return full;
}

/**
 * Like `inside`, and also follows symlinks of the deepest existing ancestor, so a link planted in
 * the tree cannot lead a read or write outside FMSG_DATA_DIR.
 */
export async function insideReal(dataDir: string, path: string): Promise<string> {
  const full = inside(dataDir, path);
  const root = await realpath(resolve(dataDir)).catch(() => resolve(dataDir));
  let probe = full;
  for (;;) {
    try {
      const real = await realpath(probe);
      if (real !== root && !real.startsWith(root + sep)) throw new UnsafePathError("path escapes the data directory");
      return full;
    } catch (err) {
      if (err instanceof UnsafePathError) throw err;
      const parent = dirname(probe);
      if (parent === probe) return full;
      probe = parent;
    }
  }
}
