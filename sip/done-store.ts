// Completed server transactions kept off the JavaScript heap (RFC 3261 17.2.2 Timer J, and T4
// for a REGISTER): the key's and the final response's bytes in one growing byte arena, found
// through an open-addressing index in typed arrays.
//
// Why not a Map of strings to Buffers: every completed REGISTER with credentials waits T4 (5 s),
// so at 8,000 registrations a second 40,000 entries are alive at any time. As JS objects each
// one is copied by young-generation collections and then promoted: with the Map, a node spent
// about twice as long in young-generation collections (docs/sip.md has the figures). Here an
// entry is a few numbers in typed arrays and bytes in one Buffer: the collector never sees it.
//
// Entries of one store share one wait, so they expire in the order they were put: the store is a
// FIFO. The arena is written at its end and compacted (or doubled, up to 1.5 times the byte
// budget) when the end is reached, so the bytes of live entries stay contiguous and in order.

/** bytes an entry costs beyond its key and response (its slots in the typed arrays and the index) */
export const ENTRY_OVERHEAD = 40;

const EMPTY = 0;

/** FNV-1a over the key's UTF-16 code units: the index's hash (the bytes are compared on a match). */
function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

export class DoneStore {
  /** key bytes then response bytes of each entry, oldest first from offs[head] to `end` */
  private arena = Buffer.allocUnsafe(0);
  private end = 0;
  /** entries in a ring of `cap` slots (a power of two), oldest at `head` */
  private cap = 0;
  private head = 0;
  private n = 0;
  private hashes = new Int32Array(0);
  private offs = new Int32Array(0);
  private klens = new Int32Array(0);
  private rlens = new Int32Array(0);
  private expires = new Float64Array(0);
  /** open addressing, linear probing: ring slot + 1, or EMPTY; twice `cap` long */
  private index = new Int32Array(0);
  /** key and response bytes of the live entries, with ENTRY_OVERHEAD each */
  private used = 0;
  private scratch = Buffer.allocUnsafe(256);

  constructor(
    /** most entries kept; past it the oldest go */
    private readonly maxEntries: number,
    /** most bytes kept (see `bytes`); past it the oldest go */
    private readonly maxBytes: number,
  ) {}

  get size(): number {
    return this.n;
  }

  /** Bytes of the arena the entries' bytes are kept in (at most 1.5 times the budget). */
  get arenaBytes(): number {
    return this.arena.length;
  }

  /** Bytes the entries keep, ENTRY_OVERHEAD each included. */
  get bytes(): number {
    return this.used;
  }

  /**
   * Keeps `response` under `key` until `expiresAt` (ms, no earlier than the last entry's).
   * Returns how many older entries were let go to make room; an entry larger than the whole
   * budget is not kept.
   */
  put(key: string, response: Buffer, expiresAt: number): number {
    const klen = Buffer.byteLength(key);
    const need = klen + response.length;
    if (need + ENTRY_OVERHEAD > this.maxBytes || this.maxEntries <= 0) return 0;
    let evicted = 0;
    while (this.n > 0 && (this.n >= this.maxEntries || this.used + need + ENTRY_OVERHEAD > this.maxBytes)) {
      this.dropHead();
      evicted++;
    }
    if (this.n === this.cap) this.growEntries();
    if (this.end + need > this.arena.length) this.makeRoom(need);
    const slot = (this.head + this.n) & (this.cap - 1);
    const off = this.end;
    this.arena.write(key, off, klen);
    response.copy(this.arena, off + klen);
    this.end += need;
    const h = hashKey(key);
    this.hashes[slot] = h;
    this.offs[slot] = off;
    this.klens[slot] = klen;
    this.rlens[slot] = response.length;
    this.expires[slot] = expiresAt;
    this.n++;
    this.used += need + ENTRY_OVERHEAD;
    this.insert(h, slot);
    return evicted;
  }

  /** A copy of the response kept under `key`, or undefined. */
  get(key: string): Buffer | undefined {
    if (this.n === 0) return undefined;
    const slot = this.find(key);
    if (slot < 0) return undefined;
    const at = this.offs[slot] + this.klens[slot];
    // a copy: the arena moves when it is compacted, and the response may wait for a flush
    return Buffer.from(this.arena.subarray(at, at + this.rlens[slot]));
  }

