// openDatabase(config): the one place that picks the embedded database or PostgreSQL, and what follows from it.
import type { Config } from "../config.ts";
import { startInboxListener, type ListenerStatus } from "../realtime/inbox-listener.ts";
import type { FrameKind, InboxSockets } from "../realtime/inbox-sockets.ts";
import type { InboxWaiters } from "../realtime/inbox-waiters.ts";
import { EMBEDDED_POOL_OPTIONS, startEmbeddedDatabase } from "./embedded.ts";
import { openPool, type Sql } from "./pool.ts";

type Log = (line: Record<string, unknown>) => void;

/**
 * What a commit did, in the terms of the trigger channel that announces it: message `msgId` became
 * visible to its recipients (new_msg), got an add-to batch (recipients_added, to every participant)
 * or reached a recipient (delivered, to its sender), or was read by one (read: only the event feed
 * hears of it).
 */
export type WakeNotice = { kind: FrameKind | "read"; msgId: number; addresses: readonly string[] | (() => Promise<readonly string[]>) };

/**
 * Tells waiters and WebSockets of a commit, once it is done. The addresses may be given as a
 * look-up: it runs only where this process feeds them itself, so PostgreSQL never pays for a query
 * whose answer the triggers' NOTIFY already carried. Never rejects: the mail is committed whatever
 * happens here (a waiter finds it at its timeout at worst).
 */
export type Wake = (notice: WakeNotice) => Promise<void>;

/** How wake-ups reach the waiters; `connected()` is what /readyz reports as "listener". */
export type WakeUps = ListenerStatus & {
  wake: Wake;
  stop(): Promise<void>;
};

export type Database = {
  sql: Sql;
  /**
   * Starts feeding `waiters` and `sockets`. PostgreSQL: the single LISTEN connection hears the
   * triggers of every writer (fmsgd and this API alike), so `wake` has nothing to do. Embedded: PGlite
   * has one session and its NOTIFY reaches no other connection (docs/design/embedded-findings.md,
   * (d)), so `wake` feeds them itself and nothing can be disconnected.
   */
  startWakeUps(waiters: InboxWaiters, opts: { log: Log; heartbeatMs?: number; sockets: InboxSockets; feed: InboxWaiters }): Promise<WakeUps>;
  /** Ends the pool, then stops the embedded database if there is one. */
  close(): Promise<void>;
};

const POOL_END_TIMEOUT_SECONDS = 5;

export async function openDatabase(config: Config): Promise<Database> {
  if (config.mode === "embedded") {
    if (config.embeddedDatabaseDir === null) throw new Error("internal: embedded mode without a database directory");
    const embedded = await startEmbeddedDatabase(config.embeddedDatabaseDir);
    const sql = openPool({ url: embedded.url, ...EMBEDDED_POOL_OPTIONS });
    return {
      sql,
      startWakeUps: async (waiters, { log, sockets, feed }) => ({
        connected: () => true,
        wake: async ({ kind, msgId, addresses }) => {
          // Every commit that raises a wake-up may have written journal events (the triggers ran);
          // which readers got one is the feed query's to say, and an embedded host has few of them.
          feed.wakeAll();
          if (kind === "read") return;
          try {
            const named = typeof addresses === "function" ? await addresses() : addresses;
            // As the listener does: a delivery to someone else is no news for anyone's inbox.
            if (kind !== "delivered") waiters.wake(named, msgId);
            sockets.notify({ kind, msgId, addresses: named });
          } catch (err) {
            log({ level: "error", msg: "wake-up failed", error: String(err) });
          }
        },
        stop: async () => {},
      }),
      close: async () => {
        try {
          await sql.end({ timeout: POOL_END_TIMEOUT_SECONDS });
        } finally {
          await embedded.close();
        }
      },
    };
  }
  const sql = openPool({
    url: config.databaseUrl,
    ssl: config.databaseSsl,
    max: config.poolSize,
    statementTimeoutMs: config.statementTimeoutMs,
    lockTimeoutMs: config.lockTimeoutMs,
  });
  return {
    sql,
    startWakeUps: async (waiters, { log, heartbeatMs, sockets, feed }) => {
      const listener = await startInboxListener(sql, waiters, { log, heartbeatMs, sockets, feed });
      return { connected: listener.connected, wake: async () => {}, stop: listener.stop };
    },
    close: async () => {
      await sql.end({ timeout: POOL_END_TIMEOUT_SECONDS });
    },
  };
}
