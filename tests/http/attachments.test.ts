// Attachments: streamed uploads within limits, hostile names, races, replace, delete, downloads (issue #3).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readdir } from "node:fs/promises";
import { dirname } from "node:path";
import { ALICE, BOB, EVE, createDraft, errorOf, sendDraft, snapshot } from "../helpers/messages.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

const MIB = 1024 * 1024;
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ env: { FMSG_API_MAX_DATA_SIZE: "1", FMSG_API_MAX_ATTACH_SIZE: "2", FMSG_API_MAX_MSG_SIZE: "3" } });
});
afterAll(() => s.stop());

function upload(id: number, name: string, bytes: Uint8Array | string, opts: { as?: string; type?: string; field?: string } = {}) {
  const form = new FormData();
  form.append(opts.field ?? "file", new Blob([bytes], { type: opts.type ?? "application/octet-stream" }), name);
  return s.request("POST", `/fmsg/${id}/attach`, { as: opts.as, body: form });
}

/** A raw multipart body, for names FormData would not send as given. */
function rawUpload(id: number, disposition: string, bytes = "x") {
  const boundary = "----fmsgtestboundary";
  const body = `--${boundary}\r\nContent-Disposition: ${disposition}\r\nContent-Type: text/plain\r\n\r\n${bytes}\r\n--${boundary}--\r\n`;
  return s.request("POST", `/fmsg/${id}/attach`, { body, headers: { "content-type": `multipart/form-data; boundary=${boundary}` } });
}

const random = (n: number) => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
};

async function download(id: number, name: string, as?: string) {
  return s.request("GET", `/fmsg/${id}/attach/${encodeURIComponent(name)}`, { as });
}

describe("round trips", () => {
  for (const [label, size] of [
    ["empty", 0],
    ["1 byte", 1],
    ["just under the limit", 2 * MIB - 1],
    ["exactly the limit", 2 * MIB],
  ] as const) {
    test(`${label}: byte-exact, row with position, type, exact size, absolute path`, async () => {
      const id = await createDraft(s, ALICE, [BOB], { data: "" });
      const bytes = random(size);
      const res = await upload(id, "blob.bin", bytes);
      expect(res.status).toBe(201);
      expect(await res.json()).toEqual({ filename: "blob.bin", size });
      const [row] = await s.db.sql`select * from msg_attachment where msg_id = ${id}`;
      expect(row!.position).toBe(0);
      expect(row!.flags).toBe(0);
      expect(row!.filesize).toBe(size);
      expect(row!.filepath).toBe(`${s.dataDir}/example.com/alice/out/${id}/attach/blob.bin`);
      const back = new Uint8Array(await (await download(id, "blob.bin")).arrayBuffer());
      expect(back.length).toBe(size);
      expect(Buffer.compare(back, bytes)).toBe(0);
    });
  }

  test("a 5 MiB random file round-trips byte-exact (limits raised)", async () => {
    const big = await startTestServer({ env: { FMSG_API_MAX_ATTACH_SIZE: "6", FMSG_API_MAX_MSG_SIZE: "12" } });
    try {
      const id = await createDraft(big, ALICE, [BOB]);
      const bytes = random(5 * MIB);
      const form = new FormData();
      form.append("file", new Blob([bytes]), "five.bin");
      expect((await big.request("POST", `/fmsg/${id}/attach`, { body: form })).status).toBe(201);
      // A draft's file is read in 1 MiB chunks from a handle opened first (see download.ts).
      const back = new Uint8Array(await (await big.request("GET", `/fmsg/${id}/attach/five.bin`)).arrayBuffer());
      expect(Buffer.compare(back, bytes)).toBe(0);
      const across = await big.request("GET", `/fmsg/${id}/attach/five.bin`, { headers: { Range: `bytes=${MIB - 8}-${2 * MIB + 7}` } });
      expect(across.status).toBe(206);
      expect(across.headers.get("content-range")).toBe(`bytes ${MIB - 8}-${2 * MIB + 7}/${5 * MIB}`);
      expect(Buffer.compare(new Uint8Array(await across.arrayBuffer()), bytes.subarray(MIB - 8, 2 * MIB + 8))).toBe(0);
      // Up to 1 MiB, a draft's file is one read, and keeps its Content-Length (Bun drops it from a
      // stream of several chunks).
      const mid = new FormData();
      mid.append("file", new Blob([bytes.subarray(0, 300 * 1024)]), "mid.bin");
      expect((await big.request("POST", `/fmsg/${id}/attach`, { body: mid })).status).toBe(201);
      const midBack = await big.request("GET", `/fmsg/${id}/attach/mid.bin`);
      expect(midBack.headers.get("content-length")).toBe(String(300 * 1024));
      expect(Buffer.compare(new Uint8Array(await midBack.arrayBuffer()), bytes.subarray(0, 300 * 1024))).toBe(0);
      // Sent: the file never changes again, and Bun serves it from its path with its length.
      await sendDraft(big, ALICE, id);
      const sent = await big.request("GET", `/fmsg/${id}/attach/five.bin`);
      expect(sent.headers.get("content-length")).toBe(String(5 * MIB));
      expect(Buffer.compare(new Uint8Array(await sent.arrayBuffer()), bytes)).toBe(0);
      // So it does under a Range that asks for all of it (206), or that this server ignores (200):
      // Bun neither drops the length nor applies the Range itself (it would, to a 200 of the file).
      for (const [range, status] of [["bytes=0-", 206], [`bytes=-${5 * MIB}`, 206], ["bytes=0-0,5-6", 200], ["bytes=5-2", 200], [`bytes=${6 * MIB}-5`, 200]] as const) {
        const res = await big.request("GET", `/fmsg/${id}/attach/five.bin`, { headers: { Range: range } });
        expect([range, res.status, res.headers.get("content-length")]).toEqual([range, status, String(5 * MIB)]);
        expect(Buffer.compare(new Uint8Array(await res.arrayBuffer()), bytes)).toBe(0);
      }
    } finally {
      await big.stop();
    }
  });

  test("positions follow upload order and show in the message object; the part's type is stored", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    await upload(id, "b.txt", "bb", { type: "text/plain" });
    await upload(id, "a.pdf", "aaa", { type: "application/pdf" });
    const rows = await s.db.sql`select filename, position, type from msg_attachment where msg_id = ${id} order by position`;
    expect(rows.map((r) => [r.filename, r.position, r.type])).toEqual([
      ["b.txt", 0, "text/plain"],
      ["a.pdf", 1, "application/pdf"],
    ]);
    const m = (await (await s.request("GET", `/fmsg/${id}`)).json()) as { attachments: unknown };
    expect(m.attachments).toEqual([
      { filename: "b.txt", size: 2 },
      { filename: "a.pdf", size: 3 },
    ]);
  });

  test("a non-ASCII name round-trips and is offered with filename*", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    expect((await upload(id, "résumé 2026.pdf", "pdf")).status).toBe(201);
    const res = await download(id, "résumé 2026.pdf");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-disposition")).toContain("filename*=UTF-8''r%C3%A9sum%C3%A9%202026.pdf");
    expect(await res.text()).toBe("pdf");
  });
});

