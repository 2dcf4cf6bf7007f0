// One block per consensus rule, each breaking exactly that rule, each rejected with its own reason.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, blockOn, extend, newKey, type Key } from './helpers.ts';
import { signRecord, Kind, commitmentOf, ownDomainOf, type NameCommit, type NameClaim, type NameRenew, type NameDelegate, type NameTransfer, type Binding, type NodeAnnounce, type Transfer, type Rec } from '../core/records.ts';
import { decodeBlock, encodeBlock } from '../core/block.ts';
import { addressOf } from '../core/address.ts';
import { encode } from '../core/encoding.ts';
import { NETWORKS } from '../consensus/params.ts';
import { ValidationError } from '../core/errors.ts';
import { getName, keys } from '../core/state.ts';
import { toHex } from '../core/hash.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';

const NET = 'regtest';

function commit(k: Key, name: string, salt: Uint8Array): Rec {
  return signRecord<NameCommit>(NET, k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: commitmentOf(name, salt, k.pub) });
}
function claim(k: Key, name: string, salt: Uint8Array): Rec {
  return signRecord<NameClaim>(NET, k.secret, { kind: Kind.NameClaim, name, pubkey: k.pub, salt });
}
function announce(k: Key, seq = 1): Rec {
  return signRecord<NodeAnnounce>(NET, k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: ['sip:node.test'], p2pAddrs: [], rewardAddress: k.address, seq });
}
function delegate(owner: Key, name: string, nodes: Key[], nameSeq: number): Rec {
  return signRecord<NameDelegate>(NET, owner.secret, { kind: Kind.NameDelegate, name, pubkey: owner.pub, nodes: nodes.map((n) => addressOf(n.pub)), nameSeq });
}
function binding(k: Key, name: string, node: Key, seq: number, expires: number): Rec {
  return signRecord<Binding>(NET, k.secret, { kind: Kind.Binding, name, node: addressOf(node.pub), status: 1, expires, seq, pubkey: k.pub });
}

/** A chain where `owner` owns the domain `test` and sip:alice@test, and node `node` is announced and serves alice. */
async function withName(t: Test): Promise<{ chain: Chain; owner: Key; node: Key; tip: IndexEntry }> {
  const { chain } = await openChain(t);
  const owner = newKey();
  const node = newKey();
  const salt = randomBytes(32);
  let tip = await extend(chain, chain.tip, 1, { recs: [commit(owner, 'test', salt), commit(owner, 'sip:alice@test', salt), announce(node)] });
  tip = await extend(chain, tip, 1, { recs: [claim(owner, 'test', salt), claim(owner, 'sip:alice@test', salt), delegate(owner, 'sip:alice@test', [node], 0)] });
  return { chain, owner, node, tip };
}

async function rejects(t: Test, chain: Chain, block: ReturnType<typeof blockOn>, code: string): Promise<void> {
  const before = chain.tip.hex;
  const r = await chain.processBlock(block);
  t.equal(r.status, 'invalid', `${code}: rejected`);
  t.equal((r as { code?: string }).code, code, `${code}: reason`);
  t.equal(chain.tip.hex, before, `${code}: tip unchanged`);
}

t.test('a valid block connects', async (t) => {
  const { chain } = await openChain(t);
  const r = await chain.processBlock(blockOn(chain, chain.tip, []));
  t.equal(r.status, 'connected');
});

t.test('bad proof of work', async (t) => {
  const { chain } = await openChain(t);
  await rejects(t, chain, blockOn(chain, chain.tip, [], { badPow: true }), 'bad-pow');
});

t.test('wrong bits', async (t) => {
  const { chain } = await openChain(t);
  await rejects(t, chain, blockOn(chain, chain.tip, [], { bits: 0x207ffffe }), 'bad-bits');
  await rejects(t, chain, blockOn(chain, chain.tip, [], { bits: 0x2100ffff }), 'bad-bits');
});

t.test('bad Merkle root', async (t) => {
  const { chain } = await openChain(t);
  await rejects(t, chain, blockOn(chain, chain.tip, [], { merkleRoot: randomBytes(32) }), 'bad-merkle-root');
});

