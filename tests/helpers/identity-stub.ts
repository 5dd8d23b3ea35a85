// A stand-in fmsgid (a separate program in production): answers per address, counts requests.
import { endlessBody } from "./endless-body.ts";

/** "endless": 200 and a body of whitespace that never ends (a hostile or broken service). */
export type StubAnswer = "accepting" | "not_accepting" | "unknown" | "error" | "garbage" | "slow" | "endless";

export type IdentityStub = {
  url: string;
  set(address: string, answer: StubAnswer): void;
  /** Requests seen per lower-cased address. */
  requests(address: string): number;
  /** Bytes the "endless" answers handed over so far. */
  endlessSent(): number;
  /** Releases every request held by "slow". */
  releaseSlow(): void;
  stop(): Promise<void>;
};

export function startIdentityStub(defaultAnswer: StubAnswer = "accepting"): IdentityStub {
  const answers = new Map<string, StubAnswer>();
  const counts = new Map<string, number>();
  let release: (() => void)[] = [];
  const endless = endlessBody();
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    async fetch(req) {
      const path = new URL(req.url).pathname;
      const m = /^\/fmsgid\/(.+)$/.exec(path);
      if (!m) return new Response("no", { status: 400 });
      const address = decodeURIComponent(m[1]!).toLowerCase();
      counts.set(address, (counts.get(address) ?? 0) + 1);
      const answer = answers.get(address) ?? defaultAnswer;
      switch (answer) {
        case "accepting":
          return Response.json({ address, acceptingNew: true });
        case "not_accepting":
          return Response.json({ address, acceptingNew: false });
        case "unknown":
          return new Response("not found", { status: 404 });
        case "error":
          return new Response("boom", { status: 500 });
        case "garbage":
          return new Response("<html>", { status: 200 });
        case "slow":
          await new Promise<void>((resolve) => release.push(resolve));
          return Response.json({ address, acceptingNew: true });
        case "endless":
          return endless.response();
      }
    },
  });
  return {
    url: server.url.toString().replace(/\/$/, ""),
    set: (address, answer) => answers.set(address.toLowerCase(), answer),
    requests: (address) => counts.get(address.toLowerCase()) ?? 0,
    endlessSent: () => endless.sent,
    releaseSlow: () => {
      for (const r of release) r();
      release = [];
    },
    stop: async () => {
      for (const r of release) r();
      await server.stop(true);
    },
  };
}
