// The miner: keeps block templates on the tip and searches their nonces, in a pool of worker
// threads (miner-pool.ts) with the SIMD hasher, so SIP, p2p and the API never wait on hashing.
//
// A template is dropped and rebuilt as soon as it goes stale: a new tip, a change in the pending
// records, or its age (so the header time moves on). Staleness is polled every few milliseconds
// and cancels the workers' search through their shared generation counter, so a new tip restarts
// the search within milliseconds. When a template's whole nonce space is searched without a
// block, the next template carries the next extra nonce (in the coinbase, so a new Merkle root).
//
// Templates so easy that the pool's round trip would cost more than the hashing (regtest, test
// chains) are searched on the event loop instead, in slices.
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import { encodeHeader } from '../core/block.ts';
import { compactToTarget, targetToBytesLE, workFromTarget } from '../consensus/pow.ts';
import { createHeaderScanner, type HeaderScanner } from './wasm-hasher.ts';
import { FULL_RANGE, MinerPool, type PoolSearch } from './miner-pool.ts';
import type { Block } from '../core/block.ts';
import type { Mempool } from '../core/mempool.ts';
import type { Chain, ProcessResult } from '../consensus/chain.ts';
import { blockTemplate, templateBlock, type Template } from './template.ts';

const NONCE_SPACE = 0x1_0000_0000;
const TEMPLATE_MAX_AGE_MS = 2000;
/** how often the template's staleness is checked while the workers search */
const STALE_POLL_MS = 5;
/** templates expecting fewer hashes than this are searched on the event loop */
const INLINE_WORK = 1n << 16n;
/** nonces per event-loop slice when hashing on the event loop (a few milliseconds) */
const SLICE = 1 << 14;
const RATE_SAMPLE_MS = 1000;
const RATE_REPORT_MS = 30_000;
/** the first report comes this soon after mining starts */
const FIRST_REPORT_MS = 5_000;
const ERROR_BACKOFF_MS = 250;

/**
 * What the miner mines on: a tip and a set of pending records that change (either makes the
 * current template stale), the templates built on them, and where found blocks go. A chain and
 * its pending pool provide it (chainWork); tests give the miner templates of their own.
 */
export interface MiningWork {
  /** the tip: a new object whenever the tip moves */
  tip(): object;
  /** a number that changes whenever the pending records do */
  version(): number;
  template(rewardAddress: Uint8Array, extraNonce: Uint8Array): Template;
  submit(block: Block): Promise<ProcessResult>;
}

/** Mining on a chain's tip with the records of its pending pool. */
export function chainWork(chain: Chain, pool: Mempool): MiningWork {
  return {
    tip: () => chain.tip,
    version: () => pool.version,
    template: (reward, extra) => blockTemplate(chain, pool, reward, extra),
    submit: (block) => chain.processBlock(block),
  };
}

export class MinerStoppedError extends Error {
  constructor() {
    super('the miner was stopped');
    this.name = 'MinerStoppedError';
  }
}

export interface MinerEvents {
  onBlock?: (r: ProcessResult, height: number) => void;
  /** this node's hash rate, every 30 s while mining */
  onHashrate?: (hashesPerSecond: number, threads: number) => void;
  /** the worker pool failed (the miner carries on hashing on the event loop), or a template or
   * block did (the miner tries again) */
  onError?: (err: Error) => void;
  /** something works, but not as well as it should (the workers fell back to loading TypeScript) */
  onWarning?: (message: string) => void;
}

export interface MinerOptions {
  /** worker threads (default 1); 0 hashes on the event loop only */
  threads?: number;
  /** nonces searched per template before the extra nonce rolls over (default 2^32) */
  nonceSpace?: number;
  /** a template older than this is rebuilt, so the header time keeps up (default 2 s) */
  templateMaxAgeMs?: number;
}

export class Miner {
  readonly threads: number;
  private readonly nonceSpace: number;
  private readonly templateMaxAgeMs: number;
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private extra = 0;
  private pool?: MinerPool;
  private poolFailed = false;
  private scanner?: HeaderScanner;
  /** bumped by stop(): searches and mineBlocks calls of an earlier epoch give up */
  private epoch = 0;
  /** mineBlocks calls in progress: the background loop yields to them */
  private exclusive = 0;
  private exclusiveDone: Promise<void> = Promise.resolve();
  private releaseExclusive: () => void = () => {};
  private lock: Promise<void> = Promise.resolve();
  private searching = 0;
  private currentSearch?: PoolSearch;

