// IP address parsing and normalisation for rate-limit keys, and the trusted-proxy ranges as a BlockList.
import { BlockList, isIPv4, isIPv6 } from "node:net";

/** An address; IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is its IPv4 address. `text` is canonical. */
export type ParsedIp = { kind: 4 | 6; bits: bigint; text: string };
/** One FMSG_TRUSTED_PROXIES entry, checked at start-up, in the form BlockList.addSubnet takes. */
export type CidrRange = { family: "ipv4" | "ipv6"; address: string; prefix: number };

function v4Bits(ip: string): bigint {
  return ip.split(".").reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

const v4Text = (b: bigint) => [24n, 16n, 8n, 0n].map((s) => ((b >> s) & 0xffn).toString()).join(".");
const v6Text = (b: bigint) => Array.from({ length: 8 }, (_, i) => ((b >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(":");

/**
 * Parses an IPv4 or IPv6 address, or null. Written out by hand rather than left to node:net: the
 * rate-limit key needs the bits (one key per IPv6 /64), and a mapped IPv4 address must be the same
 * client as the plain one, whichever way a proxy spells it.
 */
export function parseIp(raw: string): ParsedIp | null {
  const ip = raw.trim().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (isIPv4(ip)) {
    const bits = v4Bits(ip);
    return { kind: 4, bits, text: v4Text(bits) };
  }
  if (!isIPv6(ip)) return null;
  let text = ip.toLowerCase();
  const lastColon = text.lastIndexOf(":");
  const tail = text.slice(lastColon + 1);
  if (tail.includes(".")) {
    const b = v4Bits(tail);
    text = `${text.slice(0, lastColon + 1)}${(b >> 16n).toString(16)}:${(b & 0xffffn).toString(16)}`;
  }
  const [head = "", rest] = text.split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const restGroups = rest === undefined || rest === "" ? [] : rest.split(":");
  const fill = rest === undefined ? 0 : 8 - headGroups.length - restGroups.length;
  const groups = [...headGroups, ...Array<string>(fill).fill("0"), ...restGroups];
  const bits = groups.reduce((acc, g) => (acc << 16n) | BigInt(`0x${g}`), 0n);
  if (bits >> 32n === 0xffffn) return { kind: 4, bits: bits & 0xffffffffn, text: v4Text(bits & 0xffffffffn) };
  return { kind: 6, bits, text: v6Text(bits) };
}

/** Parses `addr` or `addr/prefix`, or null. */
export function parseCidr(raw: string): CidrRange | null {
  const [addr = "", prefixText, extra] = raw.trim().split("/");
  if (extra !== undefined) return null;
  const ip = parseIp(addr);
  if (!ip) return null;
  const max = ip.kind === 4 ? 32 : 128;
  const family = ip.kind === 4 ? "ipv4" : "ipv6";
  if (prefixText === undefined) return { family, address: ip.text, prefix: max };
  if (!/^\d{1,3}$/.test(prefixText)) return null;
  let prefix = Number(prefixText);
  // An IPv4-mapped range written in IPv6 form (::ffff:10.0.0.0/104) becomes its IPv4 range.
  if (ip.kind === 4 && addr.includes(":")) prefix -= 96;
  if (prefix < 0 || prefix > max) return null;
  return { family, address: ip.text, prefix };
}

/** The ranges as a node:net BlockList (which does the matching), or null when there are none. */
export function trustedProxyList(ranges: readonly CidrRange[]): BlockList | null {
  if (ranges.length === 0) return null;
  const list = new BlockList();
  for (const r of ranges) list.addSubnet(r.address, r.prefix, r.family);
  return list;
}

export function isTrusted(ip: ParsedIp, proxies: BlockList): boolean {
  return proxies.check(ip.text, ip.kind === 4 ? "ipv4" : "ipv6");
}

/** Canonical text of an address; IPv6 is keyed by its /64 so one host cannot rotate through keys. */
export function rateLimitKey(ip: ParsedIp): string {
  if (ip.kind === 4) return ip.text;
  return `${(ip.bits >> 64n).toString(16)}::/64`;
}