t.test('time at or below median-time-past', async (t) => {
  const { chain } = await openChain(t);
  const tip = await extend(chain, chain.tip, 11);
  const mtp = chain.parentInfo(tip).medianTimePast;
  await rejects(t, chain, blockOn(chain, tip, [], { time: mtp }), 'time-too-old');
  await rejects(t, chain, blockOn(chain, tip, [], { time: mtp - 100 }), 'time-too-old');
  t.equal((await chain.processBlock(blockOn(chain, tip, [], { time: mtp + 1 }))).status, 'connected', 'mtp + 1 is fine');
});

t.test('too far in the future', async (t) => {
  const now = 1_800_000_000;
  const { chain } = await openChain(t, { now: () => now });
  const max = NETWORKS.regtest.maxFutureSeconds;
  await rejects(t, chain, blockOn(chain, chain.tip, [], { time: now + max + 1 }), 'time-too-new');
  t.equal((await chain.processBlock(blockOn(chain, chain.tip, [], { time: now + max }))).status, 'connected', 'exactly at the limit is fine');
});

t.test('oversize block', async (t) => {
  const { chain } = await openChain(t, { params: { ...NETWORKS.regtest, maxBlockBytes: 1500 } });
  const recs = Array.from({ length: 12 }, () => announce(newKey()));
  const b = blockOn(chain, chain.tip, recs);
  t.ok(b.size > 1500);
  await rejects(t, chain, b, 'oversize');
  t.throws(() => decodeBlock(encodeBlock(b), 1500), { code: 'oversize' }, 'decoder refuses oversize bytes too');
});

t.test('too many records', async (t) => {
  const { chain } = await openChain(t, { params: { ...NETWORKS.regtest, maxBlockRecords: 3 } });
  await rejects(t, chain, blockOn(chain, chain.tip, [announce(newKey()), announce(newKey()), announce(newKey())]), 'too-many-records');
});

t.test('duplicate record', async (t) => {
  const { chain } = await openChain(t);
  const r = announce(newKey());
  await rejects(t, chain, blockOn(chain, chain.tip, [r, r]), 'duplicate-record');
});

t.test('record already confirmed (replay across blocks)', async (t) => {
  const { chain } = await openChain(t);
  const k = newKey();
  const r = announce(k);
  const tip = await extend(chain, chain.tip, 1, { recs: [r] });
  await rejects(t, chain, blockOn(chain, tip, [r]), 'stale-node-seq');
});

t.test('bad signature', async (t) => {
  const { chain } = await openChain(t);
  const k = newKey();
  const good = announce(k);
  const body = { ...(good.body as NodeAnnounce), sig: Uint8Array.from((good.body as NodeAnnounce).sig) };
  body.sig[5] ^= 1;
  const forged = signRecord<NodeAnnounce>(NET, newKey().secret, { ...body, pubkey: k.pub }); // signed by another key
  await rejects(t, chain, blockOn(chain, chain.tip, [forged]), 'bad-signature');
  // A signature made for another network does not verify here either.
  const other = signRecord<NodeAnnounce>('devnet', k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [], p2pAddrs: [], rewardAddress: k.address, seq: 1 });
  await rejects(t, chain, blockOn(chain, chain.tip, [other]), 'bad-signature');
});

