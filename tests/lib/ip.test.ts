// Trusted-proxy ranges: parsed at start-up, matched by node:net's BlockList on our normalised addresses.
import { describe, expect, test } from "bun:test";
import { isTrusted, parseCidr, parseIp, trustedProxyList } from "../../src/lib/ip.ts";

function list(...entries: string[]) {
  const ranges = entries.map((e) => {
    const r = parseCidr(e);
    if (!r) throw new Error(`not a range: ${e}`);
    return r;
  });
  const l = trustedProxyList(ranges);
  if (!l) throw new Error("empty list");
  return (address: string) => {
    const ip = parseIp(address);
    if (!ip) throw new Error(`not an address: ${address}`);
    return isTrusted(ip, l);
  };
}

describe("trusted proxies", () => {
  test("no ranges: no list", () => {
    expect(trustedProxyList([])).toBeNull();
  });

  test.each([
    ["10.0.0.0/8", "10.200.1.2", true],
    ["10.0.0.0/8", "11.0.0.1", false],
    ["10.0.0.0/8", "::ffff:10.1.2.3", true],
    ["10.0.0.0/8", "[::ffff:a01:203]", true],
    ["::ffff:10.0.0.0/104", "10.9.9.9", true],
    ["::ffff:10.0.0.0/104", "11.9.9.9", false],
    ["192.168.1.1", "192.168.1.1", true],
    ["192.168.1.1", "192.168.1.2", false],
    ["fd00::/8", "fd12:3456::1", true],
    ["fd00::/8", "FD00::1", true],
    ["fd00::/8", "fe80::1", false],
    ["::1", "0:0:0:0:0:0:0:1", true],
    ["::1", "127.0.0.1", false],
    ["0.0.0.0/0", "203.0.113.9", true],
    ["0.0.0.0/0", "2001:db8::1", false],
  ])("%s trusts %s: %p", (range, address, expected) => {
    expect(list(range)(address)).toBe(expected);
  });

  test("several ranges", () => {
    const trusted = list("127.0.0.1", "10.0.0.0/8", "fd00::/8");
    expect(["127.0.0.1", "10.1.1.1", "fd00::5", "::ffff:127.0.0.1"].map(trusted)).toEqual([true, true, true, true]);
    expect(["127.0.0.2", "172.16.0.1", "2001:db8::1"].map(trusted)).toEqual([false, false, false]);
  });

  test.each(["nope", "10.0.0.0/33", "::1/129", "10.0.0.0/8/8", "10.0.0.0/-1", "10.0.0.0/", "10.0.0.0/08a", "::ffff:10.0.0.0/95"])(
    "%p is not a range",
    (bad) => {
      expect(parseCidr(bad)).toBeNull();
    },
  );
});
