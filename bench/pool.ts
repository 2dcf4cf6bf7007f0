// `dots bench pool`: how fast the pending pool takes records, filling to its 50,000 and then
// full, where each newcomer evicts one (core/mempool.ts). A record's way in is its signature check,
// its checks against the tip's state after its signer's pending records, and, when the pool is
// full, the search for what leaves (a signer past its share first, else the lowest fee rate):
// that search looks at every signer's last record, so it is measured with many signers. Records
// are signed before the clock starts; the chain is regtest with fees at one unit per byte, and
// every signer was funded by the miner first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Miner, chainWork } from '../mining/miner.ts';
import { openChainStack } from '../node/chain-stack.ts';
import { NETWORKS } from '../consensus/params.ts';
import { signRecord, Kind, type NameCommit, type Rec, type Transfer } from '../core/records.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { addressOf } from '../core/address.ts';
import { ValidationError } from '../core/errors.ts';
import type { BenchOptions } from './index.ts';

type Row = Record<string, string | number>;

const P = { ...NETWORKS.regtest, minFeeRate: 1 };

/** Records per second the pool took of `recs` (refusals counted apart). */
function addAll(pool: { add(r: Rec): void }, recs: Rec[]): { perSecond: number; refused: Map<string, number> } {
  const refused = new Map<string, number>();
  const t0 = process.hrtime.bigint();
  for (const r of recs) {
    try {
      pool.add(r);
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      refused.set(e.code, (refused.get(e.code) ?? 0) + 1);
    }
  }
  return { perSecond: recs.length / (Number(process.hrtime.bigint() - t0) / 1e9), refused };
}

export async function benchPool(o: BenchOptions & { signers?: number; full?: number; extra?: number }): Promise<Row[]> {
  const signersN = o.signers ?? 10_000;
  const full = o.full ?? 50_000;
  const extra = o.extra ?? 10_000;
  const root = mkdtempSync(join(tmpdir(), 'dots-bench-pool-'));
  const rows: Row[] = [];
  try {
    const stack = await openChainStack(join(root, 'node'), P, { pool: { maxRecords: full } });
    const { chain, pool } = stack;
    try {
      const minerKey = generateSecretKey();
      const minerPub = publicKeyOf(minerKey);
      const miner = new Miner(chainWork(chain, pool), addressOf(minerPub));
      await miner.mineBlocks(Math.ceil((signersN * 1_000_000) / P.subsidy(1)) + 1);
      // the signers (and as many newcomers), funded in blocks of transfers
      const keys = Array.from({ length: 2 * signersN }, () => generateSecretKey());
      let nonce = 0;
      for (let i = 0; i < keys.length; i += 4000) {
        for (const sk of keys.slice(i, i + 4000)) pool.add(signRecord<Transfer>(P.name, minerKey, { kind: Kind.Transfer, pubkey: minerPub, to: addressOf(publicKeyOf(sk)), amount: 1_000_000, nonce: nonce++ }, 1));
        while (pool.size > 0) await miner.mineBlocks(1);
      }
      const commit = (sk: Uint8Array, rate: number): Rec => signRecord<NameCommit>(P.name, sk, { kind: Kind.NameCommit, pubkey: publicKeyOf(sk), commitment: randomBytes(32) }, rate);
      const filling = Array.from({ length: full }, (_, i) => commit(keys[i % signersN], 1));
      const newcomers = Array.from({ length: extra }, (_, i) => commit(keys[signersN + (i % signersN)], 2));
      const fill = addAll(pool, filling);
      rows.push({ metric: `records/s taken into an empty pool until it holds ${full.toLocaleString('en-US')} (${signersN.toLocaleString('en-US')} signers)`, value: Math.round(fill.perSecond), notes: `refused: ${[...fill.refused].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}` });
      const evict = addAll(pool, newcomers);
      rows.push({
        metric: `records/s taken into the full pool, each evicting one (${extra.toLocaleString('en-US')} newcomers paying twice the fee rate, from ${signersN.toLocaleString('en-US')} new signers)`,
        value: Math.round(evict.perSecond),
        notes: `pool size after: ${pool.size}; refused: ${[...evict.refused].map(([k, n]) => `${n} ${k}`).join(', ') || 'none'}`,
      });
      const before = pool.size;
      const late = addAll(pool, Array.from({ length: 1000 }, () => commit(keys[0], 1)));
      rows.push({ metric: 'records/s refused from a signer past its share, at the fee rate of its last one (pool-full)', value: Math.round(late.perSecond), notes: `pool size ${before} -> ${pool.size}; ${[...late.refused].map(([k, n]) => `${n} ${k}`).join(', ')}` });
    } finally {
      await stack.close();
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return rows;
}
