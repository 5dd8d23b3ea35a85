// A Map that holds at most `maxSize` entries and forgets the least recently used one first.

/**
 * Recency is the Map's own insertion order: a read or a write moves the entry to the end, so the
 * first key is always the least recently used, and eviction is O(1) without a linked list.
 */
export class BoundedMap<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(readonly maxSize: number) {
    if (!Number.isSafeInteger(maxSize) || maxSize < 1) throw new RangeError(`BoundedMap size must be a positive integer, got ${maxSize}`);
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value for `key`, which becomes the most recently used entry. */
  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  /** Stores `value` as the most recently used entry; when full, the least recently used one goes. */
  set(key: K, value: V): this {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.maxSize) {
      for (const oldest of this.entries.keys()) {
        this.entries.delete(oldest);
        break;
      }
    }
    return this;
  }

  delete(key: K): boolean {
    return this.entries.delete(key);
  }

  clear(): void {
    this.entries.clear();
  }
}
