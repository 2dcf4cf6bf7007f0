// Block signature checks on worker threads, the chain's SignatureVerifier (the chain owns it and
// closes it; see consensus/chain.ts). Signature verification is about half the cost of validating
// a block full of records (libsecp256k1 verifies about 13,000 a second per core here, and the rest
// of processBlock does about as many records; with OpenSSL's 2,800-4,300 it was nearly all of
// it), so sync hands each block to chain.preverify as soon as it arrives and connects blocks on
// the main thread while later ones are verified: both cores work.
// Results only ever add to the chain's signature cache, which processBlock consults; a record a
// worker did not vouch for is verified again on the main thread.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { Block } from '../core/block.ts';
import type { SigCache } from '../core/sig.ts';
import type { Logger } from '../core/log.ts';
import type { VerifyTask } from './sig-verify.ts';

/** Below this many signed records a block is checked on the main thread (messaging costs more). */
const MIN_RECORDS = 16;
/** Records per task: big blocks are split so every worker gets a share. */
const CHUNK = 256;

/**
 * Checks a block's record signatures ahead of processBlock, adding the good ones to the chain's
 * signature cache. It never rejects anything: what it did not vouch for, processBlock checks.
 */
export interface SignatureVerifier {
  preverify(block: Block): Promise<void>;
  close(): Promise<void>;
}

/** No workers: processBlock checks every signature on the main thread. */
export const MAIN_THREAD_VERIFIER: SignatureVerifier = {
  preverify: () => Promise.resolve(),
  close: () => Promise.resolve(),
};

export class SigPool implements SignatureVerifier {
  private readonly pool: Piscina;
  private broken = false;

  constructor(
    private readonly network: string,
    private readonly sigs: SigCache,
    private readonly log: Logger,
    threads = availableParallelism(),
  ) {
    this.pool = new Piscina({
      filename: fileURLToPath(new URL('./sig-worker.mjs', import.meta.url)),
      minThreads: 0,
      maxThreads: Math.max(1, threads),
      // Idle workers exit, so a node that is not syncing holds no threads.
      idleTimeout: 5000,
      // Bounded: sync never has more than its window of blocks waiting.
      maxQueue: 4096,
    });
    // A worker that cannot start must not take the node down (an unhandled 'error' would).
    this.pool.on('error', (e: Error) => this.fail(e));
  }

  /** Verifies the block's signatures on workers and records the good ones in the cache. */
  async preverify(block: Block): Promise<void> {
    if (this.broken) return;
    const todo = block.records.slice(1).filter((r) => !this.sigs.has(r.id));
    if (todo.length < MIN_RECORDS) return;
    const chunks: Array<typeof todo> = [];
    for (let i = 0; i < todo.length; i += CHUNK) chunks.push(todo.slice(i, i + CHUNK));
    try {
      await Promise.all(
        chunks.map(async (recs) => {
          const task: VerifyTask = { network: this.network, records: recs.map((r) => r.bytes) };
          const ok = (await this.pool.run(task)) as Uint8Array;
          recs.forEach((r, i) => {
            if (ok[i] === 1) this.sigs.add(r.id);
          });
        }),
      );
    } catch (e) {
      this.fail(e as Error);
    }
  }

  private fail(e: Error): void {
    if (this.broken) return;
    // Without workers everything still works, only slower: processBlock checks on this thread.
    this.broken = true;
    this.log.warn(`signature workers unavailable, checking on the main thread: ${e.message}`);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
