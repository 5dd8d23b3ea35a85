// Array parameters as PostgreSQL array literals built here, so no query depends on postgres.js's
// array-type inference (after a reconnect it was seen binding ["@a@b.c"] as the bare text
// "@a@b.c": `malformed array literal`, a 500). Each use casts the literal in SQL (`::text[]`).

const needsNothing = /^-?[0-9]+$/;
const needsEscape = /["\\]/;

/** `{"a","b"}` for strings (quotes and backslashes escaped), `{1,2}` for integers, NULL for null. */
export function arrayLiteral(values: readonly (string | number | null)[]): string {
  const items = values.map((v) => {
    if (v === null) return "NULL";
    if (typeof v === "number") {
      const text = String(v);
      if (!needsNothing.test(text)) throw new TypeError(`not an integer: ${text}`);
      return text;
    }
    // Addresses rarely hold either character: most strings are quoted as they are.
    return needsEscape.test(v) ? `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"` : `"${v}"`;
  });
  return `{${items.join(",")}}`;
}
