// A message's thread (docs/API.md §10.3): its ancestors by pid, root first, then itself — as text or as message objects.
import type { FileHandle } from "node:fs/promises";
import type { MessageJson } from "../contract/responses.ts";
import { currentBody } from "../db/messages.ts";
import { threadChain, type ThreadEntry } from "../db/threads.ts";
import { forbidden } from "../domain/errors.ts";
import {
  bodyTextPieces,
  DATA_MISSING_NOTE,
  entryHeader,
  isThreadText,
  nonTextNote,
  NOT_VISIBLE_NOTE,
  truncatedNote,
} from "../domain/thread-text.ts";
import { fileSize, openStored, piecesOf } from "../storage/file-info.ts";
import { messageNotFound } from "./access.ts";
import type { MessageDeps } from "./context.ts";
import { readDraftsAgain, shapeMessage } from "./read-messages.ts";

type ThreadDeps = Pick<MessageDeps, "sql" | "dataDir" | "shortTextSize" | "shortTexts" | "maxDataBytes">;

/** The chain, once the message itself is known to be visible to the identity (else 404 / 403 as for GET). */
async function chainOf(deps: ThreadDeps, identity: string, id: number): Promise<ThreadEntry[]> {
  const chain = await threadChain(deps.sql, id, identity);
  const self = chain.at(-1);
  if (!self) throw messageNotFound();
  if (!self.visible) throw forbidden("access denied");
  return chain;
}

/** The chain's messages the identity may see, root first, as message objects (seed shape). */
export async function threadMessages(deps: ThreadDeps, identity: string, id: number): Promise<MessageJson[]> {
  return readDraftsAgain(deps, async () => {
    const visible = (await chainOf(deps, identity, id)).filter((e) => e.visible);
    return { value: await Promise.all(visible.map((e) => shapeMessage(deps, e))), drafts: visible.filter((e) => e.time_sent === null) };
  });
}

/**
 * The thread as text, one piece per entry, for streaming: access is decided before this returns,
 * and bodies are then read one at a time, so a long thread of large bodies never sits in memory whole.
 */
export async function threadText(deps: ThreadDeps, identity: string, id: number): Promise<AsyncGenerator<string>> {
  return entries(deps, await chainOf(deps, identity, id));
}

async function* entries(deps: ThreadDeps, chain: ThreadEntry[]): AsyncGenerator<string> {
  for (const [i, e] of chain.entries()) {
    // Entries are separated by one blank line; the text ends with a line break. The header, then
    // the body or note (after a line break) unless there is nothing to show.
    yield `${i === 0 ? "" : "\n"}${entryHeader(e.from_addr, e.time_sent)}`;
    let first = true;
    for await (const piece of contentOf(deps, e)) {
      yield first ? `\n${piece}` : piece;
      first = false;
    }
    yield "\n";
  }
}

/** Bytes read at a time from a body: what a slow reader holds per connection, not the whole body. */
const CHUNK = 64 * 1024;

/** An entry's body as text pieces, or the note that stands for it; nothing for an empty body. */
async function* contentOf(deps: ThreadDeps, e: ThreadEntry): AsyncGenerator<string> {
  if (!e.visible) return yield NOT_VISIBLE_NOTE;
  if (!isThreadText(e.type)) {
    // As in the message object: a body fmsgd stored decompressed is as long as its file.
    const size = e.is_deflate ? ((await fileSize(deps.dataDir, e.filepath)) ?? e.size) : e.size;
    return yield nonTextNote(e.type, size);
  }
  // The answer is already on its way (200): a body that cannot be read now (out of file
  // descriptors, a failing disk) is shown as not available rather than cutting the text short.
  let fh: FileHandle | null;
  try {
    // A draft's file may have been replaced (and the old one removed) since the chain was read.
    fh =
      (await openStored(deps.dataDir, e.filepath)) ??
      (e.time_sent === null ? await openStored(deps.dataDir, (await currentBody(deps.sql, e.id))?.filepath ?? e.filepath) : null);
  } catch {
    fh = null;
  }
  if (!fh) return yield DATA_MISSING_NOTE;
  let shown = false;
  try {
    // Bodies this API stores are at most FMSG_API_MAX_DATA_SIZE; one received (and decompressed)
    // may be longer, and is cut there. The open file does not change: its size holds.
    const size = Number((await fh.stat()).size);
    const truncated = size > deps.maxDataBytes;
    for await (const piece of bodyTextPieces(e.type, piecesOf(fh, 0, Math.min(size, deps.maxDataBytes), CHUNK), truncated)) {
      shown = true;
      yield piece;
    }
    if (truncated) yield `\n${truncatedNote(deps.maxDataBytes)}`;
  } catch {
    yield shown ? `\n${DATA_MISSING_NOTE}` : DATA_MISSING_NOTE;
  } finally {
    await fh.close().catch(() => {});
  }
}
