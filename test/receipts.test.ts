// Call receipts settle calls between nodes: both sign, the originating node pays the terminating
// node per call-second from its own account, the miner is paid the receipt's fee, a call is
// settled once, and only within its window. No coins are made: colluding nodes that invent
// calls between themselves gain nothing (the nine-node attack below).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, blockOn, extend, newKey, type Key } from './helpers.ts';
import { signRecord, signReceipt, makeRec, receiptFee, Kind, type NodeAnnounce, type CallReceipt, type Rec } from '../core/records.ts';
import { getAccount } from '../core/state.ts';
import { COIN, NETWORKS } from '../consensus/params.ts';
import { toHex } from '../core/hash.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';
import type { Mempool } from '../core/mempool.ts';
import type { Test } from 'tap';

const NET = 'regtest';
/** regtest with fees, as the other networks take them */
const PAID = { ...NETWORKS.regtest, minFeeRate: 1 };

function announce(k: Key, rate = 0): Rec {
  return signRecord<NodeAnnounce>(NET, k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [], p2pAddrs: [], rewardAddress: k.address, seq: 1 }, rate);
}

function receipt(orig: Key, term: Key, seconds: number, opts: { onlyOrig?: boolean; callId?: Uint8Array; end?: number; rate?: number; fee?: number } = {}): Rec {
  const ended = opts.end ?? 1_795_046_400; // regtest genesis time: in the past of every test block
  const unpaid = {
    kind: Kind.CallReceipt,
    callId: opts.callId ?? randomBytes(32),
    orig: orig.address,
    term: term.address,
    answered: ended - seconds,
    ended,
    pubkey: orig.pub,
    termPubkey: term.pub,
  } as const;
  const body: Omit<CallReceipt, 'sig' | 'termSig'> = { ...unpaid, fee: opts.fee ?? receiptFee(unpaid, opts.rate ?? 0) };
  const sig = signReceipt(NET, orig.secret, body);
  // A receipt "signed by one node only": the originating node signs in the terminating node's place.
  const termSig = opts.onlyOrig === true ? signReceipt(NET, orig.secret, body) : signReceipt(NET, term.secret, body);
  return makeRec({ ...body, sig, termSig });
}

const balance = (chain: Chain, k: Key): number => getAccount(chain.state, k.address).balance;

/** Two announced nodes; `a` mined two blocks and `b` one, so they can pay for their records and calls. */
async function twoNodes(t: Test, params = NETWORKS.regtest): Promise<{ chain: Chain; pool: Mempool; a: Key; b: Key; tip: IndexEntry }> {
  const { chain, pool } = await openChain(t, { params });
  const a = newKey();
  const b = newKey();
  let tip = await extend(chain, chain.tip, 2, { reward: a.address });
  tip = await extend(chain, tip, 1, { reward: b.address });
  tip = await extend(chain, tip, 1, { recs: [announce(a, params.minFeeRate), announce(b, params.minFeeRate)] });
  return { chain, pool, a, b, tip };
}

t.test('a receipt settles the call: the originating node pays the terminating node, the miner its fee', async (t) => {
  const { chain, pool, a, b, tip } = await twoNodes(t, PAID);
  const p = chain.params;
  const [aBefore, bBefore] = [balance(chain, a), balance(chain, b)];
  const r = receipt(a, b, 125, { rate: 1 });
  const fee = (r.body as CallReceipt).fee;
  t.ok(fee >= r.bytes.length, `the receipt pays at least one unit per byte (${fee} for ${r.bytes.length})`);
  const h = tip.height + 1;
  const over = await chain.processBlock(blockOn(chain, tip, [r], { amount: p.subsidy(h) + fee + 1 }));
  t.equal((over as { code: string }).code, 'bad-coinbase-amount', 'the miner may claim the fee, no more');
  const miner = newKey();
  const ok = await chain.processBlock(blockOn(chain, tip, [r], { amount: p.subsidy(h) + fee, reward: miner.address }));
  t.equal(ok.status, 'connected');
  t.equal(balance(chain, a), aBefore - 125 * p.receiptRate - fee, 'the originating node paid the call and the fee');
  t.equal(balance(chain, b), bBefore + 125 * p.receiptRate, 'the terminating node was paid per second');
  t.equal(balance(chain, miner), p.subsidy(h) + fee, 'the miner earned the fee for including it');
  // The same call again, in a later block: never settled twice.
  const again = await chain.processBlock(blockOn(chain, chain.tip, [r], { amount: 0 }));
  t.equal((again as { code: string }).code, 'duplicate-receipt');
  const sameCall = receipt(a, b, 60, { callId: (r.body as CallReceipt).callId, rate: 1 });
  t.equal(((await chain.processBlock(blockOn(chain, chain.tip, [sameCall], { amount: 0 }))) as { code: string }).code, 'duplicate-receipt', 'another receipt for the same call');
  // Submitted twice to the pool (the pool checks a receipt against the next block's time, now).
  const fresh = receipt(a, b, 10, { end: Math.floor(Date.now() / 1000) - 5, rate: 1 });
  pool.add(fresh);
  t.throws(() => pool.add(fresh), { code: 'already-pending' });
});

