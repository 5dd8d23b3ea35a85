// BoundedMap: never more than maxSize entries; the least recently used (read or written) goes first.
import { describe, expect, test } from "bun:test";
import { BoundedMap } from "../../src/lib/bounded-map.ts";

const keys = (m: BoundedMap<string, number>, candidates: string[]) => candidates.filter((k) => m.get(k) !== undefined);

describe("BoundedMap", () => {
  test("holds at most maxSize entries, forgetting the oldest", () => {
    const m = new BoundedMap<string, number>(3);
    for (let i = 0; i < 100; i++) {
      m.set(`k${i}`, i);
      expect(m.size).toBeLessThanOrEqual(3);
    }
    expect(keys(m, ["k96", "k97", "k98", "k99"])).toEqual(["k97", "k98", "k99"]);
  });

  test("a read makes an entry the most recently used", () => {
    const m = new BoundedMap<string, number>(2);
    m.set("a", 1).set("b", 2);
    expect(m.get("a")).toBe(1);
    m.set("c", 3); // b was the least recently used
    expect(m.get("b")).toBeUndefined();
    expect([m.get("a"), m.get("c")]).toEqual([1, 3]);
  });

  test("writing an existing key replaces it without evicting anything", () => {
    const m = new BoundedMap<string, number>(2);
    m.set("a", 1).set("b", 2).set("a", 10);
    expect(m.size).toBe(2);
    m.set("c", 3); // a was refreshed by the write, so b goes
    expect([m.get("a"), m.get("b"), m.get("c")]).toEqual([10, undefined, 3]);
  });

  test("delete and clear", () => {
    const m = new BoundedMap<string, number>(2);
    m.set("a", 1).set("b", 2);
    expect(m.delete("a")).toBe(true);
    expect(m.delete("a")).toBe(false);
    expect(m.size).toBe(1);
    m.clear();
    expect(m.size).toBe(0);
  });

  test.each([0, -1, 1.5, Number.NaN])("size %p is refused", (size) => {
    expect(() => new BoundedMap(size)).toThrow(RangeError);
  });
});
