// GET /fmsg/wait: the long poll, answered from the in-memory waiter registry.
import { createRoute, OpenAPIHono, type z } from "@hono/zod-openapi";
import { WaitQuery } from "../../contract/requests.ts";
import { WaitNews } from "../../contract/responses.ts";
import { extendRequestTimeout } from "../../lib/bun.ts";
import { IN_DOUBT, type InboxWaiters, LEFT, type WaitResult } from "../../realtime/inbox-waiters.ts";
import { ApiError, RETRY_AFTER_SECONDS } from "../errors.ts";
import type { AppEnv } from "../app-env.ts";
import { answers, BEARER, json } from "../openapi.ts";
import { answerLater, type LaterAnswer } from "../parked.ts";
import { refuseInvalid } from "../validation.ts";

type WaitNewsBody = z.infer<typeof WaitNews>;

/** Idle allowance beyond the wait itself, so Bun's 30 s idle timeout never cuts a full wait. */
const IDLE_MARGIN_SECONDS = 15;

const wait = createRoute({
  operationId: "waitForInbox",
  method: "get",
  path: "/wait",
  tags: ["messages"],
  security: [{ [BEARER]: [] }],
  summary: "Wait until a message newer than since_id arrives (long poll)",
  description:
    "Answers at once when the inbox already holds a sent message with a higher id than since_id; otherwise when one is committed (sent here, delivered by fmsgd, or the identity added to it), or 204 when the timeout passes.",
  request: { query: WaitQuery },
  responses: answers(
    { 200: json(WaitNews, "There is news."), 204: { description: "Nothing new within the timeout (or the server is shutting down)." } },
    {
      400: "Invalid parameters (`invalid since_id`, `invalid timeout`).",
      503: "The timeout passed while the database could not be asked (`database unavailable`): whether there is news is not known.",
    },
  ),
});

/**
 * Logged and counted for a wait whose client went away: nothing was sent, so not the 204 of a
 * timeout (nginx's code for a client that closed its request).
 */
export const CLIENT_GONE = 499;

/** Its time ran out while the database could not say whether there is news (API §1). */
const unavailable = () => new ApiError(503, "database unavailable", { "Retry-After": RETRY_AFTER_SECONDS });

/** The long poll's answer for the newest id found (null: nothing new in time, or shutting down). */
const newsAnswer = (latest: WaitResult): LaterAnswer => {
  if (typeof latest === "number") return { status: 200, json: JSON.stringify({ has_new: true, latest_id: latest } satisfies WaitNewsBody) };
  if (latest === IN_DOUBT) {
    const err = unavailable();
    return { status: err.status, json: JSON.stringify({ error: err.message }), headers: err.headers };
  }
  return { status: latest === LEFT ? CLIENT_GONE : 204, json: null };
};

export function waitRoutes(waiters: InboxWaiters) {
  return new OpenAPIHono<AppEnv>({ defaultHook: refuseInvalid }).openapi(wait, async (c) => {
    const { since_id: sinceId, timeout } = c.req.valid("query");
    extendRequestTimeout(c, timeout + IDLE_MARGIN_SECONDS);
    // A client that goes away aborts the signal, which frees its waiter and timer at once.
    const latest = waiters.wait(c.get("identity"), sinceId, timeout * 1000, c.req.raw.signal);
    if (c.req.method === "HEAD") {
      // Hono answers HEAD with a copy of the GET route's response, which parked.ts could not swap
      // for the real answer: this one waits inside the chain.
      const id = await latest;
      if (id === IN_DOUBT) throw unavailable();
      return typeof id === "number" ? c.json({ has_new: true as const, latest_id: id }, 200) : c.body(null, 204);
    }
    // Answered later, outside the middleware chain (parked.ts): the 200 and 204 declared above.
    return answerLater(c, latest.then(newsAnswer));
  });
}
