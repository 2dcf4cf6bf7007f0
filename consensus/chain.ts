// The chain: block index, most-work fork choice, reorganisation through undo data, the orphan
// pool, and the pending-record pool kept consistent with the tip. All mutations run one at a
// time through a queue, and each tip change is one atomic store batch (see core/store.ts): a
// block on the tip goes into the store with its connection in one write (writes bound sync
// speed), and processBlocks connects a run of them with one write.
import { EventEmitter } from 'node:events';
import { ValidationError } from '../core/errors.ts';
import { toHex, fromHex, hashToHex, hexToHash, bytesEqual } from '../core/hash.ts';
import { encode, decode, asArray, asBytes, asUint } from '../core/encoding.ts';
import { decodeBlock, encodeBlock, makeBlock, type Block, type Header } from '../core/block.ts';
import { decodeHeader } from '../core/block.ts';
import { merkleRoot, inclusionProof } from '../core/merkle.ts';
import { Kind, makeRec, type Rec } from '../core/records.ts';
import {
  ChainState,
  StateView,
  applyBlockRecords,
  commitTo,
  decodeEntry,
  decodeUndo,
  encodeEntry,
  encodeUndo,
  type ApplyContext,
} from '../core/state.ts';
import { Mempool } from '../core/mempool.ts';
import { SigCache } from '../core/sig.ts';
import { Store, decodeIndexEntry, encodeIndexEntry, encodeMeta, decodeMeta, type BlockStatus, type Op } from '../core/store.ts';
import { UserError } from '../core/errors.ts';
import { workFromBits } from './pow.ts';
import { checkBlockSanity, checkHeaderContext, medianOf, nextBits, type Anchor, type ParentInfo } from './validate.ts';
import { genesisBlock } from './genesis.ts';
import type { NetworkParams } from './params.ts';

export interface IndexEntry {
  hash: Uint8Array;
  hex: string;
  header: Header;
  headerBytes: Uint8Array;
  height: number;
  work: bigint;
  status: BlockStatus;
  prev: IndexEntry | null;
}

export type ProcessResult =
  | { status: 'connected'; hex: string; height: number; disconnected: number }
  | { status: 'side'; hex: string; height: number }
  | { status: 'orphan'; hex: string; code: 'unknown-parent'; message: string }
  | { status: 'duplicate'; hex: string }
  | { status: 'invalid'; hex: string; code: string; message: string };

export interface TipChange {
  tip: IndexEntry;
  connected: IndexEntry[];
  disconnected: IndexEntry[];
}

export interface ChainOptions {
  /** clock in unix seconds; injectable so tests can check the future-time rule */
  now?: () => number;
  maxOrphans?: number;
}

export interface Template {
  header: Header;
  records: Rec[];
  height: number;
  fees: number;
}

const MTP_SPAN = 11;

/** A block that passed the stateless and header checks, about to be connected on the tip. */
interface RunItem {
  entry: IndexEntry;
  block: Block;
}

export class Chain extends EventEmitter<{ tip: [TipChange]; record: [Rec] }> {
  readonly index = new Map<string, IndexEntry>();
  readonly main: IndexEntry[] = [];
  readonly state = new ChainState();
  readonly sigs = new SigCache();
  readonly pool: Mempool;
  private readonly orphans = new Map<string, Block>();
  /** orphan hashes by the hash of their missing parent, so connecting a block finds its waiting children without a scan */
  private readonly orphansByParent = new Map<string, Set<string>>();
  private readonly blockCache = new Map<string, Block>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  private readonly maxOrphans: number;
  readonly anchor: Anchor;
  tip!: IndexEntry;

  private constructor(
    readonly store: Store,
    readonly params: NetworkParams,
    opts: ChainOptions,
  ) {
    super();
    this.now = opts.now ?? ((): number => Math.floor(Date.now() / 1000));
    this.maxOrphans = opts.maxOrphans ?? 256;
    this.pool = new Mempool(params.name, this.sigs);
    this.anchor = { height: 0, parentTime: params.genesis.time - params.idealBlockTime, bits: params.powLimitBits };
  }

  static async open(store: Store, params: NetworkParams, opts: ChainOptions = {}): Promise<Chain> {
    const c = new Chain(store, params, opts);
    await c.load();
    return c;
  }

