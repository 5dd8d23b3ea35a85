// Waiting for a condition in tests: polled, never a fixed sleep standing in for synchronisation.

/** Resolves once `cond` holds; fails after `ms` naming `what`. */
export async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}