describe("limits", () => {
  test("just over the per-file limit → 413 attachment exceeds maximum size, nothing left", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "" });
    const before = await snapshot(s);
    const res = await upload(id, "big.bin", random(2 * MIB + 1));
    expect(await errorOf(res)).toEqual({ status: 413, error: "attachment exceeds maximum size" });
    expect(await snapshot(s)).toBe(before); // no row, no temp file
  });

  test("over the message total → 413 total message size exceeds limit", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "" });
    expect((await upload(id, "one.bin", random(2 * MIB))).status).toBe(201);
    const before = await snapshot(s);
    const res = await upload(id, "two.bin", random(MIB + 1));
    expect(await errorOf(res)).toEqual({ status: 413, error: "total message size exceeds limit" });
    expect(await snapshot(s)).toBe(before);
    expect((await upload(id, "two.bin", random(MIB))).status).toBe(201); // exactly the total fits
  });

  test("concurrent uploads racing the total: what is stored never exceeds it", async () => {
    const id = await createDraft(s, ALICE, [BOB], { data: "" });
    const results = await Promise.all([1, 2, 3, 4].map((i) => upload(id, `part${i}.bin`, random(MIB + 100))));
    const ok = results.filter((r) => r.status === 201).length;
    expect(ok).toBeGreaterThanOrEqual(1);
    expect(ok).toBeLessThanOrEqual(2);
    for (const r of results) expect([201, 413]).toContain(r.status);
    const [sum] = await s.db.sql`select coalesce(sum(filesize), 0)::int as n from msg_attachment where msg_id = ${id}`;
    expect(sum!.n).toBeLessThanOrEqual(3 * MIB);
    const [row] = await s.db.sql`select filepath from msg where id = ${id}`;
    const files = await readdir(`${dirname(row!.filepath)}/attach`);
    expect(files.length).toBe(ok); // no temp files of the losers
  });
});

