// GET /healthz (the process serves) and GET /readyz (database answers, listener connected, schema as migrate left it).
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { Health, Readiness } from "../../contract/responses.ts";
import { ping, type Sql } from "../../db/pool.ts";
import type { ListenerStatus } from "../../realtime/inbox-listener.ts";
import type { AppEnv } from "../app-env.ts";
import { json } from "../openapi.ts";

const READY_QUERY_TIMEOUT_MS = 2000;

async function databaseAnswers(sql: Sql): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), READY_QUERY_TIMEOUT_MS)));
  try {
    return await Promise.race([ping(sql).then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `schemaWarnings` (found at start: a missing index, a trigger body fmsgd's DDL replaced…) are
 * reported in /readyz's body without making it 503: the server works, slower or with fmsgd's
 * older trigger behaviour, and taking it out of rotation would help nobody.
 */
const healthz = createRoute({
  operationId: "healthz",
  method: "get",
  path: "/healthz",
  tags: ["operations"],
  summary: "The process serves (never rate-limited)",
  responses: { 200: json(Health, "Serving.") },
});

const readyz = createRoute({
  operationId: "readyz",
  method: "get",
  path: "/readyz",
  tags: ["operations"],
  summary: "The database answers and the listener is connected (never rate-limited)",
  responses: {
    200: json(Readiness, "Ready to serve."),
    503: json(Readiness, "Not ready: the database does not answer or the listener is down."),
  },
});

export function healthRoutes(sql: Sql, listener: ListenerStatus, schemaWarnings: readonly string[] = []) {
  return new OpenAPIHono<AppEnv>()
    .openapi(healthz, (c) => c.json({ status: "ok" as const }, 200))
    .openapi(readyz, async (c) => {
      const database = await databaseAnswers(sql);
      const listening = listener.connected();
      const body = {
        status: database && listening ? ("ready" as const) : ("not ready" as const),
        database,
        listener: listening,
        ...(schemaWarnings.length > 0 ? { schema: [...schemaWarnings] } : {}),
      };
      return c.json(body, database && listening ? 200 : 503);
    });
}