  get genesis(): IndexEntry {
    return this.main[0];
  }

  private async load(): Promise<void> {
    const g = genesisBlock(this.params);
    const gHex = hashToHex(g.hash);
    const meta = await this.store.get('V');
    if (meta === undefined) {
      const gEntry: IndexEntry = { hash: g.hash, hex: gHex, header: g.header, headerBytes: g.headerBytes, height: 0, work: workFromBits(g.header.bits), status: 'valid', prev: null };
      await this.store.write([
        { type: 'put', key: 'B' + gHex, value: encodeBlock(g) },
        { type: 'put', key: 'H' + gHex, value: this.encodeEntry(gEntry) },
        { type: 'put', key: 'U' + gHex, value: encodeUndo([]) },
        { type: 'put', key: 'R' + toHex(g.records[0].id), value: encode([g.hash, 0]) },
        { type: 'put', key: 'T', value: fromHex(gHex) },
        { type: 'put', key: 'V', value: encodeMeta(this.params.name, gHex) },
      ]);
    } else {
      const m = decodeMeta(meta);
      if (m.network !== this.params.name || m.genesis !== gHex) {
        throw new UserError(`data directory ${this.store.path} holds the ${m.network} chain (genesis ${m.genesis.slice(0, 16)}...), not ${this.params.name}: pass another --datadir`);
      }
    }
    // Index: every stored header, linked to its parent.
    const raw = new Map<string, ReturnType<typeof decodeIndexEntry>>();
    for await (const [k, v] of this.store.range('H')) raw.set(k.slice(1), decodeIndexEntry(v));
    const link = (hex: string): IndexEntry | null => {
      const existing = this.index.get(hex);
      if (existing !== undefined) return existing;
      const r = raw.get(hex);
      if (r === undefined) return null;
      const header = decodeHeader(r.header);
      const entry: IndexEntry = { hash: hexToHash(hex), hex, header, headerBytes: r.header, height: r.height, work: r.work, status: r.status, prev: null };
      this.index.set(hex, entry);
      return entry;
    };
    for (const hex of raw.keys()) link(hex);
    for (const e of this.index.values()) if (e.height > 0) e.prev = this.index.get(hashToHex(e.header.prev)) ?? null;
    const tipBytes = await this.store.get('T');
    const tip = tipBytes === undefined ? undefined : this.index.get(toHex(tipBytes));
    if (tip === undefined) throw new UserError(`data directory ${this.store.path} is damaged: no chain tip`);
    this.setMain(tip);
    for await (const [k, v] of this.store.range('S')) this.state.map.set(k.slice(1), decodeEntry(k.slice(1), v));
  }

  private encodeEntry(e: IndexEntry): Uint8Array {
    return encodeIndexEntry({ header: e.headerBytes, height: e.height, work: e.work, status: e.status });
  }

  private setMain(tip: IndexEntry): void {
    this.tip = tip;
    this.main.length = tip.height + 1;
    for (let e: IndexEntry | null = tip; e !== null && this.main[e.height] !== e; e = e.prev) this.main[e.height] = e;
  }

  /** Runs mutations one after another, so block processing never interleaves. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  clock(): number {
    return this.now();
  }

  parentInfo(parent: IndexEntry): ParentInfo {
    const times: number[] = [];
    for (let e: IndexEntry | null = parent; e !== null && times.length < MTP_SPAN; e = e.prev) times.push(e.header.time);
    return { height: parent.height, time: parent.header.time, bits: parent.header.bits, medianTimePast: medianOf(times) };
  }

  /** Context for checking a record that would go into the next block. */
  nextContext(): ApplyContext {
    return { height: this.tip.height + 1, time: Math.max(this.now(), this.parentInfo(this.tip).medianTimePast + 1), rules: this.params };
  }

  processBlock(block: Block): Promise<ProcessResult> {
    return this.serial(() => this.accept(block));
  }

  /**
   * Processes blocks in order with the same checks and results as processBlock on each, but a
   * run of blocks that extend the tip one after another is connected with a single store batch
   * (one tip change, one 'tip' event): the fast path for sync. Processing stops after the first
   * invalid block, so the results hold one entry per block up to and including it (the valid
   * blocks before it stay connected) and none for the blocks after it. The caller bounds the
   * number of blocks: a run's state changes are held in memory until its batch is written.
   */
  processBlocks(blocks: readonly Block[]): Promise<ProcessResult[]> {
    return this.serial(() => this.acceptMany(blocks));
  }

