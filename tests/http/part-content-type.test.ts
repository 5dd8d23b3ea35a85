// The tap in front of busboy matches each `file` event to its part's own header block, however the body is cut.
import { describe, expect, test } from "bun:test";
import busboy from "busboy";
import { Readable } from "node:stream";
import { boundaryOf } from "../../src/http/busboy-grammar.ts";
import { PartHeaderTap } from "../../src/http/part-content-type.ts";

const B = "fmsgB0undary";
const FORM = `multipart/form-data; boundary=${B}`;

const part = (headers: string[], content: string) => `--${B}\r\n${headers.join("\r\n")}\r\n\r\n${content}\r\n`;
const file = (name: string, filename: string) => `Content-Disposition: form-data; name="${name}"; filename="${filename}"`;
const field = (name: string) => `Content-Disposition: form-data; name="${name}"`;

/**
 * File data that looks like framing: the start of a boundary (held back by busboy's search, then
 * handed on), a blank line, and a part header.
 */
const TRICKY = `\r\n--fmsgB0und\r\n\r\nContent-Type: image/gif\r\n\r\n\r\n--${B.slice(0, 5)}x`;

/** A body and, in order, each `file` event busboy must emit: the part's name and its Content-Type as sent. */
const BODY = Buffer.from(
  "a preamble\r\n" +
    part(["Content-Type: image/png"], "no disposition: busboy skips this part") +
    part([field("note"), "Content-Type: application/json"], "{}") +
    part([file("a", "a.pdf")], TRICKY) +
    part([file("b", "b.png"), "content-TYPE:  image/png \t"], "") +
    part([field("empty")], "") +
    part(["Content-Type: text/plain;", "\tcharset=utf-8", file("c", "c.txt")], `--${B.slice(0, 8)}`) +
    part([file("d", "d.bin"), "Content-Type: foo", "Content-Type: image/gif"], "d") +
    part([file("e", "e.bin"), "Content-Type: image/p\xe9ng"], "\r\n") +
    part([file("file", "report.pdf")], "%PDF") +
    `--${B}--\r\n` +
    part([file("after", "after.png"), "Content-Type: image/png"], "the epilogue: never a part") +
    `--${B}--\r\n`,
  "latin1",
);
const EXPECTED: Array<[string, string | null]> = [
  ["a", null],
  ["b", "image/png"],
  ["c", "text/plain; charset=utf-8"],
  ["d", "foo"],
  ["e", "image/p\xe9ng"],
  ["file", null],
];

/** Runs busboy behind the tap on `body` cut at `cuts`; the `file` events with what the tap says of each. */
async function fileEvents(body: Buffer, cuts: number[], contentType = FORM, partsLimit = 40) {
  const parser = busboy({ headers: { "content-type": contentType }, preservePath: true, limits: { parts: partsLimit, files: partsLimit } });
  const tap = new PartHeaderTap(parser, contentType, partsLimit);
  const events: Array<[string, string | null | "unknown"]> = [];
  parser.on("file", (name: string, stream: Readable, info: busboy.FileInfo) => {
    const sent = tap.sentHeader(info.mimeType);
    events.push([name, sent === null ? "unknown" : sent.contentType]);
    stream.resume();
  });
  parser.on("field", () => {});
  const finished = new Promise<void>((resolve, reject) => parser.on("finish", resolve).on("error", reject));
  const edges = [0, ...cuts, body.length];
  Readable.from(edges.slice(1).map((to, k) => body.subarray(edges[k], to))).pipe(tap);
  await finished;
  return events;
}

