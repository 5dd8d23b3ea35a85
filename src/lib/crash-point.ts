// Crash points for the fault tests: the process dies at one named step of one write.

let armed: string | null = null;

/**
 * Arms one crash point (from FMSG_TEST_CRASH_AT; never set in production): "<operation>:<step>"
 * SIGKILLs the process there, like a power cut; "<operation>:<step>:throw" raises an error that
 * nothing catches, to exercise the uncaught-error policy of main.ts.
 */
export function armCrashPoint(name: string | null): void {
  armed = name;
}

export function crashPoint(operation: string, step: string): void {
  if (armed === null) return;
  const here = `${operation}:${step}`;
  if (armed === here) process.kill(process.pid, "SIGKILL");
  if (armed === `${here}:throw`) {
    armed = null;
    setImmediate(() => {
      throw new Error(`crash point ${here}`);
    });
  }
}
