// fmsg addresses (`@user@domain`): parsing and validation by fmsgd's rules (docs/API.md "Limits"), and case-insensitive identity.

export type Address = { user: string; domain: string };

const MAX_ADDRESS_BYTES = 255;
const MAX_USER_BYTES = 64;
const MAX_DOMAIN_CHARS = 253;

/**
 * Letters (\p{L}) and numbers (\p{N}) with single `-`, `_` or `.` between them. Combining marks (\p{M})
 * are deliberately not allowed: fmsgd accepts only unicode.IsLetter/IsNumber, so a decomposed "é"
 * (e + U+0301) would be refused by the daemon and sit in its queue; clients must send NFC.
 * The pattern is unambiguous (each repetition starts with a mandatory special), so it cannot backtrack badly.
 */
const USER_PATTERN = /^[\p{L}\p{N}]+(?:[-_.][\p{L}\p{N}]+)*$/u;

/** One DNS label: ASCII letters, digits and `-`, 1–63 chars, no `-` at either end. */
const LABEL_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

const utf8 = new TextEncoder();

function utf8Length(s: string): number {
  return utf8.encode(s).length;
}

function isValidUser(user: string): boolean {
  // A UTF-16 length above the byte limit means the UTF-8 length is too (every code unit is ≥ 1 byte).
  if (user.length === 0 || user.length > MAX_USER_BYTES) return false;
  return USER_PATTERN.test(user) && utf8Length(user) <= MAX_USER_BYTES;
}

function isValidDomain(domain: string): boolean {
  if (domain.length === 0 || domain.length > MAX_DOMAIN_CHARS) return false;
  // fmsgd compares with "localhost" exactly; "LOCALHOST" is a one-label domain and refused there.
  if (domain === "localhost") return true;
  const labels = domain.split(".");
  return labels.length >= 2 && labels.every((label) => LABEL_PATTERN.test(label));
}

/** Splits `@user@domain` (user = between the first and the last `@`), or null when any rule of §2 fails. */
export function parseAddress(s: string): Address | null {
  if (s.length > MAX_ADDRESS_BYTES || !s.startsWith("@")) return null;
  const lastAt = s.lastIndexOf("@");
  if (lastAt === 0) return null;
  const user = s.slice(1, lastAt);
  const domain = s.slice(lastAt + 1);
  if (!isValidUser(user) || !isValidDomain(domain)) return null;
  if (utf8Length(s) > MAX_ADDRESS_BYTES) return null;
  return { user, domain };
}

export function isValidAddress(s: unknown): s is string {
  return typeof s === "string" && parseAddress(s) !== null;
}

const MARKS = /\p{M}/gu;
const ASCII = /^[\x00-\x7f]*$/;

/** Compatibility decomposition without its combining marks: "É" → "E", "ﬁ" → "fi", "K" (Kelvin) → "K". */
function strip(s: string): string {
  return s.normalize("NFKD").replace(MARKS, "");
}

/** One code point's bucket: stripped, then upper- and lower-cased until nothing changes ("ẞ" → "ß" → "SS" → "ss"). */
function charBucket(c: string): string {
  let k = strip(c);
  for (let i = 0; i < 4; i++) {
    const next = strip(strip(k.toUpperCase()).toLowerCase());
    if (next === k) break;
    k = next;
  }
  return k;
}

/**
 * A deliberately coarse grouping key: any two addresses PostgreSQL's lower() may fold together
 * (glibc or ICU case mapping, or ASCII only under a C ctype) get the same bucket, and others often
 * do too. Built code point by code point, so bucket(lower(x)) = bucket(x) for every lowering that
 * maps each character on its own (final sigma's σ/ς share a bucket). Only for grouping wake-ups,
 * which SQL then decides exactly; never for deciding identity.
 */
export function addressBucket(a: string): string {
  if (ASCII.test(a)) return a.toLowerCase();
  let out = "";
  for (const c of a) out += ASCII.test(c) ? c.toLowerCase() : charBucket(c);
  return out;
}

/** The lower-cased domain (text after the last `@`); meant for addresses already validated. */
export function domainOf(a: string): string {
  return a.slice(a.lastIndexOf("@") + 1).toLowerCase();
}
