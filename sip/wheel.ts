// A timing wheel with one-second buckets: O(1) to schedule, O(due) to fire. Used for contact
// expiry and keepalive pings, where there may be a million deadlines and a timer each would
// cost more than the work. Entries are not removable: the callback checks they still apply.

export class Wheel<T> {
  private readonly buckets = new Map<number, T[]>();
  private last: number;

  constructor(nowMs = Date.now()) {
    this.last = Math.floor(nowMs / 1000);
  }

  add(atMs: number, item: T): void {
    let s = Math.floor(atMs / 1000);
    if (s <= this.last) s = this.last + 1; // due now: fires on the next tick
    const b = this.buckets.get(s);
    if (b === undefined) this.buckets.set(s, [item]);
    else b.push(item);
  }

  /** Calls `fire` for every item due by `nowMs`. */
  advance(nowMs: number, fire: (item: T) => void): void {
    const now = Math.floor(nowMs / 1000);
    if (now - this.last > 86_400 * 8) {
      // after a long clock jump, walk only the buckets that exist
      for (const s of [...this.buckets.keys()].sort((a, b) => a - b)) {
        if (s > now) break;
        const b = this.buckets.get(s) as T[];
        this.buckets.delete(s);
        for (const it of b) fire(it);
      }
      this.last = now;
      return;
    }
    while (this.last < now) {
      this.last++;
      const b = this.buckets.get(this.last);
      if (b === undefined) continue;
      this.buckets.delete(this.last);
      for (let i = 0; i < b.length; i++) fire(b[i]);
    }
  }

  get size(): number {
    let n = 0;
    for (const b of this.buckets.values()) n += b.length;
    return n;
  }

  clear(): void {
    this.buckets.clear();
  }
}