t.test('non-canonical encoding', async (t) => {
  const { chain } = await openChain(t);
  const b = blockOn(chain, chain.tip, [announce(newKey())]);
  const bytes = encodeBlock(b);
  // Re-encode the record's seq (1, a positive fixint 0x01) as a uint16 (0xcd 0x00 0x01): same value, other bytes.
  const rec = b.records[1].bytes;
  const seqAt = rec.length - 64 - 2 - 1 - 1; // ... seq, fee (0 on regtest, one byte), bin8 header (0xc4 0x40), 64-byte sig
  t.equal(rec[seqAt], 1);
  const altRec = Uint8Array.from([...rec.subarray(0, seqAt), 0xcd, 0x00, 0x01, ...rec.subarray(seqAt + 1)]);
  const altBlock = encode([b.headerBytes, [b.records[0].bytes, altRec]]);
  t.throws(() => decodeBlock(altBlock, 1e6), { code: 'non-canonical' }, 'record with a longer integer form');
  // The block's own array with a 16-bit length header instead of a fixarray.
  const outer = Uint8Array.from([0xdc, 0x00, 0x02, ...bytes.subarray(1)]);
  t.throws(() => decodeBlock(outer, 1e6), { code: 'non-canonical' }, 'block with a longer array header');
  t.throws(() => decodeBlock(Uint8Array.from([0x92, 0xc0, 0x90]), 1e6), { code: 'bad-encoding' }, 'nil where a header belongs');
  t.throws(() => decodeBlock(randomBytes(100), 1e6), ValidationError, 'garbage');
  t.equal(chain.tip.height, 0);
});

t.test('claim by a non-owner', async (t) => {
  const { chain, owner, tip } = await withName(t);
  const thief = newKey();
  // Renewing someone else's name.
  const renew = signRecord<NameRenew>(NET, thief.secret, { kind: Kind.NameRenew, name: 'sip:alice@test', pubkey: thief.pub, nameSeq: 0 });
  await rejects(t, chain, blockOn(chain, tip, [renew]), 'not-owner');
  // Claiming a name someone owns, even with a proper commitment.
  const salt = randomBytes(32);
  const t2 = await extend(chain, tip, 1, { recs: [commit(thief, 'sip:alice@test', salt)] });
  await rejects(t, chain, blockOn(chain, t2, [claim(thief, 'sip:alice@test', salt)]), 'name-taken');
  // A binding signed by someone who is neither owner nor delegate.
  await rejects(t, chain, blockOn(chain, t2, [binding(thief, 'sip:alice@test', thief, 1, t2.header.time + 600)]), 'not-authorized');
  t.ok(owner);
});

t.test('domain authority: a SIP address is handed out by its domain\'s owner or delegate, never taken', async (t) => {
  const { chain, owner, node, tip } = await withName(t);
  const thief = newKey();
  const salt = randomBytes(32);
  // The hijack: a key that owns nothing commits and reveals an unclaimed address under a held domain.
  const t2 = await extend(chain, tip, 1, { recs: [commit(thief, 'sip:bob@test', salt), commit(thief, 'sip:carol@nobody.test', salt), commit(owner, 'sip:dave@test', salt), commit(node, 'sip:erin@test', salt)] });
  await rejects(t, chain, blockOn(chain, t2, [claim(thief, 'sip:bob@test', salt)]), 'domain-not-held');
  // Under a domain nobody holds, nothing can be claimed at all.
  await rejects(t, chain, blockOn(chain, t2, [claim(thief, 'sip:carol@nobody.test', salt)]), 'domain-unclaimed');
  // The node the owner delegated the domain to may hand out addresses; before that it may not.
  await rejects(t, chain, blockOn(chain, t2, [claim(node, 'sip:erin@test', salt)]), 'domain-not-held');
  const del = delegate(owner, 'test', [node], 0);
  const t3 = await extend(chain, t2, 1, { recs: [del, claim(owner, 'sip:dave@test', salt), claim(node, 'sip:erin@test', salt)] });
  t.equal(getName(chain.state, 'sip:dave@test')?.owner.length, 33, 'the owner claims under its domain');
  t.ok(getName(chain.state, 'sip:erin@test') !== undefined, "and so does the domain's delegate");
  // A user's key holds an address once the domain owner transfers it: the owner cannot take it back.
  const user = newKey();
  const give = signRecord<NameTransfer>(NET, owner.secret, { kind: Kind.NameTransfer, name: 'sip:dave@test', pubkey: owner.pub, newOwner: user.pub, delegates: [], nameSeq: 0 });
  await extend(chain, t3, 1, { recs: [give] });
  t.same(getName(chain.state, 'sip:dave@test')?.owner, user.pub, "the user's key owns it");
  const back = signRecord<NameTransfer>(NET, owner.secret, { kind: Kind.NameTransfer, name: 'sip:dave@test', pubkey: owner.pub, newOwner: owner.pub, delegates: [], nameSeq: 1 });
  await rejects(t, chain, blockOn(chain, chain.tip, [back]), 'not-owner');
});

