// The pending pool kept on disk, so records a node accepted survive a restart and a crash: a
// wallet that got "pending" for a transfer does not find it gone (and its nonce reused) after a
// SIGKILL. The pool's changes are written to the store (P<id> keys) in batches, one per turn of
// the event loop; `durable()` resolves once everything accepted so far is on disk, which the API
// waits for before it answers 202. At start the kept records are checked against the tip again
// (pool.restore); those that no longer apply are dropped from disk.
import { decodeRec } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import type { Mempool } from '../core/mempool.ts';
import type { Store } from '../core/store.ts';
import type { Logger } from '../core/log.ts';

export class PendingKeeper {
  private readonly puts = new Map<string, Uint8Array>();
  private readonly dels = new Set<string>();
  private writing: Promise<void> = Promise.resolve();
  private scheduled = false;
  private closed = false;
  private readonly onAdded = (rec: { id: Uint8Array; bytes: Uint8Array }): void => {
    const id = toHex(rec.id);
    this.dels.delete(id);
    this.puts.set(id, rec.bytes);
    this.schedule();
  };
  private readonly onRemoved = (id: string): void => {
    // Not written yet: nothing to take back.
    if (!this.puts.delete(id)) this.dels.add(id);
    this.schedule();
  };

  private constructor(
    private readonly store: Store,
    private readonly pool: Mempool,
    private readonly log: Logger,
  ) {}

  /** Restores what the store kept into the pool, then keeps the pool's changes. */
  static async open(store: Store, pool: Mempool, log: Logger): Promise<PendingKeeper> {
    const k = new PendingKeeper(store, pool, log);
    const stale = store.batch();
    let restored = 0;
    for await (const [id, bytes] of store.pendingRecords()) {
      let ok = false;
      try {
        ok = pool.restore(decodeRec(bytes));
      } catch {
        ok = false; // bytes that do not decode: not a record this node would have kept
      }
      if (ok) restored++;
      else stale.delPending(id);
    }
    if (stale.size > 0) log.info(`pending: ${stale.size} kept record(s) no longer apply at the tip and were dropped`);
    if (restored > 0) log.info(`pending: ${restored} record(s) kept from before the restart are pending again`);
    await stale.write();
    pool.on('added', k.onAdded);
    pool.on('removed', k.onRemoved);
    return k;
  }

  /** Resolves once every change of the pool so far is on disk. */
  durable(): Promise<void> {
    this.flush();
    return this.writing;
  }

  /** Writes what is left and stops following the pool. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.pool.off('added', this.onAdded);
    this.pool.off('removed', this.onRemoved);
    await this.durable();
    this.closed = true;
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.puts.size === 0 && this.dels.size === 0) return;
    const batch = this.store.batch();
    for (const [id, bytes] of this.puts) batch.putPending(id, bytes);
    for (const id of this.dels) batch.delPending(id);
    this.puts.clear();
    this.dels.clear();
    this.writing = this.writing.then(() => batch.write()).catch((e: unknown) => this.log.warn(`pending: cannot keep the pending records on disk: ${(e as Error).message}`));
  }
}
