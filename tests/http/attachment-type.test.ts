// The stored type of an uploaded attachment: the part's own Content-Type when it is a valid media type,
// else inferred from the file name; a part without the header is not busboy's default text/plain.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ALICE, BOB, createDraft } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const BOUNDARY = "fmsgTypeBoundary";
const FORM = `multipart/form-data; boundary=${BOUNDARY}`;

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(() => s.stop());

const disposition = (name: string, filename?: string) =>
  `Content-Disposition: form-data; name="${name}"${filename === undefined ? "" : `; filename="${filename}"`}`;

/** One part exactly as given: its header lines (no blank line) and its content. */
const part = (headers: string[], content = "x", boundary = BOUNDARY) =>
  `--${boundary}\r\n${headers.join("\r\n")}\r\n\r\n${content}\r\n`;

/** A whole body as bytes; latin1, so a header can carry any byte value. */
const form = (parts: string[], boundary = BOUNDARY) => Buffer.from(`${parts.join("")}--${boundary}--\r\n`, "latin1");

/** The body in pieces of 1 to 7 bytes, so part headers and boundaries arrive cut at many places. */
function trickle(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      const next = Math.min(bytes.length, at + 1 + (at % 7));
      controller.enqueue(bytes.slice(at, next));
      at = next;
    },
  });
}

async function attach(id: number, body: Uint8Array | ReadableStream<Uint8Array>, contentType = FORM) {
  const res = await fetch(`${s.url}/fmsg/${id}/attach`, {
    method: "POST",
    headers: { authorization: `Bearer ${s.token(ALICE)}`, "content-type": contentType },
    body,
    duplex: "half",
  } as RequestInit);
  expect(res.status).toBe(201);
  return (await res.json()) as { filename: string };
}

/** The stored row's type and the Content-Type its download is served with. */
async function typeOf(id: number, filename: string) {
  const [row] = await s.db.sql`select type from msg_attachment where msg_id = ${id} and filename = ${filename}`;
  const res = await s.request("GET", `/fmsg/${id}/attach/${encodeURIComponent(filename)}`);
  expect(res.status).toBe(200);
  await res.arrayBuffer();
  return { stored: row?.type as string | undefined, served: res.headers.get("content-type") };
}

const PDF = { stored: "application/pdf", served: "application/pdf" };
const PNG = { stored: "image/png", served: "image/png" };
const TEXT = { stored: "text/plain", served: "text/plain; charset=utf-8" };
const OCTETS = { stored: "application/octet-stream", served: "application/octet-stream" };

describe("one file part", () => {
  test.each([
    ["no Content-Type → from the extension", "report.pdf", [], PDF],
    ["no Content-Type, unknown extension → application/octet-stream", "notes.xyz", [], OCTETS],
    ["no Content-Type, no extension → application/octet-stream", "README", [], OCTETS],
    ["explicit text/plain stays text/plain", "a.pdf", ["Content-Type: text/plain"], TEXT],
    ["explicit type in upper case → lower-cased", "a.pdf", ["Content-Type: IMAGE/PNG"], PNG],
    ["parameters are dropped, as before", "a.pdf", ["Content-Type: text/plain; charset=utf-8"], TEXT],
    ["header name in odd case", "a.pdf", ["content-TYPE: image/png"], PNG],
    ["invalid type `foo` → from the extension", "a.pdf", ["Content-Type: foo"], PDF],
    ["non-ASCII type → from the extension", "a.png", ["Content-Type: image/p\xe9ng"], PNG],
    ["tab inside the type → from the extension", "a.pdf", ["Content-Type: text/plain;\tcharset=utf-8"], PDF],
    ["empty value → from the extension", "a.pdf", ["Content-Type:"], PDF],
    ["blank value → from the extension", "a.pdf", ["Content-Type: \t "], PDF],
    ["blanks around a valid type are not part of it", "a.pdf", ["Content-Type:\t image/png \t"], PNG],
    ["a folded value is one line", "a.pdf", ["Content-Type: text/plain;", " charset=utf-8"], TEXT],
    ["the first of two Content-Type headers counts", "a.pdf", ["Content-Type: image/png", "Content-Type: text/plain"], PNG],
    ["an unrelated header does not count as a type", "report.pdf", ["Content-Transfer-Encoding: binary"], PDF],
  ] as const)("%s", async (_label, filename, headers, expected) => {
    const id = await createDraft(s, ALICE, [BOB]);
    await attach(id, form([part([disposition("file", filename), ...headers])]));
    expect(await typeOf(id, filename)).toEqual(expected);
  });

  test("the header may come before the disposition", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    await attach(id, form([part(["Content-Type: image/png", disposition("file", "a.pdf")])]));
    expect(await typeOf(id, "a.pdf")).toEqual(PNG);
  });

  test("a quoted boundary parameter, and a preamble before the first part", async () => {
    const boundary = "fmsg type:boundary";
    const id = await createDraft(s, ALICE, [BOB]);
    const body = Buffer.concat([Buffer.from("preamble\r\n"), form([part([disposition("file", "report.pdf")], "x", boundary)], boundary)]);
    await attach(id, body, `multipart/form-data; boundary="${boundary}"`);
    expect(await typeOf(id, "report.pdf")).toEqual(PDF);
  });
});

describe("several parts: each file part gets its own header", () => {
  const cases = [
    [
      "a field with a type, then the file without one",
      [part([disposition("note"), "Content-Type: application/json"], "{}"), part([disposition("file", "report.pdf")])],
      "report.pdf",
      PDF,
    ],
    [
      "a field without a type, then the file with one",
      [part([disposition("note")], "hi"), part([disposition("file", "a.pdf"), "Content-Type: image/png"])],
      "a.pdf",
      PNG,
    ],
    [
      "another file part with a type, then the file without one",
      [part([disposition("other", "x.png"), "Content-Type: image/png"], "png"), part([disposition("file", "report.pdf")])],
      "report.pdf",
      PDF,
    ],
    [
      "another file part without a type, then the file with text/plain",
      [part([disposition("other", "x.pdf")], "pdf"), part([disposition("file", "a.pdf"), "Content-Type: text/plain"])],
      "a.pdf",
      TEXT,
    ],
    [
      "a part busboy skips (no disposition), a field and another file, then the file without a type",
      [
        part(["Content-Type: image/png"], "skipped"),
        part([disposition("note"), "Content-Type: text/plain"], "hi"),
        part([disposition("other", "x.txt"), "Content-Type: image/png"], ""),
        part([disposition("file", "report.pdf")]),
      ],
      "report.pdf",
      PDF,
    ],
    [
      "the file without a type, then more parts with types",
      [part([disposition("file", "report.pdf")]), part([disposition("other", "x.png"), "Content-Type: image/png"], "png")],
      "report.pdf",
      PDF,
    ],
  ] as const;

  test.each(cases)("%s", async (_label, parts, filename, expected) => {
    const id = await createDraft(s, ALICE, [BOB]);
    await attach(id, form([...parts]));
    expect(await typeOf(id, filename)).toEqual(expected);
  });

  test.each(cases)("sent in pieces of a few bytes: %s", async (_label, parts, filename, expected) => {
    const id = await createDraft(s, ALICE, [BOB]);
    await attach(id, trickle(form([...parts])));
    expect(await typeOf(id, filename)).toEqual(expected);
  });
});
