// Waiting for a condition in tests: polled, never a fixed sleep standing in for synchronisation.

/** Resolves once `cond` holds; fails after `ms` naming `what`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

/** A bounded wait for a promise: its value, or "hung" after `ms` instead of a test that never ends. */
export function within<T>(p: Promise<T>, ms: number): Promise<T | "hung"> {
  return Promise.race([p, new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), ms))]);
}