  private inlineHashes = 0;
  private rateTimer?: NodeJS.Timeout;
  private lastSample = 0;
  private lastReport = 0;
  /** hashes per second over the last second (0 when not mining) */
  hashrate = 0;
  /** nonces found by each search path: the worker pool, and the event loop (easy templates, or after the pool failed) */
  readonly found = { pool: 0, eventLoop: 0 };

  constructor(
    private readonly work: MiningWork,
    private readonly rewardAddress: Uint8Array,
    private readonly events: MinerEvents = {},
    opts: MinerOptions = {},
  ) {
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 0) throw new RangeError(`miner threads must be a whole number, got ${threads}`);
    const space = opts.nonceSpace ?? NONCE_SPACE;
    if (!Number.isInteger(space) || space < 1 || space > NONCE_SPACE) throw new RangeError(`nonce space must be 1..2^32, got ${space}`);
    this.threads = threads;
    this.nonceSpace = space;
    this.templateMaxAgeMs = opts.templateMaxAgeMs ?? TEMPLATE_MAX_AGE_MS;
  }

  get mining(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  /** Stops mining (the background loop and any mineBlocks call) and the worker threads. */
  async stop(): Promise<void> {
    this.running = false;
    this.epoch++;
    this.currentSearch?.cancel();
    // Closing the pool first ends its search at once, even one still waiting for a worker
    // thread to start; the loop and mineBlocks then see the new epoch and return.
    await this.closePool();
    await this.loopDone;
    await this.lock;
    await this.closePool();
    this.hashrate = 0;
  }

  /** Mines `n` blocks on the tip right now (development networks and tests). */
  async mineBlocks(n: number): Promise<ProcessResult[]> {
    const epoch = this.epoch;
    const out: ProcessResult[] = [];
    if (this.exclusive++ === 0) this.exclusiveDone = new Promise((r) => (this.releaseExclusive = r));
    // The background loop's search sees `exclusive` and ends; its lock is then free.
    this.currentSearch?.cancel();
    try {
      for (let i = 0; i < n; i++) {
        let r: ProcessResult | undefined;
        while (r === undefined) {
          if (this.epoch !== epoch) throw new MinerStoppedError();
          r = await this.withLock(() => this.mineOne(() => this.epoch === epoch));
        }
        out.push(r);
      }
    } finally {
      if (--this.exclusive === 0) this.releaseExclusive();
    }
    return out;
  }

  private async loop(): Promise<void> {
    const epoch = this.epoch;
    while (this.running && this.epoch === epoch) {
      if (this.exclusive > 0) {
        await this.exclusiveDone;
        continue;
      }
      try {
        await this.withLock(async () => {
          const tip = this.work.tip();
          const version = this.work.version();
          const built = Date.now();
          await this.mineOne(
            () =>
              this.running &&
              this.epoch === epoch &&
              this.exclusive === 0 &&
              this.work.tip() === tip &&
              this.work.version() === version &&
              Date.now() - built < this.templateMaxAgeMs,
          );
        });
      } catch (e) {
        // A template or block that fails (a store error, say) must not end mining for good,
        // nor spin: report it and try again shortly.
        this.events.onError?.(e as Error);
        await sleep(ERROR_BACKOFF_MS);
      }
    }
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.lock;
    let release!: () => void;
    this.lock = new Promise((r) => (release = r));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** One template: searched until a block is found and processed, or it goes stale or runs out. */
  private async mineOne(stillGood: () => boolean): Promise<ProcessResult | undefined> {
    const t = this.work.template(this.rewardAddress, this.nextExtraNonce());
    const nonce = await this.search(t, stillGood);
    if (nonce < 0) return undefined;
    const r = await this.work.submit(templateBlock(t, nonce));
    this.events.onBlock?.(r, t.height);
    return r;
  }

  private nextExtraNonce(): Uint8Array {
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, this.extra++ >>> 0, true);
    // Random high half: two miners paying the same address (one key on two machines) almost
    // never search the same headers.
    v.setUint32(4, (Math.random() * 0x1_0000_0000) >>> 0, true);
    return b;
  }

  /** The first nonce found for the template, or -1 if it went stale or its nonce space ran out. */
  private async search(t: Template, stillGood: () => boolean): Promise<number> {
    const header = encodeHeader(t.header);
    const target = compactToTarget(t.header.bits);
    const targetLE = targetToBytesLE(target);
    this.beginSearch();
    try {
      const inline = this.threads === 0 || this.poolFailed || workFromTarget(target) < INLINE_WORK;
      if (!inline) {
        try {
          const nonce = await this.searchPool(header, targetLE, stillGood);
          if (nonce >= 0) this.found.pool++;
          return nonce;
        } catch (e) {
          // A pool that cannot run (a worker that fails to load) must not stop a node from
          // mining: report it once and hash on the event loop from now on.
          this.poolFailed = true;
          await this.closePool().catch(() => undefined);
          this.events.onError?.(e as Error);
        }
      }
      const nonce = await this.searchInline(header, targetLE, stillGood);
      if (nonce >= 0) this.found.eventLoop++;
      return nonce;
    } finally {
      this.endSearch();
    }
  }

  private async closePool(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  private async searchPool(header: Uint8Array, targetLE: Uint8Array, stillGood: () => boolean): Promise<number> {
    // Checked before the pool is (re)created, so a search that comes after stop() leaves no
    // threads behind.
    if (!stillGood()) return -1;
    this.pool ??= new MinerPool(this.threads, (m) => this.events.onWarning?.(m));
    const s = this.pool.search(header, targetLE, { start: FULL_RANGE.start, count: this.nonceSpace });
    this.currentSearch = s;
    const poll = setInterval(() => {
      if (!stillGood()) s.cancel();
    }, STALE_POLL_MS);
    try {
      const r = await s.result;
      return r.status === 'found' ? r.nonce : -1;
    } finally {
      clearInterval(poll);
      if (this.currentSearch === s) this.currentSearch = undefined;
    }
  }

  private async searchInline(header: Uint8Array, targetLE: Uint8Array, stillGood: () => boolean): Promise<number> {
    if (this.scanner === undefined) this.scanner = createHeaderScanner(header);
    else this.scanner.setHeader(header);
    for (let done = 0; done < this.nonceSpace; ) {
      const n = Math.min(SLICE, this.nonceSpace - done);
      const found = this.scanner.scan(done, n, targetLE);
      this.inlineHashes += found < 0 ? n : found - done + 1;
      if (found >= 0) return found;
      done += n;
      await yieldToLoop();
      if (!stillGood()) return -1;
    }
    return -1;
  }

  // Hash rate: sampled every second while any search runs, from the workers' shared counter and
  // the event-loop hashing; back to 0 as soon as nothing is being mined.
  private beginSearch(): void {
    if (this.searching++ > 0) return;
    if (this.rateTimer === undefined) {
      this.lastSample = performance.now();
      this.lastReport = this.lastSample - RATE_REPORT_MS + FIRST_REPORT_MS;
      this.pool?.drainHashes();
      this.inlineHashes = 0;
      this.rateTimer = setInterval(() => this.sample(), RATE_SAMPLE_MS);
      this.rateTimer.unref();
    }
  }

  private endSearch(): void {
    if (--this.searching > 0) return;
    // Between templates (a block being processed) the timer keeps running; it stops below
    // once nothing is mined any more.
    queueMicrotask(() => {
      if (this.searching === 0 && !this.running && this.exclusive === 0) this.stopSampling();
    });
  }

  private stopSampling(): void {
    clearInterval(this.rateTimer);
    this.rateTimer = undefined;
    this.hashrate = 0;
  }

  private sample(): void {
    const now = performance.now();
    const hashes = this.inlineHashes + (this.pool?.drainHashes() ?? 0);
    this.inlineHashes = 0;
    this.hashrate = Math.round((hashes * 1000) / (now - this.lastSample));
    this.lastSample = now;
    if (!this.running && this.exclusive === 0 && this.searching === 0) {
      this.stopSampling();
      return;
    }
    if (now - this.lastReport >= RATE_REPORT_MS) {
      this.lastReport = now;
      this.events.onHashrate?.(this.hashrate, this.pool?.threads ?? 0);
    }
  }
}
