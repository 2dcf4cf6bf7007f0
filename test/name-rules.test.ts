// The naming rules of issue 14 beyond domain authority, one block per rule that breaks it: number
// blocks (the longest claimed prefix allocates), name fees (burned, more for shorter names),
// several serving nodes (a delegate binds only itself, a binding names a serving node, each node
// its own sequence, a removed node's old bindings never come back), and names handed to a user's
// key with the nodes that serve them, which the user moves without the old node's help.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, extend, newKey, commitRec as commit, claimRec as claim, announceRec as announce, claimAll, refusesBlock, type Key } from './helpers.ts';
import { signRecord, Kind, decodeRec, isValidName, type NameRenew, type NameDelegate, type NameTransfer, type Binding, type Transfer, type Rec } from '../core/records.ts';
import { nameFee } from '../core/names.ts';
import { getAccount, getBinding, getName } from '../core/state.ts';
import { encode } from '../core/encoding.ts';
import { bytesEqual } from '../core/hash.ts';
import { COIN, NAME_PRICE, NETWORKS } from '../consensus/params.ts';
import { resolveName, routingSource } from '../telecom/routing.ts';

const NET = 'regtest';

function delegate(owner: Key, name: string, nodes: Key[], nameSeq: number): Rec {
  return signRecord<NameDelegate>(NET, owner.secret, { kind: Kind.NameDelegate, name, pubkey: owner.pub, nodes: nodes.map((n) => n.address), nameSeq });
}
function bind(signer: Key, name: string, node: Key, seq: number, expires: number): Rec {
  return signRecord<Binding>(NET, signer.secret, { kind: Kind.Binding, name, node: node.address, status: 1, expires, seq, pubkey: signer.pub });
}



t.test('number blocks: the longest claimed prefix allocates the numbers under it', async (t) => {
  const { chain } = await openChain(t);
  const carrier = newKey();
  const reseller = newKey();
  const stranger = newKey();
  const registrar = newKey();
  t.ok(isValidName('+1'), 'a one-digit country prefix is a name');
  let tip = await claimAll(chain, chain.tip, [[carrier, '+1555'], [stranger, '+4930123456']]);
  t.ok(getName(chain.state, '+4930123456'), 'a number no block covers is claimed directly');
  const salt = randomBytes(32);
  tip = await extend(chain, tip, 1, { recs: [commit(stranger, '+15551234567', salt), commit(carrier, '+15551234567', salt), commit(carrier, '+15559', salt), commit(registrar, '+15550000001', salt)] });
  await refusesBlock(t, chain, tip, [claim(stranger, '+15551234567', salt)], 'prefix-not-held', "a stranger's claim of a number in +1555");
  await refusesBlock(t, chain, tip, [claim(registrar, '+15550000001', salt)], 'prefix-not-held', 'a key the block owner has not delegated to');
  // the block's owner allocates a sub-block to a reseller and delegates the block to a registrar node
  const give = signRecord<NameTransfer>(NET, carrier.secret, { kind: Kind.NameTransfer, name: '+15559', pubkey: carrier.pub, newOwner: reseller.pub, delegates: [], nameSeq: 0 });
  tip = await extend(chain, tip, 1, { recs: [claim(carrier, '+15559', salt), give, claim(carrier, '+15551234567', salt), delegate(carrier, '+1555', [registrar], 0), claim(registrar, '+15550000001', salt)] });
  t.same(getName(chain.state, '+15551234567')?.owner, carrier.pub, 'the block owner claims a number in it');
  t.same(getName(chain.state, '+15550000001')?.owner, registrar.pub, "and so does the block's delegate");
  // inside +15559 the reseller rules, not the carrier: the longest prefix wins
  tip = await extend(chain, tip, 1, { recs: [commit(carrier, '+15559000000', salt), commit(reseller, '+15559000001', salt)] });
  await refusesBlock(t, chain, tip, [claim(carrier, '+15559000000', salt)], 'prefix-not-held', "the carrier's claim inside the reseller's longer block");
  await extend(chain, tip, 1, { recs: [claim(reseller, '+15559000001', salt)] });
  t.same(getName(chain.state, '+15559000001')?.owner, reseller.pub, 'the reseller allocates its block');
});

t.test('the pending pool: a number is checked after its block when both claims are pending', async (t) => {
  const { chain, pool } = await openChain(t);
  const carrier = newKey();
  const stranger = newKey();
  const salt = randomBytes(32);
  await extend(chain, chain.tip, 1, { recs: [commit(carrier, '+4930', salt), commit(carrier, '+4930123', salt), commit(carrier, '+49301234567', salt), commit(stranger, '+49309999999', salt)] });
  const refusal = (rec: Rec): string | null => {
    try {
      pool.add(rec);
      return null;
    } catch (e) {
      return (e as { code?: string }).code ?? String(e);
    }
  };
  t.equal(refusal(claim(carrier, '+4930', salt)), null, 'the block claim is pending');
  t.equal(refusal(claim(carrier, '+4930123', salt)), null, 'a sub-block of it, by its owner, while the block is pending');
  t.equal(refusal(claim(carrier, '+49301234567', salt)), null, 'a number in the sub-block, while both are pending');
  t.equal(refusal(claim(stranger, '+49309999999', salt)), 'prefix-not-held', "a stranger's number under the pending block is refused by the pool, as a block would be");
  await extend(chain, chain.tip, 1, { recs: pool.list().map((e) => e.rec) });
  t.same(getName(chain.state, '+49301234567')?.owner, carrier.pub, 'and the three claims, in arrival order, make a valid block');
  t.equal(pool.size, 0, 'which empties the pool');
});

