// Ports for the private servers tests start (PostgreSQL, Redis).

/** A port that was free a moment ago (bound to port 0, then released). */
export function freePort(): number {
  const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = probe.port!;
  probe.stop(true);
  return port;
}
