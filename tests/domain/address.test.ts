// Address rules (docs/API.md "Limits"): what fmsgd accepts, and the case-insensitive helpers.
import { describe, expect, test } from "bun:test";
import { domainOf, isValidAddress, parseAddress } from "../../src/domain/address.ts";

const label63 = "a".repeat(63);

/** A valid-looking domain of exactly `length` chars: 63-char labels and a shorter last one. */
function domainOfLength(length: number): string {
  const labels: string[] = [];
  let used = 0;
  for (;;) {
    const room = length - used - (labels.length > 0 ? 1 : 0);
    if (room <= 63) {
      labels.push("b".repeat(room));
      return labels.join(".");
    }
    labels.push("b".repeat(63));
    used += 63 + (labels.length > 1 ? 1 : 0);
  }
}

describe("parseAddress accepts", () => {
  const valid: Array<[string, string, string]> = [
    ["@alice@example.com", "alice", "example.com"],
    ["@Alice@Example.COM", "Alice", "Example.COM"],
    ["@a@b.c", "a", "b.c"],
    ["@a.b-c_d@example.com", "a.b-c_d", "example.com"],
    ["@1@localhost", "1", "localhost"],
    ["@bob@sub.domain.example.co.uk", "bob", "sub.domain.example.co.uk"],
    ["@bob@x-y.example", "bob", "x-y.example"],
    ["@bob@123.456", "bob", "123.456"],
    ["@zoë@example.com", "zoë", "example.com"],
    ["@用户@example.com", "用户", "example.com"],
    ["@пользователь@example.ru", "пользователь", "example.ru"],
    ["@١٢٣@example.com", "١٢٣", "example.com"],
    ["@𝒜lice@example.com", "𝒜lice", "example.com"],
    ["@a".concat("b".repeat(63), "@example.com"), "a".concat("b".repeat(63)), "example.com"],
    ["@" + "é".repeat(32) + "@example.com", "é".repeat(32), "example.com"],
    ["@u@" + label63 + ".com", "u", label63 + ".com"],
  ];
  test.each(valid)("%p", (input, user, domain) => {
    expect(parseAddress(input)).toEqual({ user, domain });
    expect(isValidAddress(input)).toBe(true);
  });
});

describe("parseAddress refuses", () => {
  const invalid: Array<[string, string]> = [
    ["", "empty"],
    ["@", "only @"],
    ["@@", "two @"],
    ["@@a.b", "empty user"],
    ["@alice", "no domain separator"],
    ["@alice@", "empty domain"],
    ["alice@example.com", "no leading @"],
    [" @alice@example.com", "leading space"],
    ["@alice@example.com ", "trailing space"],
    ["@a@b@c.d", "user containing @ (first/last-@ rule makes the user 'a@b')"],
    ["@al ice@example.com", "space in user"],
    ["@al\tice@example.com", "tab in user"],
    ["@al\u0000ice@example.com", "NUL in user"],
    ["@alice@exa\u0000mple.com", "NUL in domain"],
    ["@al\nice@example.com", "newline"],
    ["@.alice@example.com", "leading dot"],
    ["@alice.@example.com", "trailing dot in user"],
    ["@-alice@example.com", "leading dash"],
    ["@alice_@example.com", "trailing underscore"],
    ["@al..ice@example.com", "doubled dot"],
    ["@al.-ice@example.com", "adjacent specials"],
    ["@al+ice@example.com", "plus"],
    ["@al'ice@example.com", "quote"],
    ["@al/ice@example.com", "slash"],
    ["@😀@example.com", "emoji (not a letter)"],
    ["@e\u0301@example.com", "combining mark (decomposed é)"],
    ["@al\u200Bice@example.com", "zero-width space"],
    ["@al\u202Eice@example.com", "bidi override"],
    ["@\uD800@example.com", "lone surrogate"],
    ["@" + "a".repeat(65) + "@example.com", "65-byte user"],
    ["@" + "é".repeat(32) + "a@example.com", "65-byte user of 33 chars"],
    ["@" + "用".repeat(22) + "@example.com", "66-byte user of 22 chars"],
    ["@alice@com", "single-label domain"],
    ["@alice@LOCALHOST", "localhost is compared exactly, as fmsgd does"],
    ["@alice@localhost.", "trailing dot after localhost"],
    ["@alice@example.com.", "trailing dot"],
    ["@alice@.example.com", "leading dot"],
    ["@alice@example..com", "empty label"],
    ["@alice@-example.com", "label starting with -"],
    ["@alice@example-.com", "label ending with -"],
    ["@alice@exa_mple.com", "underscore in domain"],
    ["@alice@exämple.com", "non-ASCII domain"],
    ["@alice@" + "a".repeat(64) + ".com", "64-char label"],
    ["@alice@example.com:80", "port"],
    ["@alice@[127.0.0.1]", "address literal"],
    ["@alice@example.com/x", "path"],
  ];
  test.each(invalid)("%p (%s)", (input) => {
    expect(parseAddress(input)).toBeNull();
    expect(isValidAddress(input)).toBe(false);
  });
});

