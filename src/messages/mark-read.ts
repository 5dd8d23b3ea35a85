// Marking a message read (docs/API.md §10.2): the recipient's own time_read, set once.
import { beginKnown } from "../db/outcome.ts";
import { lockReaderState, stampRead } from "../db/read-state.ts";
import { forbidden } from "../domain/errors.ts";
import { messageNotFound } from "./access.ts";
import type { MessageDeps } from "./context.ts";

export const ONLY_RECIPIENTS = "only recipients of a sent message may mark it read";

/** The time the identity first marked message `id` read; a repeat returns that time and writes nothing. */
export async function markRead(deps: Pick<MessageDeps, "sql" | "wake">, identity: string, id: number): Promise<number> {
  const { time, first } = await beginKnown(deps.sql, async (tx) => {
    const state = await lockReaderState(tx, id, identity);
    if (!state) throw messageNotFound();
    // A draft exists only for its owner, and an owner who is not a recipient has nothing to read.
    if (state.time_sent === null || !(state.is_to || state.is_add_to)) throw forbidden(ONLY_RECIPIENTS);
    return { time: await stampRead(tx, id, identity, state.time_read), first: state.time_read === null };
  });
  // The sender's event feed has a "read" event now (a trigger wrote it); only the first mark makes one.
  if (first) await deps.wake({ kind: "read", msgId: id, addresses: [] });
  return time;
}
