// Open WebSocket connections grouped in address buckets; notices become frames for exactly the identities SQL lets see them.
import { addressBucket } from "../domain/address.ts";
import type { Profile } from "../domain/profile.ts";

/** The news a frame carries (the trigger channel it came from has the same name). */
export type FrameKind = "new_msg" | "recipients_added" | "delivered";

/**
 * One message's news and the addresses the notification named: its recipients (new_msg), every
 * participant (recipients_added) or its sender (delivered). SQL decides who they are.
 */
export type Notice = { kind: FrameKind; msgId: number; addresses: readonly string[] };

/**
 * For one notice and the identities holding sockets in the buckets of its addresses (spelt as their
 * tokens spell them): each identity that may see it, with its frame text in a given profile.
 */
export type FrameSource = (notice: Notice, candidates: string[]) => Promise<Map<string, (profile: Profile) => string>>;

/** What the registry needs of a socket (Bun's ServerWebSocket, through Hono's WSContext). */
/** `send` is false when the client is not keeping up: too many frames wait for it, or one was dropped. */
export type SocketPeer = { send(text: string): boolean; ping(): void; close(code: number, reason: string): void };

export type SocketOpening = {
  /** The authenticated address, as the token's `sub` spells it. */
  address: string;
  /** Chosen when the socket opened (Fmsg-Profile, else the host default) and fixed for its life. */
  profile: Profile;
  /** When the token it was opened with expires (ms since the epoch). */
  expiresAt: number;
  /**
   * For a token minted from an API key: whether the key still stands behind it (not revoked,
   * expired or rotated since), re-run by the key sweep. Absent for other tokens.
   */
  keyCheck?: () => Promise<boolean>;
  peer: SocketPeer;
};

/** Close codes and reasons a client sees. 4001 is in the range RFC 6455 leaves to applications. */
export const TOKEN_EXPIRED = { code: 4001, reason: "token expired" } as const;
export const GOING_AWAY = { code: 1001, reason: "server shutting down" } as const;
/** The token's API key was revoked, expired or rotated: like expiry, a new token is needed (hence 4001 too). */
export const KEY_REVOKED = { code: 4001, reason: "api key revoked" } as const;
/**
 * The client stopped reading: frames piled up (src/lib/bun.ts) and the socket is closed instead of
 * growing. It missed news; reconnecting and reading the inbox (or GET /fmsg/events) catches up.
 */
export const TOO_SLOW = { code: 4002, reason: "too slow: frames were not read" } as const;

/** Server pings keep proxies from cutting quiet sockets and find dead peers (docs/API.md "WebSocket"). */
export const PING_INTERVAL_MS = 45_000;
/**
 * How often sockets opened with minted tokens have their key re-checked, each check accepting a key
 * state at most this old: a revocation is seen within two periods, the contract's 5 s, and each key
 * costs at most one read per period however many sockets it has.
 */