/** A small deterministic PRNG (mulberry32), so a failing cut can be replayed. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("matching file events to part headers", () => {
  test("the whole body at once", async () => {
    expect(await fileEvents(BODY, [])).toEqual(EXPECTED);
  });

  test("one byte at a time", async () => {
    expect(await fileEvents(BODY, Array.from({ length: BODY.length - 1 }, (_, k) => k + 1))).toEqual(EXPECTED);
  });

  test("cut once at every offset", async () => {
    for (let at = 1; at < BODY.length; at++) {
      const events = await fileEvents(BODY, [at]);
      if (JSON.stringify(events) !== JSON.stringify(EXPECTED)) throw new Error(`cut at ${at}: ${JSON.stringify(events)}`);
    }
  });

  test("cut at 2000 random sets of offsets", async () => {
    const random = prng(12);
    for (let run = 0; run < 2000; run++) {
      const cuts = [...new Set(Array.from({ length: 1 + Math.floor(random() * 40) }, () => 1 + Math.floor(random() * (BODY.length - 1))))];
      cuts.sort((x, y) => x - y);
      const events = await fileEvents(BODY, cuts);
      if (JSON.stringify(events) !== JSON.stringify(EXPECTED)) throw new Error(`cuts ${cuts.join(",")}: ${JSON.stringify(events)}`);
    }
  });

  test("past busboy's parts limit no more parts are announced", async () => {
    const body = Buffer.from(part([file("a", "a")], "1") + part([file("b", "b"), "Content-Type: image/png"], "2") + `--${B}--\r\n`);
    expect(await fileEvents(body, [], FORM, 1)).toEqual([["a", null]]);
  });

  test("a Content-Type past busboy's 2000 header pairs counts as absent, as busboy drops it", async () => {
    const filler = Array.from({ length: 2000 }, () => "X:");
    const body = Buffer.from(part([file("a", "a"), ...filler, "Content-Type: image/png"], "1") + `--${B}--\r\n`);
    expect(await fileEvents(body, [])).toEqual([["a", null]]);
  });

  test("a boundary busboy may or may not honour (one `-` between two): unknown, never a guess", async () => {
    // Whether busboy counts the second boundary depends on how its search cut the data; if it does
    // not, it reads `c`'s header alone, and if it does, as part of the unended block before it.
    const body = Buffer.from(
      part([file("a", "a"), "Content-Type: image/png"], "1") +
        `--${B}-\r\n--${B}\r\nContent-Type: image/gif\r\n--${B}\r\n${file("c", "c")}\r\n\r\n3\r\n--${B}--\r\n`,
    );
    for (let at = 0; at < body.length; at++) {
      const events = await fileEvents(body, at === 0 ? [] : [at]);
      if (JSON.stringify(events) !== JSON.stringify([["a", "image/png"], ["c", "unknown"]])) throw new Error(`cut at ${at}: ${JSON.stringify(events)}`);
    }
  });

  test("a quoted boundary with characters a token cannot hold", async () => {
    const boundary = 'we"ird: one';
    const body = Buffer.from(
      `--${boundary}\r\n${file("a", "a")}\r\n\r\n1\r\n--${boundary}\r\n${file("b", "b")}\r\nContent-Type: image/png\r\n\r\n2\r\n--${boundary}--\r\n`,
    );
    const contentType = `multipart/form-data; charset=utf-8; boundary="we\\"ird: one"`;
    expect(await fileEvents(body, [7, 40], contentType)).toEqual([
      ["a", null],
      ["b", "image/png"],
    ]);
  });
});

describe("boundaryOf reads the boundary as busboy does", () => {
  // busboy's own parser, to compare with (internal to busboy; this test pins the version we mirror).
  const { parseContentType } = require("busboy/lib/utils.js") as {
    parseContentType(s: string): { params: Record<string, string> } | undefined;
  };
  test.each([
    "multipart/form-data; boundary=abc",
    "multipart/form-data;boundary=abc",
    "multipart/form-data; BOUNDARY=abc",
    'multipart/form-data; boundary="a b:c"',
    'multipart/form-data; boundary="a\\"b"',
    'multipart/form-data; boundary="a\\bc"',
    'multipart/form-data; boundary="a\\\\b"',
    "multipart/form-data; charset=utf-8; boundary=x; boundary=y",
    "multipart/form-data; boundary=abc \t",
    "multipart/form-data; \tboundary=abc",
    "multipart/form-data; =x; boundary=abc",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary",
    'multipart/form-data; boundary="abc',
    "multipart/form-data; boundary=a b",
    "multipart/form-data;",
    "multipart/form-data",
  ])("%s", (contentType) => {
    expect(boundaryOf(contentType)).toBe(parseContentType(contentType)?.params.boundary ?? null);
  });
});
