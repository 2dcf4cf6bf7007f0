// The mining worker pool: N Piscina threads searching one header's nonce range together.
// One search runs at a time; starting another cancels the one before. A search hands every
// worker the same task, and the workers claim chunks of the range from a shared cursor (see
// miner-worker.ts), so the split across threads needs no coordination beyond one atomic add.
import { Piscina } from 'piscina';
import { workerCode } from '../core/worker-code.ts';
import { CTL_BYTES, CTL_CURSOR, CTL_GEN, ctlViews, type MineResult, type MineTask } from './miner-worker.ts';

export class MinerPoolError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MinerPoolError';
  }
}

export interface NonceRange {
  /** first nonce (the range wraps mod 2^32) */
  start: number;
  /** nonces in the range, 1 .. 2^32 */
  count: number;
}

export const FULL_RANGE: NonceRange = { start: 0, count: 0x1_0000_0000 };

export interface PoolSearch {
  /** found: `nonce` meets the target; exhausted: no nonce of the range does; cancelled: stopped */
  readonly result: Promise<MineResult>;
  /** Stops the search (no effect once it has ended); the workers notice within one chunk. */
  cancel(): void;
}

// Nonces a worker claims at a time: about 4 ms of hashing per thread at 8 M hashes/s, which
// bounds how late a worker notices a cancellation and the hash-rate counter's granularity.
const CHUNK = 1 << 15;

const ENTRY = new URL('./miner-worker-entry.mjs', import.meta.url).href;
/** what the workers run, bundled from the sources (core/worker-code.ts) */
export const MINER_WORKER = new URL('./miner-worker.ts', import.meta.url);

export class MinerPool {
  readonly threads: number;
  private opening: Promise<Piscina> | null = null;
  private source: 'bundled' | 'typescript' | null = null;
  private readonly warn: (message: string) => void;
  private readonly ctl = new SharedArrayBuffer(CTL_BYTES);
  private readonly words: Int32Array;
  private readonly counter: BigInt64Array;
  private current: Promise<unknown> = Promise.resolve();
  private cancelCurrent: () => void = () => {};
  private closed = false;

  /** `warn` hears that the workers fell back to loading TypeScript (slower to start). */
  constructor(threads: number, warn: (message: string) => void = () => undefined) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
    this.threads = threads;
    this.warn = warn;
    ({ words: this.words, hashes: this.counter } = ctlViews(this.ctl));
  }

  /** The threads, started on the first search with the bundled worker, or the TypeScript one when it cannot be built. */
  private open(): Promise<Piscina> {
    this.opening ??= (async () => {
      const code = await workerCode(MINER_WORKER, (why) => this.warn(`mining workers load TypeScript (slower to start): the bundled worker did not build: ${why}`));
      this.source = code.source;
      const pool = new Piscina({
        filename: ENTRY,
        minThreads: this.threads,
        maxThreads: this.threads,
        idleTimeout: Infinity,
        // One search task per thread at a time, all long-running: no queueing to speak of.
        concurrentTasksPerWorker: 1,
        ...code.options,
      });
      if (this.closed) await this.destroy(pool);
      return pool;
    })();
    return this.opening;
  }

  private destroyed: Promise<void> | null = null;
  /** Stops the threads, once: close() and a start that finds the pool closed may both ask. */
  private destroy(pool: Piscina): Promise<void> {
    this.destroyed ??= pool.destroy();
    return this.destroyed;
  }

  /** what the workers run, once started: the bundled worker, or TypeScript through tsx */
  get code(): 'bundled' | 'typescript' | null {
    return this.source;
  }

  /** Nonces tried by all workers since the last call. */
  drainHashes(): number {
    return Number(Atomics.exchange(this.counter, 0, 0n));
  }

  /**
   * Searches `range` of `header80` (its nonce bytes ignored) for a nonce whose hash is at most
   * the target (32 bytes, little-endian). Any search still running is cancelled first.
   */
  search(header80: Uint8Array, targetLE32: Uint8Array, range: NonceRange = FULL_RANGE): PoolSearch {
    if (this.closed) throw new MinerPoolError('the miner pool is closed');
    if (header80.length !== 80) throw new RangeError(`header must be 80 bytes, got ${header80.length}`);
    if (targetLE32.length !== 32) throw new RangeError('target must be 32 little-endian bytes');
    if (!Number.isInteger(range.count) || range.count < 1 || range.count > 0x1_0000_0000) throw new RangeError(`nonce count must be 1..2^32, got ${range.count}`);
    this.cancelCurrent();
    const previous = this.current;
    let cancelled = false;
    let generation = 0;
    const cancel = (): void => {
      cancelled = true;
      // Only this search's own generation: a later search may already be running.
      if (generation !== 0) Atomics.compareExchange(this.words, CTL_GEN, generation, generation + 1);
    };
    const run = async (): Promise<MineResult> => {
      // The previous search's tasks have all returned once it settles, so nobody else touches
      // the cursor while it is reset.
      await previous.catch(() => undefined);
      const pool = await this.open();
      if (cancelled || this.closed) return { status: 'cancelled', nonce: -1, hashes: 0 };
      Atomics.store(this.words, CTL_CURSOR, 0);
      generation = Atomics.add(this.words, CTL_GEN, 1) + 1;
      const task: MineTask = {
        header: header80.slice(),
        target: targetLE32.slice(),
        ctl: this.ctl,
        generation,
        start: range.start >>> 0,
        count: range.count,
        chunk: CHUNK,
      };
      let found: MineResult | undefined;
      let failure: unknown;
      const runs = Array.from({ length: this.threads }, () =>
        (pool.run(task) as Promise<MineResult>).then(
          (r) => {
            if (r.status === 'found' && found === undefined) {
              found = r;
              cancel(); // the other workers stop within a chunk
            }
            return r;
          },
          (e: unknown) => {
            failure ??= e;
            cancel();
            return undefined;
          },
        ),
      );
      const results = await Promise.all(runs);
      const hashes = results.reduce((s, r) => s + (r?.hashes ?? 0), 0);
      if (failure !== undefined && !this.closed) throw new MinerPoolError(`mining worker failed: ${(failure as Error).message ?? String(failure)}`, { cause: failure });
      if (found !== undefined) return { status: 'found', nonce: found.nonce, hashes };
      const exhausted = results.length > 0 && results.every((r) => r?.status === 'exhausted');
      return { status: exhausted ? 'exhausted' : 'cancelled', nonce: -1, hashes };
    };
    const result = run();
    this.current = result;
    this.cancelCurrent = cancel;
    return { result, cancel };
  }

  /** Cancels any search and stops the threads. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.cancelCurrent();
    // Terminating the threads right away, rather than waiting for the tasks to notice the
    // cancellation, also covers workers still starting up.
    const pool = await this.opening?.catch(() => null);
    if (pool) await this.destroy(pool);
    await this.current.catch(() => undefined);
  }
}