t.test('rejections', async (t) => {
  // a coin per call-second, so a call can cost more than a node holds
  const { chain, a, b, tip } = await twoNodes(t, { ...PAID, receiptRate: COIN });
  const p = chain.params;
  const code = async (recs: Rec[], on = tip): Promise<string | undefined> => ((await chain.processBlock(blockOn(chain, on, recs, { amount: 0 }))) as { code?: string }).code;
  t.equal(await code([receipt(a, b, 30, { onlyOrig: true, rate: 1 })]), 'bad-signature', 'signed by one node only');
  t.equal(await code([receipt(a, a, 30, { rate: 1 })]), 'bad-receipt', 'a node with itself');
  t.equal(await code([receipt(a, b, 0, { rate: 1 })]), 'bad-receipt', 'zero duration');
  t.equal(await code([receipt(a, b, p.maxCallSeconds + 1, { rate: 1 })]), 'bad-receipt', 'longer than a call may be');
  // the block's time is its parent's + 1 (blockOn): a call must have ended within receiptMaxAge of it
  const blockTime = tip.header.time + 1;
  t.equal(await code([receipt(a, b, 30, { end: blockTime - p.receiptMaxAge - 1, rate: 1 })]), 'stale-receipt', 'a call that ended before the window (invented call-hours in the past)');
  t.equal(await code([receipt(a, b, 30, { end: blockTime + 601, rate: 1 })]), 'bad-receipt', 'a call that ends in the future');
  t.equal(await code([receipt(a, newKey(), 30, { rate: 1 })]), 'unknown-node', 'a node that never announced');
  t.equal(await code([receipt(a, b, 30, { fee: 10 })]), 'fee-too-low', 'a receipt paying its miner less than the least fee rate');
  t.equal(await code([receipt(b, a, 60, { rate: 1 })]), 'settlement-unpaid', 'an originating node that cannot pay for the call (60 coins, it holds 50)');
  const broke = newKey();
  const t2 = await extend(chain, tip, 1, { recs: [announce(broke, 0)], reward: broke.address, amount: 0 }).catch((e: Error) => e);
  t.match(t2, { message: /fee-too-low|fee-unpaid/ }, 'an announcement without its fee is refused like any record');
  // last, as it connects: the oldest call the window takes is settled
  t.equal(await code([receipt(a, b, 30, { end: blockTime - p.receiptMaxAge, rate: 1 })]), undefined, 'a call that ended receiptMaxAge before the block is settled');
});