  /** Validates a record against the tip and adds it to the pending pool (throws ValidationError). */
  submitRecord(rec: Rec): Promise<void> {
    return this.serial(async () => {
      this.pool.add(rec, this.state, this.nextContext());
      this.emit('record', rec);
    });
  }

  private invalid(hex: string, e: ValidationError): ProcessResult {
    return { status: 'invalid', hex, code: e.code, message: e.message };
  }

  /** Stage 1 and 2 of validation against a known parent; the error, or null when the block passes. */
  private checkStateless(block: Block, parent: IndexEntry): ValidationError | null {
    try {
      checkBlockSanity(block, this.params, this.sigs);
      checkHeaderContext(block.header, this.parentInfo(parent), this.anchor, this.params, this.now());
      return null;
    } catch (e) {
      if (e instanceof ValidationError) return e;
      throw e;
    }
  }

  private newEntry(block: Block, hex: string, parent: IndexEntry): IndexEntry {
    return {
      hash: block.hash,
      hex,
      header: block.header,
      headerBytes: block.headerBytes,
      height: parent.height + 1,
      work: parent.work + workFromBits(block.header.bits),
      status: 'stored',
      prev: parent,
    };
  }

  private async accept(block: Block): Promise<ProcessResult> {
    const hex = hashToHex(block.hash);
    const known = this.index.get(hex);
    if (known !== undefined) {
      return known.status === 'invalid' ? { status: 'invalid', hex, code: 'known-invalid', message: 'block was found invalid before' } : { status: 'duplicate', hex };
    }
    if (this.orphans.has(hex)) return { status: 'duplicate', hex };
    try {
      checkBlockSanity(block, this.params, this.sigs);
    } catch (e) {
      if (e instanceof ValidationError) return this.invalid(hex, e);
      throw e;
    }
    const prevHex = hashToHex(block.header.prev);
    const parent = this.index.get(prevHex);
    if (parent === undefined) {
      this.addOrphan(hex, prevHex, block);
      return { status: 'orphan', hex, code: 'unknown-parent', message: `parent ${prevHex} is unknown` };
    }
    if (parent.status === 'invalid') return { status: 'invalid', hex, code: 'bad-parent', message: 'block builds on an invalid block' };
    try {
      checkHeaderContext(block.header, this.parentInfo(parent), this.anchor, this.params, this.now());
    } catch (e) {
      if (e instanceof ValidationError) return this.invalid(hex, e);
      throw e;
    }
    const entry = this.newEntry(block, hex, parent);
    // The common case, a block on the tip: stored and connected in one batch (extendTip also
    // adopts the orphans waiting for it).
    if (parent === this.tip) return (await this.extendTip([{ entry, block }]))[0];

    await this.store.write([
      { type: 'put', key: 'B' + hex, value: encodeBlock(block) },
      { type: 'put', key: 'H' + hex, value: this.encodeEntry(entry) },
    ]);
    this.index.set(hex, entry);
    this.cacheBlock(hex, block);
    let result: ProcessResult = { status: 'side', hex, height: entry.height };
    if (entry.work > this.tip.work) {
      const failure = await this.reorganize(entry);
      if (failure !== null && (failure.entry === entry || entry.status === 'invalid')) {
        result = this.invalid(hex, failure.error);
      } else if (this.tip === entry) {
        result = { status: 'connected', hex, height: entry.height, disconnected: this.lastDisconnected };
      }
    }
    await this.adoptOrphans(hex);
    return result;
  }

