// Persistent storage on LevelDB (classic-level): the chain's only way to disk. Keys come from
// core/layout.ts; values are encoded here, so callers deal in blocks, index entries, state
// changes and undo data, never in key strings or bytes.
//
// Writes go through a StoreBatch: a connected block (or a run of them, or a whole
// reorganisation) is one atomic batch of its body, index entry, undo data, record locations,
// state changes and the tip pointer, so a process killed at any moment leaves either the old tip
// with its state or the new one.
import { readdirSync } from 'node:fs';
import { ClassicLevel } from 'classic-level';
import { UserError } from './errors.ts';
import { encode, encodeInto, encodedSize, decode, asArray, asUint, asString, asBytes, type Value } from './encoding.ts';
import { encodeBlock, type Block } from './block.ts';
import { decodeEntry, decodeUndo, entryFields, encodeUndo, type Change, type Entry, type UndoEntry } from './state.ts';
import { fromHex, hashToHex, toHex } from './hash.ts';
import { layout } from './layout.ts';

// 2: names served by several nodes (delegate lists, a binding slot per node), number blocks, name fees
// 3: smaller keys (state keys and record ids in base64url), record locations by height, name
//    commitments without the committer's key
// 4: a fee in every record, call receipts that settle between nodes (issue 15)
// 5: names numbered in the state, presence records (issue 17); record index keys of 12 bytes of the
//    id, commitments by their first 16 bytes; undo data for the last undoDepth blocks only
export const STORE_VERSION = 5;

export type BlockStatus = 'valid' | 'invalid' | 'stored';

export interface StoredIndexEntry {
  header: Uint8Array;
  height: number;
  work: bigint;
  status: BlockStatus;
}

export interface StoreMeta {
  version: number;
  network: string;
  genesis: string;
}

/** Where a record sits on the main chain. */
export interface RecordLocation {
  /** height of the main-chain block that holds it */
  height: number;
  /** position of the record in the block */
  index: number;
}

