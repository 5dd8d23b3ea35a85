// The process's single LISTEN connection: fmsgd's trigger channels fanned out to the inbox waiters and the WebSockets.
import { notify, type Sql } from "../db/pool.ts";
import type { InboxSockets } from "./inbox-sockets.ts";
import type { InboxWaiters } from "./inbox-waiters.ts";

/**
 * Channels raised by the triggers of sql/001_fmsgd.sql (fmsgd's own), payload "<msg_id>,<addr>".
 * new_msg and recipients_added name an identity with news in its inbox (waiters and sockets);
 * delivered names the sender of a message a recipient now has (sockets only).
 */
export const INBOX_CHANNELS = ["new_msg", "recipients_added", "delivered"] as const;
const HEARTBEAT_CHANNEL = "fmsg_api_heartbeat";
/** Raised by the event journal's triggers (sql/003_events.sql), payload the address that got an event. */
export const FEED_CHANNEL = "fmsg_api_events";

export type ListenerStatus = { connected(): boolean };

export type InboxListener = ListenerStatus & { stop(): Promise<void> };

/** What the listener drives: the waiters' wake-ups, and the hook that tells it a re-check failed. */
export type WakeTarget = Pick<InboxWaiters, "wake" | "wakeAll" | "doubtAll" | "onCheckFailed" | "anyone">;

type Handle = { unlisten: () => Promise<void> };

export type ListenerOptions = {
  /** How often the listener proves it still hears its own NOTIFY (ms). */
  heartbeatMs?: number;
  log?: (line: Record<string, unknown>) => void;
  /** The open WebSockets, told of every notification (none: only the waiters are fed). */
  sockets?: Pick<InboxSockets, "notify" | "anyone">;
  /** The readers of GET /fmsg/events, woken by FEED_CHANNEL and re-checked with the waiters after an outage. */
  feed?: WakeTarget;
};

/** "<msg_id>,<addr>" → its parts, or null for anything else. */
export function parsePayload(payload: string): { msgId: number; addr: string } | null {
  const comma = payload.indexOf(",");
  if (comma < 1) return null;
  const id = payload.slice(0, comma);
  const addr = payload.slice(comma + 1).trim();
  return /^[1-9][0-9]{0,15}$/.test(id) && addr.startsWith("@") ? { msgId: Number(id), addr } : null;
}

/** How often the database is tried while notifications may be getting lost (ms). */
const OUTAGE_POLL_MS = 300;
/** A healthy listener hears its own heartbeat within milliseconds; later than this it is taken as lost (ms). */
const HEARD_WITHIN_MS = 1000;

/**
 * Listens on one postgres.js LISTEN connection. postgres.js re-listens by itself after the
 * connection drops, but with a growing backoff (up to ~20 s), and NOTIFYs raised meanwhile are
 * gone. So whenever notifications may be getting lost — a heartbeat NOTIFY sent through the pool
 * not heard back, or any failed query of ours — the listener is "unsure": it sends a heartbeat
 * every OUTAGE_POLL_MS, re-checks every waiter in SQL each time one gets through (the database
 * answers again, so a lost NOTIFY's mail is found now), and stops only when it hears its heartbeat
 * again (LISTEN is back; one last re-check covers what was committed just before).
 */
