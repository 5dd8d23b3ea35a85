// Marking a message read (docs/API.md §10.2): the recipient's own time_read, set once.
import { lockReaderState, stampRead } from "../db/read-state.ts";
import { forbidden } from "../domain/errors.ts";
import { messageNotFound } from "./access.ts";
import type { MessageDeps } from "./context.ts";

export const ONLY_RECIPIENTS = "only recipients of a sent message may mark it read";

/** The time the identity first marked message `id` read; a repeat returns that time and writes nothing. */
export async function markRead(deps: Pick<MessageDeps, "sql">, identity: string, id: number): Promise<number> {
  return deps.sql.begin(async (tx) => {
    const state = await lockReaderState(tx, id, identity);
    if (!state) throw messageNotFound();
    // A draft exists only for its owner, and an owner who is not a recipient has nothing to read.
    if (state.time_sent === null || !(state.is_to || state.is_add_to)) throw forbidden(ONLY_RECIPIENTS);
    return stampRead(tx, id, identity, state.time_read);
  });
}
