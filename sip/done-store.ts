// Completed server transactions kept off the JavaScript heap (RFC 3261 17.2.2 Timer J, and T4
// for a REGISTER): the key's and the final response's bytes in a few large Buffers, found
// through an open-addressing index in typed arrays.
//
// Why not a Map of strings to Buffers: every completed REGISTER with credentials waits T4 (5 s),
// so at 8,000 registrations a second 40,000 entries are alive at any time. As JS objects each
// one is copied by young-generation collections and then promoted: with the Map, a node spent
// about twice as long in young-generation collections (docs/sip.md has the figures). Here an
// entry is a few numbers in typed arrays and bytes in a segment: the collector never sees it.
//
// Entries of one store share one wait, so they expire in the order they were put: the store is a
// FIFO, and so are its bytes. They are written one after another into segments of 1 MB (an entry
// larger than that has a segment of its own); a segment is let go, or kept as the one spare, once
// the oldest entry has moved past it. Nothing is moved once written: an arena that was compacted
// or grown by copying stalled the event loop for tens of milliseconds (248 ms once, growing to
// 64 MB), and the memory held is the live bytes and at most two segments more.

/** bytes an entry costs beyond its key and response (its slots in the typed arrays and the index) */
export const ENTRY_OVERHEAD = 40;

const EMPTY = 0;

/** bytes of a segment */
export const SEGMENT = 1 << 20;

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
  /**
   * Key bytes then response bytes of each entry, in segments: segs[0] holds the oldest entry's
   * bytes and has the number `firstSeg`; the newest is written at `end` in the last one.
   */
  private segs: Buffer[] = [];
  private firstSeg = 0;
  private end = 0;
  /** one segment let go, kept for the next that is needed (no new allocation in steady use) */
  private spare: Buffer | null = null;
  /** entries in a ring of `cap` slots (a power of two), oldest at `head` */
  private cap = 0;
  private head = 0;
  private n = 0;
  private hashes = new Int32Array(0);
  /** the entry's segment number and its offset there */
  private segOf = new Int32Array(0);
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

  /** Bytes of the segments the entries' bytes are kept in (the live bytes and at most two segments more). */
  get segmentBytes(): number {
    let b = 0;
    for (const seg of this.segs) b += seg.length;
    return b;
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
    const slot = (this.head + this.n) & (this.cap - 1);
    const seg = this.segmentFor(need);
    this.segs[seg].write(key, this.end, klen);
    response.copy(this.segs[seg], this.end + klen);
    this.segOf[slot] = this.firstSeg + seg;
    this.offs[slot] = this.end;
    this.end += need;
    const h = hashKey(key);
    this.hashes[slot] = h;
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
    // a copy: the segment is reused once its entries are gone, and the response may wait for a flush
    return Buffer.from(this.segs[this.segOf[slot] - this.firstSeg].subarray(at, at + this.rlens[slot]));
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
    this.segs = [];
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
      if (this.klens[slot] === klen && this.segs[this.segOf[slot] - this.firstSeg].compare(this.scratch, 0, klen, off, off + klen) === 0) return slot;
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
    // the segments before the new oldest entry's are done with (all of them when none is left:
    // one comes back as the spare)
    const keep = this.n === 0 ? this.segs.length : this.segOf[this.head] - this.firstSeg;
    for (let k = 0; k < keep; k++) this.release(this.segs.shift() as Buffer);
    this.firstSeg += keep;
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
    this.segOf = move(this.segOf, (c) => new Int32Array(c));
    this.offs = move(this.offs, (c) => new Int32Array(c));
    this.klens = move(this.klens, (c) => new Int32Array(c));
    this.rlens = move(this.rlens, (c) => new Int32Array(c));
    this.expires = move(this.expires, (c) => new Float64Array(c));
    this.cap = cap;
    this.head = 0;
    this.index = new Int32Array(cap * 2);
    for (let k = 0; k < this.n; k++) this.insert(this.hashes[k], k);
  }

  /** The index in `segs` of the segment where `need` bytes go at `end` (a new one when they do not fit in the last). */
  private segmentFor(need: number): number {
    const last = this.segs.length - 1;
    if (last >= 0 && this.end + need <= this.segs[last].length) return last;
    let seg: Buffer;
    if (need > SEGMENT) seg = Buffer.allocUnsafe(need);
    else if (this.spare !== null) {
      seg = this.spare;
      this.spare = null;
    } else seg = Buffer.allocUnsafe(SEGMENT);
    this.segs.push(seg);
    this.end = 0;
    return this.segs.length - 1;
  }

  private release(seg: Buffer): void {
    if (seg.length === SEGMENT) this.spare = seg;
  }
}