export async function startInboxListener(sql: Sql, waiters: WakeTarget, opts: ListenerOptions = {}): Promise<InboxListener> {
  const log = opts.log ?? (() => {});
  const heartbeatMs = opts.heartbeatMs ?? 2000;
  const handles: Handle[] = [];
  /** Everyone who re-checks when notifications may have been lost. */
  const wakeEveryone = () => {
    waiters.wakeAll();
    opts.feed?.wakeAll();
  };
  /** What /readyz reports: false once a heartbeat went unheard, until one is heard again. */
  let connected = false;
  /** Notifications may have been lost and LISTEN is not yet proven back: poll and re-check. */
  let unsure = false;
  /** Set once the first LISTENs are in place: every (re)connection after that may have lost NOTIFYs. */
  let ready = false;
  let stopped = false;
  /** When the oldest heartbeat not yet heard back was sent (performance.now()); its age says the listener is deaf. */
  let unheardSince: number | null = null;

  // One argument at most (a payload), passed on as is: no rest array per notification.
  const safely = <A = void>(fn: (arg: A) => void) => (arg: A) => {
    // A throwing listener callback makes postgres.js 3.4 skip the other listeners of the notification
    // and can reject an unrelated query.
    try {
      fn(arg);
    } catch (err) {
      log({ level: "error", msg: "notification handler failed", error: String(err) });
    }
  };
  const onNotification = (kind: (typeof INBOX_CHANNELS)[number]) =>
    safely((payload: string) => {
      // Two or more per recipient of every send: on a host with no open wait or socket, that is all.
      if (!waiters.anyone && !opts.sockets?.anyone) return;
      const parsed = parsePayload(payload);
      if (!parsed) return;
      // Waiters wait for their inbox; a delivery to someone else changes nothing there. The message id
      // lets them be answered from the notification itself once one query confirms it.
      if (kind !== "delivered") waiters.wake([parsed.addr], parsed.msgId);
      if (opts.sockets?.anyone) opts.sockets.notify({ kind, msgId: parsed.msgId, addresses: [parsed.addr] });
    });
  const becomeUnsure = (why: string) => {
    if (!ready || stopped) return;
    // Until a re-check answers, a wait whose time runs out cannot say "nothing new" (it answers 503).
    // Also when already unsure: a re-check may have answered in between, before this new failure.
    waiters.doubtAll();
    opts.feed?.doubtAll();
    if (unsure) return;
    unsure = true;
    log({ level: "error", msg: "inbox notifications may be lost", reason: why });
  };
  const onHeartbeat = safely((_payload: string) => {
    // Any heartbeat heard (ours or another API process's) proves this LISTEN connection works now.
    unheardSince = null;
    const wasDegraded = !connected || unsure;
    connected = true;
    unsure = false;
    if (wasDegraded && ready) {
      log({ level: "info", msg: "listener confirmed" });
      wakeEveryone();
    }
  });
  const onListen = safely(() => {
    // Every re-listen after the first: whatever was raised while it was down is lost.
    if (ready) wakeEveryone();
  });

  for (const ch of INBOX_CHANNELS) handles.push(await sql.listen(ch, onNotification(ch), onListen));
  if (opts.feed) {
    const feed = opts.feed;
    // One per address of every journal entry: with no reader open, nothing to do.
    handles.push(await sql.listen(FEED_CHANNEL, safely((addr: string) => feed.anyone && feed.wake([addr])), onListen));
  }
  handles.push(await sql.listen(HEARTBEAT_CHANNEL, onHeartbeat));
  ready = true;
  connected = true;
  waiters.onCheckFailed(() => becomeUnsure("inbox check failed"));
  opts.feed?.onCheckFailed(() => becomeUnsure("event feed check failed"));

  /**
   * One heartbeat. postgres.js re-listens every channel by itself once it reconnects; this never
   * re-subscribes (that raced the re-listen: duplicate listeners, or a LISTEN left pending forever).
   */
  const beat = async () => {
    // Set before sending: the NOTIFY may be heard before the query that raised it returns.
    unheardSince ??= performance.now();
    try {
      await notify(sql, HEARTBEAT_CHANNEL, crypto.randomUUID());
    } catch {
      becomeUnsure("heartbeat failed");
      return;
    }
    // The database answered: mail whose NOTIFY was lost is visible now, so look for it now.
    if (unsure) wakeEveryone();
  };
  let beating = false;
  let lastBeat = 0;
  const tick = () => {
    if (stopped) return;
    const now = performance.now();
    // Judged here, not in beat(): a heartbeat stuck behind a reconnecting pool must not delay it.
    const unheard = unheardSince === null ? 0 : now - unheardSince;
    if (unheard >= HEARD_WITHIN_MS) becomeUnsure("heartbeat not heard");
    if (unheard >= Math.max(heartbeatMs, HEARD_WITHIN_MS) && connected) {
      log({ level: "error", msg: "listener lost" });
      connected = false;
    }
    if (beating || now - lastBeat < (unsure ? OUTAGE_POLL_MS : heartbeatMs)) return;
    lastBeat = now;
    beating = true;
    void beat().finally(() => (beating = false));
  };
  const timer = setInterval(tick, Math.min(OUTAGE_POLL_MS, heartbeatMs));
  timer.unref?.();

  return {
    connected: () => connected,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.allSettled(handles.map((h) => h.unlisten()));
    },
  };
}
