// The chain: the block index, most-work fork choice and reorganisation through undo data. Blocks
// whose parent is unknown wait in the orphan pool (orphans.ts); signatures may be checked ahead
// on worker threads by the verifier the chain owns (sigpool.ts). All mutations run one at a time
// through a queue, and each tip change is one atomic store batch (core/store.ts): a block on the
// tip goes into the store with its connection in one write (writes bound sync speed), and
// processBlocks connects a run of them with one write.
//
// What the chain does not do: keep pending records (core/mempool.ts, which the node keeps in
// step with the 'tip' event), build block templates (mining/template.ts), or spell store keys
// (core/layout.ts, used by core/store.ts alone).
import { EventEmitter } from 'node:events';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { ValidationError, UserError } from '../core/errors.ts';
import { hashToHex, hexToHash, bytesEqual, toHex, fromHex, isHex } from '../core/hash.ts';
import { merkleRoot } from '../core/merkle.ts';
import { decodeBlock, decodeHeader, type Block, type Header } from '../core/block.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { ChainState, StateView, applyBlockRecords, commitTo, type ApplyContext } from '../core/state.ts';
import { SigCache } from '../core/sig.ts';
import { STORE_VERSION, damagedStore, type Store, type BlockStatus, type StoreBatch } from '../core/store.ts';
import { workFromBits } from './pow.ts';
import { checkBlockSanity, checkHeaderContext, medianOf, type Anchor, type ParentInfo } from './validate.ts';
import { genesisBlock } from './genesis.ts';
import { OrphanPool } from './orphans.ts';
import { MAIN_THREAD_VERIFIER, SigPool, type SignatureVerifier } from './sigpool.ts';
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
  /** blocks that joined the main chain, oldest first */
  connected: IndexEntry[];
  /** their bodies, in the same order */
  connectedBlocks: Block[];
  /** blocks that left the main chain, newest first (the order they were disconnected in) */
  disconnected: IndexEntry[];
  /** their bodies, in the same order */
  disconnectedBlocks: Block[];
}

export interface ChainOptions {
  /** clock in unix seconds; injectable so tests can check the future-time rule */
  now?: () => number;
  maxOrphans?: number;
  /**
   * worker threads that check block signatures ahead of processBlock (chain.preverify); 0 or
   * absent checks them on the main thread inside processBlock
   */
  sigWorkers?: number;
  /** where the verifier reports that its workers failed (it then leaves the checks to the main thread) */
  log?: Logger;
}

const MTP_SPAN = 11;
/** main-chain blocks whose undo data and bodies are checked at every start (a reorganisation's reach) */
const CHECK_DEPTH = 100;
/** older main-chain blocks whose bodies are checked at every start, picked at random */
const CHECK_SAMPLE = 32;

/** A block that passed the stateless and header checks, about to be connected on the tip. */
interface RunItem {
  entry: IndexEntry;
  block: Block;
}

export class Chain extends EventEmitter<{ tip: [TipChange] }> {
  readonly index = new Map<string, IndexEntry>();
  readonly main: IndexEntry[] = [];
  readonly state = new ChainState();
  /** ids of records whose signatures were verified: shared with the pending pool and the verifier */
  readonly sigs = new SigCache();
  private readonly verifier: SignatureVerifier;
  private readonly log: Logger;
  private readonly orphans: OrphanPool;
  private readonly blockCache = new Map<string, Block>();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  readonly anchor: Anchor;
  tip!: IndexEntry;

  private constructor(
    readonly store: Store,
    readonly params: NetworkParams,
    opts: ChainOptions,
  ) {
    super();
    this.now = opts.now ?? ((): number => Math.floor(Date.now() / 1000));
    this.orphans = new OrphanPool(opts.maxOrphans ?? 256);
    const workers = opts.sigWorkers ?? 0;
    this.log = opts.log ?? silentLogger;
    this.verifier = workers > 0 ? new SigPool(params.name, this.sigs, this.log, workers) : MAIN_THREAD_VERIFIER;
    this.anchor = { height: 0, parentTime: params.genesis.time - params.idealBlockTime, bits: params.powLimitBits };
  }

  static async open(store: Store, params: NetworkParams, opts: ChainOptions = {}): Promise<Chain> {
    const c = new Chain(store, params, opts);
    try {
      await c.load();
    } catch (e) {
      await c.close();
      throw e;
    }
    return c;
  }

  /** Stops the signature workers (the store is the caller's to close). */
  async close(): Promise<void> {
    await this.verifier.close();
  }

