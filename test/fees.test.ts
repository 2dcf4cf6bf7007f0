// Every record pays a fee by its size, from its signer's account, to the miner; the pending pool
// is bounded and evicts by fee rate with a share per signer, so nobody can freeze it; templates
// take records by fee rate in each signer's order. On regtest with a fee rate, as the other
// networks take fees (regtest itself asks none).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, blockOn, extend, newKey, type Key } from './helpers.ts';
import { signRecord, commitmentOf, encodeBody, feeAtRate, Kind, type Binding, type Presence, type NameClaim, type NameCommit, type NameDelegate, type NameRenew, type NameTransfer, type NodeAnnounce, type Rec, type SignedBody, type Transfer, type Unsigned } from '../core/records.ts';
import { getAccount } from '../core/state.ts';
import { toHex } from '../core/hash.ts';
import { Mempool } from '../core/mempool.ts';
import { NETWORKS } from '../consensus/params.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';
import type { Test } from 'tap';

const NET = 'regtest';
const PAID = { ...NETWORKS.regtest, minFeeRate: 1 };

const sign = <T extends Exclude<SignedBody, { kind: 9 }>>(k: Key, body: Unsigned<T>, rate = 1): Rec => signRecord<T>(NET, k.secret, body, rate);
const announce = (k: Key, rate = 1): Rec => sign<NodeAnnounce>(k, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [], p2pAddrs: [], rewardAddress: k.address, seq: 1 }, rate);
const commit = (k: Key, rate = 1, name = `n${randomBytes(4).toString('hex')}.test`, salt = randomBytes(32)): Rec =>
  sign<NameCommit>(k, { kind: Kind.NameCommit, pubkey: k.pub, commitment: commitmentOf(name, salt, k.pub) }, rate);
const transfer = (k: Key, nonce: number, rate = 1): Rec => sign<Transfer>(k, { kind: Kind.Transfer, pubkey: k.pub, to: randomBytes(20), amount: 1000, nonce }, rate);

/** A chain on regtest with fees, where each key mined a block (50 coins). */
async function funded(t: Test, keys: Key[]): Promise<{ chain: Chain; pool: Mempool; tip: IndexEntry }> {
  const { chain, pool } = await openChain(t, { params: PAID });
  let tip = chain.tip;
  for (const k of keys) tip = await extend(chain, tip, 1, { reward: k.address });
  return { chain, pool, tip };
}

async function code(chain: Chain, tip: IndexEntry, recs: Rec[]): Promise<string | undefined> {
  return ((await chain.processBlock(blockOn(chain, tip, recs, { amount: 0 }))) as { code?: string }).code;
}

t.test('a fee at the rate: found for the record as encoded, paid from the signer to the miner', async (t) => {
  const k = newKey();
  const { chain, tip } = await funded(t, [k]);
  const r = announce(k, 3);
  const fee = (r.body as NodeAnnounce).fee;
  t.ok(fee >= 3 * r.bytes.length && fee < 3 * (r.bytes.length + 3), `3 units per byte of its ${r.bytes.length} bytes, the fee's own bytes counted: ${fee}`);
  t.equal(feeAtRate(r.body as NodeAnnounce, 3), fee, 'the same fee found again from the signed record');
  t.equal(encodeBody(r.body).length, r.bytes.length);
  const before = getAccount(chain.state, k.address).balance;
  const miner = newKey();
  const h = tip.height + 1;
  const res = await chain.processBlock(blockOn(chain, tip, [r], { amount: chain.params.subsidy(h) + fee, reward: miner.address }));
  t.equal(res.status, 'connected');
  t.equal(getAccount(chain.state, k.address).balance, before - fee, 'the signer paid the fee');
  t.equal(getAccount(chain.state, miner.address).balance, chain.params.subsidy(h) + fee, 'the miner was paid it');
});

