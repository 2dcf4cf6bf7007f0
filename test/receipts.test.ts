// Call receipts: both nodes sign, both are paid per call-second from the block reward, within
// caps, only when announced a while ago, and never twice for one call.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, blockOn, extend, newKey, type Key } from './helpers.ts';
import { signRecord, signReceipt, makeRec, Kind, type NodeAnnounce, type CallReceipt, type Rec } from '../core/records.ts';
import { getAccount } from '../core/state.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';
import type { Mempool } from '../core/mempool.ts';
import { blockTemplate } from '../mining/template.ts';
import type { Test } from 'tap';

const NET = 'regtest';

function announce(k: Key): Rec {
  return signRecord<NodeAnnounce>(NET, k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [], p2pAddrs: [], rewardAddress: k.address, seq: 1 });
}

function receipt(orig: Key, term: Key, seconds: number, opts: { onlyOrig?: boolean; callId?: Uint8Array; end?: number } = {}): Rec {
  const ended = opts.end ?? 1_795_046_400; // regtest genesis time: in the past of every test block
  const body: Omit<CallReceipt, 'sig' | 'termSig'> = {
    kind: Kind.CallReceipt,
    callId: opts.callId ?? randomBytes(32),
    orig: orig.address,
    term: term.address,
    answered: ended - seconds,
    ended,
    pubkey: orig.pub,
    termPubkey: term.pub,
  };
  const sig = signReceipt(NET, orig.secret, body);
  // A receipt "signed by one node only": the originating node signs in the terminating node's place.
  const termSig = opts.onlyOrig === true ? signReceipt(NET, orig.secret, body) : signReceipt(NET, term.secret, body);
  return makeRec({ ...body, sig, termSig });
}

async function twoNodes(t: Test): Promise<{ chain: Chain; pool: Mempool; a: Key; b: Key; tip: IndexEntry }> {
  const { chain, pool } = await openChain(t);
  const a = newKey();
  const b = newKey();
  let tip = await extend(chain, chain.tip, 1, { recs: [announce(a), announce(b)] });
  tip = await extend(chain, tip, chain.params.receiptMinNodeAge);
  return { chain, pool, a, b, tip };
}

t.test('a receipt pays both nodes from the block reward', async (t) => {
  const { chain, pool, a, b, tip } = await twoNodes(t);
  const p = chain.params;
  const r = receipt(a, b, 125);
  const paid = 2 * 125 * p.receiptRate;
  const h = tip.height + 1;
  const full = await chain.processBlock(blockOn(chain, tip, [r], { amount: p.subsidy(h) }));
  t.equal(full.status, 'invalid', 'the miner cannot also keep the part paid to the nodes');
  t.equal((full as { code: string }).code, 'bad-coinbase-amount');
  const ok = await chain.processBlock(blockOn(chain, tip, [r], { amount: p.subsidy(h) - paid }));
  t.equal(ok.status, 'connected');
  t.equal(getAccount(chain.state, a.address).balance, 125 * p.receiptRate);
  t.equal(getAccount(chain.state, b.address).balance, 125 * p.receiptRate);
  // The same call again, in a later block: never paid twice.
  const again = await chain.processBlock(blockOn(chain, chain.tip, [r], { amount: 0 }));
  t.equal((again as { code: string }).code, 'duplicate-receipt');
  const sameCall = receipt(a, b, 60, { callId: (r.body as CallReceipt).callId });
  t.equal(((await chain.processBlock(blockOn(chain, chain.tip, [sameCall], { amount: 0 }))) as { code: string }).code, 'duplicate-receipt', 'another receipt for the same call');
  // Submitted twice to the pool.
  // the pool checks a receipt against the next block's time, now
  const fresh = receipt(a, b, 10, { end: Math.floor(Date.now() / 1000) - 5 });
  pool.add(fresh);
  t.throws(() => pool.add(fresh), { code: 'already-pending' });
});

t.test('rejections', async (t) => {
  const { chain, a, b, tip } = await twoNodes(t);
  const p = chain.params;
  const code = async (recs: Rec[], on = tip): Promise<string | undefined> => ((await chain.processBlock(blockOn(chain, on, recs, { amount: 0 }))) as { code?: string }).code;
  t.equal(await code([receipt(a, b, 30, { onlyOrig: true })]), 'bad-signature', 'signed by one node only');
  t.equal(await code([receipt(a, a, 30)]), 'bad-receipt', 'a node with itself');
  t.equal(await code([receipt(a, b, 0)]), 'bad-receipt', 'zero duration');
  t.equal(await code([receipt(a, b, p.maxCallSeconds + 1)]), 'bad-receipt', 'longer than a call may be');
  // the block's time is its parent's + 1 (blockOn): a call must have ended within receiptMaxAge of it
  const blockTime = tip.header.time + 1;
  t.equal(await code([receipt(a, b, 30, { end: blockTime - p.receiptMaxAge - 1 })]), 'stale-receipt', 'a call that ended before the window (invented call-hours in the past)');
  t.equal(await code([receipt(a, b, 30, { end: blockTime + 601 })]), 'bad-receipt', 'a call that ends in the future');
  const overPair = Math.floor(p.receiptPairCap / (2 * p.receiptRate)) + 1;
  t.equal(await code([receipt(a, b, overPair)]), 'receipt-over-cap', 'one receipt over the pair cap');
  const half = Math.ceil(overPair / 2);
  t.equal(await code([receipt(a, b, half), receipt(b, a, half)]), 'receipt-over-cap', 'two receipts of one pair over its cap in one block');
  const late = newKey();
  const t2 = await extend(chain, tip, 1, { recs: [announce(late)] });
  t.equal(await code([receipt(a, late, 30)], t2), 'node-too-new', 'a node announced just now');
  t.equal(await code([receipt(a, newKey(), 30)], t2), 'unknown-node', 'a node that never announced');
  // last, as it connects: the oldest call the window takes is still paid
  t.equal(await code([receipt(a, b, 30, { end: t2.header.time + 1 - p.receiptMaxAge })], t2), undefined, 'a call that ended receiptMaxAge before the block is paid');
});

t.test('receipts over the cap wait in the pool for the next blocks', async (t) => {
  const { chain, pool, a, b } = await twoNodes(t);
  const p = chain.params;
  const seconds = Math.floor(p.receiptPairCap / (2 * p.receiptRate) / 2);
  // calls that just ended: the pool and the template check them against now
  const end = Math.floor(Date.now() / 1000) - 5;
  const r1 = receipt(a, b, seconds, { end });
  const r2 = receipt(a, b, seconds, { end });
  const r3 = receipt(a, b, seconds, { end });
  for (const r of [r1, r2, r3]) pool.add(r);
  const tpl = blockTemplate(chain, pool, newKey().address, new Uint8Array(4));
  t.equal(tpl.records.length, 3, 'coinbase and two receipts fill the pair cap');
  t.equal(tpl.records[0].body.kind === Kind.Coinbase && tpl.records[0].body.amount, p.subsidy(tpl.height) - 4 * seconds * p.receiptRate);
});
