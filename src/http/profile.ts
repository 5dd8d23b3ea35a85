// The Fmsg-Profile header: which message shape a request under /fmsg is answered in.
import type { Context, MiddlewareHandler } from "hono";
import type { MessageJson } from "../contract/responses.ts";
import { inProfile, parseProfile, type Profile } from "../domain/profile.ts";
import type { AppEnv } from "./app-env.ts";
import { ApiError } from "./errors.ts";

export const PROFILE_HEADER = "Fmsg-Profile";

/**
 * Runs before authentication: every answer under /fmsg — 401s, validation errors and downloads
 * included — names the profile it was given in (the host's default until the request's own
 * header has been read and accepted).
 */
export function announceProfile(hostDefault: Profile): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    c.set("profile", hostDefault);
    // Set before the handler runs, so it goes into the answer as it is built (set afterwards,
    // Hono would wrap the whole response once more).
    c.header(PROFILE_HEADER, hostDefault);
    await next();
    // An answer built without c.header()'s headers (the WebSocket's). Set on the answer itself:
    // c.header() now would make Hono wrap the whole response again.
    if (c.res.headers.get(PROFILE_HEADER) !== c.get("profile")) c.res.headers.set(PROFILE_HEADER, c.get("profile"));
  };
}

/** Runs after authentication, with the other request validation: the request's own choice. */
export const chooseProfile: MiddlewareHandler<AppEnv> = (c, next) => {
  const asked = c.req.header(PROFILE_HEADER);
  if (asked !== undefined) {
    const profile = parseProfile(asked);
    if (!profile) throw new ApiError(400, "invalid profile");
    c.set("profile", profile);
    c.header(PROFILE_HEADER, profile);
  }
  // Nothing to do afterwards: handing on the promise spares an async frame per request.
  return next();
};

/**
 * A message object in the request's profile. Routes declare the seed object; the document served
 * for fmsg-003 names that profile's object in its place (openapi.ts), which is what this returns.
 */
export function inRequestProfile(c: Context<AppEnv>, m: MessageJson): MessageJson {
  return inProfile(m, c.get("profile")) as MessageJson;
}