t.test('every kind of record below the least fee rate is refused (fee-too-low), one block each', async (t) => {
  const k = newKey();
  const { chain, tip } = await funded(t, [k]);
  const name = 'sip:alice@fees.test';
  const below: Array<[string, Rec]> = [
    ['node-announce', announce(k, 0)],
    ['name-commit', commit(k, 0)],
    ['name-claim', sign<NameClaim>(k, { kind: Kind.NameClaim, name, pubkey: k.pub, salt: randomBytes(32) }, 0)],
    ['name-renew', sign<NameRenew>(k, { kind: Kind.NameRenew, name, pubkey: k.pub, nameSeq: 0 }, 0)],
    ['name-transfer', sign<NameTransfer>(k, { kind: Kind.NameTransfer, name, pubkey: k.pub, newOwner: newKey().pub, delegates: [], nameSeq: 0 }, 0)],
    ['name-delegate', sign<NameDelegate>(k, { kind: Kind.NameDelegate, name, pubkey: k.pub, nodes: [k.address], nameSeq: 0 }, 0)],
    ['binding', sign<Binding>(k, { kind: Kind.Binding, name, node: k.address, status: 1, expires: 1_795_050_000, seq: 1, pubkey: k.pub }, 0)],
    ['presence', sign<Presence>(k, { kind: Kind.Presence, pubkey: k.pub, seq: 1, base: 1_795_000_000, entries: [{ ref: 0, status: 1, expires: 1_795_050_000 }] }, 0)],
    // one unit short of one per byte
    ['transfer', (() => {
      const full = transfer(k, 0, 1);
      return sign<Transfer>(k, { ...(full.body as Transfer), fee: (full.body as Transfer).fee - 1 }, 1);
    })()],
  ];
  for (const [kind, r] of below) t.equal(await code(chain, tip, [r]), 'fee-too-low', `${kind} paying less than ${PAID.minFeeRate} per byte`);
  t.equal(chain.tip.hash, tip.hash, 'no block connected');
});

t.test('a record whose signer cannot pay its fee is refused (fee-unpaid), in a block and in the pool', async (t) => {
  const rich = newKey();
  const { chain, pool, tip } = await funded(t, [rich]);
  const broke = newKey();
  t.equal(await code(chain, tip, [commit(broke)]), 'fee-unpaid', 'a commitment from a key with no coins');
  t.throws(() => pool.add(commit(broke)), { code: 'fee-unpaid' });
  // The pool counts what a signer's pending records spend: the same coins are not promised twice.
  const all = getAccount(chain.state, rich.address).balance;
  const to = randomBytes(20);
  const probe = sign<Transfer>(rich, { kind: Kind.Transfer, pubkey: rich.pub, to, amount: all - 1000, nonce: 0 });
  // all but 10 units go in the transfer and its fee
  const big = sign<Transfer>(rich, { kind: Kind.Transfer, pubkey: rich.pub, to, amount: all - (probe.body as Transfer).fee - 10, nonce: 0 });
  pool.add(big);
  t.throws(() => pool.add(commit(rich)), { code: 'fee-unpaid' }, 'a commitment after a transfer of all but 10 units: its fee is not left');
  t.throws(() => pool.add(transfer(rich, 2)), { code: 'bad-nonce' }, 'a transfer that skips a nonce could never be mined: refused');
});

t.test('the freeze attack: one key floods the pool with cheap commitments; a presence binding still gets in', async (t) => {
  const node = newKey();
  const flooder = newKey();
  const { chain, tip: t0 } = await funded(t, [node, flooder]);
  // the node holds a name to bind
  const salt = randomBytes(32);
  let tip = await extend(chain, t0, 1, { recs: [announce(node), commit(node, 1, 'frozen.test', salt)] });
  tip = await extend(chain, tip, 1, { recs: [sign<NameClaim>(node, { kind: Kind.NameClaim, name: 'frozen.test', pubkey: node.pub, salt })] });
  const pool = new Mempool(chain, NET, chain.sigs, { maxRecords: 50 });
  for (let i = 0; i < 50; i++) pool.add(commit(flooder, 2));
  t.equal(pool.size, 50, 'the flooder filled the pool');
  t.throws(() => pool.add(commit(flooder, 2)), { code: 'pool-full' }, 'the flooder, at its share, cannot push out more at the same rate');
  const binding = sign<Binding>(node, { kind: Kind.Binding, name: 'frozen.test', node: node.address, status: 1, expires: Math.floor(Date.now() / 1000) + 3600, seq: 1, pubkey: node.pub }, 1);
  pool.add(binding);
  t.ok(pool.has(toHex(binding.id)), 'the binding is pending, at half the flooder\'s fee rate');
  t.equal(pool.heldBy(toHex(flooder.address)), 49, 'the flooder, over its share, lost its last commitment');
});

