// Creating and replacing drafts: body file staged beside its place, rows and rename in one transaction.
import { domainOf, parseAddress } from "../domain/address.ts";
import { bodyExtension } from "../domain/media-type.ts";
import { findMessage, findMessageHead, lockMessage } from "../db/messages.ts";
import { attachmentTotals } from "../db/attachments.ts";
import {
  compareAddresses,
  compareAddressesForNewMessage,
  deleteBatches,
  deleteRecipients,
  insertBatch,
  insertBatchRecipients,
  insertDraft,
  insertRecipients,
  pendingAddresses,
  updateDraft,
  type DraftFields,
} from "../db/drafts.ts";
import { mayHaveCommitted } from "../db/errors.ts";
import { beginKnown, messageRowExists } from "../db/outcome.ts";
import type { Tx } from "../db/pool.ts";
import { forbidden, invalid, tooLarge } from "../domain/errors.ts";
import type { MessageInput } from "../contract/requests.ts";
import { removeTree, stageFile, writeWithRow } from "../storage/atomic-file.ts";
import { releaseFile, stageForDraft } from "./files.ts";
import { bodyName, folderOfDraft, messageDir } from "../storage/data-dir.ts";
import { requireOwnedDraft } from "./access.ts";
import type { Once } from "./idempotency.ts";
import { isParticipant } from "./read-messages.ts";
import type { MessageDeps } from "./context.ts";

const DATA_TOO_LARGE = "message data exceeds maximum size";
const TOTAL_TOO_LARGE = "total message size exceeds limit";

/** Every address of a new message's lists, `to` first, in order (duplicates are found across both). */
const listsOf = (input: MessageInput) => [...input.to, ...(input.add_to ?? [])];

type Compared = { fromIsIdentity: boolean; duplicate: string | null };

/**
 * Rules both create and update apply before touching any file; `names` is what compareAddresses
 * (or, for a new message, compareAddressesForNewMessage) found for the message's lists.
 */
async function checkInput(deps: MessageDeps, identity: string, input: MessageInput, names: Compared): Promise<Uint8Array> {
  if (names.duplicate !== null) throw invalid(`duplicate recipient: ${names.duplicate}`);
  if (!names.fromIsIdentity) throw forbidden("from address must match authenticated user");
  if (deps.domain !== null && domainOf(input.from) !== deps.domain.toLowerCase()) {
    throw forbidden(`from address must be on ${deps.domain}`);
  }
  const body = Buffer.from(input.data, "utf8");
  if (body.byteLength > deps.maxDataBytes) throw tooLarge(DATA_TOO_LARGE);
  if (input.pid !== null) await checkParent(deps, identity, input.pid);
  return body;
}

/** A reply's parent must be a sent message the author takes part in; anything else is "not found". */
async function checkParent(deps: MessageDeps, identity: string, pid: number): Promise<void> {
  const parent = await findMessage(deps.sql, pid, identity);
  const visible = parent !== null && parent.time_sent !== null && isParticipant(parent);
  if (!visible) throw invalid(`PID ${pid} not found`);
}

function draftFields(input: MessageInput, body: { size: number; filepath: string }): DraftFields {
  return {
    version: input.version,
    pid: input.pid,
    noReply: input.no_reply,
    important: input.important,
    from: input.from,
    topic: input.topic,
    type: input.type,
    size: body.size,
    filepath: body.filepath,
  };
}

/** Under the row lock: the new `to` list and the kept pending add-to list share no address. */
async function requireDistinct(tx: Tx, input: MessageInput, identity: string, kept: string[]): Promise<void> {
  if (kept.length === 0) return;
  const names = await compareAddresses(tx, input.from, identity, [...input.to, ...kept]);
  if (names.duplicate !== null) throw invalid(`duplicate recipient: ${names.duplicate}`);
}

async function writeRecipients(tx: Tx, id: number, input: MessageInput): Promise<void> {
  await insertRecipients(tx, id, input.to);
  await writePendingBatch(tx, id, input);
}

