/** A least-recently-used map bounded by the summed weight of its values (bytes, or 1 each for a count). */
export class BoundedLru<K, V> {
  /** A Map iterates in insertion order: the first key is the least recently used. */
  private readonly entries = new Map<K, { value: V; weight: number }>();
  private total = 0;
  private high = 0;

  constructor(
    readonly maxWeight: number,
    private readonly weigh: (value: V) => number,
  ) {}

  /** The summed weight held now, and the most ever held. */
  get weight(): number {
    return this.total;
  }

  get highWater(): number {
    return this.high;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value, made the most recently used; undefined when absent. */
  get(key: K): V | undefined {
    const hit = this.entries.get(key);
    if (!hit) return undefined;
    this.entries.delete(key);
    this.entries.set(key, hit);
    return hit.value;
  }

  /** The value without touching its recency. */
  peek(key: K): V | undefined {
    return this.entries.get(key)?.value;
  }

  has(key: K): boolean {
    return this.entries.has(key);
  }

  /** Keeps `value` after evicting the least recently used until it fits; a value heavier than the bound is not kept. */
  set(key: K, value: V): void {
    this.delete(key);
    const weight = this.weigh(value);
    if (weight > this.maxWeight) return;
    for (const [old, held] of this.entries) {
      if (this.total + weight <= this.maxWeight) break;
      this.entries.delete(old);
      this.total -= held.weight;
    }
    this.entries.set(key, { value, weight });
    this.total += weight;
    this.high = Math.max(this.high, this.total);
  }

  delete(key: K): void {
    const held = this.entries.get(key);
    if (!held) return;
    this.entries.delete(key);
    this.total -= held.weight;
  }
}