t.test('a full pool takes a record only in place of a cheaper one; a signer past its share gives way first', async (t) => {
  const keys = Array.from({ length: 6 }, () => newKey());
  const { chain } = await funded(t, keys);
  const pool = new Mempool(chain, NET, chain.sigs, { maxRecords: 4 });
  const removed: string[] = [];
  pool.on('removed', (id) => removed.push(id));
  const first = keys.slice(0, 4).map((k, i) => commit(k, 1 + i)); // rates 1, 2, 3, 4
  for (const r of first) pool.add(r);
  t.throws(() => pool.add(commit(keys[4], 1)), { code: 'pool-full' }, 'a newcomer paying no more per byte than the cheapest is refused');
  pool.add(commit(keys[4], 2));
  t.same(removed, [toHex(first[0].id)], 'the lowest fee rate left for one paying more');
  t.equal(pool.size, 4);
  // bytes bound the pool as well as records
  const small = new Mempool(chain, NET, chain.sigs, { maxRecords: 100, maxBytes: 3 * first[0].bytes.length + 8 });
  for (const k of keys.slice(0, 3)) small.add(commit(k, 1));
  t.throws(() => small.add(commit(keys[3], 1)), { code: 'pool-full' }, 'full by bytes');
  small.add(commit(keys[3], 5));
  t.equal(small.size, 3, 'one left for the better-paying newcomer');
});

t.test('templates take records by fee rate, each signer\'s in arrival order (a sender\'s nonces)', async (t) => {
  const a = newKey();
  const b = newKey();
  const c = newKey();
  const { chain, pool } = await funded(t, [a, b, c]);
  const a0 = transfer(a, 0, 1);
  const a1 = transfer(a, 1, 10);
  const b0 = commit(b, 5);
  const c0 = commit(c, 3);
  for (const r of [a0, a1, b0, c0]) pool.add(r);
  const ids = (recs: Rec[]): string[] => recs.map((r) => toHex(r.id));
  const hex = (r: Rec): string => toHex(r.id);
  const ctx = chain.nextContext();
  t.same(ids(pool.select(chain.state, ctx, 1_000_000, 2).recs), [hex(b0), hex(c0)], 'the best rates first: a\'s 10-per-byte transfer waits behind its nonce 0 at 1');
  const all = pool.select(chain.state, ctx, 1_000_000, 10);
  t.same(ids(all.recs), [hex(b0), hex(c0), hex(a0), hex(a1)], 'then a\'s in nonce order');
  const fees = [a0, a1, b0, c0].reduce((s, r) => s + (r.body as { fee: number }).fee, 0);
  t.equal(all.fees, fees, 'the template\'s fees are the records\' fees');
  const mined = await chain.processBlock(blockOn(chain, chain.tip, all.recs, { amount: chain.params.subsidy(chain.tip.height + 1) + fees }));
  t.equal(mined.status, 'connected', 'the template\'s records make a valid block');
});

t.test('a pending claim whose commitment grows too old to reveal leaves the pool', async (t) => {
  const k = newKey();
  const { chain, pool, tip } = await funded(t, [k]);
  const salt = randomBytes(32);
  const t1 = await extend(chain, tip, 1, { recs: [commit(k, 1, 'late.test', salt)] });
  await extend(chain, t1, 1);
  const claim = sign<NameClaim>(k, { kind: Kind.NameClaim, name: 'late.test', pubkey: k.pub, salt });
  pool.add(claim);
  t.equal(pool.size, 1);
  await extend(chain, chain.tip, chain.params.maxCommitAge);
  t.equal(pool.size, 0, 'dropped once the commitment expired: it could never be mined');
});
