// What the message use cases need from the outside world, passed in (tests give real ones).
import type { Sql } from "../db/pool.ts";
import type { IdentityService } from "../identity/identity-service.ts";

export type MessageDeps = {
  sql: Sql;
  dataDir: string;
  /** FMSG_DOMAIN: this host's own domain, or null. */
  domain: string | null;
  identity: IdentityService;
  maxDataBytes: number;
  maxAttachBytes: number;
  maxMsgBytes: number;
  /**
   * Called after a commit that made messages visible to these addresses. With PostgreSQL the
   * LISTEN connection hears the triggers anyway; the embedded database has no cross-connection
   * NOTIFY, so there this feeds the waiters directly. Null when the listener covers it.
   */
  announce: ((addresses: string[]) => void) | null;
  log: (line: Record<string, unknown>) => void;
};
