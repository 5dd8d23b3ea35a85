// The JSON line logger: the lines of one event-loop turn reach the output together, in order, and none is lost.
import { expect, test } from "bun:test";
import { jsonLogger } from "../../src/http/request-log.ts";

const turnEnds = () => new Promise<void>((resolve) => setImmediate(resolve));
const parsed = (writes: string[]) => writes.join("").trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);

test("lines logged in one turn go out as one write once the turn ends, each a JSON line with its time", async () => {
  const writes: string[] = [];
  const log = jsonLogger(true, (t) => writes.push(t));
  for (let i = 0; i < 3; i++) log({ msg: "request", n: i });
  expect(writes).toEqual([]);
  await turnEnds();
  expect(writes.length).toBe(1);
  const lines = parsed(writes);
  expect(lines.map((l) => l.n)).toEqual([0, 1, 2]);
  expect(typeof lines[0]!.time).toBe("string");
  log({ msg: "later" });
  await turnEnds();
  expect(writes.length).toBe(2);
  expect(parsed(writes).map((l) => l.msg)).toEqual(["request", "request", "request", "later"]);
});

test("flush() writes what is held at once (before process.exit)", () => {
  const writes: string[] = [];
  const log = jsonLogger(true, (t) => writes.push(t));
  log({ msg: "stopped" });
  log.flush();
  expect(parsed(writes).map((l) => l.msg)).toEqual(["stopped"]);
  log.flush();
  expect(writes.length).toBe(1);
});

test("a turn that logs a lot does not hold it all: 64 KiB or more goes out without waiting", () => {
  const writes: string[] = [];
  const log = jsonLogger(true, (t) => writes.push(t));
  for (let i = 0; i < 1000; i++) log({ msg: "request", pad: "x".repeat(200), n: i });
  expect(writes.length).toBeGreaterThan(1);
  log.flush();
  expect(parsed(writes).map((l) => l.n)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
});

test("disabled: nothing is written", async () => {
  const writes: string[] = [];
  const log = jsonLogger(false, (t) => writes.push(t));
  log({ msg: "request" });
  log.flush();
  await turnEnds();
  expect(writes).toEqual([]);
});
