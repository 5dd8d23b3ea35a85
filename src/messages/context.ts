// What the message use cases need from the outside world, passed in (tests give real ones).
import type { Wake } from "../db/open-database.ts";
import type { Sql } from "../db/pool.ts";
import type { IdentityService } from "../identity/identity-service.ts";
import type { ShortTexts } from "./read-messages.ts";

export type MessageDeps = {
  sql: Sql;
  dataDir: string;
  /** FMSG_DOMAIN: this host's own domain, or null. */
  domain: string | null;
  identity: IdentityService;
  maxDataBytes: number;
  maxAttachBytes: number;
  maxMsgBytes: number;
  /** Bytes of a text body shown as short_text (0: none). */
  shortTextSize: number;
  /** Short texts of sent messages already read (absent: every read opens the body file). */
  shortTexts?: ShortTexts;
  /** Called after a commit that made messages visible to these addresses (see Wake). */
  wake: Wake;
  log: (line: Record<string, unknown>) => void;
};