t.test("a node's own domain is reserved for it", async (t) => {
  const { chain } = await openChain(t);
  const node = newKey();
  const squatter = newKey();
  const own = ownDomainOf(toHex(addressOf(node.pub)));
  const salt = randomBytes(32);
  const tip = await extend(chain, chain.tip, 1, { recs: [commit(squatter, own, salt), commit(node, own, salt)] });
  await rejects(t, chain, blockOn(chain, tip, [claim(squatter, own, salt)]), 'domain-reserved');
  await extend(chain, tip, 1, { recs: [claim(node, own, salt)] });
  t.same(getName(chain.state, own)?.owner, node.pub, 'the node claims its own');
});

t.test('domain authority in one block: the domain must come before the address', async (t) => {
  const { chain } = await openChain(t);
  const k = newKey();
  const salt = randomBytes(32);
  const tip = await extend(chain, chain.tip, 1, { recs: [commit(k, 'late.test', salt), commit(k, 'sip:ann@late.test', salt)] });
  await rejects(t, chain, blockOn(chain, tip, [claim(k, 'sip:ann@late.test', salt), claim(k, 'late.test', salt)]), 'domain-unclaimed');
  await extend(chain, tip, 1, { recs: [claim(k, 'late.test', salt), claim(k, 'sip:ann@late.test', salt)] });
  t.ok(getName(chain.state, 'sip:ann@late.test'), 'in that order the block connects');
});

t.test('claim without a matured commitment', async (t) => {
  const { chain } = await openChain(t);
  const k = newKey();
  const salt = randomBytes(32);
  await rejects(t, chain, blockOn(chain, chain.tip, [claim(k, 'sip:bob@test', salt)]), 'no-commit');
  // Commit and reveal in the same block: the reveal is too early (front-running guard).
  await rejects(t, chain, blockOn(chain, chain.tip, [commit(k, 'sip:bob@test', salt), claim(k, 'sip:bob@test', salt)]), 'commit-too-recent');
});

t.test('stale binding sequence', async (t) => {
  const { chain, owner, node, tip } = await withName(t);
  // Expiry from the chain's own time: these blocks are timed just after genesis, whatever day
  // the test runs (the wall clock would put it past maxBindingTtl a week after genesis).
  const exp = tip.header.time + 3600;
  const t2 = await extend(chain, tip, 1, { recs: [binding(owner, 'sip:alice@test', node, 5, exp)] });
  await rejects(t, chain, blockOn(chain, t2, [binding(owner, 'sip:alice@test', node, 5, exp + 1)]), 'stale-binding-seq');
  await rejects(t, chain, blockOn(chain, t2, [binding(owner, 'sip:alice@test', node, 4, exp + 1)]), 'stale-binding-seq');
  t.equal((await chain.processBlock(blockOn(chain, t2, [binding(owner, 'sip:alice@test', node, 6, exp + 1)]))).status, 'connected');
});

t.test('binding expiry too far ahead of the block', async (t) => {
  const { chain, owner, node, tip } = await withName(t);
  const time = tip.header.time + 1;
  const ttl = chain.params.maxBindingTtl;
  await rejects(t, chain, blockOn(chain, tip, [binding(owner, 'sip:alice@test', node, 1, time + ttl + 1)], { time }), 'binding-too-long');
  t.equal((await chain.processBlock(blockOn(chain, tip, [binding(owner, 'sip:alice@test', node, 1, time + ttl)], { time }))).status, 'connected', 'exactly maxBindingTtl ahead is fine');
});