  private async acceptMany(blocks: readonly Block[]): Promise<ProcessResult[]> {
    const results: ProcessResult[] = [];
    let run: RunItem[] = [];
    // Connects the run gathered so far; false when it ended in an invalid block.
    const flush = async (): Promise<boolean> => {
      if (run.length === 0) return true;
      const r = await this.extendTip(run);
      run = [];
      results.push(...r);
      return r[r.length - 1].status !== 'invalid';
    };
    for (const block of blocks) {
      const runTip = run.length > 0 ? run[run.length - 1].entry : this.tip;
      const hex = hashToHex(block.hash);
      if (!bytesEqual(block.header.prev, runTip.hash) || this.index.has(hex) || this.orphans.has(hex)) {
        // Not the next block of the run (a duplicate, a side block, an orphan): the general path.
        if (!(await flush())) return results;
        const r = await this.accept(block);
        results.push(r);
        if (r.status === 'invalid') return results;
        continue;
      }
      // The same checks in the same order as accept(), against the run's tip as the parent.
      const bad = this.checkStateless(block, runTip);
      if (bad !== null) {
        if (await flush()) results.push(this.invalid(hex, bad));
        return results;
      }
      run.push({ entry: this.newEntry(block, hex, runTip), block });
    }
    await flush();
    return results;
  }

  /**
   * Connects a run of blocks on the tip, each child of the one before and the first a child of
   * the tip, all in one store batch with their bodies and index entries. State checks go block
   * by block; at the first failure that block is stored as invalid (in the same batch) and the
   * run ends there, the valid blocks before it connected. One result per block up to the failure.
   */
  private async extendTip(run: RunItem[]): Promise<ProcessResult[]> {
    const view = new StateView(this.state);
    const ops: Op[] = [];
    const results: ProcessResult[] = [];
    const connected: RunItem[] = [];
    let failed: RunItem | null = null;
    for (const item of run) {
      const { entry, block } = item;
      // A lone block needs no child view: on failure the whole view is dropped anyway.
      const child = run.length === 1 ? view : view.child();
      try {
        applyBlockRecords(child, block.records, { height: entry.height, time: entry.header.time, rules: this.params });
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        failed = item;
        entry.status = 'invalid';
        ops.push({ type: 'put', key: 'B' + entry.hex, value: encodeBlock(block) }, { type: 'put', key: 'H' + entry.hex, value: this.encodeEntry(entry) });
        results.push(this.invalid(entry.hex, err));
        break;
      }
      entry.status = 'valid';
      ops.push(
        { type: 'put', key: 'B' + entry.hex, value: encodeBlock(block) },
        { type: 'put', key: 'H' + entry.hex, value: this.encodeEntry(entry) },
        { type: 'put', key: 'U' + entry.hex, value: encodeUndo(child.list()) },
      );
      const records = block.records;
      for (let i = 0; i < records.length; i++) ops.push({ type: 'put', key: 'R' + toHex(records[i].id), value: encode([entry.hash, i]) });
      if (child !== view) view.merge(child);
      connected.push(item);
      results.push({ status: 'connected', hex: entry.hex, height: entry.height, disconnected: 0 });
    }
    const changes = connected.length > 0 ? view.list() : [];
    for (const c of changes) {
      ops.push(c.after === undefined ? { type: 'del', key: 'S' + c.key } : { type: 'put', key: 'S' + c.key, value: encodeEntry(c.after) });
    }
    const last = connected.length > 0 ? connected[connected.length - 1].entry : null;
    if (last !== null) ops.push({ type: 'put', key: 'T', value: fromHex(last.hex) });
    await this.store.write(ops);

    for (const { entry, block } of connected) {
      this.index.set(entry.hex, entry);
      this.cacheBlock(entry.hex, block);
    }
    if (failed !== null) {
      this.index.set(failed.entry.hex, failed.entry);
      this.cacheBlock(failed.entry.hex, failed.block);
    }
    if (last !== null) {
      commitTo(this.state, changes);
      this.setMain(last);
      this.lastDisconnected = 0;
      // Pool: mined records leave it; what is left is checked once against the new tip.
      for (const { block } of connected) for (const r of block.records) this.pool.remove(toHex(r.id));
      this.pool.revalidate(this.state, this.nextContext());
      this.emit('tip', { tip: last, connected: connected.map((c) => c.entry), disconnected: [] });
    }
    for (const { entry } of connected) await this.adoptOrphans(entry.hex);
    if (failed !== null) await this.adoptOrphans(failed.entry.hex);
    return results;
  }

  private lastDisconnected = 0;