  /** Lets go of the entries that expire at or before `now`. */
  expire(now: number): void {
    while (this.n > 0 && this.expires[this.head] <= now) this.dropHead();
  }

  /** Lets go of the oldest entry (to keep a budget shared with another store). */
  dropOldest(): void {
    if (this.n > 0) this.dropHead();
  }

  clear(): void {
    this.head = 0;
    this.n = 0;
    this.end = 0;
    this.used = 0;
    this.index.fill(EMPTY);
  }

  private find(key: string): number {
    const h = hashKey(key);
    const mask = this.index.length - 1;
    let klen = -1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const v = this.index[i];
      if (v === EMPTY) return -1;
      const slot = v - 1;
      if (this.hashes[slot] !== h) continue;
      if (klen < 0) {
        klen = Buffer.byteLength(key);
        if (klen > this.scratch.length) this.scratch = Buffer.allocUnsafe(klen);
        this.scratch.write(key, 0, klen);
      }
      const off = this.offs[slot];
      if (this.klens[slot] === klen && this.arena.compare(this.scratch, 0, klen, off, off + klen) === 0) return slot;
    }
  }

  private insert(h: number, slot: number): void {
    const mask = this.index.length - 1;
    let i = h & mask;
    while (this.index[i] !== EMPTY) i = (i + 1) & mask;
    this.index[i] = slot + 1;
  }

  /** Removes the oldest entry, from the index by backward-shift deletion (no tombstones). */
  private dropHead(): void {
    const slot = this.head;
    const mask = this.index.length - 1;
    let i = this.hashes[slot] & mask;
    while (this.index[i] !== slot + 1) i = (i + 1) & mask;
    // shift later members of the probe run back over the hole when their home allows it
    for (let j = (i + 1) & mask; this.index[j] !== EMPTY; j = (j + 1) & mask) {
      const home = this.hashes[this.index[j] - 1] & mask;
      // j's entry may move to i when its home is not in the cyclic range (i, j]
      if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
        this.index[i] = this.index[j];
        i = j;
      }
    }
    this.index[i] = EMPTY;
    this.used -= this.klens[slot] + this.rlens[slot] + ENTRY_OVERHEAD;
    this.head = (this.head + 1) & (this.cap - 1);
    this.n--;
    if (this.n === 0) {
      this.head = 0;
      this.end = 0;
    }
  }

  /** Doubles the ring of entries (in order, oldest at 0) and rebuilds the index. */
  private growEntries(): void {
    const cap = Math.max(1024, this.cap * 2);
    const order = (k: number): number => (this.head + k) & (this.cap - 1);
    const move = <T extends Int32Array | Float64Array>(a: T, make: (n: number) => T): T => {
      const b = make(cap);
      for (let k = 0; k < this.n; k++) b[k] = a[order(k)];
      return b;
    };
    this.hashes = move(this.hashes, (c) => new Int32Array(c));
    this.offs = move(this.offs, (c) => new Int32Array(c));
    this.klens = move(this.klens, (c) => new Int32Array(c));
    this.rlens = move(this.rlens, (c) => new Int32Array(c));
    this.expires = move(this.expires, (c) => new Float64Array(c));
    this.cap = cap;
    this.head = 0;
    this.index = new Int32Array(cap * 2);
    for (let k = 0; k < this.n; k++) this.insert(this.hashes[k], k);
  }

  /**
   * Moves the live bytes to the arena's start, into a larger arena when they fill half of it.
   * The arena stops growing at 1.5 times the byte budget: at most 1.5 times the budget in
   * memory, and when it is full of live entries each compaction frees at least a third of it
   * (two bytes moved for each byte written, at worst).
   */
  private makeRoom(need: number): void {
    const from = this.n > 0 ? this.offs[this.head] : this.end;
    const live = this.end - from;
    let arena = this.arena;
    const most = this.maxBytes + (this.maxBytes >> 1);
    if ((live + need) * 2 > arena.length && arena.length < most) {
      let size = Math.max(64 * 1024, arena.length);
      while ((live + need) * 2 > size) size *= 2;
      arena = Buffer.allocUnsafe(Math.min(size, most));
    }
    this.arena.copy(arena, 0, from, this.end);
    this.arena = arena;
    for (let k = 0; k < this.n; k++) this.offs[(this.head + k) & (this.cap - 1)] -= from;
    this.end = live;
  }
}
