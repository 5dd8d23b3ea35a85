// The authorisation rules of API.md §6 as checks that throw the route's error.
import { ApiError } from "../http/errors.ts";
import type { MessageHead } from "../db/messages.ts";

export const notFound = () => new ApiError(404, "message not found");

/**
 * An owner-only write on a draft: 404, the route's owner text, then its sent-message text. Ownership
 * comes from the head's query (lower() in SQL), never from comparing addresses here.
 */
export function requireOwnedDraft(
  head: MessageHead | null,
  texts: { notOwner: string; sent: string; sentStatus?: 403 | 409 },
): MessageHead {
  if (!head) throw notFound();
  if (!head.is_owner) throw new ApiError(403, texts.notOwner);
  if (head.time_sent !== null) throw new ApiError(texts.sentStatus ?? 403, texts.sent);
  return head;
}