describe("hostile names → 400 invalid filename", () => {
  const names = ["../x", "a/b", "a\\b", "..", ".hidden", "trailing.", "dou..ble", "nul\u0000x", "tab\tx", "x".repeat(256), "é".repeat(128), " lead", "trail ", ""];
  for (const name of names) {
    test(`upload ${JSON.stringify(name.slice(0, 20))}`, async () => {
      const id = await createDraft(s, ALICE, [BOB]);
      const before = await snapshot(s);
      // RFC 5987 form, so control characters reach the server as the client meant them
      if (name !== "") {
        const res = await rawUpload(id, `form-data; name="file"; filename*=UTF-8''${encodeURIComponent(name)}`);
        expect(await errorOf(res)).toEqual({ status: 400, error: "invalid filename" });
      }
      if (!/[\u0000-\u001f]/.test(name)) {
        const plain = await rawUpload(id, `form-data; name="file"; filename="${name.replace(/\\/g, "\\\\")}"`);
        expect(await errorOf(plain)).toEqual({ status: 400, error: "invalid filename" });
      }
      expect(await snapshot(s)).toBe(before);
    });
  }

  test("%2F and other hostile URL segments on download and delete", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    for (const seg of ["..%2Fdata.txt", "a%2Fb", "a%5Cb", "%2E.x", "x%00y", "%2Fetc%2Fpasswd"]) {
      expect(await errorOf(await s.request("GET", `/fmsg/${id}/attach/${seg}`))).toEqual({ status: 400, error: "invalid filename" });
      expect(await errorOf(await s.request("DELETE", `/fmsg/${id}/attach/${seg}`))).toEqual({ status: 400, error: "invalid filename" });
    }
  });

  test("no name at all: /fmsg/:id/attach takes only POST, so GET and DELETE there are 404 not found", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    for (const method of ["GET", "DELETE"]) {
      for (const path of [`/fmsg/${id}/attach`, `/fmsg/${id}/attach/`]) {
        expect(await errorOf(await s.request(method, path))).toEqual({ status: 404, error: "not found" });
      }
    }
  });

  test("255 bytes is still a valid name", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    expect((await upload(id, `${"n".repeat(251)}.txt`, "ok")).status).toBe(201);
  });
});