export type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export class Store {
  readonly db: ClassicLevel<string, Uint8Array>;
  private constructor(readonly path: string) {
    this.db = new ClassicLevel<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' });
  }

  /**
   * Opens the store, creating it only where there is nothing yet: a folder that holds files but
   * no database that opens (its CURRENT file deleted, say) is refused, never replaced by an empty
   * database (LevelDB would delete every table it does not know). LevelDB's LOCK file keeps a
   * second process out, which we report plainly.
   */
  static async open(path: string): Promise<Store> {
    const s = new Store(path);
    const existing = hasFiles(path);
    try {
      await s.db.open({ createIfMissing: !existing });
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      if (/lock/i.test(cause)) throw new UserError(`data directory ${path} is in use by another dots process (stop it or pass another --datadir)`);
      if (existing) throw damagedStore(path, `it holds files but no database that opens (${cause.split('\n')[0]})`);
      throw new UserError(`cannot open the database in ${path}: ${cause}`);
    }
    return s;
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  /** A batch of writes, applied atomically by its write(). */
  batch(): StoreBatch {
    return new StoreBatch(this);
  }

  /**
   * Applies ops atomically (StoreBatch.write comes here: the one place the store is written).
   * Through LevelDB's chained batch, one put or del at a time: handed the array of ops, its
   * binding spent about three times as long on the main thread per op, reading each op object's
   * properties.
   */
  async write(ops: Op[]): Promise<void> {
    if (ops.length === 0) return;
    const batch = this.db.batch();
    try {
      for (const op of ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
    } catch (e) {
      await batch.close();
      throw e;
    }
    await batch.write();
  }

  async meta(): Promise<StoreMeta | undefined> {
    const b = await this.db.get(layout.meta);
    if (b === undefined) return undefined;
    const a = asArray(decode(b), 3, 'meta');
    return { version: asUint(a[0], 'version'), network: asString(a[1], 'network', 20), genesis: asString(a[2], 'genesis', 64) };
  }

  /** The main chain's tip hash (display hex). */
  async tip(): Promise<string | undefined> {
    const b = await this.db.get(layout.tip);
    return b === undefined ? undefined : toHex(b);
  }

  async blockBytes(hashHex: string): Promise<Uint8Array | undefined> {
    return this.db.get(layout.block(hashHex));
  }

  /** Several blocks' bytes in one read of the database, in order (undefined where one is absent). */
  async blocksBytes(hashHexes: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    if (hashHexes.length === 0) return [];
    return this.db.getMany(hashHexes.map((h) => layout.block(h)));
  }

  async undo(hashHex: string): Promise<UndoEntry[] | undefined> {
    const b = await this.db.get(layout.undo(hashHex));
    return b === undefined ? undefined : decodeUndo(b);
  }

  async recordLocation(id: Uint8Array): Promise<RecordLocation | undefined> {
    const b = await this.db.get(layout.record(id));
    if (b === undefined) return undefined;
    const a = asArray(decode(b), 2, 'record location');
    return { height: asUint(a[0], 'height'), index: asUint(a[1], 'index') };
  }

  /** Every stored index entry with its block hash (display hex). */
  async *indexEntries(): AsyncGenerator<[string, StoredIndexEntry]> {
    for await (const [k, v] of this.scan(layout.indexPrefix)) yield [k, decodeIndexEntry(v)];
  }

  /** Every state entry with its state key. */
  async *stateEntries(): AsyncGenerator<[string, Entry]> {
    for await (const [k, v] of this.scan(layout.statePrefix)) yield [k, decodeEntry(k, v)];
  }

  /** The bytes of every pending record kept, with its id (hex). */
  async *pendingRecords(): AsyncGenerator<[string, Uint8Array]> {
    yield* this.scan(layout.pendingPrefix);
  }

  /**
   * What the store holds, part by part (the layout's prefixes; state by its key kind, `S` and the
   * kind's letters up to its colon): entries and their key and value bytes, as LevelDB is handed
   * them (before its own compression and per-entry overhead). For `dots bench chain`'s account of
   * the bytes on disk per record.
   */
  async usage(): Promise<Map<string, { entries: number; keyBytes: number; valueBytes: number }>> {
    const parts = new Map<string, { entries: number; keyBytes: number; valueBytes: number }>();
    for await (const [k, v] of this.db.iterator()) {
      const colon = k.indexOf(':');
      const part = k[0] === layout.statePrefix && colon > 0 ? k.slice(0, colon + 1) : k[0];
      const p = parts.get(part) ?? { entries: 0, keyBytes: 0, valueBytes: 0 };
      p.entries++;
      p.keyBytes += Buffer.byteLength(k);
      p.valueBytes += v.length;
      parts.set(part, p);
    }
    return parts;
  }

  /** Keys under a prefix, the prefix taken off. */
  private async *scan(prefix: string): AsyncGenerator<[string, Uint8Array]> {
    // '\xff' sorts after every character our keys use after a prefix.
    for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\xff' })) yield [k.slice(prefix.length), v];
  }
}

/** Bytes of an arena's arrays (a value that does not fit what is left and is more than a quarter of one gets an array of its own). */
const ARENA_CHUNK = 16 << 10;

/**
 * The small values of one batch (state entries, record locations), encoded one after another into
 * shared arrays: LevelDB copies each value at the write, and an array per value was about a fifth
 * of what connecting a record allocated.
 */
class ValueArena {
  private chunk = new Uint8Array(0);
  private at = 0;

  bytes(v: Value): Uint8Array {
    // most values fit what is left: encodeInto sizes them once and writes them
    const start = this.at;
    const end = encodeInto(v, this.chunk, start);
    if (end >= 0) {
      this.at = end;
      return this.chunk.subarray(start, end);
    }
    const n = encodedSize(v);
    if (n < 0 || n > ARENA_CHUNK / 4) return encode(v);
    this.chunk = new Uint8Array(ARENA_CHUNK);
    this.at = encodeInto(v, this.chunk, 0);
    return this.chunk.subarray(0, this.at);
  }
}

/** Writes gathered for one atomic store write. */
export class StoreBatch {
  private readonly ops: Op[] = [];
  private readonly arena = new ValueArena();

  constructor(private readonly store: Store) {}

  get size(): number {
    return this.ops.length;
  }

  putBlock(hashHex: string, block: Block): this {
    this.ops.push({ type: 'put', key: layout.block(hashHex), value: encodeBlock(block) });
    return this;
  }

  putIndex(hashHex: string, e: StoredIndexEntry): this {
    this.ops.push({ type: 'put', key: layout.index(hashHex), value: encodeIndexEntry(e) });
    return this;
  }

  putUndo(hashHex: string, changes: readonly Change[]): this {
    this.ops.push({ type: 'put', key: layout.undo(hashHex), value: encodeUndo(changes) });
    return this;
  }

  delUndo(hashHex: string): this {
    this.ops.push({ type: 'del', key: layout.undo(hashHex) });
    return this;
  }

  /** Where each record of a main-chain block (at `height`) sits. */
  putRecords(block: Block, height: number): this {
    const records = block.records;
    for (let i = 0; i < records.length; i++) this.ops.push({ type: 'put', key: layout.record(records[i].id), value: this.arena.bytes([height, i]) });
    return this;
  }

  /** A block left the main chain: its records are no longer located. */
  delRecords(block: Block): this {
    for (const r of block.records) this.ops.push({ type: 'del', key: layout.record(r.id) });
    return this;
  }

  /** State changes, each key put or deleted as it ends up. */
  putState(changes: readonly Change[]): this {
    for (const c of changes) {
      this.ops.push(c.after === undefined ? { type: 'del', key: layout.state(c.key) } : { type: 'put', key: layout.state(c.key), value: this.arena.bytes(entryFields(c.after)) });
    }
    return this;
  }

  /** A record the pending pool accepted, kept until it is mined or dropped. */
  putPending(idHex: string, bytes: Uint8Array): this {
    this.ops.push({ type: 'put', key: layout.pending(idHex), value: bytes });
    return this;
  }

  delPending(idHex: string): this {
    this.ops.push({ type: 'del', key: layout.pending(idHex) });
    return this;
  }

  putTip(hashHex: string): this {
    this.ops.push({ type: 'put', key: layout.tip, value: fromHex(hashHex) });
    return this;
  }

  putMeta(network: string, genesisHex: string): this {
    this.ops.push({ type: 'put', key: layout.meta, value: encode([STORE_VERSION, network, genesisHex]) });
    return this;
  }

  async write(): Promise<void> {
    await this.store.write(this.ops);
    this.ops.length = 0;
  }
}

/** Whether `dir` exists and holds anything. */
function hasFiles(dir: string): boolean {
  try {
    return readdirSync(dir).length > 0;
  } catch {
    return false;
  }
}

/**
 * The one-line refusal for a store that is not what the node wrote: what is wrong, and how to
 * recover. Nothing is repaired or recreated in place, so nothing more is lost.
 */
export function damagedStore(path: string, what: string): UserError {
  return new UserError(`the chain database in ${path} is damaged: ${what}. Nothing was changed; to recover, stop the node, move ${path} away (keep it for inspection) and start again: the node syncs the chain from its peers`);
}

function encodeIndexEntry(e: StoredIndexEntry): Uint8Array {
  return encode([e.header, e.height, e.work.toString(16), e.status]);
}

function decodeIndexEntry(b: Uint8Array): StoredIndexEntry {
  const a = asArray(decode(b), 4, 'index entry');
  const status = asString(a[3], 'status', 10);
  if (status !== 'valid' && status !== 'invalid' && status !== 'stored') throw new Error(`bad block status ${status}`);
  return { header: asBytes(a[0], 'header', 80), height: asUint(a[1], 'height'), work: BigInt('0x' + asString(a[2], 'work', 70)), status };
}
