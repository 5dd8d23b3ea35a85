// GET /fmsg/wait: the long poll of API.md §8, answered from the in-memory waiter registry.
import { Hono } from "hono";
import { extendRequestTimeout } from "../../lib/bun.ts";
import type { InboxWaiters } from "../../realtime/inbox-waiters.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError } from "../errors.ts";
import { parseCount } from "../message-input.ts";

export const MAX_WAIT_SECONDS = 60;
const DEFAULT_WAIT_SECONDS = 25;
/** Idle allowance beyond the wait itself, so Bun's 30 s idle timeout never cuts a full wait. */
const IDLE_MARGIN_SECONDS = 15;

export function waitRoutes(waiters: InboxWaiters) {
  return new Hono<AppEnv>().get("/wait", async (c) => {
    const sinceId = parseCount(c.req.query("since_id"), 0, "invalid since_id");
    const timeout = parseCount(c.req.query("timeout"), DEFAULT_WAIT_SECONDS, "invalid timeout");
    if (timeout < 1 || timeout > MAX_WAIT_SECONDS) throw new ApiError(400, "invalid timeout");
    extendRequestTimeout(c, timeout + IDLE_MARGIN_SECONDS);
    // A client that goes away aborts the signal, which frees its waiter and timer at once.
    const latest = await waiters.wait(c.var.identity, sinceId, timeout * 1000, c.req.raw.signal);
    if (latest === null) return c.body(null, 204);
    return c.json({ has_new: true, latest_id: latest });
  });
}