describe("rules", () => {
  test("missing file part → 400 file field required; wrong content type → 415", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    const form = new FormData();
    form.append("other", "value");
    expect(await errorOf(await s.request("POST", `/fmsg/${id}/attach`, { body: form }))).toEqual({ status: 400, error: "file field required" });
    expect((await upload(id, "x.txt", "x", { field: "document" })).status).toBe(400);
    const res = await s.request("POST", `/fmsg/${id}/attach`, { json: { file: "x" } });
    expect(res.status).toBe(415);
  });

  test("owner only, draft only, 404 for unknown messages", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    expect(await errorOf(await upload(id, "x.txt", "x", { as: BOB }))).toEqual({ status: 403, error: "only the owner may upload attachments" });
    expect(await errorOf(await upload(999999, "x.txt", "x"))).toEqual({ status: 404, error: "message not found" });
    expect((await upload(id, "x.txt", "x")).status).toBe(201);
    await sendDraft(s, ALICE, id);
    expect(await errorOf(await upload(id, "y.txt", "y"))).toEqual({ status: 403, error: "attachments cannot be added to a sent message" });
    expect(await errorOf(await s.request("DELETE", `/fmsg/${id}/attach/x.txt`))).toEqual({
      status: 403,
      error: "attachments of a sent message cannot be deleted",
    });
    expect(await errorOf(await s.request("DELETE", `/fmsg/${id}/attach/x.txt`, { as: EVE }))).toEqual({
      status: 403,
      error: "only the owner may delete attachments",
    });
  });

  test("an upload racing a send never leaves an attachment on a sent message", async () => {
    for (let i = 0; i < 5; i++) {
      const id = await createDraft(s, ALICE, [BOB]);
      const [up, send] = await Promise.all([upload(id, "race.bin", random(256 * 1024)), s.request("POST", `/fmsg/${id}/send`)]);
      expect(send.status).toBe(200);
      const [row] = await s.db.sql`select count(*)::int as n from msg_attachment where msg_id = ${id}`;
      if (up.status === 201) {
        // it committed before the send took the lock: allowed, the message was still a draft
        expect(row!.n).toBe(1);
      } else {
        expect(await errorOf(up)).toEqual({ status: 403, error: "attachments cannot be added to a sent message" });
        expect(row!.n).toBe(0);
      }
    }
  });

  test("same name again (case-insensitively) replaces the old attachment and its file", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    await upload(id, "first.txt", "1");
    await upload(id, "Report.txt", "old");
    const res = await upload(id, "report.TXT", "newer", { type: "text/plain" });
    expect(await res.json()).toEqual({ filename: "report.TXT", size: 5 });
    const rows = await s.db.sql`select filename, position, filesize from msg_attachment where msg_id = ${id} order by position`;
    expect(rows.map((r) => [r.filename, r.position, r.filesize])).toEqual([
      ["first.txt", 0, 1],
      ["report.TXT", 1, 5],
    ]);
    const [m] = await s.db.sql`select filepath from msg where id = ${id}`;
    expect((await readdir(`${dirname(m!.filepath)}/attach`)).sort()).toEqual(["first.txt", "report.TXT"]);
    expect(await (await download(id, "REPORT.txt")).text()).toBe("newer");
  });

  test("delete removes row then file, and closes the position gap", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    for (const n of ["a.txt", "b.txt", "c.txt"]) await upload(id, n, n);
    const res = await s.request("DELETE", `/fmsg/${id}/attach/A.TXT`);
    expect(res.status).toBe(204);
    const rows = await s.db.sql`select filename, position from msg_attachment where msg_id = ${id} order by position`;
    expect(rows.map((r) => [r.filename, r.position])).toEqual([
      ["b.txt", 0],
      ["c.txt", 1],
    ]);
    const [m] = await s.db.sql`select filepath from msg where id = ${id}`;
    expect((await readdir(`${dirname(m!.filepath)}/attach`)).sort()).toEqual(["b.txt", "c.txt"]);
    expect(await errorOf(await s.request("DELETE", `/fmsg/${id}/attach/a.txt`))).toEqual({ status: 404, error: "attachment not found" });
  });

  test("deleting the last attachment removes the attach/ folder; the next upload makes it again", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    await upload(id, "a.txt", "a");
    await upload(id, "b.txt", "b");
    const [m] = await s.db.sql`select filepath from msg where id = ${id}`;
    const folder = dirname(m!.filepath);
    for (const n of ["a.txt", "b.txt"]) expect((await s.request("DELETE", `/fmsg/${id}/attach/${n}`)).status).toBe(204);
    expect((await readdir(folder)).includes("attach")).toBe(false);
    expect((await readdir(folder)).length).toBeGreaterThan(0); // the message's own data stays
    expect(await (await upload(id, "c.txt", "c")).json()).toEqual({ filename: "c.txt", size: 1 });
    expect(await readdir(`${folder}/attach`)).toEqual(["c.txt"]);
    expect(await (await download(id, "c.txt")).text()).toBe("c");
  });
});

describe("downloads", () => {
  test("participants only; unknown → 404; safe headers; ETag/304; Range/206/416; missing file → JSON 404", async () => {
    const id = await createDraft(s, ALICE, [BOB]);
    await upload(id, "page.html", "<h1>0123456789</h1>", { type: "text/html" });
    expect((await download(id, "page.html", BOB)).status).toBe(403); // a draft: the owner's alone
    await sendDraft(s, ALICE, id);
    expect((await download(id, "page.html", EVE)).status).toBe(403);
    const res = await download(id, "page.html", BOB);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/octet-stream");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("content-security-policy")).toBe("sandbox");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="page.html"');
    const etag = res.headers.get("etag")!;
    await res.arrayBuffer();
    expect((await s.request("GET", `/fmsg/${id}/attach/page.html`, { headers: { "if-none-match": etag } })).status).toBe(304);
    const part = await s.request("GET", `/fmsg/${id}/attach/page.html`, { headers: { range: "bytes=4-7" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe("bytes 4-7/19");
    expect(await part.text()).toBe("0123");
    expect((await s.request("GET", `/fmsg/${id}/attach/page.html`, { headers: { range: "bytes=50-60" } })).status).toBe(416);
    expect(await errorOf(await download(id, "nope.txt"))).toEqual({ status: 404, error: "attachment not found" });
    const [row] = await s.db.sql`select filepath from msg_attachment where msg_id = ${id}`;
    await Bun.file(row!.filepath).delete();
    expect(await errorOf(await download(id, "page.html"))).toEqual({ status: 404, error: "attachment not found" });
  });
});
