// Local delivery: recipients on FMSG_DOMAIN are resolved by the API, since fmsgd skips them.
import { pendingLocalRecipients, recordLocalOutcome, type PendingLocal } from "../db/local-delivery.ts";
import type { Wake } from "../db/open-database.ts";
import type { IdentityAnswer, IdentityService } from "../identity/identity-service.ts";
import type { Sql } from "../db/pool.ts";

/** fmsg per-recipient response codes for the answers of the identity service. */
const OUTCOME: Record<Exclude<IdentityAnswer, "unavailable">, { code: number; delivered: boolean }> = {
  accepting: { code: 200, delivered: true },
  unknown: { code: 100, delivered: false },
  not_accepting: { code: 102, delivered: false },
};

export type LocalDeliveryDeps = {
  sql: Sql;
  domain: string | null;
  identity: IdentityService;
  log: (line: Record<string, unknown>) => void;
  /** Tells the sender's WebSockets of each delivery (the embedded database's stand-in for the delivered trigger's NOTIFY). */
  wake?: Wake;
};

/** Look-ups in flight at once: a send to many local recipients must not take one timeout each. */
const CONCURRENCY = 8;

async function resolveRows(deps: LocalDeliveryDeps, rows: PendingLocal[]): Promise<number> {
  let resolved = 0;
  let next = 0;
  let serviceDown = false;
  const worker = async () => {
    while (!serviceDown && next < rows.length) {
      const row = rows[next++]!;
      const answer = await deps.identity.lookup(row.addr);
      if (answer === "unavailable") {
        serviceDown = true; // the rest stay pending too: the periodic retry asks again
        return;
      }
      const outcome = OUTCOME[answer];
      const sender = await recordLocalOutcome(deps.sql, row, outcome.code, outcome.delivered);
      if (sender !== null) await deps.wake?.({ kind: "delivered", msgId: row.msg_id, addresses: [sender] });
      resolved++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, rows.length) }, worker));
  return resolved;
}

/** Resolves one message's local recipients. Never throws: the send itself already succeeded. */
export async function resolveLocalRecipients(deps: LocalDeliveryDeps, msgId: number): Promise<void> {
  if (deps.domain === null) return;
  try {
    await resolveRows(deps, await pendingLocalRecipients(deps.sql, deps.domain, msgId));
  } catch (err) {
    deps.log({ level: "error", msg: "local delivery failed", id: msgId, error: String(err) });
  }
}

/** Retries every pending local recipient (those the identity service could not answer for). */
export async function retryLocalDeliveries(deps: LocalDeliveryDeps): Promise<number> {
  if (deps.domain === null) return 0;
  try {
    return await resolveRows(deps, await pendingLocalRecipients(deps.sql, deps.domain, null));
  } catch (err) {
    deps.log({ level: "error", msg: "local delivery retry failed", error: String(err) });
    return 0;
  }
}
