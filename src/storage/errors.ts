// Failures of the data directory as values the HTTP layer maps: full (507) or otherwise unusable (503).

/** The file system has no room left (ENOSPC, EDQUOT): nothing was committed. */
export class StorageFullError extends Error {}

/** Any other failure to write or sync a file (EIO, EROFS, EACCES, EMFILE, a short file…). */
export class StorageFailedError extends Error {}

const FULL_CODES = new Set(["ENOSPC", "EDQUOT"]);

/** The storage error for a file-system failure; errors that are already ours pass through. */
export function storageError(err: unknown): Error {
  if (err instanceof StorageFullError || err instanceof StorageFailedError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const detail = err instanceof Error ? err.message : String(err);
  if (typeof code === "string" && FULL_CODES.has(code)) return new StorageFullError(detail, { cause: err });
  return new StorageFailedError(detail, { cause: err });
}

/** Runs a file-system step, turning whatever it throws into a storage error. */
export async function onDisk<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    throw storageError(err);
  }
}
