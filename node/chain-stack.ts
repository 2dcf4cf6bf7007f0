// The chain side of a node, as one unit: the store, the chain on it, and the pending pool that
// follows the chain's tip and is kept on disk (node/pending.ts). DotsNode opens one; so do the benchmarks and tests that need a chain
// without a network, so the pool is kept in step with the chain the same way everywhere.
import { join } from 'node:path';
import { Store } from '../core/store.ts';
import { Mempool, type MempoolLimits } from '../core/mempool.ts';
import { Chain, type ChainOptions, type TipChange } from '../consensus/chain.ts';
import type { NetworkParams } from '../consensus/params.ts';
import { silentLogger } from '../core/log.ts';
import { PendingKeeper } from './pending.ts';

export const CHAIN_DIR = 'chain';

export interface ChainStack {
  store: Store;
  chain: Chain;
  pool: Mempool;
  /** resolves once every record the pool accepted so far is on disk */
  durable(): Promise<void>;
  /** stops the signature workers and closes the store; the pool stops following the chain */
  close(): Promise<void>;
}

/** Opens (or creates) the chain in DATADIR/chain. */
export async function openChainStack(datadir: string, params: NetworkParams, opts: ChainOptions & { pool?: MempoolLimits } = {}): Promise<ChainStack> {
  const store = await Store.open(join(datadir, CHAIN_DIR));
  let chain: Chain;
  try {
    chain = await Chain.open(store, params, opts);
  } catch (e) {
    await store.close();
    throw e;
  }
  const pool = new Mempool(chain, params.name, chain.sigs, opts.pool);
  // Registered before anything else can listen: every later listener of a tip change sees the
  // pool of the new tip.
  const follow = (c: TipChange): void => pool.update(c.connectedBlocks, c.disconnectedBlocks);
  chain.on('tip', follow);
  let kept: PendingKeeper;
  try {
    kept = await PendingKeeper.open(store, pool, opts.log ?? silentLogger);
  } catch (e) {
    chain.off('tip', follow);
    await chain.close();
    await store.close();
    throw e;
  }
  let closed = false;
  return {
    store,
    chain,
    pool,
    durable: () => kept.durable(),
    async close() {
      if (closed) return;
      closed = true;
      chain.off('tip', follow);
      await kept.close();
      await chain.close();
      await store.close();
    },
  };
}
