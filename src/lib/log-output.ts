// Where the JSON log lines go: stdout, which may fail under the server (a full disk holding the log
// file: ENOSPC; a log reader that went away: EPIPE). A failed log write must never stop the process.

/**
 * A writer for the log that drops what cannot be written. Without an "error" listener, a failed
 * write to stdout is an uncaught error, and the process stops (as it must for a real fault): one
 * full log disk took the whole service down, and again at each restart while it stayed full.
 * The first failure of a run is said once on stderr (itself allowed to fail); writes go on being
 * tried, so logging resumes by itself once the disk has room again.
 */
export function stdoutLogWriter(out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr): (text: string) => void {
  let failing = false;
  const failed = (e: unknown) => {
    if (failing) return;
    failing = true;
    const code = (e as { code?: unknown } | null)?.code ?? String(e);
    try {
      err.write(`fmsg-webapi: log output failed (${String(code)}): log lines are dropped until writing works again\n`);
    } catch {
      // stderr is gone too: nothing left to tell
    }
  };
  out.on("error", failed);
  err.on("error", () => {});
  return (text) => {
    try {
      out.write(text, (e) => {
        if (e) failed(e);
        else failing = false;
      });
    } catch (e) {
      failed(e);
    }
  };
}
