// IP address parsing, normalisation and CIDR matching for rate-limit keys and trusted proxies.
import { isIPv4, isIPv6 } from "node:net";

export type ParsedIp = { kind: 4 | 6; bits: bigint };
export type CidrRange = ParsedIp & { prefix: number };

function v4Bits(ip: string): bigint {
  return ip.split(".").reduce((acc, p) => (acc << 8n) | BigInt(Number(p)), 0n);
}

/** Parses an IPv4 or IPv6 address (IPv4-mapped IPv6 becomes IPv4), or null. */
export function parseIp(raw: string): ParsedIp | null {
  const ip = raw.trim().replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (isIPv4(ip)) return { kind: 4, bits: v4Bits(ip) };
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
  if (bits >> 32n === 0xffffn) return { kind: 4, bits: bits & 0xffffffffn };
  return { kind: 6, bits };
}

/** Parses `addr` or `addr/prefix`, or null. */
export function parseCidr(raw: string): CidrRange | null {
  const [addr = "", prefixText, extra] = raw.trim().split("/");
  if (extra !== undefined) return null;
  const ip = parseIp(addr);
  if (!ip) return null;
  const max = ip.kind === 4 ? 32 : 128;
  if (prefixText === undefined) return { ...ip, prefix: max };
  if (!/^\d{1,3}$/.test(prefixText)) return null;
  let prefix = Number(prefixText);
  // An IPv4-mapped range written in IPv6 form (::ffff:10.0.0.0/104) becomes its IPv4 range.
  if (ip.kind === 4 && addr.includes(":")) prefix -= 96;
  if (prefix < 0 || prefix > max) return null;
  return { ...ip, prefix };
}

export function inRange(ip: ParsedIp, range: CidrRange): boolean {
  if (ip.kind !== range.kind) return false;
  const width = ip.kind === 4 ? 32n : 128n;
  const shift = width - BigInt(range.prefix);
  return ip.bits >> shift === range.bits >> shift;
}

/** Canonical text of an address; IPv6 is keyed by its /64 so one host cannot rotate through keys. */
export function rateLimitKey(ip: ParsedIp): string {
  if (ip.kind === 4) {
    const b = ip.bits;
    return [24n, 16n, 8n, 0n].map((s) => ((b >> s) & 0xffn).toString()).join(".");
  }
  return `${(ip.bits >> 64n).toString(16)}::/64`;
}