t.test('the nine-node attack: an operator inventing calls among its own nodes gains nothing', async (t) => {
  // Nine announced nodes of one operator make 36 pairs. Under the old rules every receipt was
  // paid out of the block reward, so invented calls between them took the whole receipt pool of
  // every block. Now a receipt moves coins from one of them to another and pays the miner.
  const { chain } = await openChain(t, { params: PAID });
  const p = chain.params;
  const nodes = Array.from({ length: 9 }, () => newKey());
  let tip = chain.tip;
  for (const k of nodes) tip = await extend(chain, tip, 1, { reward: k.address });
  tip = await extend(chain, tip, 1, { recs: nodes.map((k) => announce(k, 1)) });
  const total = (): number => nodes.reduce((sum, k) => sum + balance(chain, k), 0);
  const fakes = (): Rec[] => {
    const recs: Rec[] = [];
    for (let i = 0; i < 9; i++) for (let j = 0; j < 9; j++) if (i !== j) recs.push(receipt(nodes[i], nodes[j], 3600, { end: tip.header.time, rate: 1 }));
    return recs;
  };
  // An honest miner takes the fees: the operator loses them.
  const before = total();
  const recs = fakes();
  const fees = recs.reduce((sum, r) => sum + (r.body as CallReceipt).fee, 0);
  const miner = newKey();
  const h = tip.height + 1;
  const r1 = await chain.processBlock(blockOn(chain, tip, recs, { amount: p.subsidy(h) + fees, reward: miner.address }));
  t.equal(r1.status, 'connected', `72 invented hour-long calls over all 36 pairs in one block`);
  tip = chain.tip;
  const gain = total() - before;
  t.comment(`net gain of the nine colluding nodes from 72 invented hour-long calls, another miner mining them: ${gain} units`);
  t.ok(gain <= 0, 'not positive');
  t.equal(gain, -fees, `the operator's nine nodes lost the ${fees} units of fees and gained nothing`);
  t.equal(balance(chain, miner), p.subsidy(h) + fees, 'the miner kept its reward and the fees');
  // The operator mines the block itself: the fees come back, so the receipts net exactly zero.
  const before2 = total();
  const recs2 = fakes();
  const fees2 = recs2.reduce((sum, r) => sum + (r.body as CallReceipt).fee, 0);
  const h2 = tip.height + 1;
  const r2 = await chain.processBlock(blockOn(chain, tip, recs2, { amount: p.subsidy(h2) + fees2, reward: nodes[0].address }));
  t.equal(r2.status, 'connected');
  const gain2 = total() - before2 - p.subsidy(h2);
  t.comment(`net gain beyond the block subsidy, the operator mining its own invented calls: ${gain2} units`);
  t.ok(gain2 <= 0, 'not positive');
  t.equal(total() - before2, p.subsidy(h2), 'mining its own invented calls, the operator earns the block subsidy any miner earns, and not one unit more');
});

t.test('a reorganisation that drops a settled call puts the balances back, and the receipt settles again on the new branch', async (t) => {
  const { chain, pool, a, b, tip } = await twoNodes(t, PAID);
  const p = chain.params;
  const [a0, b0] = [balance(chain, a), balance(chain, b)];
  // a call that just ended: the pool checks receipts against now
  const r = receipt(a, b, 40, { end: Math.floor(Date.now() / 1000) - 5, rate: 1 });
  const fee = (r.body as CallReceipt).fee;
  const now = Math.floor(Date.now() / 1000);
  const h = tip.height + 1;
  const withIt = await chain.processBlock(blockOn(chain, tip, [r], { amount: p.subsidy(h) + fee, time: now }));
  t.equal(withIt.status, 'connected');
  t.equal(balance(chain, b) - b0, 40 * p.receiptRate, 'settled on the first branch');
  t.equal(a0 - balance(chain, a), 40 * p.receiptRate + fee);
  // a longer branch from the same parent without the receipt
  const c1 = blockOn(chain, tip, [], { time: now + 1 });
  const r1 = await chain.processBlock(c1);
  const c1e = chain.index.get((r1 as { hex: string }).hex) as IndexEntry;
  const c2 = blockOn(chain, c1e, [], { time: now + 2 });
  const re = await chain.processBlock(c2);
  t.equal(re.status, 'connected', 'the other branch took over');
  t.same(chain.tip.hash, c2.hash);
  t.same([balance(chain, a), balance(chain, b)], [a0, b0], 'both balances are back where they were');
  t.ok(pool.has(toHex(r.id)), 'the receipt is pending again');
  const tpl = pool.select(chain.state, chain.nextContext(), 1_000_000, 10);
  t.equal(tpl.recs.length, 1, 'and goes into the next template');
  const again = await chain.processBlock(blockOn(chain, chain.tip, tpl.recs, { amount: p.subsidy(chain.tip.height + 1) + fee, time: now + 3 }));
  t.equal(again.status, 'connected');
  t.equal(balance(chain, b) - b0, 40 * p.receiptRate, 'settled once on the new branch');
  t.equal(a0 - balance(chain, a), 40 * p.receiptRate + fee);
});
