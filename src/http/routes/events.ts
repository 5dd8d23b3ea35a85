// GET /fmsg/events: the resumable inbox feed, as a long poll (JSON) or as Server-Sent Events.
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { EventPage, EventsHeaders, EventsQuery } from "../../contract/events.ts";
import { feedPosition, readEvents, type FeedEvent } from "../../db/events.ts";
import type { Sql } from "../../db/pool.ts";
import { extendRequestTimeout } from "../../lib/bun.ts";
import { KEY_SWEEP_MS } from "../../realtime/inbox-sockets.ts";
import { type InboxWaiters, LEFT } from "../../realtime/inbox-waiters.ts";
import type { MintedTokenCheck } from "../api-key-tokens.ts";
import type { AppEnv } from "../app-env.ts";
import { ApiError, unauthorized } from "../errors.ts";
import { answers, BEARER } from "../openapi.ts";
import { tokenStanding } from "../token-standing.ts";
import { refuseInvalid } from "../validation.ts";

/** Events in one answer (or one burst of the stream before it looks again). */
const PAGE = 500;
/** Idle allowance beyond the wait itself, so Bun's 30 s idle timeout never cuts a full wait. */
const IDLE_MARGIN_SECONDS = 15;
/** A comment line this often keeps proxies from closing a quiet stream (ms). */
const HEARTBEAT_MS = 15_000;
export const CURSOR_PRUNED = "events since this cursor were pruned (older than the retention period): re-list the mailbox, then read the feed from its current head";
/**
 * The head never goes back (the pruner records how far it removed), so a cursor beyond it was never
 * handed out by this journal: the database was restored from a backup, or the client talks to
 * another host. Waiting there would skip every event until the head caught up.
 */
export const CURSOR_AHEAD = "this cursor is ahead of the event journal (restored database or another host?): re-list the mailbox, then read the feed from its current head";

const events = createRoute({
  operationId: "readEvents",
  method: "get",
  path: "/events",
  tags: ["messages"],
  security: [{ [BEARER]: [] }],
  summary: "The identity's events above a cursor (long poll, or Server-Sent Events)",
  description:
    "Every time a message becomes visible to the identity (sent to it, delivered to it, it is added via add-to), recipients are added to a message it takes part in, or its own message is delivered or read, an event with a host-wide monotonic seq is recorded (by database triggers, so fmsgd's writes count too). Answers at once when there are events above `since`; otherwise waits up to `timeout` seconds and answers the events or an empty list. With `Accept: text/event-stream` the same events stream as Server-Sent Events (`id:` = seq, `event:` = kind, `data:` = the event object), resuming from Last-Event-ID, with a comment line every 15 s. The stream ends (after a comment line saying why) when its token expires, and within 5 s of the API key behind a token from POST /fmsg/token being revoked, rotated or expiring.",
  request: { query: EventsQuery, headers: EventsHeaders },
  responses: answers(
    {
      200: {
        description: "Events above the cursor (or none at timeout); or, asked for, the event stream.",
        content: {
          "application/json": { schema: EventPage },
          "text/event-stream": { schema: z.string().meta({ description: "Server-Sent Events, one per feed event." }) },
        },
      },
    },
    {
      400: "Invalid parameters (`invalid since`, `invalid timeout`, `invalid Last-Event-ID`).",
      410: "Events above the cursor were pruned (older than FMSG_API_EVENT_RETENTION_DAYS), or the cursor is ahead of the journal's head (a restored database, another host): re-list the mailbox and start again from the current head.",
    },
  ),
});

export type EventRouteDeps = {
  sql: Sql;
  feed: InboxWaiters;
  log: (line: Record<string, unknown>) => void;
  /** Re-checks, while a stream is open, the API key behind a token from POST /fmsg/token. */
  mintedTokens?: MintedTokenCheck;
};