  private addOrphan(hex: string, prevHex: string, block: Block): void {
    if (this.orphans.size >= this.maxOrphans) {
      // Oldest out first: an attacker filling the pool only evicts its own junk over time.
      const oldest = this.orphans.keys().next().value as string;
      this.dropOrphan(oldest);
    }
    this.orphans.set(hex, block);
    let siblings = this.orphansByParent.get(prevHex);
    if (siblings === undefined) this.orphansByParent.set(prevHex, (siblings = new Set()));
    siblings.add(hex);
  }

  private dropOrphan(hex: string): Block | undefined {
    const b = this.orphans.get(hex);
    if (b === undefined) return undefined;
    this.orphans.delete(hex);
    const prevHex = hashToHex(b.header.prev);
    const siblings = this.orphansByParent.get(prevHex);
    siblings?.delete(hex);
    if (siblings?.size === 0) this.orphansByParent.delete(prevHex);
    return b;
  }

  /** Hashes of orphans, for asking peers for their missing parents. */
  orphanParents(): string[] {
    return [...this.orphansByParent.keys()].filter((h) => !this.index.has(h) && !this.orphans.has(h));
  }

  private async adoptOrphans(parentHex: string): Promise<void> {
    const children = this.orphansByParent.get(parentHex);
    if (children === undefined) return;
    for (const hex of [...children]) {
      const b = this.dropOrphan(hex);
      if (b !== undefined) await this.accept(b);
    }
  }

  private cacheBlock(hex: string, b: Block): void {
    if (this.blockCache.size >= 64) this.blockCache.delete(this.blockCache.keys().next().value as string);
    this.blockCache.set(hex, b);
  }

  async getBlock(hex: string): Promise<Block | undefined> {
    const c = this.blockCache.get(hex);
    if (c !== undefined) return c;
    const bytes = await this.store.get('B' + hex);
    if (bytes === undefined) return undefined;
    const b = decodeBlock(bytes, Number.MAX_SAFE_INTEGER);
    this.cacheBlock(hex, b);
    return b;
  }

  async getBlockBytes(hex: string): Promise<Uint8Array | undefined> {
    return this.store.get('B' + hex);
  }

  /**
   * Switches the main chain to `target` (which has more work than the tip): disconnects back to
   * the fork point through undo data, connects the new branch with full state checks, and writes
   * it all in one batch. If a branch block is invalid it is marked so, and the chain moves to the
   * valid part of the branch only if that still has more work than the old tip.
   */
  private async reorganize(target: IndexEntry): Promise<{ entry: IndexEntry; error: ValidationError } | null> {
    const oldTip = this.tip;
    const branch: IndexEntry[] = [];
    let fork: IndexEntry | null = target;
    while (fork !== null && this.main[fork.height] !== fork) {
      branch.push(fork);
      fork = fork.prev;
    }
    if (fork === null) throw new Error('reorganize: no common ancestor with the main chain');
    branch.reverse();

    const view = new StateView(this.state);
    const ops: Op[] = [];
    const returned: Rec[] = [];
    const disconnected: IndexEntry[] = [];
    for (let e = oldTip; e !== fork; e = e.prev as IndexEntry) {
      const undoBytes = await this.store.get('U' + e.hex);
      const block = await this.getBlock(e.hex);
      if (undoBytes === undefined || block === undefined) throw new Error(`store is missing undo data or body of main-chain block ${e.hex}`);
      const undo = decodeUndo(undoBytes);
      for (let i = undo.length - 1; i >= 0; i--) view.set(undo[i].key, undo[i].before);
      for (const r of block.records) ops.push({ type: 'del', key: 'R' + toHex(r.id) });
      for (let i = block.records.length - 1; i >= 1; i--) returned.unshift(block.records[i]);
      ops.push({ type: 'del', key: 'U' + e.hex });
      disconnected.push(e);
    }

    let last = fork;
    const connected: Array<{ entry: IndexEntry; block: Block }> = [];
    let failure: { entry: IndexEntry; error: ValidationError } | null = null;
    for (const e of branch) {
      const block = await this.getBlock(e.hex);
      if (block === undefined) break;
      const child = view.child();
      try {
        applyBlockRecords(child, block.records, { height: e.height, time: e.header.time, rules: this.params });
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        failure = { entry: e, error: err };
        break;
      }
      ops.push({ type: 'put', key: 'U' + e.hex, value: encodeUndo(child.list()) });
      block.records.forEach((r, i) => ops.push({ type: 'put', key: 'R' + toHex(r.id), value: encode([e.hash, i]) }));
      view.merge(child);
      connected.push({ entry: e, block });
      last = e;
    }

    const invalidOps: Op[] = [];
    if (failure !== null) {
      // The failed block and everything built on it in this branch are invalid for good.
      for (const e of branch.slice(branch.indexOf(failure.entry))) {
        e.status = 'invalid';
        invalidOps.push({ type: 'put', key: 'H' + e.hex, value: this.encodeEntry(e) });
      }
    }
    if (last.work <= oldTip.work) {
      await this.store.write(invalidOps);
      return failure;
    }

    for (const c of view.list()) {
      ops.push(c.after === undefined ? { type: 'del', key: 'S' + c.key } : { type: 'put', key: 'S' + c.key, value: encodeEntry(c.after) });
    }
    for (const { entry } of connected) {
      if (entry.status !== 'valid') {
        entry.status = 'valid';
        ops.push({ type: 'put', key: 'H' + entry.hex, value: this.encodeEntry(entry) });
      }
    }
    ops.push({ type: 'put', key: 'T', value: fromHex(last.hex) }, ...invalidOps);
    await this.store.write(ops);

    commitTo(this.state, view.list());
    this.setMain(last);
    this.lastDisconnected = disconnected.length;

    // Pool: mined records leave it, records of disconnected blocks come back if still valid.
    for (const { block } of connected) for (const r of block.records) this.pool.remove(toHex(r.id));
    const ctx = this.nextContext();
    this.pool.revalidate(this.state, ctx);
    for (const r of returned) {
      const hex = toHex(r.id);
      // A record the new branch also confirmed fails its own replay rule (nonce, sequence, commitment) here.
      if (this.pool.has(hex)) continue;
      try {
        this.pool.add(r, this.state, ctx);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
      }
    }
    this.emit('tip', { tip: last, connected: connected.map((c) => c.entry), disconnected });
    return failure;
  }