t.test('name fees: claims and renewals pay by length, the fee is burned', async (t) => {
  const base = NAME_PRICE;
  t.equal(nameFee('example.org', base), base, 'an ordinary domain costs the base price');
  t.equal(nameFee('abc', base), 64 * base, 'a three-letter domain 4^3 times it');
  t.equal(nameFee('sip:alice@example.org', base), base / 10, "a user's address a tenth");
  t.equal(nameFee('+15551234567', base), base, 'a whole number the base price');
  t.equal(nameFee('+1555', base), 4 ** 7 * base, 'a four-digit block 4^7 times it');
  t.equal(nameFee('+1', base), 4 ** 10 * base, 'a country prefix 4^10 times it (capped there)');
  t.ok(nameFee('+1', base) > 10_000 * nameFee('+15551234567', base), 'taking +1 costs more than ten thousand numbers');
  t.equal(nameFee('n0123456789abcdef.dots', base), base, "a node's own domain the base price");
  t.ok(Number.isSafeInteger(nameFee('+1', NAME_PRICE)), 'the dearest fee is an exact integer');
  t.equal(nameFee('abc', NETWORKS.regtest.namePriceBase), 0, 'regtest names are free (tests need no coins)');

  // regtest's rules with the price of the real networks
  const params = { ...NETWORKS.regtest, namePriceBase: NAME_PRICE };
  const { chain } = await openChain(t, { params });
  const poor = newKey();
  const rich = newKey();
  const salt = randomBytes(32);
  // `rich` mines a block (50 coins); `poor` has nothing
  let tip = await extend(chain, chain.tip, 1, { reward: rich.address, recs: [commit(poor, 'pricey.example', salt), commit(rich, 'pricey.example', salt), commit(rich, 'abc', salt)] });
  const before = getAccount(chain.state, rich.address).balance;
  t.equal(before, 50 * COIN);
  await refusesBlock(t, chain, tip, [claim(poor, 'pricey.example', salt)], 'name-fee-unpaid', 'a claim without the fee');
  await refusesBlock(t, chain, tip, [claim(rich, 'abc', salt)], 'name-fee-unpaid', 'a short domain dearer than the balance');
  tip = await extend(chain, tip, 1, { recs: [claim(rich, 'pricey.example', salt)] });
  t.equal(getAccount(chain.state, rich.address).balance, before - NAME_PRICE, 'the fee left the claimant');
  const cb = (await chain.getBlock(tip.hex))?.records[0].body;
  t.equal(cb?.kind === Kind.Coinbase && cb.amount, params.subsidy(tip.height), 'and went to nobody: the miner may claim the subsidy only');
  await refusesBlock(t, chain, tip, [claim(rich, 'pricey.example', salt)], 'name-taken', 'the same claim again');
  // renewals pay too
  const renew = (seq: number): Rec => signRecord<NameRenew>(NET, rich.secret, { kind: Kind.NameRenew, name: 'pricey.example', pubkey: rich.pub, nameSeq: seq });
  await extend(chain, tip, 1, { recs: [renew(0)] });
  t.equal(getAccount(chain.state, rich.address).balance, before - 2 * NAME_PRICE, 'a renewal costs the same');
  const spend = signRecord<Transfer>(NET, rich.secret, { kind: Kind.Transfer, pubkey: rich.pub, to: poor.address, amount: before - 2 * NAME_PRICE, fee: 0, nonce: 0 });
  await refusesBlock(t, chain, chain.tip, [spend, renew(1)], 'name-fee-unpaid', 'a renewal after the balance is spent in the same block');
});

