// HTTP client for fmsgid: GET {base}/fmsgid/{address}; every failure maps to "unavailable" (fail closed).
import { cappedText } from "../lib/capped-body.ts";
import type { IdentityAnswer, IdentityService } from "./identity-service.ts";

export const FMSGID_TIMEOUT_MS = 3000;
/** fmsgid answers a small JSON object; anything larger is not an answer (and must not fill memory). */
const MAX_ANSWER_BYTES = 64 * 1024;

export function fmsgidClient(baseUrl: string, timeoutMs = FMSGID_TIMEOUT_MS): IdentityService {
  return {
    async lookup(address: string): Promise<IdentityAnswer> {
      try {
        const res = await fetch(`${baseUrl}/fmsgid/${encodeURIComponent(address)}`, {
          signal: AbortSignal.timeout(timeoutMs),
          headers: { accept: "application/json" },
          redirect: "manual",
        });
        if (res.status === 404) {
          await res.body?.cancel();
          return "unknown";
        }
        if (res.status !== 200) {
          await res.body?.cancel();
          return "unavailable";
        }
        const body: unknown = JSON.parse(await cappedText(res, MAX_ANSWER_BYTES));
        if (body === null || typeof body !== "object") return "unavailable";
        const accepting = (body as Record<string, unknown>).acceptingNew;
        if (accepting === true) return "accepting";
        if (accepting === false) return "not_accepting";
        return "unavailable";
      } catch {
        return "unavailable";
      }
    },
  };
}
