// Profiles: the original message shape (seed) and the FMSG-003 standard's, served side by side.
import type { MessageJson, MessageJson003 } from "../contract/responses.ts";

export const PROFILES = ["seed", "fmsg-003"] as const;
export type Profile = (typeof PROFILES)[number];

/** A profile name as a client or operator spells it (compared case-insensitively), or null. */
export function parseProfile(text: string): Profile | null {
  const lower = text.trim().toLowerCase();
  return (PROFILES as readonly string[]).includes(lower) ? (lower as Profile) : null;
}

/**
 * The message object as `profile` shows it. Under fmsg-003, add_to is the batch list and the
 * three seed-only keys (add_to_from, common_type, add_to_batches) are left out; nothing else differs.
 */
export function inProfile(m: MessageJson, profile: Profile): MessageJson | MessageJson003 {
  if (profile === "seed") return m;
  const { add_to_from: _from, common_type: _common, add_to_batches, add_to: _flat, ...rest } = m;
  return { ...rest, add_to: add_to_batches };
}
