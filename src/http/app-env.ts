// The Hono environment of this app: Bun bindings plus what middleware leaves for handlers.
import type { Profile } from "../domain/profile.ts";
import type { BunBindings } from "../lib/bun.ts";

/**
 * Read these with c.get(name), never c.var.name: Hono's `var` getter copies every variable into a
 * new object on each access (a few per request, measurable on the read path).
 */
export type AppEnv = {
  Bindings: BunBindings;
  Variables: {
    /** The authenticated fmsg address, spelled as in the token's `sub`. */
    identity: string;
    requestId: string;
    /** The message shape this request is answered in (the Fmsg-Profile header, else the host's default). */
    profile: Profile;
    clientIp: string;
    /** Set when the request became a WebSocket: Bun answered 101 itself (a Response cannot say 101). */
    switchedProtocols: boolean;
  };
};
