// GET /openapi.json: a valid OpenAPI 3.1 document of every route, with every status each can answer.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { compileErrors, validate } from "@readme/openapi-parser";
import { VERSION } from "../../src/version.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

type Operation = {
  operationId?: string;
  security?: Record<string, string[]>[];
  parameters?: { name: string; in: string }[];
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
};
type Document = {
  openapi: string;
  info: { version: string };
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; scheme?: string }> };
};

let s: TestServer;
let doc: Document;

beforeAll(async () => {
  s = await startTestServer({ env: { FMSG_API_METRICS: "true" } });
  const res = await s.request("GET", "/openapi.json", { as: null });
  expect(res.status).toBe(200);
  doc = (await res.json()) as Document;
});
afterAll(() => s.stop());

/** Limited routes answer 429; /fmsg routes also 401 and 503 (identity service, database). */
const FMSG = ["400", "401", "403", "429", "503"];
const ROUTES: [string, string, string[]][] = [
  ["get", "/fmsg", ["200", ...FMSG]],
  ["post", "/fmsg", ["201", "413", "415", "422", "507", ...FMSG]],
  ["get", "/fmsg/wait", ["200", "204", ...FMSG]],
  ["get", "/fmsg/events", ["200", "410", ...FMSG]],
  ["get", "/fmsg/ws", ["101", "426", ...FMSG]],
  ["get", "/fmsg/sent", ["200", ...FMSG]],
  ["get", "/fmsg/{id}", ["200", "404", ...FMSG]],
  ["put", "/fmsg/{id}", ["200", "404", "413", "415", "507", ...FMSG]],
  ["delete", "/fmsg/{id}", ["204", "404", ...FMSG]],
  ["post", "/fmsg/{id}/send", ["200", "404", "409", "422", ...FMSG]],
  ["post", "/fmsg/{id}/add-to", ["200", "404", "413", "415", "422", ...FMSG]],
  ["get", "/fmsg/{id}/data", ["200", "206", "304", "404", "416", ...FMSG]],
  ["post", "/fmsg/{id}/attach", ["201", "404", "413", "415", "422", "507", ...FMSG]],
  ["get", "/fmsg/{id}/attach/{filename}", ["200", "206", "304", "404", "416", ...FMSG]],
  ["delete", "/fmsg/{id}/attach/{filename}", ["204", "404", ...FMSG]],
  ["post", "/fmsg/{id}/read", ["200", "404", ...FMSG]],
  ["get", "/fmsg/{id}/thread", ["200", "404", ...FMSG]],
  ["get", "/fmsg/{id}/thread/messages", ["200", "404", ...FMSG]],
  ["post", "/fmsg/token", ["200", ...FMSG]],
  ["get", "/healthz", ["200"]],
  ["get", "/readyz", ["200", "503"]],
  ["get", "/openapi.json", ["200", "400", "429"]],
  ["get", "/metrics", ["200"]],
];

describe("GET /openapi.json", () => {
  test("is valid OpenAPI 3.1 by the specification's own schema", async () => {
    const result = await validate(structuredClone(doc) as never);
    if (!result.valid) throw new Error(compileErrors(result));
    expect(doc.openapi).toStartWith("3.1");
    expect(doc.info.version).toBe(VERSION);
  });

  test("needs no token", async () => {
    expect((await s.request("GET", "/openapi.json", { as: null })).status).toBe(200);
  });

  test.each(ROUTES)("%s %s documents exactly its statuses", (method, path, statuses) => {
    const op = doc.paths[path]?.[method];
    expect(op).toBeDefined();
    expect(Object.keys(op!.responses).sort()).toEqual([...statuses].sort());
  });

  test("documents no route the table above does not know", () => {
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m} ${path}`));
    expect(listed.sort()).toEqual(ROUTES.map(([m, p]) => `${m} ${p}`).sort());
  });

  test("every error answer is the one error schema; /fmsg routes need the bearer token", () => {
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const op of Object.values(ops)) {
        expect(op.operationId).toBeString();
        // POST /fmsg/token takes an API key instead (its own scheme).
        if (path.startsWith("/fmsg")) expect(op.security).toEqual([path === "/fmsg/token" ? { apiKey: [] } : { bearer: [] }]);
        for (const [status, answer] of Object.entries(op.responses)) {
          if (Number(status) >= 400 && path !== "/readyz") {
            expect(answer.content?.["application/json"]?.schema).toEqual({ $ref: "#/components/schemas/Error" });
          }
        }
      }
    }
  });

  test("path parameters are spelt {id} and {filename} and are documented as parameters", () => {
    const op = doc.paths["/fmsg/{id}/attach/{filename}"]!.get!;
    expect(op.parameters?.map((p) => `${p.in}:${p.name}`).sort()).toEqual(["path:filename", "path:id"]);
  });

  test("the message object and the request body are named components", () => {
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(["Message", "MessageInput", "AddToInput", "Error"]));
    expect(doc.paths["/fmsg/{id}"]!.get!.responses["200"]!.content!["application/json"]!.schema).toEqual({ $ref: "#/components/schemas/Message" });
  });
});
