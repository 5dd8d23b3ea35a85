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

  test("evicts in least-recently-used order through long runs of reads, writes, deletes and clears", () => {
    // A plain array model of LRU order against the Map-with-one-iterator implementation: eviction
    // must keep picking the true oldest after thousands of moves, evictions, deletes and a clear.
    const max = 50;
    const m = new BoundedMap<string, number>(max);
    let model: string[] = [];
    let seed = 7;
    const random = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let step = 0; step < 20_000; step++) {
      const key = `k${random(120)}`;
      const op = random(20);
      if (op < 9) {
        m.set(key, step);
        model = [...model.filter((k) => k !== key), key];
        if (model.length > max) model.shift();
      } else if (op < 18) {
        const had = model.includes(key);
        expect(m.get(key) !== undefined).toBe(had);
        if (had) model = [...model.filter((k) => k !== key), key];
      } else if (op < 19) {
        m.delete(key);
        model = model.filter((k) => k !== key);
      } else if (step % 5000 === 0) {
        m.clear();
        model = [];
      }
      expect(m.size).toBe(model.length);
    }
    // Reading every model key in order leaves the order unchanged, so the comparison is exact.
    expect(model.every((k) => m.get(k) !== undefined)).toBe(true);
  });

  test("getOrCompute computes a key once, keeps a null answer, and computes again after eviction", () => {
    const m = new BoundedMap<string, string | null>(2);
    const asked: string[] = [];
    const compute = (k: string) => (asked.push(k), k.startsWith("x") ? null : k.toUpperCase());
    expect(m.getOrCompute("a", compute)).toBe("A");
    expect(m.getOrCompute("a", compute)).toBe("A");
    expect(m.getOrCompute("x", compute)).toBeNull();
    expect(m.getOrCompute("x", compute)).toBeNull();
    expect(asked).toEqual(["a", "x"]);
    m.getOrCompute("b", compute); // evicts "a", the least recently used
    expect(m.getOrCompute("a", compute)).toBe("A");
    expect(asked).toEqual(["a", "x", "b", "a"]);
  });

  test.each([0, -1, 1.5, Number.NaN])("size %p is refused", (size) => {
    expect(() => new BoundedMap(size)).toThrow(RangeError);
  });
});
