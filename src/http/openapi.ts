// How routes describe their answers in the OpenAPI document, and the document itself (served at /openapi.json).
import type { OpenAPIHono, RouteConfig } from "@hono/zod-openapi";
import type { ZodType } from "zod";
import { ErrorBody, Message003 } from "../contract/responses.ts";
import type { Profile } from "../domain/profile.ts";
import { VERSION } from "../version.ts";
import type { AppEnv } from "./app-env.ts";

type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 410 | 413 | 415 | 416 | 422 | 426 | 429 | 503 | 507;
type Responses = RouteConfig["responses"];

export const BEARER = "bearer";

export const json = <T extends ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});

const integer = (description: string) => ({ description, schema: { type: "integer" as const, minimum: 0 } });
const retryAfter = { "Retry-After": integer("Seconds to wait before trying again.") };
/** On every answer of a rate-limited route (IETF RateLimit header fields, draft 6). */
const rateLimitHeaders = {
  "RateLimit-Limit": integer("Requests allowed in a burst."),
  "RateLimit-Remaining": integer("Requests left before answers become 429."),
  "RateLimit-Reset": integer("Seconds until the allowance is whole again."),
};

/** Answers every rate-limited route can give whatever it does. */
const LIMITED: Partial<Record<ErrorStatus, string>> = {
  429: "Rate limit exceeded (`rate limit exceeded`); see Retry-After and the RateLimit-* headers.",
};

/** Answers of the token and identity check in front of every /fmsg route. */
const AUTHENTICATED: Partial<Record<ErrorStatus, string>> = {
  400: "The token's identity is unknown to the identity service (`User <addr> not found`).",
  401: "Missing, malformed, expired or wrongly signed token, or one minted from an API key since rotated or revoked (`api key revoked`); carries `WWW-Authenticate: Bearer`.",
  403: "The identity is not accepting new messages (`User <addr> not authorised to send new messages`).",
  503: "The database or the identity service is unavailable; nothing was done. Retry after Retry-After.",
};

/**
 * A route's `responses` (all rate-limited): its successes as given, and each error status with the
 * one error schema.
 * Where the route and the authentication check share a status, the descriptions are joined.
 */
export function answers(
  ok: Responses,
  errors: Partial<Record<ErrorStatus, string>>,
  opts: { authenticated: boolean } = { authenticated: true },
): Responses {
  const all: Partial<Record<ErrorStatus, string>> = { ...LIMITED };
  for (const extra of opts.authenticated ? [AUTHENTICATED, errors] : [errors]) {
    for (const [status, text] of Object.entries(extra) as [string, string][]) {
      const key = Number(status) as ErrorStatus;
      all[key] = all[key] ? `${all[key]} Or: ${text}` : text;
    }
  }
  const out: Responses = {};
  for (const [status, answer] of Object.entries(ok)) {
    out[status] = { ...answer, headers: { ...rateLimitHeaders, ...(answer as { headers?: object }).headers } };
  }
  for (const [status, description] of Object.entries(all) as [string, string][]) {
    const withRetry = status === "429" || status === "503";
    out[status] = { ...json(ErrorBody, description), headers: { ...rateLimitHeaders, ...(withRetry ? retryAfter : {}) } };
  }
  return out;
}

/** Answers of a write that takes an Idempotency-Key (docs/API.md "Idempotent writes"). */
export const IDEMPOTENT_ERRORS: Partial<Record<ErrorStatus, string>> = {
  400: "A malformed Idempotency-Key (`invalid Idempotency-Key: 1 to 255 visible ASCII characters`).",
  422: "The Idempotency-Key was used by this identity within 24 h for a different request (`Idempotency-Key already used for a different request`).",
};

/** A keyed write's own error answers joined with those of its Idempotency-Key. */
export function withKeyErrors(errors: Partial<Record<ErrorStatus, string>>): Partial<Record<ErrorStatus, string>> {
  const all = { ...errors };
  for (const [status, text] of Object.entries(IDEMPOTENT_ERRORS) as [string, string][]) {
    const key = Number(status) as ErrorStatus;
    all[key] = all[key] ? `${all[key]} Or: ${text}` : text;
  }
  return all;
}

/** On the success of a write that takes an Idempotency-Key: present when the answer is a replay. */
export const REPLAY_HEADERS = {
  "Idempotent-Replayed": {
    description: "`true` when this is the stored answer of an earlier request with the same Idempotency-Key (nothing was changed).",
    schema: { type: "string" as const, enum: ["true"] },
  },
};

/** Written by a write that touches files: the data directory may be full or failing. */
export const STORAGE_ERRORS: Partial<Record<ErrorStatus, string>> = {
  503: "The data directory failed (`storage unavailable`); nothing was committed.",
  507: "The data directory is full (`insufficient storage`); nothing was committed.",
};

type Document = ReturnType<OpenAPIHono<AppEnv>["getOpenAPI31Document"]>;
const documents = new WeakMap<OpenAPIHono<AppEnv>, Record<Profile, Document>>();

/**
 * The OpenAPI 3.1 document of every route registered on `app`, as answered in `profile`: built
 * once, when all routes are in place. Routes are declared with the seed message object; under
 * fmsg-003 every reference to it names the fmsg-003 object instead (nothing else differs).
 */
export function openApiDocument(app: OpenAPIHono<AppEnv>, profile: Profile): Document {
  let built = documents.get(app);
  if (!built) {
    app.openAPIRegistry.register("Message003", Message003);
    const seed = buildDocument(app);
    const fmsg003 = JSON.parse(JSON.stringify(seed).replaceAll('"#/components/schemas/Message"', '"#/components/schemas/Message003"')) as Document;
    built = { seed, "fmsg-003": fmsg003 };
    documents.set(app, built);
  }
  return built[profile];
}

function buildDocument(app: OpenAPIHono<AppEnv>): Document {
  app.openAPIRegistry.registerComponent("securitySchemes", BEARER, {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "An HS256 JWT whose `sub` is the user's fmsg address; `exp` is required.",
  });
  return app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "fmsg web API",
      version: VERSION,
      description:
        "The HTTP API of an fmsg host: one identity (an address like `@alice@example.com`) writes drafts, attaches files, sends, reads its inbox and waits for new mail. Every error is `{\"error\": \"...\"}`; clients decide by status.",
      license: { name: "MIT", url: "https://opensource.org/license/mit" },
    },
  });
}
