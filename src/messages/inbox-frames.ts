// WebSocket frames: a notice's message shaped as a list item (once per reading state and profile) for exactly those who may see it.
import { messageAudience, sentMessage, type AudienceMember } from "../db/audience.ts";
import { inProfile, type Profile } from "../domain/profile.ts";
import type { FrameKind, FrameSource } from "../realtime/inbox-sockets.ts";
import type { MessageDeps } from "./context.ts";
import { shapeMessage } from "./read-messages.ts";

/**
 * Who gets which frame (docs/API.md "WebSocket"): news of a message that became visible goes to its
 * recipients, of an add-to batch to every participant, of a delivery to the sender alone. A draft
 * has no audience at all (the SQL sees to that).
 */
const MAY_HEAR: Record<FrameKind, (m: AudienceMember) => boolean> = {
  new_msg: (m) => m.is_recipient,
  recipients_added: (m) => m.is_owner || m.is_recipient,
  delivered: (m) => m.is_owner,
};

/** Two queries per notice whatever the number of sockets; files are read once per distinct time_read. */
export function inboxFrames(deps: Pick<MessageDeps, "sql" | "dataDir" | "shortTextSize" | "shortTexts">): FrameSource {
  return async (notice, candidates) => {
    const out = new Map<string, (profile: Profile) => string>();
    const members = (await messageAudience(deps.sql, notice.msgId, candidates, notice.addresses)).filter(MAY_HEAR[notice.kind]);
    if (members.length === 0) return out;
    const row = await sentMessage(deps.sql, notice.msgId);
    if (!row) return out; // deleted or unsent between the two queries
    // One frame text per reading state and profile, shared by every socket that shows it.
    const byReadTime = new Map<number | null, (profile: Profile) => string>();
    for (const member of members) {
      let frame = byReadTime.get(member.time_read);
      if (!frame) {
        const shaped = await shapeMessage(deps, { ...row, time_read: member.time_read });
        const texts = new Map<Profile, string>();
        frame = (profile) => {
          let text = texts.get(profile);
          if (text === undefined) texts.set(profile, (text = JSON.stringify({ type: notice.kind, data: inProfile(shaped, profile) })));
          return text;
        };
        byReadTime.set(member.time_read, frame);
      }
      out.set(member.addr, frame);
    }
    return out;
  };
}
