// Block signature checks on worker threads, the chain's SignatureVerifier (the chain owns it and
// closes it; see consensus/chain.ts). Signature verification is about half the cost of validating
// a block full of records (libsecp256k1 verifies about 13,000 a second per core here, and the rest
// of processBlock does about as many records; with OpenSSL's 2,800-4,300 it was nearly all of
// it), so sync hands each block to chain.preverify as soon as it arrives and connects blocks on
// the main thread while later ones are verified; waiting for a block's checks (chain.settle), the
// main thread takes queued ones itself: every core works, with one thread on each.
// Results only ever add to the chain's signature cache, which processBlock consults; a record a
// worker did not vouch for is verified again on the main thread.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Block } from '../core/block.ts';
import { checkRecordSignature, type Rec } from '../core/records.ts';
import type { SigCache } from '../core/sig.ts';
import type { Logger } from '../core/log.ts';
import { packRecords } from './sig-verify.ts';
import { workerCode } from '../core/worker-code.ts';

/** what the workers run (bundled, core/worker-code.ts) */
export const VERIFIER_ENTRY = new URL('./sig-verify.ts', import.meta.url);

/** Below this many signed records a block is checked on the main thread (messaging costs more). */
const MIN_RECORDS = 16;
/** With no worker up, a block of this many signed records starts them (for the blocks after it). */
const WARM_RECORDS = 512;
/** Records per task: big blocks are split so every worker gets a share. */
const CHUNK = 128;
/**
 * Tasks handed to each worker at once: one running, the rest waiting in its port, so a worker that
 * finishes one starts the next without waiting for the main thread, which may be connecting
 * blocks or checking a task itself (settle) for several milliseconds.
 */
const PER_WORKER = 4;

/**
 * Signature workers a node runs: one per core but the main thread's, which checks signatures too
 * while it waits for them (settle). A worker per core besides it left three threads busy on two
 * cores, and each took longer per signature (`bench chain`: about a fifth more CPU in all).
 */
export function defaultSigWorkers(): number {
  return Math.max(0, availableParallelism() - 1);
}

/** Records whose checks wait for a worker (or for the main thread, settle). */
interface Chunk {
  recs: Rec[];
  done: () => void;
}

/**
 * Checks a block's record signatures ahead of processBlock, adding the good ones to the chain's
 * signature cache. It never rejects anything: what it did not vouch for, processBlock checks.
 */
export interface SignatureVerifier {
  /** Several blocks at once (the blocks of one sync response) share tasks: fewer, fuller messages. */
  preverify(...blocks: Block[]): Promise<void>;
  /** Waits for a preverify's promise, doing checks on this thread meanwhile where it can. */
  settle(verified: Promise<void>): Promise<void>;
  /** Starts the workers now, ahead of the blocks; resolves once each has answered. */
  warm(): Promise<void>;
  close(): Promise<void>;
}

/** No workers: processBlock checks every signature on the main thread. */
export const MAIN_THREAD_VERIFIER: SignatureVerifier = {
  preverify: () => Promise.resolve(),
  settle: (verified) => verified,
  warm: () => Promise.resolve(),
  close: () => Promise.resolve(),
};

export class SigPool implements SignatureVerifier {
  /** made when the workers are first started, once their code is built */
  private pool: Piscina | null = null;
  private opening: Promise<Piscina> | null = null;
  private readonly threads: number;
  private broken = false;
  /** checks no worker has taken yet, oldest first */
  private readonly queue: Chunk[] = [];
  /** tasks handed to Piscina and not yet answered */
  private inflight = 0;
  /** records this thread checked while it waited for them (settle) */
  private here = 0;
  /** wakes the settles waiting with nothing queued when preverify queues more (or the pool closes) */
  private queued: { promise: Promise<void>; wake: () => void } | null = null;
  private closed = false;
  /** thread ids of the workers that have loaded (Piscina says so per worker; exits are read from its threads) */
  private readonly loaded = new Set<number>();
  private starting: Promise<void> | null = null;
  /** what the workers run: the verifier bundled from this process's sources, or the TypeScript through tsx */
  private source: 'bundled' | 'typescript' | null = null;

  constructor(
    private readonly network: string,
    private readonly sigs: SigCache,
    private readonly log: Logger,
    threads = availableParallelism(),
    private readonly idleTimeoutMs = 5000,
  ) {
    this.threads = Math.max(1, threads);
  }

