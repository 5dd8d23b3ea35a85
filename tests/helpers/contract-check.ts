// Holds the OpenAPI document to its word: a response from a watched server is checked against the
// documented statuses and schemas of its route (tests/preload.ts runs it on every fetch of the suite).
import { Ajv2020, type ValidateFunction } from "ajv/dist/2020.js";

type Json = Record<string, unknown>;
type Operation = { responses?: Record<string, { content?: Record<string, { schema?: Json }> }> };
type Document = { paths: Record<string, Record<string, Operation>>; components?: Json };

type Route = { template: string; pattern: RegExp; literalSegments: number; operations: Record<string, Operation> };
type Checker = { routes: Route[]; validators: Map<string, ValidateFunction>; ajv: Ajv2020 };

/** Per watched origin: a checker per profile, and the one to use when an answer names none. */
const watched = new Map<string, { byProfile: Map<string, Checker>; fallback: Checker }>();

/**
 * Every documented object is closed for the check: a field the document does not describe is a
 * failure (the published document itself stays open, so clients tolerate later additions).
 */
function closeObjects(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(closeObjects);
  if (node === null || typeof node !== "object") return;
  const o = node as Json;
  if (o.properties && !("additionalProperties" in o)) o.additionalProperties = false;
  for (const v of Object.values(o)) closeObjects(v);
}

function checkerFor(document: Document): Checker {
  const doc = structuredClone(document);
  closeObjects(doc);
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ $id: "doc", components: doc.components ?? {} });
  const routes = Object.entries(doc.paths).map(([template, operations]) => {
    const segments = template.split("/").filter((s) => s !== "");
    const source = segments.map((s) => (s.startsWith("{") ? "[^/]+" : s.replace(/[.*+?^$()|[\]\\]/g, "\\$&"))).join("/");
    return {
      template,
      pattern: new RegExp(`^/${source}/?$`),
      literalSegments: segments.filter((s) => !s.startsWith("{")).length,
      operations,
    };
  });
  // A literal path (/fmsg/wait) wins over a template that also matches it (/fmsg/{id}), as in the router.
  routes.sort((a, b) => b.literalSegments - a.literalSegments);
  return { routes, validators: new Map(), ajv };
}

function validator(checker: Checker, key: string, schema: Json): ValidateFunction {
  let v = checker.validators.get(key);
  if (!v) {
    const resolved = JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/'));
    v = checker.ajv.compile(resolved);
    checker.validators.set(key, v);
  }
  return v;
}

/**
 * Starts checking every response from `baseUrl` against the document of the profile it names in
 * its Fmsg-Profile header (answers outside /fmsg name none: they are the same in every profile).
 */
export function watchServer(baseUrl: string, documents: Record<string, unknown>): void {
  const byProfile = new Map(Object.entries(documents).map(([profile, doc]) => [profile, checkerFor(doc as Document)]));
  watched.set(new URL(baseUrl).origin, { byProfile, fallback: byProfile.values().next().value! });
}

export function unwatchServer(baseUrl: string): void {
  watched.delete(new URL(baseUrl).origin);
}

/** What is wrong with this response by the document (null: nothing). */
async function violation(checker: Checker, method: string, url: URL, res: Response): Promise<string | null> {
  const route = checker.routes.find((r) => r.pattern.test(url.pathname));
  const op = route?.operations[method === "head" ? "get" : method];
  const isJson = /^application\/json/i.test(res.headers.get("content-type") ?? "");
  // An event stream never ends by itself: its status and type are checked, its events by the tests.
  if (/^text\/event-stream/i.test(res.headers.get("content-type") ?? "") && op) {
    return op.responses?.[String(res.status)]?.content?.["text/event-stream"] ? null : `undocumented event stream answered ${res.status}`;
  }
  const body = method === "head" ? "" : await res.clone().text();
  if (!route || !op) {
    // No documented route: the answer must be the API's generic refusal.
    if (res.status < 400 || res.status >= 500) return `undocumented route answered ${res.status}`;
    const errorSchema = { $ref: "#/components/schemas/Error" };
    return isJson && validator(checker, "error", errorSchema)(JSON.parse(body)) ? null : `unrouted ${res.status} is not {"error": …}: ${body.slice(0, 200)}`;
  }
  const documented = op.responses?.[String(res.status)];
  if (!documented) return `status ${res.status} is not documented for ${method.toUpperCase()} ${route.template}`;
  const jsonSchema = documented.content?.["application/json"]?.schema;
  if (!documented.content) return body === "" ? null : `documented without a body, but one came: ${body.slice(0, 200)}`;
  if (!jsonSchema || method === "head") return null; // bytes of a stored file: any type may come back
  if (!isJson) return `documented as JSON, but Content-Type is ${res.headers.get("content-type")}`;
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return `not JSON: ${body.slice(0, 200)}`;
  }
  const validate = validator(checker, `${method} ${route.template} ${res.status}`, jsonSchema);
  if (validate(value)) return null;
  return `body does not match the documented schema: ${checker.ajv.errorsText(validate.errors)}; body: ${body.slice(0, 300)}`;
}

/**
 * What is wrong with `res`, the answer to `method url`, by the document of the server that gave it;
 * null when nothing is, or when the server is not watched. CORS preflights answer for the browser,
 * not the API, and are not checked.
 */
export async function contractViolation(method: string, url: URL, res: Response): Promise<string | null> {
  const server = watched.get(url.origin);
  const m = method.toLowerCase();
  if (!server || m === "options") return null;
  const named = res.headers.get("fmsg-profile");
  const checker = named === null ? server.fallback : server.byProfile.get(named);
  if (!checker) return `${method.toUpperCase()} ${url.pathname} → ${res.status}: unknown Fmsg-Profile ${named}`;
  const wrong = await violation(checker, m, url, res);
  return wrong && `${method.toUpperCase()} ${url.pathname} → ${res.status}: ${wrong}`;
}
