// The Hono environment of this app: Bun bindings plus what middleware leaves for handlers.
import type { BunBindings } from "../lib/bun.ts";

export type AppEnv = {
  Bindings: BunBindings;
  Variables: {
    /** The authenticated fmsg address, spelled as in the token's `sub`. */
    identity: string;
    requestId: string;
    clientIp: string;
  };
};