  /** The pool, made on first use with the bundled verifier, or the TypeScript one when it cannot be built. */
  private open(): Promise<Piscina> {
    this.opening ??= (async () => {
      const code = await workerCode(VERIFIER_ENTRY, (why) => this.log.warn(`signature workers load TypeScript (slower to start): the bundled verifier did not build: ${why}`));
      this.source = code.source;
      const pool = new Piscina({
        filename: fileURLToPath(new URL('./sig-worker.mjs', import.meta.url)),
        minThreads: 0,
        maxThreads: this.threads,
        // Idle workers exit, so a node that is not syncing holds no threads.
        idleTimeout: this.idleTimeoutMs,
        // Bounded: sync never has more than its window of blocks waiting.
        maxQueue: 4096,
        // Tasks run in the order they were queued. By default, each time a worker finished, Piscina
        // tried the next queued task on the busy others and moved it to the back of the queue:
        // with a sync's blocks queued, the first block's checks came after most of the others',
        // the main thread waited for it while the workers checked blocks far ahead, then connected
        // those alone at the end with the workers idle. `bench chain`, the order switched in one
        // build, three alternating pairs: 0.77-0.79 of the pool alone against 0.72-0.74.
        stricterFIFO: true,
        concurrentTasksPerWorker: PER_WORKER,
        ...code.options,
      });
      // A worker that cannot start must not take the node down (an unhandled 'error' would).
      pool.on('error', (e: Error) => this.fail(e));
      pool.on('workerCreate', (w: { id: number }) => this.workerLoaded(w.id));
      this.pool = pool;
      if (this.closed) await pool.destroy();
      return pool;
    })();
    return this.opening;
  }

  /** Verifies the blocks' signatures on workers and records the good ones in the cache. */
  async preverify(...blocks: Block[]): Promise<void> {
    if (this.broken) return;
    const todo: Rec[] = [];
    for (const b of blocks) for (let i = 1; i < b.records.length; i++) if (!this.sigs.has(b.records[i].id)) todo.push(b.records[i]);
    if (todo.length < MIN_RECORDS) return;
    // A worker takes a tenth of a second or more to load before its first task (most of a
    // second through tsx). Waiting for that held a gossiped block that long (idle workers exit,
    // and blocks come a minute apart) where processBlock checks a few dozen signatures on the
    // main thread in milliseconds: with no worker up, the block is left to it. A sync starts the
    // workers as it begins (warm); a block big enough to be worth it starts them for the blocks
    // after it. Once a start is under way, a block waits for it: during a sync the main thread
    // checking the first blocks itself kept both cores busy and the workers took 0.3-1.3 s to
    // come up, where waiting gave 1,202-1,405 blocks/s against 1,143-1,367 (`bench sync`'s chain,
    // five alternating pairs).
    if (this.starting !== null && this.ready === 0) await this.starting;
    const pool = this.pool;
    if (pool === null || this.ready === 0) {
      if (todo.length >= WARM_RECORDS) void this.warm();
      return;
    }
    // A share for every worker, up to CHUNK records a task: each task costs the main thread
    // messages and bookkeeping whatever its size (with a task per block of 40 records, a CPU
    // profile of a sync put about a tenth of its main thread in the pool's messages), and a big
    // block still goes to every worker.
    const size = Math.min(CHUNK, Math.max(MIN_RECORDS, Math.ceil(todo.length / this.threads)));
    const waits: Array<Promise<void>> = [];
    for (let i = 0; i < todo.length; i += size) {
      const recs = todo.slice(i, i + size);
      waits.push(new Promise<void>((done) => this.queue.push({ recs, done })));
    }
    this.pump(pool);
    this.wakeSettles();
    await Promise.all(waits);
  }

  /** Hands queued checks to the workers, up to PER_WORKER each. */
  private pump(pool: Piscina): void {
    while (this.inflight < this.threads * PER_WORKER && this.queue.length > 0 && !this.broken && !this.closed) {
      const chunk = this.queue.shift() as Chunk;
      this.inflight++;
      const task = packRecords(this.network, chunk.recs.map((r) => r.bytes));
      // packRecords made both buffers (plain ArrayBuffers, never shared): they move, uncopied
      pool
        .run(task, { transferList: [task.bytes.buffer as ArrayBuffer, task.ends.buffer as ArrayBuffer] })
        .then(
          (ok: Uint8Array) => chunk.recs.forEach((r, i) => ok[i] === 1 && this.sigs.add(r.id)),
          // closing the pool ends its tasks: not a failure to report
          (e: Error) => this.closed || this.fail(e),
        )
        .finally(() => {
          this.inflight--;
          chunk.done();
          this.pump(pool);
        });
    }
  }