export function eventRoutes(deps: EventRouteDeps) {
  const { sql, feed } = deps;
  return new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid }).openapi(events, async (c) => {
    const query = c.req.valid("query");
    const stream = /\btext\/event-stream\b/i.test(c.req.header("accept") ?? "");
    const asked = stream ? (c.req.valid("header")["last-event-id"] ?? query.since) : query.since;
    const { head, prunedUpto } = await feedPosition(sql);
    // Without a cursor the reader starts at the head: what happens from now on.
    const since = asked ?? head;
    if (since < prunedUpto) throw new ApiError(410, CURSOR_PRUNED);
    if (since > head) throw new ApiError(410, CURSOR_AHEAD);
    const identity = c.get("identity");

    if (stream) {
      // The stream is ended by the client, a failed write, or shutdown; heartbeats keep it busy.
      extendRequestTimeout(c, 0);
      const standing = tokenStanding(c, deps.mintedTokens);
      // Accepted within the 10 s leeway past its exp, a token would open a stream that ends at once;
      // a client reconnecting in a loop is told instead.
      if (Date.now() >= standing.expiresAt) throw unauthorized("token is expired");
      return streamSSE(c, async (out) => {
        const gone = new AbortController();
        out.onAbort(() => gone.abort());
        c.req.raw.signal.addEventListener("abort", () => gone.abort(), { once: true });
        let cursor = since;
        await out.write(": fmsg event stream\n\n");
        let lastWrite = Date.now();
        let keyCheckedAt = lastWrite;
        while (!gone.signal.aborted && !feed.isClosed) {
          // Like a WebSocket, the stream ends when its token runs out or its API key stops standing
          // behind it; the client's reconnect then meets the 401 every other request gets.
          if (Date.now() >= standing.expiresAt) return void (await out.write(": token expired\n\n"));
          if (standing.keyCheck && Date.now() - keyCheckedAt >= KEY_SWEEP_MS) {
            // A key state that cannot be read keeps the stream (a database blip must not cut them all).
            if (!(await standing.keyCheck().catch(() => true))) return void (await out.write(": api key revoked\n\n"));
            keyCheckedAt = Date.now();
          }
          let page: FeedEvent[];
          try {
            page = await readEvents(sql, identity, cursor, PAGE);
          } catch (err) {
            // The client reconnects with Last-Event-ID and misses nothing.
            deps.log({ level: "warn", msg: "event stream ended on a failed read", error: String(err) });
            return;
          }
          for (const e of page) await out.writeSSE({ id: String(e.seq), event: e.kind, data: JSON.stringify(e) });
          if (page.length > 0) {
            cursor = page[page.length - 1]!.seq;
            lastWrite = Date.now();
          }
          if (page.length === PAGE) continue;
          const now = Date.now();
          const until = Math.min(lastWrite + HEARTBEAT_MS, standing.expiresAt, standing.keyCheck ? keyCheckedAt + KEY_SWEEP_MS : Infinity);
          const news = await feed.wait(identity, cursor, Math.max(1, until - now), gone.signal);
          if (news === null && !gone.signal.aborted && !feed.isClosed && Date.now() - lastWrite >= HEARTBEAT_MS) {
            await out.write(": heartbeat\n\n");
            lastWrite = Date.now();
          }
        }
      });
    }

    const found = await readEvents(sql, identity, since, PAGE);
    if (found.length > 0 || query.timeout === 0) return c.json(page(found, since), 200);
    extendRequestTimeout(c, query.timeout + IDLE_MARGIN_SECONDS);
    // Registered before its first check, so an event committed at any moment from here on is seen.
    const news = await feed.wait(identity, since, query.timeout * 1000, c.req.raw.signal);
    // Read again unless nothing can be new (a timeout that knows, or a client gone): also when in doubt.
    return c.json(page(news === null || news === LEFT ? [] : await readEvents(sql, identity, since, PAGE), since), 200);
  });
}

function page(found: FeedEvent[], since: number) {
  return { events: found, next: found.length > 0 ? found[found.length - 1]!.seq : since };
}