export const KEY_SWEEP_MS = 2_500;
/** Notices handled side by side (each holds a pool connection for its queries). */
const PARALLEL_NOTICES = 4;
/** setTimeout's longest delay; a token may live 30 days, so longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

type Member = SocketOpening & { bucket: string; timer: ReturnType<typeof setTimeout> | undefined; open: boolean };

export class InboxSockets {
  private readonly byBucket = new Map<string, Set<Member>>();
  /** Notices waiting for the next round, merged by kind and message (one commit raises one per address). */
  private readonly pending = new Map<string, { kind: FrameKind; msgId: number; addresses: Set<string> }>();
  private running: Promise<void> | null = null;
  private readonly pinger: ReturnType<typeof setInterval>;
  private readonly keySweeper: ReturnType<typeof setInterval>;
  private sweeping = false;
  private closed = false;

  constructor(
    private readonly frames: FrameSource,
    private readonly log: (line: Record<string, unknown>) => void = () => {},
    pingIntervalMs = PING_INTERVAL_MS,
    keySweepMs = KEY_SWEEP_MS,
  ) {
    this.pinger = setInterval(() => this.pingAll(), pingIntervalMs);
    this.pinger.unref?.();
    // One timer for every socket; a token's key is the only thing that can end it early.
    this.keySweeper = setInterval(() => void this.sweepKeys(), keySweepMs);
    this.keySweeper.unref?.();
  }

  /** Whether any socket is open: the listener skips a notification's parsing when none is. */
  get anyone(): boolean {
    return this.byBucket.size > 0;
  }

  /** Open sockets (tests, /metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.byBucket.values()) n += set.size;
    return n;
  }

  /** Registers an open socket; the returned function removes it (the client went away). */
  add(opening: SocketOpening): () => void {
    const member: Member = { ...opening, bucket: addressBucket(opening.address), timer: undefined, open: true };
    if (this.closed) {
      this.closeMember(member, GOING_AWAY);
      return () => {};
    }
    let set = this.byBucket.get(member.bucket);
    if (!set) this.byBucket.set(member.bucket, (set = new Set()));
    set.add(member);
    this.armExpiry(member);
    return () => this.remove(member);
  }

  /** News about a message for these addresses; answered in a batch with whatever else arrives in the same tick. */
  notify(notice: Notice): void {
    if (this.closed) return;
    // Nobody connected for these addresses: nothing to queue. A commit to 10,000 recipients raises
    // 20,000 notifications (new_msg and delivered), which would otherwise each be queued and walked.
    if (this.byBucket.size === 0 || !notice.addresses.some((a) => this.byBucket.has(addressBucket(a)))) return;
    const key = `${notice.kind}:${notice.msgId}`;
    let entry = this.pending.get(key);
    if (!entry) this.pending.set(key, (entry = { kind: notice.kind, msgId: notice.msgId, addresses: new Set() }));
    for (const a of notice.addresses) entry.addresses.add(a);
    this.schedule();
  }

  /** Shutdown: every socket is closed with 1001 (before the HTTP drain, which would otherwise wait on them). */
  closeAll(): void {
    this.closed = true;
    clearInterval(this.pinger);
    clearInterval(this.keySweeper);
    this.pending.clear();
    for (const set of [...this.byBucket.values()]) for (const m of [...set]) this.closeMember(m, GOING_AWAY);
  }

  /** Resolves when no notice is queued or being answered (tests, benchmarks). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  private remove(member: Member): void {
    member.open = false;
    clearTimeout(member.timer);
    const set = this.byBucket.get(member.bucket);
    if (!set?.delete(member)) return;
    if (set.size === 0) this.byBucket.delete(member.bucket);
  }

  private closeMember(member: Member, why: { code: number; reason: string }): void {
    this.remove(member);
    try {
      member.peer.close(why.code, why.reason);
    } catch {
      // already closing
    }
  }

  private armExpiry(member: Member): void {
    const left = member.expiresAt - Date.now();
    if (left <= 0) return this.closeMember(member, TOKEN_EXPIRED);
    member.timer = setTimeout(() => (member.open ? this.armExpiry(member) : undefined), Math.min(left, MAX_TIMER_MS));
    member.timer.unref?.();
  }

  /** Closes (4001 "api key revoked") the sockets whose token's key no longer stands behind it. */
  private async sweepKeys(): Promise<void> {
    if (this.sweeping) return; // a slow database: the next period starts a fresh round
    this.sweeping = true;
    try {
      const checked: Member[] = [];
      for (const set of this.byBucket.values()) for (const m of set) if (m.keyCheck) checked.push(m);
      if (checked.length === 0) return;
      let failed = 0;
      const standing = await Promise.all(
        checked.map((m) =>
          m.keyCheck!().catch(() => {
            // The key's state could not be read: the socket stays open and the next sweep asks again,
            // rather than cutting every key-based socket at once on a database blip.
            failed++;
            return true;
          }),
        ),
      );
      if (failed > 0) this.log({ level: "warn", msg: "websocket key check failed", sockets: failed });
      checked.forEach((m, i) => {
        if (!standing[i] && m.open) this.closeMember(m, KEY_REVOKED);
      });
    } finally {
      this.sweeping = false;
    }
  }

  private pingAll(): void {
    for (const set of this.byBucket.values()) {
      for (const m of set) {
        try {
          m.peer.ping();
        } catch {
          // closing; its close event removes it
        }
      }
    }
  }

  private schedule(): void {
    if (this.running || this.pending.size === 0) return;
    // Started after the current tick: a commit's NOTIFYs (one per address) arrive together and
    // are answered by one round of queries rather than one per address.
    this.running = Promise.resolve().then(async () => {
      try {
        while (this.pending.size > 0) {
          const notices = [...this.pending.values()].map((p) => ({ kind: p.kind, msgId: p.msgId, addresses: [...p.addresses] }));
          this.pending.clear();
          for (let i = 0; i < notices.length; i += PARALLEL_NOTICES) {
            await Promise.all(notices.slice(i, i + PARALLEL_NOTICES).map((n) => this.deliver(n)));
          }
        }
      } finally {
        this.running = null;
      }
    });
  }

  private async deliver(notice: Notice): Promise<void> {
    const buckets = new Set(notice.addresses.map(addressBucket));
    // One candidate per distinct spelling: SQL decides which spellings are one identity, never JS.
    const candidates = new Set<string>();
    for (const b of buckets) for (const m of this.byBucket.get(b) ?? []) candidates.add(m.address);
    if (candidates.size === 0) return; // nobody listening: no query at all
    let frames: Map<string, (profile: Profile) => string>;
    try {
      frames = await this.frames(notice, [...candidates]);
    } catch (err) {
      // Never throw: this runs from notification callbacks. A frame is a hint; the inbox is the record.
      this.log({ level: "error", msg: "websocket frames failed", id: notice.msgId, kind: notice.kind, error: String(err) });
      return;
    }
    for (const b of buckets) {
      for (const m of this.byBucket.get(b) ?? []) {
        const frame = frames.get(m.address);
        if (!frame) continue;
        try {
          if (!m.peer.send(frame(m.profile))) this.closeMember(m, TOO_SLOW);
        } catch {
          // closing; its close event removes it
        }
      }
    }
  }
}
