// Array literals built in code round-trip through PostgreSQL exactly, whatever the text holds.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { arrayLiteral } from "../../src/db/arrays.ts";
import { EMBEDDED, startTestServer, type TestServer } from "../helpers/server.ts";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

const sql = () => (EMBEDDED ? s.server.sql : s.db.sql);

test.each([
  [[]],
  [["@a@example.com"]],
  [["@İsmail@example.com", "@οδυσσευς@example.com", "@Émile@example.com"]],
  [['quote " inside', "back\\slash", "comma, brace { } and NULL", "NULL", "", " spaced "]],
])("text %p", async (values) => {
  const rows = await sql()<{ v: string }[]>`select v from unnest(${arrayLiteral(values)}::text[]) with ordinality as u(v, n) order by n`;
  expect(rows.map((r) => r.v)).toEqual(values);
});

test("integers, including ids past 2^31", async () => {
  const values = [1, 0, -5, 2 ** 40, Number.MAX_SAFE_INTEGER];
  const rows = await sql()<{ v: string }[]>`select v::text as v from unnest(${arrayLiteral(values)}::int8[]) with ordinality as u(v, n) order by n`;
  expect(rows.map((r) => Number(r.v))).toEqual(values);
});

test("null is NULL, beside the text \"NULL\" and strings that need escaping", async () => {
  const values = [null, "NULL", 'a"b', null, "c\\d", "@plain@example.com"];
  const rows = await sql()<{ v: string | null }[]>`select v from unnest(${arrayLiteral(values)}::text[]) with ordinality as u(v, n) order by n`;
  expect(rows.map((r) => r.v)).toEqual(values);
});

test("a non-integer number is refused rather than sent", () => {
  expect(() => arrayLiteral([1.5])).toThrow("not an integer");
});