  /**
   * Checks blocks' signatures ahead of processBlock on the verifier's workers, so a syncing node
   * verifies later blocks while it connects earlier ones. Optional: processBlock checks whatever
   * this did not.
   */
  preverify(...blocks: Block[]): Promise<void> {
    return this.verifier.preverify(...blocks);
  }

  /** Waits for a preverify's promise, the main thread checking what no worker has taken yet meanwhile. */
  settle(verified: Promise<void>): Promise<void> {
    return this.verifier.settle(verified);
  }

  /** Starts the verifier's workers ahead of the blocks preverify will be given (a sync beginning). */
  warmVerifier(): Promise<void> {
    return this.verifier.warm();
  }

  get genesis(): IndexEntry {
    return this.main[0];
  }

  private async load(): Promise<void> {
    const g = genesisBlock(this.params);
    const gHex = hashToHex(g.hash);
    const path = this.store.path;
    // Whatever the store holds that does not read is damage: said in one line, nothing written.
    const reading = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      try {
        return await fn();
      } catch (e) {
        if (e instanceof UserError) throw e;
        throw damagedStore(path, `${what} does not read (${(e as Error).message})`);
      }
    };
    const meta = await reading('the network marker', () => this.store.meta());
    if (meta === undefined) {
      if ((await reading('the block index', () => this.store.tip())) !== undefined) throw damagedStore(path, 'it has a chain tip but no network marker');
      const gEntry: IndexEntry = { hash: g.hash, hex: gHex, header: g.header, headerBytes: g.headerBytes, height: 0, work: workFromBits(g.header.bits), status: 'valid', prev: null };
      const batch = this.store.batch().putBlock(gHex, g);
      this.putIndex(batch, gEntry);
      await batch.putUndo(gHex, []).putRecords(g, 0).putTip(gHex).putMeta(this.params.name, gHex).write();
    } else if (meta.network !== this.params.name || meta.genesis !== gHex) {
      throw new UserError(`data directory ${path} holds the ${meta.network} chain (genesis ${meta.genesis.slice(0, 16)}...), not ${this.params.name}: pass another --datadir`);
    } else if (meta.version !== STORE_VERSION) {
      // the records and state of an older version follow other rules: their chain cannot go on
      throw new UserError(`data directory ${path} holds a chain of store version ${meta.version}, made under rules this node no longer follows (this one writes version ${STORE_VERSION}): start a new chain with another --datadir`);
    }
    // Index: every stored header, linked to its parent.
    await reading('the block index', async () => {
      for await (const [hex, r] of this.store.indexEntries()) {
        this.index.set(hex, { hash: hexToHash(hex), hex, header: decodeHeader(r.header), headerBytes: r.header, height: r.height, work: r.work, status: r.status, prev: null });
      }
    });
    for (const e of this.index.values()) {
      if (e.height === 0) continue;
      e.prev = this.index.get(hashToHex(e.header.prev)) ?? null;
      // Only blocks with a known parent are ever stored: a missing or misplaced parent is a hole.
      if (e.prev === null || e.prev.height !== e.height - 1) throw damagedStore(path, `the block index has a hole below block ${e.height} (${e.hex})`);
    }
    const tipHex = await reading('the chain tip', () => this.store.tip());
    const tip = tipHex === undefined ? undefined : this.index.get(tipHex);
    if (tip === undefined) throw damagedStore(path, tipHex === undefined ? 'it has no chain tip' : `its chain tip ${tipHex} is not in the block index`);
    this.setMain(tip);
    if (this.main[0]?.hex !== gHex) throw damagedStore(path, 'its main chain does not lead back to the genesis block');
    for (const e of this.main) if (e.status !== 'valid') throw damagedStore(path, `main-chain block ${e.height} is marked ${e.status}`);
    await reading('the chain state', async () => {
      for await (const [k, e] of this.store.stateEntries()) this.state.map.set(k, e);
    });
    await this.checkRecentBlocks();
  }

  /**
   * The start-up check of what a reorganisation and the API will read: the undo data and bodies
   * of the last CHECK_DEPTH main-chain blocks, and the bodies of CHECK_SAMPLE older ones at
   * random, each decoding to its own hash and Merkle root with its records located where it is.
   */
  private async checkRecentBlocks(): Promise<void> {
    const path = this.store.path;
    const top = this.tip.height;
    const heights = new Set<number>();
    for (let h = Math.max(1, top - CHECK_DEPTH + 1); h <= top; h++) heights.add(h);
    const older = top - CHECK_DEPTH;
    for (let i = 0; i < CHECK_SAMPLE && older >= 1; i++) heights.add(1 + Math.floor(Math.random() * older));
    for (const h of heights) {
      const e = this.main[h];
      const where = `main-chain block ${h} (${e.hex})`;
      let block: Block;
      try {
        const bytes = await this.store.blockBytes(e.hex);
        if (bytes === undefined) throw damagedStore(path, `${where} has no body`);
        block = decodeBlock(bytes, Number.MAX_SAFE_INTEGER);
      } catch (err) {
        if (err instanceof UserError) throw err;
        throw damagedStore(path, `the body of ${where} does not read (${(err as Error).message})`);
      }
      if (!bytesEqual(block.hash, e.hash) || !bytesEqual(merkleRoot(block.records.map((r) => r.id)), block.header.merkleRoot)) throw damagedStore(path, `the body of ${where} is not that block`);
      for (let i = 0; i < block.records.length; i++) {
        const loc = await this.store.recordLocation(block.records[i].id).catch(() => undefined);
        if (loc?.height !== h || loc.index !== i) throw damagedStore(path, `the record index does not locate record ${i} of ${where}`);
      }
      if (h > top - Math.min(CHECK_DEPTH, this.params.undoDepth) && (await this.store.undo(e.hex).catch(() => undefined)) === undefined) throw damagedStore(path, `the undo data of ${where} is missing or does not read`);
    }
  }

  private putIndex(batch: StoreBatch, e: IndexEntry): StoreBatch {
    return batch.putIndex(e.hex, { header: e.headerBytes, height: e.height, work: e.work, status: e.status });
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
      this.orphans.add(hex, block);
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

    await this.putIndex(this.store.batch().putBlock(hex, block), entry).write();
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
    const batch = this.store.batch();
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
        this.putIndex(batch.putBlock(entry.hex, block), entry);
        results.push(this.invalid(entry.hex, err));
        break;
      }
      entry.status = 'valid';
      this.putIndex(batch.putBlock(entry.hex, block), entry).putUndo(entry.hex, child.list()).putRecords(block, entry.height);
      this.pruneUndo(batch, entry.height, (h) => (h <= this.tip.height ? this.main[h] : run[h - this.tip.height - 1]?.entry));
      if (child !== view) view.merge(child);
      connected.push(item);
      results.push({ status: 'connected', hex: entry.hex, height: entry.height, disconnected: 0 });
    }
    const changes = connected.length > 0 ? view.list() : [];
    batch.putState(changes);
    const last = connected.length > 0 ? connected[connected.length - 1].entry : null;
    if (last !== null) batch.putTip(last.hex);
    await batch.write();

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
      this.emit('tip', { tip: last, connected: connected.map((c) => c.entry), connectedBlocks: connected.map((c) => c.block), disconnected: [], disconnectedBlocks: [] });
    }
    for (const { entry } of connected) await this.adoptOrphans(entry.hex);
    if (failed !== null) await this.adoptOrphans(failed.entry.hex);
    return results;
  }

  private lastDisconnected = 0;

  private async adoptOrphans(parentHex: string): Promise<void> {
    for (const b of this.orphans.takeChildren(parentHex)) await this.accept(b);
  }

  private cacheBlock(hex: string, b: Block): void {
    if (this.blockCache.size >= 64) this.blockCache.delete(this.blockCache.keys().next().value as string);
    this.blockCache.set(hex, b);
  }

  async getBlock(hex: string): Promise<Block | undefined> {
    const c = this.blockCache.get(hex);
    if (c !== undefined) return c;
    const bytes = await this.store.blockBytes(hex);
    if (bytes === undefined) return undefined;
    const b = decodeBlock(bytes, Number.MAX_SAFE_INTEGER);
    this.cacheBlock(hex, b);
    return b;
  }

  async getBlockBytes(hex: string): Promise<Uint8Array | undefined> {
    return this.store.blockBytes(hex);
  }

  /** Several stored blocks' bytes, in order, in one read of the store (undefined where one is absent). */
  async getBlocksBytes(hexes: readonly string[]): Promise<Array<Uint8Array | undefined>> {
    return this.store.blocksBytes(hexes);
  }

  /** A block joined the main chain at `height`: the undo data of the one undoDepth below it goes. */
  private pruneUndo(batch: StoreBatch, height: number, mainAt: (h: number) => IndexEntry | undefined): void {
    const h = height - this.params.undoDepth;
    const old = h >= 1 ? mainAt(h) : undefined;
    if (old !== undefined) batch.delUndo(old.hex);
  }

  /**
   * The state at main-chain block `fork`, as changes to the current state: every main-chain block
   * from the first applied again to an empty state. A reorganisation deeper than the undo data
   * reaches comes here; the blocks were valid when connected, so this cannot fail on a sound store.
   */
  private async stateAt(fork: IndexEntry): Promise<StateView> {
    const built = new ChainState();
    for (let h = 1; h <= fork.height; h++) {
      const e = this.main[h];
      const block = await this.getBlock(e.hex);
      if (block === undefined) throw new Error(`store is missing the body of main-chain block ${e.hex}`);
      const v = new StateView(built);
      applyBlockRecords(v, block.records, { height: h, time: e.header.time, rules: this.params });
      commitTo(built, v.list());
      if (h % 256 === 0) await yieldToLoop();
    }
    const view = new StateView(this.state);
    for (const k of this.state.map.keys()) if (!built.map.has(k)) view.set(k, undefined);
    for (const [k, v] of built.map) if (this.state.map.get(k) !== v) view.set(k, v);
    this.log.info(`reorganisation deeper than the undo data (${this.params.undoDepth} blocks): state at height ${fork.height} rebuilt from the blocks`);
    return view;
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

    let view = new StateView(this.state);
    const batch = this.store.batch();
    const disconnected: IndexEntry[] = [];
    const disconnectedBlocks: Block[] = [];
    let undone = true;
    for (let e = oldTip; e !== fork; e = e.prev as IndexEntry) {
      const block = await this.getBlock(e.hex);
      if (block === undefined) throw new Error(`store is missing the body of main-chain block ${e.hex}`);
      // past undoDepth the undo data is gone: the state at the fork is rebuilt below instead
      const undo = undone ? await this.store.undo(e.hex) : undefined;
      if (undo === undefined) undone = false;
      else for (let i = undo.length - 1; i >= 0; i--) view.set(undo[i].key, undo[i].before);
      batch.delRecords(block).delUndo(e.hex);
      disconnected.push(e);
      disconnectedBlocks.push(block);
    }
    if (!undone) view = await this.stateAt(fork);
    // the new main chain at height h (for pruning the undo data that falls out of reach)
    const at = (h: number): IndexEntry | undefined => (h <= fork.height ? this.main[h] : branch[h - fork.height - 1]);

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
      batch.putUndo(e.hex, child.list()).putRecords(block, e.height);
      this.pruneUndo(batch, e.height, at);
      view.merge(child);
      connected.push({ entry: e, block });
      last = e;
    }

    // The failed block and everything built on it in this branch are invalid for good.
    const invalid = failure === null ? [] : branch.slice(branch.indexOf(failure.entry));
    for (const e of invalid) e.status = 'invalid';
    if (last.work <= oldTip.work) {
      const marks = this.store.batch();
      for (const e of invalid) this.putIndex(marks, e);
      await marks.write();
      return failure;
    }

    batch.putState(view.list());
    for (const { entry } of connected) {
      if (entry.status !== 'valid') {
        entry.status = 'valid';
        this.putIndex(batch, entry);
      }
    }
    batch.putTip(last.hex);
    for (const e of invalid) this.putIndex(batch, e);
    await batch.write();

    commitTo(this.state, view.list());
    this.setMain(last);
    this.lastDisconnected = disconnected.length;
    this.emit('tip', { tip: last, connected: connected.map((c) => c.entry), connectedBlocks: connected.map((c) => c.block), disconnected, disconnectedBlocks });
    return failure;
  }

  /** The main-chain block holding a record, and the record's position in it. */
  async locateRecord(idHex: string): Promise<{ entry: IndexEntry; index: number } | undefined> {
    if (!isHex(idHex, 32)) return undefined;
    const loc = await this.store.recordLocation(fromHex(idHex));
    // located by height: a location is only ever written for the main chain, and rewritten when
    // a reorganisation changes which block is at that height
    const entry = loc === undefined ? undefined : this.main[loc.height];
    return entry === undefined || loc === undefined ? undefined : { entry, index: loc.index };
  }

  byHeight(h: number): IndexEntry | undefined {
    return this.main[h];
  }

  isMain(e: IndexEntry): boolean {
    return this.main[e.height] === e;
  }
}
