// A set of record ids (32-byte hashes) that allocates nothing per look-up: the signature cache's
// generations and a block's duplicate check. Hex strings of ids (three made per record) had cost
// about a microsecond of each record validated.
import { randomBytes } from 'node:crypto';

/** Record ids are SHA-256 outputs: 32 bytes. */
export const ID_BYTES = 32;

// The hash keys, drawn once per process. Ids are hashes, but of records anyone can grind: keys
// nobody outside knows leave no way to pile ids into one run of a table.
const KEYS = randomBytes(8);
const K0 = KEYS.readInt32LE(0);
const K1 = KEYS.readInt32LE(4);

/**
 * An open-addressing set (linear probing) of up to `capacity` ids of exactly ID_BYTES bytes, their
 * bytes kept in one array. Callers check the length: a shorter id would be read past its end.
 */
export class IdSet {
  /** entry number + 1 per slot, 0 for empty; at least twice the entries it holds, a power of two */
  private readonly slots: Int32Array;
  private readonly ids: Uint8Array;
  count = 0;

  constructor(readonly capacity: number) {
    let n = 2;
    while (n < capacity * 2) n *= 2;
    this.slots = new Int32Array(n);
    this.ids = new Uint8Array(capacity * ID_BYTES);
  }

  private slotOf(id: Uint8Array): number {
    const w0 = (id[0] | (id[1] << 8) | (id[2] << 16) | (id[3] << 24)) ^ K0;
    const w1 = (id[4] | (id[5] << 8) | (id[6] << 16) | (id[7] << 24)) ^ K1;
    let h = Math.imul(w0, 0x9e3779b1) ^ Math.imul(w1 ^ (w0 >>> 15), 0x85ebca6b);
    h ^= h >>> 16;
    return h & (this.slots.length - 1);
  }

  private same(entry: number, id: Uint8Array): boolean {
    const o = entry * ID_BYTES;
    for (let i = 0; i < ID_BYTES; i++) if (this.ids[o + i] !== id[i]) return false;
    return true;
  }

  has(id: Uint8Array): boolean {
    const mask = this.slots.length - 1;
    for (let s = this.slotOf(id); ; s = (s + 1) & mask) {
      const e = this.slots[s];
      if (e === 0) return false;
      if (this.same(e - 1, id)) return true;
    }
  }

  /** Adds an id not in the set; false when the set is full. */
  add(id: Uint8Array): boolean {
    if (this.count === this.capacity) return false;
    const mask = this.slots.length - 1;
    let s = this.slotOf(id);
    while (this.slots[s] !== 0) s = (s + 1) & mask;
    this.ids.set(id, this.count * ID_BYTES);
    this.slots[s] = ++this.count;
    return true;
  }

  clear(): void {
    this.slots.fill(0);
    this.count = 0;
  }
}
