// The WebSocket registry on its own: pings, batching of a commit's notices, removal (the frames' SQL is tested end to end in ws.test.ts).
import { expect, test } from "bun:test";
import type { Profile } from "../../src/domain/profile.ts";
import { InboxSockets, type FrameSource, type Notice, type SocketPeer } from "../../src/realtime/inbox-sockets.ts";
import { until } from "../helpers/poll.ts";

function peer() {
  const log = { sent: [] as string[], pings: 0, closed: [] as [number, string][] };
  const p: SocketPeer = { send: (t) => log.sent.push(t) > 0, ping: () => void log.pings++, close: (code, reason) => void log.closed.push([code, reason]) };
  return { p, log };
}

/** Every candidate may see everything; records what it was asked. */
function allowAll(asked: { notice: Notice; candidates: string[] }[]): FrameSource {
  return async (notice, candidates) => {
    asked.push({ notice, candidates });
    return new Map(candidates.map((c) => [c, (profile: Profile) => `${notice.kind}:${notice.msgId}:${profile}`]));
  };
}

test("every open socket is pinged on the interval", async () => {
  const sockets = new InboxSockets(allowAll([]), () => {}, 10);
  const a = peer();
  sockets.add({ address: "@a@example.com", profile: "seed", expiresAt: Date.now() + 60_000, peer: a.p });
  await until(() => a.log.pings >= 2, "two pings");
  sockets.closeAll();
  expect(a.log.closed).toEqual([[1001, "server shutting down"]]);
});

test("one commit's notices (one per address) are answered by one look-up; sockets of other buckets cost none", async () => {
  const asked: { notice: Notice; candidates: string[] }[] = [];
  const sockets = new InboxSockets(allowAll(asked));
  const b = peer();
  const c = peer();
  const remove = sockets.add({ address: "@B@example.com", profile: "fmsg-003", expiresAt: Date.now() + 60_000, peer: b.p });
  sockets.add({ address: "@c@example.com", profile: "seed", expiresAt: Date.now() + 60_000, peer: c.p });
  for (const addr of ["@b@example.com", "@c@example.com", "@nobody@example.com"]) sockets.notify({ kind: "new_msg", msgId: 7, addresses: [addr] });
  sockets.notify({ kind: "new_msg", msgId: 8, addresses: ["@nobody@example.com"] });
  await until(() => c.log.sent.length === 1, "the frame");
  await sockets.idle();
  expect(asked.map((a) => [a.notice.msgId, a.candidates.sort()])).toEqual([[7, ["@B@example.com", "@c@example.com"]]]);
  expect(b.log.sent).toEqual(["new_msg:7:fmsg-003"]);
  remove();
  expect(sockets.size).toBe(1);
  sockets.closeAll();
});

test("a client that stops keeping up is closed with 4002 and gets no more frames; the others go on", async () => {
  const sockets = new InboxSockets(allowAll([]));
  const slow = peer();
  let room = 2;
  const stalled: SocketPeer = { ...slow.p, send: (t) => slow.p.send(t) && room-- > 0 };
  const fine = peer();
  sockets.add({ address: "@a@example.com", profile: "seed", expiresAt: Date.now() + 60_000, peer: stalled });
  sockets.add({ address: "@a@example.com", profile: "seed", expiresAt: Date.now() + 60_000, peer: fine.p });
  for (let id = 1; id <= 5; id++) {
    sockets.notify({ kind: "new_msg", msgId: id, addresses: ["@a@example.com"] });
    await sockets.idle();
  }
  expect(fine.log.sent).toEqual([1, 2, 3, 4, 5].map((id) => `new_msg:${id}:seed`));
  // The third frame found it behind: closed then, and never written to again.
  expect(slow.log.sent).toEqual([1, 2, 3].map((id) => `new_msg:${id}:seed`));
  expect(slow.log.closed).toEqual([[4002, "too slow: frames were not read"]]);
  expect(sockets.size).toBe(1);
  sockets.closeAll();
});
