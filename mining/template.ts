// Block templates: the next block on the chain's tip, as a miner searches it. The coinbase pays
// the miner the subsidy plus the fees of the pending records the template takes (as many as fit
// the block's limits, in the order the pool gives them, each applying after the ones before).
import { makeBlock, type Block, type Header } from '../core/block.ts';
import { merkleRoot } from '../core/merkle.ts';
import { Kind, makeRec, type Rec } from '../core/records.ts';
import type { Mempool } from '../core/mempool.ts';
import type { Chain } from '../consensus/chain.ts';
import { nextBits } from '../consensus/validate.ts';

export interface Template {
  header: Header;
  records: Rec[];
  height: number;
  fees: number;
}

/** Room kept in a block for its header and coinbase when the template fills it with records. */
const COINBASE_ROOM = 512;

export function blockTemplate(chain: Chain, pool: Mempool, rewardAddress: Uint8Array, extraNonce: Uint8Array): Template {
  const parent = chain.tip;
  const p = chain.params;
  const ctx = chain.nextContext();
  const { recs, fees } = pool.select(chain.state, ctx, p.maxBlockBytes - COINBASE_ROOM, p.maxBlockRecords - 1);
  const coinbase = makeRec({ kind: Kind.Coinbase, height: ctx.height, rewardAddress, amount: p.subsidy(ctx.height) + fees, extraNonce, note: '' });
  const records = [coinbase, ...recs];
  const header: Header = {
    version: 1,
    prev: parent.hash,
    merkleRoot: merkleRoot(records.map((r) => r.id)),
    time: ctx.time,
    bits: nextBits(p, chain.anchor, { height: parent.height, time: parent.header.time }),
    nonce: 0,
  };
  return { header, records, height: ctx.height, fees };
}

/** The template's block with a nonce found for it. */
export function templateBlock(t: Template, nonce: number): Block {
  return makeBlock({ ...t.header, nonce }, t.records);
}