t.test('several serving nodes: each binds itself, with its own sequence', async (t) => {
  const { chain } = await openChain(t);
  const domainOwner = newKey();
  const user = newKey();
  const [a, b, c, d] = [newKey(), newKey(), newKey(), newKey()];
  const name = 'sip:alice@multi.test';
  let tip = await claimAll(chain, chain.tip, [[domainOwner, 'multi.test']], [announce(a), announce(b), announce(c), announce(d)]);
  // the domain's owner claims alice's address and hands it to her key, served by a, b and c
  const give = signRecord<NameTransfer>(NET, domainOwner.secret, { kind: Kind.NameTransfer, name, pubkey: domainOwner.pub, newOwner: user.pub, delegates: [a.address, b.address, c.address], nameSeq: 0 });
  tip = await claimAll(chain, tip, [[domainOwner, name]], [give]);
  t.same(getName(chain.state, name)?.delegates, [a.address, b.address, c.address], 'three serving nodes, in order');
  const exp = tip.header.time + 3600;
  await refusesBlock(t, chain, tip, [bind(a, name, b, 1, exp)], 'not-authorized', 'a delegate binding the name to another node');
  await refusesBlock(t, chain, tip, [bind(d, name, d, 1, exp)], 'not-authorized', 'a node that is no delegate');
  await refusesBlock(t, chain, tip, [bind(user, name, d, 1, exp)], 'not-serving', 'the owner binding to a node that does not serve the name');
  await refusesBlock(t, chain, tip, [bind(domainOwner, name, a, 1, exp)], 'not-authorized', "the domain's owner, once the name is the user's");
  // each serving node has its own sequence: a at 5 and b at 1 in one block, no race
  tip = await extend(chain, tip, 1, { recs: [bind(a, name, a, 5, exp), bind(b, name, b, 1, exp), bind(user, name, c, 1, exp)] });
  t.equal(getBinding(chain.state, name)?.slots.length, 3, 'one slot per serving node');
  await refusesBlock(t, chain, tip, [bind(b, name, b, 1, exp)], 'stale-binding-seq', "a replay of b's binding");
  // the user drops a: a's slot leaves, and a's old bindings (seq 5) stay dead if a comes back
  tip = await extend(chain, tip, 1, { recs: [delegate(user, name, [b, c], 1)] });
  t.same(getBinding(chain.state, name)?.slots.map((s) => s.node), [b.address, c.address], "a's binding left with it");
  tip = await extend(chain, tip, 1, { recs: [delegate(user, name, [a, b, c], 2)] });
  await refusesBlock(t, chain, tip, [bind(a, name, a, 5, exp)], 'stale-binding-seq', "a's old binding replayed after a serves again");
  await extend(chain, tip, 1, { recs: [bind(a, name, a, 6, exp)] });
  t.equal(getBinding(chain.state, name)?.slots.length, 3, 'a binds again above its old sequence');
  // a delegation list is at most MAX_DELEGATES distinct nodes: anything else does not decode
  const dup = encode([Kind.NameDelegate, name, user.pub, [a.address, a.address], 2, 0, new Uint8Array(64)]);
  t.throws(() => decodeRec(dup), /listed twice/, 'a node listed twice does not decode');
  const many = encode([Kind.NameDelegate, name, user.pub, Array.from({ length: 9 }, () => randomBytes(20)), 2, 0, new Uint8Array(64)]);
  t.throws(() => decodeRec(many), /bad-encoding/, 'nine delegates do not decode');
});

t.test("a user-owned name moves from node A to node B with no action from A's operator", async (t) => {
  const { chain, pool } = await openChain(t);
  const a = newKey(); // node A: owns the domain and served alice first
  const b = newKey(); // node B: where alice moves
  const c = newKey(); // a third node that routes calls to alice
  const user = newKey();
  const name = 'sip:alice@a-domain.test';
  let tip = await claimAll(chain, chain.tip, [[a, 'a-domain.test']], [announce(a), announce(b), announce(c)]);
  // `dots user add alice --owner KEY` at A: A claims, then hands the name to alice's key, served by A
  const give = signRecord<NameTransfer>(NET, a.secret, { kind: Kind.NameTransfer, name, pubkey: a.pub, newOwner: user.pub, delegates: [a.address], nameSeq: 0 });
  tip = await claimAll(chain, tip, [[a, name]], [give]);
  const exp = tip.header.time + 3600;
  const now = tip.header.time;
  tip = await extend(chain, tip, 1, { recs: [bind(a, name, a, 1, exp)] });
  const src = routingSource(chain, pool);
  const at = (): string => {
    const r = resolveName(src, name, now, c.address);
    return r.kind === 'remote' ? (bytesEqual(r.nodeId, a.address) ? 'A' : bytesEqual(r.nodeId, b.address) ? 'B' : 'another') : r.kind;
  };
  t.equal(at(), 'A', 'C routes alice to A');
  // alice, with her wallet alone, delegates her name to B; B binds it
  tip = await extend(chain, tip, 1, { recs: [delegate(user, name, [b], 1), bind(b, name, b, 2, exp)] });
  t.equal(at(), 'B', 'C routes alice to B, A never signed anything');
  await refusesBlock(t, chain, tip, [bind(a, name, a, 2, exp)], 'not-authorized', 'A binding alice after she left');
  // and A, which still owns the domain, cannot take her name back before it expires
  const back = signRecord<NameTransfer>(NET, a.secret, { kind: Kind.NameTransfer, name, pubkey: a.pub, newOwner: a.pub, delegates: [], nameSeq: 2 });
  await refusesBlock(t, chain, tip, [back], 'not-owner', 'the domain owner taking the name back');
  const salt = randomBytes(32);
  tip = await extend(chain, tip, 1, { recs: [commit(a, name, salt)] });
  await refusesBlock(t, chain, tip, [claim(a, name, salt)], 'name-taken', 'the domain owner claiming it anew');
});
