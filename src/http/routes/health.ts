// GET /healthz (the process serves) and GET /readyz (database answers, listener connected, data directory
// writable; schema as migrate left it).
import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { Health, Readiness } from "../../contract/responses.ts";
import { ping, type Sql } from "../../db/pool.ts";
import type { ListenerStatus } from "../../realtime/inbox-listener.ts";
import type { AppEnv } from "../app-env.ts";
import { json } from "../openapi.ts";

const READY_CHECK_TIMEOUT_MS = 2000;

/** Whether `check` resolves true within READY_CHECK_TIMEOUT_MS (a hung database or file system is false). */
async function within(check: Promise<boolean>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), READY_CHECK_TIMEOUT_MS)));
  try {
    return await Promise.race([check.catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The data directory is a folder this process may create files in: not gone (an unmounted volume's
 * folder removed, `rm -rf`), not remounted read-only after file-system errors (EROFS), not made
 * unwritable. A full disk still passes: reads go on working, and writes answer 507 themselves.
 */
async function storageWritable(dataDir: string): Promise<boolean> {
  if (!(await stat(dataDir)).isDirectory()) return false;
  await access(dataDir, constants.W_OK | constants.X_OK);
  return true;
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
  summary: "The database answers, the listener is connected and the data directory is writable (never rate-limited)",
  responses: {
    200: json(Readiness, "Ready to serve."),
    503: json(Readiness, "Not ready: the database does not answer, the listener is down or the data directory is not writable."),
  },
});

export function healthRoutes(sql: Sql, listener: ListenerStatus, dataDir: string, schemaWarnings: readonly string[] = []) {
  return new OpenAPIHono<AppEnv>()
    .openapi(healthz, (c) => c.json({ status: "ok" as const }, 200))
    .openapi(readyz, async (c) => {
      const [database, storage] = await Promise.all([within(ping(sql).then(() => true)), within(storageWritable(dataDir))]);
      const listening = listener.connected();
      const ready = database && listening && storage;
      const body = {
        status: ready ? ("ready" as const) : ("not ready" as const),
        database,
        listener: listening,
        // Named only when it fails: the ready body stays what clients of the original contract compare.
        ...(storage ? {} : { storage: false as const }),
        ...(schemaWarnings.length > 0 ? { schema: [...schemaWarnings] } : {}),
      };
      return c.json(body, ready ? 200 : 503);
    });
}
