// Persistent storage on LevelDB (classic-level). Key space, all string keys with one-letter prefixes:
//   B<hash>  block bytes            H<hash>  index entry [header, height, work hex, status]
//   U<hash>  undo data              S<key>   state entry (see state.ts keys)
//   R<id>    [block hash, position] for records on the main chain
//   T        main-chain tip hash    V        [store version, network, genesis hash]
// A connected block (or a run of them, or a whole reorganisation) is one atomic batch of all of
// these, a block on the tip together with its own B and H entries, so a process killed at any
// moment leaves either the old tip with its state or the new one.
import { ClassicLevel } from 'classic-level';
import { UserError } from './errors.ts';
import { encode, decode, asArray, asUint, asString, asBytes } from './encoding.ts';

export const STORE_VERSION = 1;

export type BlockStatus = 'valid' | 'invalid' | 'stored';

export interface StoredIndexEntry {
  header: Uint8Array;
  height: number;
  work: bigint;
  status: BlockStatus;
}

export type Op = { type: 'put'; key: string; value: Uint8Array } | { type: 'del'; key: string };

export class Store {
  readonly db: ClassicLevel<string, Uint8Array>;
  private constructor(readonly path: string) {
    this.db = new ClassicLevel<string, Uint8Array>(path, { keyEncoding: 'utf8', valueEncoding: 'view' });
  }

  /** Opens the store; LevelDB's LOCK file keeps a second process out, which we report plainly. */
  static async open(path: string): Promise<Store> {
    const s = new Store(path);
    try {
      await s.db.open();
    } catch (e) {
      const cause = (e as { cause?: { message?: string } }).cause?.message ?? (e as Error).message;
      if (/lock/i.test(cause)) throw new UserError(`data directory ${path} is in use by another dots process (stop it or pass another --datadir)`);
      throw new UserError(`cannot open the database in ${path}: ${cause}`);
    }
    return s;
  }

  async close(): Promise<void> {
    await this.db.close();
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.db.get(key);
  }

  async getMany(keys: string[]): Promise<Array<Uint8Array | undefined>> {
    return this.db.getMany(keys);
  }

  async write(ops: Op[]): Promise<void> {
    if (ops.length > 0) await this.db.batch(ops);
  }

  async *range(prefix: string): AsyncGenerator<[string, Uint8Array]> {
    // '\xff' sorts after every character our keys use after a prefix.
    for await (const [k, v] of this.db.iterator({ gte: prefix, lt: prefix + '\xff' })) yield [k, v];
  }
}

export function encodeIndexEntry(e: StoredIndexEntry): Uint8Array {
  return encode([e.header, e.height, e.work.toString(16), e.status]);
}

export function decodeIndexEntry(b: Uint8Array): StoredIndexEntry {
  const a = asArray(decode(b), 4, 'index entry');
  const status = asString(a[3], 'status', 10);
  if (status !== 'valid' && status !== 'invalid' && status !== 'stored') throw new Error(`bad block status ${status}`);
  return { header: asBytes(a[0], 'header', 80), height: asUint(a[1], 'height'), work: BigInt('0x' + asString(a[2], 'work', 70)), status };
}

export function encodeMeta(network: string, genesisHash: string): Uint8Array {
  return encode([STORE_VERSION, network, genesisHash]);
}

export function decodeMeta(b: Uint8Array): { version: number; network: string; genesis: string } {
  const a = asArray(decode(b), 3, 'meta');
  return { version: asUint(a[0], 'version'), network: asString(a[1], 'network', 20), genesis: asString(a[2], 'genesis', 64) };
}
