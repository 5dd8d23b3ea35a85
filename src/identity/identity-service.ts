// What the API needs from an identity service (fmsgid or the built-in one), and the answers it gives.

/** The four outcomes of asking whether an address may use this host. */
export type IdentityAnswer = "accepting" | "not_accepting" | "unknown" | "unavailable";

export interface IdentityService {
  lookup(address: string): Promise<IdentityAnswer>;
}

/** Accepts every (already validated) address: FMSG_ID_URL=builtin and the embedded default. */
export const builtinIdentityService: IdentityService = {
  lookup: async () => "accepting",
};
