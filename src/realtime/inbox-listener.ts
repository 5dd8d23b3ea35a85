// The process's single LISTEN connection: fmsgd's trigger channels fanned out to the inbox waiters.
import { notify, type Sql } from "../db/pool.ts";
import type { InboxWaiters } from "./inbox-waiters.ts";

/** Channels raised by the triggers of DATABASE.md whose payload is "<msg_id>,<addr>". */
export const INBOX_CHANNELS = ["new_msg", "recipients_added"] as const;
/** Raised when a recipient's delivery is recorded; heard now, consumed by the WebSocket later. */
export const DELIVERY_CHANNEL = "delivered";
const HEARTBEAT_CHANNEL = "fmsg_api_heartbeat";

export type ListenerStatus = { connected(): boolean };

export type InboxListener = ListenerStatus & { stop(): Promise<void> };

type Handle = { unlisten: () => Promise<void> };

export type ListenerOptions = {
  /** How often the listener proves it still hears its own NOTIFY (ms). */
  heartbeatMs?: number;
  onDelivered?: (msgId: number, address: string) => void;
  log?: (line: Record<string, unknown>) => void;
};

/** "<msg_id>,<addr>" → address (the id is not needed: waiters always re-query). */
export function payloadAddress(payload: string): string | null {
  const comma = payload.indexOf(",");
  if (comma < 1) return null;
  const addr = payload.slice(comma + 1).trim();
  return addr.startsWith("@") ? addr : null;
}

/**
 * Listens on one postgres.js LISTEN connection. postgres.js re-listens by itself after the
 * connection drops; `onlisten` then wakes every waiter, because NOTIFYs raised meanwhile are gone.
 * A heartbeat NOTIFY sent through the pool detects a listener that silently stopped hearing
 * (readyz reports it) until postgres.js has re-listened.
 */
export async function startInboxListener(sql: Sql, waiters: InboxWaiters, opts: ListenerOptions = {}): Promise<InboxListener> {
  const log = opts.log ?? (() => {});
  const heartbeatMs = opts.heartbeatMs ?? 5000;
  const handles: Handle[] = [];
  let connected = false;
  /** Set once the first LISTENs are in place: every (re)connection after that may have lost NOTIFYs. */
  let ready = false;
  let awaiting: string | null = null;
  let stopped = false;

  const safely = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => {
    // A throwing listener callback makes postgres.js skip its siblings (PITFALLS.md 10).
    try {
      fn(...args);
    } catch (err) {
      log({ level: "error", msg: "notification handler failed", error: String(err) });
    }
  };
  const onInbox = safely((payload: string) => {
    const addr = payloadAddress(payload);
    if (addr) waiters.wake([addr]);
  });
  const onDelivered = safely((payload: string) => {
    const addr = payloadAddress(payload);
    if (addr && opts.onDelivered) opts.onDelivered(Number(payload.slice(0, payload.indexOf(","))), addr);
  });
  const markConnected = () => {
    const wasDown = !connected;
    connected = true;
    if (wasDown && ready) {
      log({ level: "info", msg: "listener reconnected" });
      waiters.wakeAll();
    }
  };
  const onHeartbeat = safely((payload: string) => {
    if (payload === awaiting) awaiting = null;
    markConnected();
  });
  const onListen = safely(() => {
    connected = true;
    // Every re-listen after the first: whatever was raised while it was down is lost.
    if (ready) waiters.wakeAll();
  });

  for (const ch of INBOX_CHANNELS) handles.push(await sql.listen(ch, onInbox, onListen));
  handles.push(await sql.listen(DELIVERY_CHANNEL, onDelivered));
  handles.push(await sql.listen(HEARTBEAT_CHANNEL, onHeartbeat));
  ready = true;
  connected = true;

  const beat = async () => {
    if (stopped) return;
    if (awaiting !== null) {
      // The previous heartbeat never came back: the LISTEN connection is gone or deaf. postgres.js
      // re-listens every channel by itself once it reconnects (onListen and the next heartbeat then
      // mark it up and wake everyone). Re-subscribing here as well raced that re-listen: the old
      // handles no longer matched postgres.js's re-created listeners, so every outage added duplicate
      // listeners, and an unlisten/listen during a failing reconnect could leave a LISTEN pending
      // forever, hanging this heartbeat and the channel for good.
      if (connected) log({ level: "error", msg: "listener lost" });
      connected = false;
      awaiting = null;
    }
    const nonce = crypto.randomUUID();
    awaiting = nonce;
    await notify(sql, HEARTBEAT_CHANNEL, nonce).catch(() => {});
  };
  let beating = false;
  const timer = setInterval(() => {
    if (beating) return;
    beating = true;
    beat().finally(() => (beating = false));
  }, heartbeatMs);
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