async function writePendingBatch(tx: Tx, id: number, input: MessageInput): Promise<void> {
  if (input.add_to && input.add_to.length > 0) {
    // The pending batch of a draft: stamped with the send time when the draft is sent.
    const batch = await insertBatch(tx, id, input.from, null);
    await insertBatchRecipients(tx, id, batch, input.add_to);
  }
}

/** `once` (an Idempotency-Key): claimed before the row is written, the id recorded in the same transaction. */
export async function createDraft(deps: MessageDeps, identity: string, input: MessageInput, once?: Once<number>): Promise<number> {
  const compared = await compareAddressesForNewMessage(deps.sql, input.from, identity, listsOf(input));
  const bytes = await checkInput(deps, identity, input, compared);
  const { id } = compared;
  const dir = messageDir(deps.dataDir, parseAddress(input.from)!, id);
  try {
    const body = await stageFile(dir, bodyName(bodyExtension(input.type)), bytes);
    const fields = (filepath: string) => draftFields(input, { size: body.size, filepath });
    await writeWithRow(
      "create",
      body,
      (path) => releaseFile(deps, id, path),
      once === undefined && !input.add_to?.length
        ? // The row and its `to` rows are one statement, atomic by itself: no transaction around it.
          // Its answer lost with the connection, the row under the id chosen beforehand tells.
          async (place) => {
            try {
              await insertDraft(deps.sql, id, fields(await place(null)), input.to);
            } catch (err) {
              if (!mayHaveCommitted(err) || !(await messageRowExists(deps.sql, id))) throw err;
            }
          }
        : (place) =>
            beginKnown(deps.sql, async (tx) => {
              // Before place(): a replayed request leaves only its temp file, which writeWithRow removes.
              await once?.claim(tx);
              await insertDraft(tx, id, fields(await place(null)), input.to);
              await writePendingBatch(tx, id, input);
              await once?.record(tx, id);
            }),
      mayHaveCommitted,
    );
  } catch (err) {
    // The id is fresh, so the folder holds nothing but this attempt — unless the COMMIT may have
    // happened with the connection lost; then the start-up sweep decides (as after a crash).
    if (!mayHaveCommitted(err)) await removeTree(dir).catch(() => {});
    throw err;
  }
  return id;
}

const UPDATE_TEXTS = { notOwner: "only the owner may update a message", sent: "sent messages are immutable" };

export async function replaceDraft(deps: MessageDeps, identity: string, id: number, input: MessageInput): Promise<void> {
  const before = requireOwnedDraft(await findMessageHead(deps.sql, id, identity), UPDATE_TEXTS);
  const bytes = await checkInput(deps, identity, input, await compareAddresses(deps.sql, input.from, identity, listsOf(input)));
  // The new body goes into the draft's existing folder, whatever spelling of `from` this PUT uses.
  const body = await stageForDraft(deps, identity, id, UPDATE_TEXTS, () =>
    stageFile(folderOfDraft(deps.dataDir, id, before)!, bodyName(bodyExtension(input.type)), bytes),
  );
  await writeWithRow("update", body, (path) => releaseFile(deps, id, path), (place) =>
    beginKnown(deps.sql, async (tx) => {
      // Decided again under the row lock: a concurrent send or delete wins cleanly.
      const head = requireOwnedDraft(await lockMessage(tx, id, identity), UPDATE_TEXTS);
      const totals = await attachmentTotals(tx, id);
      if (body.size + totals.bytes > deps.maxMsgBytes) throw tooLarge(TOTAL_TOO_LARGE);
      const filepath = await place(head.filepath);
      await updateDraft(tx, id, draftFields(input, { size: body.size, filepath }));
      await deleteRecipients(tx, id);
      if (input.add_to === undefined) {
        // GET-merge-PUT clients leave add_to out: the pending batch stays, and must not repeat a new `to`.
        await requireDistinct(tx, input, identity, await pendingAddresses(tx, id));
      } else {
        await deleteBatches(tx, id);
      }
      await writeRecipients(tx, id, input);
    }),
    mayHaveCommitted,
  );
}
