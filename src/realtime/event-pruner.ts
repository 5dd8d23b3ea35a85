// Keeps the event journal to FMSG_API_EVENT_RETENTION_DAYS: a background prune in bounded batches.
import { pruneEvents } from "../db/events.ts";
import type { Sql } from "../db/pool.ts";

/** How often the journal is pruned (ms); the first run is right after start-up. */
const PRUNE_EVERY_MS = 5 * 60_000;
/** Rows one DELETE removes at most: short statements, few locks, little WAL at a time. */
export const PRUNE_BATCH = 10_000;

/** Starts pruning; the returned function stops it. A failed run is logged and tried again next time. */
export function startEventPruner(sql: Sql, retentionDays: number, log: (line: Record<string, unknown>) => void): () => void {
  let running = false;
  const run = () => {
    if (running) return;
    running = true;
    void pruneEvents(sql, retentionDays, PRUNE_BATCH)
      .then((removed) => {
        if (removed > 0) log({ level: "info", msg: "pruned the event journal", removed });
      })
      .catch((err) => log({ level: "warn", msg: "pruning the event journal failed", error: String(err) }))
      .finally(() => (running = false));
  };
  const timer = setInterval(run, PRUNE_EVERY_MS);
  timer.unref?.();
  run();
  return () => clearInterval(timer);
}
