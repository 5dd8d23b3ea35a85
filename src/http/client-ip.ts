// Works out the client IP: the TCP peer, or a forwarded address only when the peer is a trusted proxy.
import type { BlockList } from "node:net";
import type { Context } from "hono";
import { BoundedMap } from "../lib/bounded-map.ts";
import { isTrusted, parseIp, type ParsedIp } from "../lib/ip.ts";
import { peerAddress } from "../lib/bun.ts";
import type { AppEnv } from "./app-env.ts";

/**
 * Parsed peers by their text. Every request parses its TCP peer; a client keeps its address across
 * requests, so the parse (BigInt arithmetic, ~2 % of a compose request's CPU) is done once per peer.
 */
const peers = new BoundedMap<string, ParsedIp | null>(4096);

/**
 * The right-most X-Forwarded-For hop that is not itself a trusted proxy (hops left of it could be
 * forged by the client). X-Real-IP is used when there is no X-Forwarded-For. `proxies` is null when
 * FMSG_TRUSTED_PROXIES is empty.
 */
export function clientIp(c: Context<AppEnv>, proxies: BlockList | null): ParsedIp | null {
  const peerText = peerAddress(c);
  const peer = peerText ? peers.getOrCompute(peerText, parseIp) : null;
  if (!peer || !proxies || !isTrusted(peer, proxies)) return peer;
  const xff = c.req.header("x-forwarded-for");
  const hops = xff ? xff.split(",").map((h) => h.trim()).filter((h) => h !== "") : [];
  if (hops.length === 0) {
    const real = c.req.header("x-real-ip");
    return (real ? parseIp(real) : null) ?? peer;
  }
  let client = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = parseIp(hops[i]!);
    if (!hop) break; // garbage: trust nothing further left
    client = hop;
    if (!isTrusted(hop, proxies)) break;
  }
  return client;
}