describe("length limits", () => {
  test("64-byte user is the maximum", () => {
    expect(isValidAddress(`@${"a".repeat(64)}@example.com`)).toBe(true);
    expect(isValidAddress(`@${"a".repeat(65)}@example.com`)).toBe(false);
  });

  test("user limit counts UTF-8 bytes: 21 three-byte chars + 1 fits, 22 do not", () => {
    expect(isValidAddress(`@${"用".repeat(21)}a@example.com`)).toBe(true);
    expect(isValidAddress(`@${"用".repeat(21)}ab@example.com`)).toBe(false);
  });

  test("63-char labels are allowed, 64 are not", () => {
    expect(isValidAddress(`@u@${"a".repeat(63)}.com`)).toBe(true);
    expect(isValidAddress(`@u@${"a".repeat(64)}.com`)).toBe(false);
  });

  test("domain rule caps at 253 chars, but the 255-byte total already caps it at 252", () => {
    const d252 = domainOfLength(252);
    const d253 = domainOfLength(253);
    expect([d252.length, d253.length]).toEqual([252, 253]);
    expect(isValidAddress(`@a@${d252}`)).toBe(true); // 1 + 1 + 1 + 252 = 255 bytes
    expect(isValidAddress(`@a@${d253}`)).toBe(false); // 256 bytes
    expect(isValidAddress(`@a@${domainOfLength(254)}`)).toBe(false);
  });

  test("whole address is at most 255 bytes", () => {
    const d252 = domainOfLength(252);
    expect(isValidAddress(`@a@${d252}`)).toBe(true);
    expect(isValidAddress(`@ab@${d252}`)).toBe(false);
    const d190 = domainOfLength(190); // "@" + 63 + "@" + 190 = 255
    expect(isValidAddress(`@${"a".repeat(63)}@${d190}`)).toBe(true);
    expect(isValidAddress(`@${"a".repeat(64)}@${d190}`)).toBe(false);
  });

  test("multi-byte users count toward the 255-byte total", () => {
    const d = domainOfLength(200); // 2 + 2×26 + 200 = 254; one more é makes 256
    expect(isValidAddress(`@${"é".repeat(26)}@${d}`)).toBe(true);
    expect(isValidAddress(`@${"é".repeat(27)}@${d}`)).toBe(false);
  });

  test("very long input is refused quickly", () => {
    expect(isValidAddress(`@${"a".repeat(100_000)}@example.com`)).toBe(false);
  });
});

describe("isValidAddress", () => {
  const nonStrings: unknown[][] = [[undefined], [null], [42], [{}], [["@a@b.c"]], [true]];
  test.each(nonStrings)("non-string %p is invalid", (value) => {
    expect(isValidAddress(value)).toBe(false);
  });
});

describe("domainOf", () => {
  test("returns the lower-cased domain (domains are ASCII, so this folding is exact)", () => {
    expect(domainOf("@Alice@Example.COM")).toBe("example.com");
    expect(domainOf("@bob@localhost")).toBe("localhost");
  });
});