  /** Where a record is confirmed on the main chain, with its Merkle inclusion proof. */
  async findRecord(idHex: string): Promise<{ rec: Rec; entry: IndexEntry; index: number; proof: Uint8Array[]; root: Uint8Array; count: number } | undefined> {
    const loc = await this.store.get('R' + idHex);
    if (loc === undefined) return undefined;
    const a = asArray(decode(loc), 2, 'record location');
    const entry = this.index.get(hashToHex(asBytes(a[0], 'block')));
    const index = asUint(a[1], 'index');
    if (entry === undefined) return undefined;
    const block = await this.getBlock(entry.hex);
    if (block === undefined) return undefined;
    const ids = block.records.map((r) => r.id);
    return { rec: block.records[index], entry, index, proof: inclusionProof(ids, index), root: block.header.merkleRoot, count: ids.length };
  }

  /** A block template on the tip: coinbase paying `rewardAddress`, then pending records. */
  template(rewardAddress: Uint8Array, extraNonce: Uint8Array): Template {
    const parent = this.tip;
    const ctx = this.nextContext();
    const { recs, fees } = this.pool.select(this.state, ctx, this.params.maxBlockBytes - 512, this.params.maxBlockRecords - 1);
    const coinbase = makeRec({
      kind: Kind.Coinbase,
      height: ctx.height,
      rewardAddress,
      amount: this.params.subsidy(ctx.height) + fees,
      extraNonce,
      note: '',
    });
    const records = [coinbase, ...recs];
    const header: Header = {
      version: 1,
      prev: parent.hash,
      merkleRoot: merkleRoot(records.map((r) => r.id)),
      time: ctx.time,
      bits: nextBits(this.params, this.anchor, { height: parent.height, time: parent.header.time }),
      nonce: 0,
    };
    return { header, records, height: ctx.height, fees };
  }

  makeBlock(t: Template, nonce: number): Block {
    return makeBlock({ ...t.header, nonce }, t.records);
  }

  byHeight(h: number): IndexEntry | undefined {
    return this.main[h];
  }

  isMain(e: IndexEntry): boolean {
    return this.main[e.height] === e;
  }
}
