// A request whose answer comes later (the long poll): every middleware finishes at once, and only the answer is left to wait.
import type { Context } from "hono";
import type { AppEnv } from "./app-env.ts";

/** What a parked request finally answers: a status, a JSON body or none, and headers of its own. */
export type LaterAnswer = { status: number; json: string | null; headers?: Record<string, string> };

/** Called once the answer is out (the request log: its status and duration are only known then). */
export type OnAnswered = (status: number) => void;

/**
 * The placeholder each parked request's middleware chain ended with (it carries the headers they set:
 * request id, rate limit, profile, CORS), and what to answer in its place once the answer is known.
 */
const parkedAnswers = new WeakMap<Response, Promise<Response>>();

/** The answer of the request in `c`, set by its route; the chain is left with a placeholder. */
const laterAnswers = new WeakMap<Context<AppEnv>, Promise<LaterAnswer>>();

/**
 * Lets a route answer later without holding Hono's middleware chain open. A held long poll would
 * otherwise keep a context, a dozen closures and every async middleware frame alive for minutes, and
 * walk back through all of them when a wake-up answers thousands of waits at once: the work of the
 * chain happens now, while the request waits, and the answer only builds one response.
 * Token check, rate limit, profile and validation all ran before the route: nothing is skipped.
 */
export function answerLater(c: Context<AppEnv>, answer: Promise<LaterAnswer>): Response {
  laterAnswers.set(c, answer);
  // Never sent: only its headers, as the middleware leave them, go into the answer.
  return c.body(null, 200);
}

/**
 * Run by the outermost middleware once the chain is done: when the route answered later, the
 * response it leaves is swapped for the real answer (`answered` hears its status then), and
 * true is returned; false for every other request.
 */
export function holdParked(c: Context<AppEnv>, answered: OnAnswered): boolean {
  const later = laterAnswers.get(c);
  if (!later) return false;
  laterAnswers.delete(c);
  const headers = c.res.headers;
  parkedAnswers.set(
    c.res,
    later.then(({ status, json, headers: own }) => {
      if (json !== null) headers.set("Content-Type", "application/json");
      if (own) for (const [name, value] of Object.entries(own)) headers.set(name, value);
      answered(status);
      return new Response(json, { status, headers });
    }),
  );
  return true;
}

/** Bun's fetch handler: what the app answered, or for a parked request its real answer when it comes. */
export function unpark(res: Response | Promise<Response>): Response | Promise<Response> {
  if (res instanceof Promise) return res.then(swapParked);
  return swapParked(res);
}

const swapParked = (res: Response): Response | Promise<Response> => parkedAnswers.get(res) ?? res;
