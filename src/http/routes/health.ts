// GET /healthz (the process serves) and GET /readyz (database answers, listener connected).
import { Hono } from "hono";
import { ping, type Sql } from "../../db/pool.ts";
import type { ListenerStatus } from "../../realtime/inbox-listener.ts";
import type { AppEnv } from "../app-env.ts";

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

export function healthRoutes(sql: Sql, listener: ListenerStatus) {
  return new Hono<AppEnv>()
    .get("/healthz", (c) => c.json({ status: "ok" }))
    .get("/readyz", async (c) => {
      const database = await databaseAnswers(sql);
      const listening = listener.connected();
      const body = { status: database && listening ? "ready" : "not ready", database, listener: listening };
      return c.json(body, database && listening ? 200 : 503);
    });
}
