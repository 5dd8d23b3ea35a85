// The one error type of the API and the single place that turns any failure into {"error": …}.
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isDatabaseUnavailable } from "../db/errors.ts";
import { Refusal, type RefusalKind } from "../domain/errors.ts";
import { StorageFailedError, StorageFullError } from "../storage/errors.ts";

/** A client-visible failure: its message is the stable error text of docs/API.md "Errors". */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const WWW_AUTHENTICATE = 'Bearer realm="fmsg"';

export function unauthorized(reason: string): ApiError {
  return new ApiError(401, reason, { "WWW-Authenticate": WWW_AUTHENTICATE });
}

export function errorResponse(c: Context, err: ApiError): Response {
  for (const [k, v] of Object.entries(err.headers)) c.header(k, v);
  return c.json({ error: err.message }, err.status);
}

/** The status each kind of domain refusal is answered with. */
const REFUSAL_STATUS: Record<RefusalKind, ContentfulStatusCode> = {
  invalid: 400,
  forbidden: 403,
  "not-found": 404,
  conflict: 409,
  "too-large": 413,
};

type Logger = (line: Record<string, unknown>) => void;

/** Seconds a client should wait before retrying after a 503 (the database or disk may be back by then). */
export const RETRY_AFTER_SECONDS = "2";

/**
 * Faults of the database or the data directory as the API's answers (docs/API.md "Errors"): nothing was
 * committed in either case, so the client may retry. Null for anything else.
 */
export function faultError(err: unknown): ApiError | null {
  if (err instanceof StorageFullError) return new ApiError(507, "insufficient storage");
  const retry = { "Retry-After": RETRY_AFTER_SECONDS };
  if (err instanceof StorageFailedError) return new ApiError(503, "storage unavailable", retry);
  if (isDatabaseUnavailable(err)) return new ApiError(503, "database unavailable", retry);
  return null;
}

/** app.onError: ApiError and framework errors keep their status, refusals get theirs; faults are 503/507; anything else is a logged 500. */
export function makeErrorHandler(log: Logger) {
  return (err: Error, c: Context): Response => {
    if (err instanceof ApiError) return errorResponse(c, err);
    if (err instanceof Refusal) return errorResponse(c, new ApiError(REFUSAL_STATUS[err.kind], err.message));
    const fault = faultError(err);
    if (fault) {
      log({ level: "warn", msg: "request failed on a fault", status: fault.status, error: String(err?.message ?? err), path: c.req.path });
      return errorResponse(c, fault);
    }
    if (err instanceof HTTPException) {
      const status = err.status as ContentfulStatusCode;
      const headers: Record<string, string> = {};
      err.res?.headers.forEach((v, k) => {
        if (k.toLowerCase() !== "content-type" && k.toLowerCase() !== "content-length") headers[k] = v;
      });
      if (status === 401) headers["WWW-Authenticate"] = WWW_AUTHENTICATE;
      const text = status >= 500 ? "internal server error" : friendlyHttpMessage(status, err.message);
      return errorResponse(c, new ApiError(status, text, headers));
    }
    log({ level: "error", msg: "unhandled error", error: String(err?.stack ?? err), path: c.req.path });
    return c.json({ error: "internal server error" }, 500);
  };
}

function friendlyHttpMessage(status: number, message: string): string {
  if (status === 400 && /json/i.test(message)) return "malformed JSON in request body";
  if (status === 413) return "request body too large";
  return message && message.length < 200 ? message : "bad request";
}