  /**
   * Waits for `verified` (a preverify's promise) and, while it is pending, checks on this thread
   * the oldest checks no worker has taken yet, a task at a time with the event loop's other work
   * between: a syncing node's main thread, waiting for the next block's signatures, checks them
   * itself instead of idling. With nothing queued it waits for `verified` or for more to be
   * queued (a sync's next response), whichever comes first.
   */
  async settle(verified: Promise<void>): Promise<void> {
    let settled = false;
    const mark = (): void => {
      settled = true;
    };
    void verified.then(mark, mark);
    // one turn of the microtask queue: a promise already settled (a sync response's, for its
    // second block on) marks itself before the queue is looked at, instead of a task being
    // checked first
    await Promise.resolve();
    while (!settled && !this.closed) {
      const chunk = this.queue.shift();
      if (chunk === undefined) {
        this.queued ??= (() => {
          let wake = (): void => undefined;
          const promise = new Promise<void>((resolve) => (wake = resolve));
          return { promise, wake };
        })();
        await Promise.race([verified, this.queued.promise]);
        continue;
      }
      for (const r of chunk.recs) {
        try {
          checkRecordSignature(this.network, r.body);
          this.sigs.add(r.id);
        } catch {
          // left to processBlock, which rejects the block with the reason
        }
      }
      this.here += chunk.recs.length;
      chunk.done();
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await verified;
  }

  /** Settles waiting with nothing queued look again. */
  private wakeSettles(): void {
    const q = this.queued;
    this.queued = null;
    q?.wake();
  }

  /**
   * Starts the workers that are not running (a task of no records each makes Piscina start one);
   * resolves once every running worker has loaded. A warm-up already under way is shared.
   */
  warm(): Promise<void> {
    if (this.broken || this.closed) return Promise.resolve();
    this.starting ??= (async () => {
      const empty = packRecords(this.network, []);
      try {
        const pool = await this.open();
        if (this.closed) return;
        await Promise.all(Array.from({ length: this.threads - pool.threads.length }, () => pool.run(empty)));
        // the worker that loaded first may have run every task while another still loads; Piscina
        // unrefs a worker without a task, so the wait holds the process up itself
        await new Promise<void>((resolve) => {
          const held = setInterval(() => undefined, 1000);
          const check = (): void => {
            if (!this.broken && !this.closed && this.ready < pool.threads.length) return;
            for (const ev of ['workerCreate', 'workerDestroy', 'error']) pool.off(ev, check);
            clearInterval(held);
            resolve();
          };
          for (const ev of ['workerCreate', 'workerDestroy', 'error']) pool.on(ev, check);
          check();
        });
      } catch (e) {
        this.fail(e as Error);
      } finally {
        this.starting = null;
      }
    })();
    return this.starting;
  }

  /** workers that have loaded and can take a task now (idle ones exit after idleTimeout) */
  get ready(): number {
    let n = 0;
    for (const t of this.pool?.threads ?? []) if (this.loaded.has(t.threadId)) n++;
    return n;
  }

  /** A worker has loaded; the ids of workers that have exited since are dropped. */
  private workerLoaded(id: number): void {
    const live = new Set((this.pool?.threads ?? []).map((t) => t.threadId));
    for (const old of this.loaded) if (!live.has(old)) this.loaded.delete(old);
    this.loaded.add(id);
  }

  /** a start of the workers is under way (warm) */
  get warming(): boolean {
    return this.starting !== null;
  }

  /** what the workers run, once the pool is made: the bundled verifier, or TypeScript through tsx */
  get code(): 'bundled' | 'typescript' | null {
    return this.source;
  }

  /** records the main thread checked itself while it waited (settle) */
  get checkedHere(): number {
    return this.here;
  }

  /** workers started, loaded or not (while the verifier is built, none yet) */
  get started(): number {
    return this.pool?.threads.length ?? 0;
  }

  private fail(e: Error): void {
    if (this.broken) return;
    // Without workers everything still works, only slower: processBlock checks on this thread.
    this.broken = true;
    this.log.warn(`signature workers unavailable, checking on the main thread: ${e.message}`);
    this.release();
  }

  /** Queued checks are left to processBlock: their waits end. */
  private release(): void {
    for (const chunk of this.queue.splice(0)) chunk.done();
    this.wakeSettles();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.release();
    // a pool still being made is destroyed as soon as it is (open)
    await this.pool?.destroy();
    this.loaded.clear();
  }
}
