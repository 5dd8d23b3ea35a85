// Loaded before every test file (bunfig.toml): each response a test receives from one of our
// servers is checked against that server's OpenAPI document, so the document cannot drift.
import { afterAll } from "bun:test";
import { contractViolation } from "./helpers/contract-check.ts";

const realFetch = globalThis.fetch;
const violations: string[] = [];

async function checkedFetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const res = await realFetch(input, init);
  const url = new URL(input instanceof Request ? input.url : input.toString());
  const method = init?.method ?? (input instanceof Request ? input.method : "GET");
  const wrong = await contractViolation(method, url, res);
  if (wrong) {
    violations.push(wrong);
    throw new Error(`response breaks the OpenAPI document: ${wrong}`);
  }
  return res;
}

globalThis.fetch = Object.assign(checkedFetch, { preconnect: realFetch.preconnect }) as typeof fetch;

afterAll(() => {
  // A test that swallowed the failing fetch still fails its file here.
  if (violations.length > 0) throw new Error(`responses broke the OpenAPI document:\n${violations.splice(0).join("\n")}`);
});
