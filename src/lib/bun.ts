// The one place that touches Bun's server object from inside a request (peer address, per-request timeout).
import type { Context, Env } from "hono";
import { getConnInfo } from "hono/bun";
import type { Server } from "bun";

export type BunBindings = { server?: Server<unknown> };

/** The TCP peer's address, or null when the request did not come through Bun.serve. */
export function peerAddress<E extends Env & { Bindings: BunBindings }>(c: Context<E>): string | null {
  // getConnInfo throws when c.env holds no Bun server (app.request() without an env), so ask first.
  if (typeof c.env?.server?.requestIP !== "function") return null;
  return getConnInfo(c).remote.address ?? null;
}

/** Raises this request's idle timeout (long-polls); the server-wide default stays short. */
export function extendRequestTimeout<E extends Env & { Bindings: BunBindings }>(c: Context<E>, seconds: number): void {
  const server = c.env?.server;
  if (server && typeof server.timeout === "function") server.timeout(c.req.raw, seconds);
}
