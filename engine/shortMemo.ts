/**
 * A memo for reads many callers make at once (a thousand subscribers, three resolvers of one
 * query): callers within `ttlMs` of a read share its promise instead of each going to the
 * database. Bounded: entries are dropped once stale, and the map never holds more than `max`.
 */
export class ShortMemo<T> {
  readonly #entries = new Map<string, { at: number; value: Promise<T> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly max = 10_000,
  ) {}

  /** Drops a key's shared read: the next caller reads afresh (a change this process just made). */
  forget(key: string): void {
    this.#entries.delete(key);
  }

  get(key: string, read: () => Promise<T>): Promise<T> {
    return this.entry(key, read).value;
  }

  /**
   * The shared read with the time it started: what it returns is no newer than `at`. A read
   * that started before `notBefore` (a change the caller knows of), or in its millisecond, is
   * not shared.
   */
  entry(key: string, read: () => Promise<T>, notBefore = 0): { at: number; value: Promise<T> } {
    const now = Date.now();
    const hit = this.#entries.get(key);
    // Strictly after: a read begun in the change's own millisecond may have begun before it.
    if (hit && now - hit.at < this.ttlMs && hit.at > notBefore) return hit;
    if (this.#entries.size >= this.max) {
      for (const [k, e] of this.#entries) if (now - e.at >= this.ttlMs) this.#entries.delete(k);
      if (this.#entries.size >= this.max) this.#entries.clear();
    }
    const entry = { at: now, value: read() };
    this.#entries.set(key, entry);
    // Only this entry: a newer read of the key may have replaced it by the time this one fails.
    entry.value.catch(() => { if (this.#entries.get(key) === entry) this.#entries.delete(key); });
    return entry;
  }
}
