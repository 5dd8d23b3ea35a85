// A TCP proxy in front of PostgreSQL that can lose a COMMIT's answer, or stall: once armed, it lets a chosen
// command complete inside PostgreSQL and then cuts the connection before the answer (from that
// CommandComplete through ReadyForQuery) reaches the client. What a terminated backend, a restart
// or a network drop at that instant does to the server; here on demand.
import { connect, createServer, type AddressInfo } from "node:net";
import { createTestDatabase, type TestDatabase } from "./db.ts";
import { startTestServer, type TestServer } from "./server.ts";

type Armed = { tag: string; skip: number; marker: string | null; cut: () => void };

export type CutProxy = {
  url(database: string): string;
  /**
   * Cuts the connection that next completes a command whose tag starts with `tag` ("COMMIT",
   * "INSERT", "SELECT 1"), after `skip` such completions pass; resolves once it has cut. With
   * `marker`, only on a connection whose client sent those bytes since (a parameter value, such as
   * an address only this request uses): other queries that run meanwhile are left alone.
   */
  arm(tag: string, opts?: { skip?: number; marker?: string }): Promise<void>;
  /**
   * A database that stops answering with its sockets open (SIGSTOP, a frozen VM, a partition
   * without a reset): nothing passes either way, on any connection, old or new, until `resume()`,
   * which lets what waited through.
   */
  stall(): () => void;
  stop(): void;
};

/** Splits the server's byte stream into whole protocol messages (type byte, int32 length, body). */
class MessageSplitter {
  private buffered = new Uint8Array(0);
  push(chunk: Uint8Array): Uint8Array[] {
    const all = new Uint8Array(this.buffered.length + chunk.length);
    all.set(this.buffered);
    all.set(chunk, this.buffered.length);
    const messages: Uint8Array[] = [];
    let at = 0;
    // The startup exchange's single-byte SSL answer ('N') has no length: passed on as it is.
    while (at < all.length) {
      if (all.length - at === 1 && all[at] === 0x4e && messages.length === 0 && at === 0) {
        messages.push(all.subarray(at, at + 1));
        at += 1;
        break;
      }
      if (all.length - at < 5) break;
      const length = new DataView(all.buffer, all.byteOffset + at + 1, 4).getInt32(0);
      if (all.length - at < 1 + length) break;
      messages.push(all.subarray(at, at + 1 + length));
      at += 1 + length;
    }
    this.buffered = all.slice(at);
    return messages;
  }
}

const decoder = new TextDecoder();

export async function startCutProxy(target: { host: string; port: number }): Promise<CutProxy> {
  let armed: Armed | null = null;
  let stalled: (() => void)[] | null = null;
  /** Runs `pass` now, or once the stall is over. */
  const whenFlowing = (pass: () => void) => (stalled ? stalled.push(pass) : pass());
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const splitter = new MessageSplitter();
    let holding = false;
    let marked = false;
    let closed = false;
    const close = () => {
      closed = true;
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (chunk: Buffer) =>
      whenFlowing(() => {
        if (closed) return;
        if (armed?.marker && chunk.includes(armed.marker)) marked = true;
        upstream.write(chunk);
      }),
    );
    upstream.on("data", (chunk: Buffer) => whenFlowing(() => fromServer(chunk)));
    const fromServer = (chunk: Buffer) => {
      for (const m of splitter.push(chunk)) {
        if (closed) return;
        const type = String.fromCharCode(m[0]!);
        if (type === "C" && armed && !holding && (armed.marker === null || marked) && decoder.decode(m.subarray(5, m.length - 1)).startsWith(armed.tag)) {
          if (armed.skip > 0) armed.skip--;
          else holding = true; // the command is done in PostgreSQL; its answer goes no further
        }
        if (!holding) {
          client.write(m);
          continue;
        }
        if (type === "Z") {
          // Committed: COMMIT's own ReadyForQuery, or a statement of its own done at its Sync.
          const done = armed!;
          armed = null;
          close();
          done.cut();
          return;
        }
      }
    };
    client.on("close", close);
    upstream.on("close", close);
    client.on("error", close);
    upstream.on("error", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    arm: (tag, opts = {}) => new Promise<void>((cut) => (armed = { tag, skip: opts.skip ?? 0, marker: opts.marker ?? null, cut })),
    stall: () => {
      stalled ??= [];
      return () => {
        const waiting = stalled ?? [];
        stalled = null;
        for (const pass of waiting) pass();
      };
    },
    stop: () => server.close(),
  };
}

export type BehindProxy = { db: TestDatabase; proxy: CutProxy; s: TestServer; stop(): Promise<void> };

/** A fresh database, a proxy in front of it, and a test server that reaches the database only through it. */
export async function serverBehindProxy(env: Record<string, string> = {}): Promise<BehindProxy> {
  const db = await createTestDatabase();
  const proxy = await startCutProxy({ host: "127.0.0.1", port: Number(new URL(db.url).port || 5432) });
  const s = await startTestServer({ database: { ...db, url: proxy.url(db.name) }, env });
  return {
    db,
    proxy,
    s,
    async stop() {
      await s.stop();
      proxy.stop();
      await db.drop();
    },
  };
}
