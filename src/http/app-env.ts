// The Hono environment of this app: Bun bindings plus what middleware leaves for handlers.
import type { Profile } from "../domain/profile.ts";
import type { BunBindings } from "../lib/bun.ts";

export type AppEnv = {
  Bindings: BunBindings;
  Variables: {
    /** The authenticated fmsg address, spelled as in the token's `sub`. */
    identity: string;
    requestId: string;
    /** The message shape this request is answered in (the Fmsg-Profile header, else the host's default). */
    profile: Profile;
    clientIp: string;
  };
};