t.test('unknown parent', async (t) => {
  const { chain } = await openChain(t);
  const { hashToHex } = await import('../core/hash.ts');
  // A stand-in index entry for a block this chain has never seen, so blockOn builds on it.
  const unseen = (hash: Uint8Array, header = chain.tip.header): IndexEntry => ({ ...chain.tip, hash, hex: hashToHex(hash), height: 1, header, prev: chain.tip });
  const r1 = await chain.processBlock(blockOn(chain, unseen(randomBytes(32)), []));
  t.equal(r1.status, 'orphan');
  t.equal((r1 as { code: string }).code, 'unknown-parent');
  // When the parent arrives, the waiting child is connected too.
  const parent = blockOn(chain, chain.tip, []);
  const child = blockOn(chain, unseen(parent.hash, parent.header), []);
  t.equal((await chain.processBlock(child)).status, 'orphan');
  t.equal((await chain.processBlock(parent)).status, 'connected');
  t.equal(chain.tip.height, 2, 'orphan adopted once its parent connected');
});

t.test('coinbase rules', async (t) => {
  const { chain } = await openChain(t);
  const p = chain.params;
  await rejects(t, chain, blockOn(chain, chain.tip, [], { amount: p.subsidy(1) + 1 }), 'bad-coinbase-amount');
  await rejects(t, chain, blockOn(chain, chain.tip, [], { coinbaseHeight: 7 }), 'bad-coinbase-height');
});

t.test('transfers: nonce, funds, fees', async (t) => {
  const { chain } = await openChain(t);
  const rich = newKey();
  const tip = await extend(chain, chain.tip, 1, { reward: rich.address });
  const p = chain.params;
  const send = (nonce: number, amount: number, fee = 0): Rec =>
    signRecord<Transfer>(NET, rich.secret, { kind: Kind.Transfer, pubkey: rich.pub, to: newKey().address, amount, fee, nonce });
  await rejects(t, chain, blockOn(chain, tip, [send(1, 10)]), 'bad-nonce');
  await rejects(t, chain, blockOn(chain, tip, [send(0, p.subsidy(1) + 1)]), 'insufficient-funds');
  await rejects(t, chain, blockOn(chain, tip, [send(0, 10), send(0, 11)]), 'bad-nonce');
  // A fee may be claimed by the coinbase, but not more than it.
  await rejects(t, chain, blockOn(chain, tip, [send(0, 10, 5)], { amount: p.subsidy(2) + 6 }), 'bad-coinbase-amount');
  t.equal((await chain.processBlock(blockOn(chain, tip, [send(0, 10, 5)], { amount: p.subsidy(2) + 5 }))).status, 'connected');
});

t.test('a commitment that can no longer be revealed leaves the state; a reorganisation brings it back', async (t) => {
  const { chain } = await openChain(t);
  const k = newKey();
  const salt = randomBytes(32);
  const maxAge = NETWORKS.regtest.maxCommitAge;
  const kept = commit(k, 'kept.test', salt);
  const tip = await extend(chain, chain.tip, 1, { recs: [commit(k, 'never.test', salt), kept] });
  const at = tip.height;
  await extend(chain, tip, 1, { recs: [claim(k, 'kept.test', salt)] });
  const key = keys.commit(commitmentOf('never.test', salt, k.pub));
  const last = await extend(chain, chain.tip, at + maxAge - chain.tip.height);
  t.ok(chain.state.get(key), `at height ${last.height} (made at ${at}, revealable until ${at + maxAge}) it is still there`);
  const pruned = await extend(chain, last, 1);
  t.equal(chain.state.get(key), undefined, `at height ${pruned.height} it has left the state`);
  t.equal(chain.state.get(`h:${at}`), undefined, 'with the list of that height');
  t.ok(getName(chain.state, 'kept.test'), 'the revealed name stays');
  // A longer branch from the block that made it reveals it one block later: it connects only if
  // switching undid the pruning (the commitment is back in the state it builds on).
  const other = await extend(chain, tip, 1, { recs: [claim(k, 'never.test', salt)], time: tip.header.time + 3 });
  await extend(chain, other, pruned.height - at, { time: tip.header.time + 4 });
  t.equal(chain.tip.height, pruned.height + 1, 'the other branch won');
  t.ok(getName(chain.state, 'never.test'), 'and its reveal of the commitment stands');
  t.equal(getName(chain.state, 'kept.test'), undefined, 'while the first branch\'s claim is undone');
});
