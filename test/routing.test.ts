// Routing from the chain tip plus pending records: confirmed bindings, pending ones that override
// them, several serving nodes tried freshest first, offline and expired bindings, unknown names,
// and nodes without a usable announcement.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, extend, newKey, type Key } from './helpers.ts';
import { signRecord, Kind, commitmentOf, BindingStatus, type NameCommit, type NameClaim, type NameDelegate, type NameTransfer, type Binding, type NodeAnnounce, type Rec } from '../core/records.ts';
import { keys, type StateReader } from '../core/state.ts';
import { resolveName, nodeAddresses, routingSource, chainLocator, type RoutingSource } from '../telecom/routing.ts';
import type { Chain } from '../consensus/chain.ts';
import type { Mempool } from '../core/mempool.ts';

const NET = 'regtest';
const NAME = 'sip:alice@a.test';

function commit(k: Key, name: string, salt: Uint8Array): Rec {
  return signRecord<NameCommit>(NET, k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: commitmentOf(name, salt, k.pub) });
}
function claim(k: Key, name: string, salt: Uint8Array): Rec {
  return signRecord<NameClaim>(NET, k.secret, { kind: Kind.NameClaim, name, pubkey: k.pub, salt });
}
function announce(k: Key, sipUris: string[], seq = 1): Rec {
  return signRecord<NodeAnnounce>(NET, k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris, p2pAddrs: [`/ip4/127.0.0.1/tcp/1/p2p/x${seq}`], rewardAddress: k.address, seq });
}
function delegate(owner: Key, nodes: Key[], nameSeq: number, name = NAME): Rec {
  return signRecord<NameDelegate>(NET, owner.secret, { kind: Kind.NameDelegate, name, pubkey: owner.pub, nodes: nodes.map((n) => n.address), nameSeq });
}
function bind(owner: Key, node: Key, seq: number, expires: number, status: number = BindingStatus.Online, name = NAME): Rec {
  return signRecord<Binding>(NET, owner.secret, { kind: Kind.Binding, name, node: node.address, status, expires, seq, pubkey: owner.pub });
}

interface World {
  chain: Chain;
  pool: Mempool;
  /** what the proxy reads: the chain and its pending pool */
  src: RoutingSource;
  owner: Key;
  a: Key;
  b: Key;
  /** a unix time at which the test bindings are live (the regtest genesis time) */
  now: number;
}

/** Owner holds NAME, served by nodes a and b (announced, delegated); nothing is bound yet. */
async function world(t: Test): Promise<World> {
  const { chain, pool } = await openChain(t);
  const owner = newKey();
  const a = newKey();
  const b = newKey();
  const salt = randomBytes(32);
  const tip = await extend(chain, chain.tip, 1, { recs: [commit(owner, 'a.test', salt), commit(owner, NAME, salt), announce(a, ['sip:10.0.0.1:5060', 'sip:10.0.0.1:5060;transport=tcp']), announce(b, ['sip:10.0.0.2:5060'])] });
  await extend(chain, tip, 1, { recs: [claim(owner, 'a.test', salt), claim(owner, NAME, salt), delegate(owner, [a, b], 0)] });
  return { chain, pool, src: routingSource(chain, pool), owner, a, b, now: chain.params.genesis.time };
}

t.test('a confirmed binding routes to its node, or locally on that node', async (t) => {
  const w = await world(t);
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 1, w.now + 3600)] });
  const r = resolveName(w.src, NAME, w.now, w.b.address);
  t.match(r, { kind: 'remote', status: 'online', confirmed: true, sipUris: ['sip:10.0.0.1:5060', 'sip:10.0.0.1:5060;transport=tcp'], p2pAddrs: ['/ip4/127.0.0.1/tcp/1/p2p/x1'] });
  t.same(r.kind === 'remote' && r.nodeId, w.a.address);
  t.same(resolveName(w.src, NAME, w.now, w.a.address), { kind: 'local', confirmed: true, next: [] });
});

t.test('a pending binding with a higher seq overrides its node\'s confirmed one', async (t) => {
  const w = await world(t);
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 1, w.now + 3600)] });
  w.pool.add(bind(w.owner, w.a, 2, w.now + 3600, BindingStatus.Offline));
  t.match(resolveName(w.src, NAME, w.now, w.b.address), { kind: 'remote', status: 'offline', confirmed: false }, 'the pending offline wins over the confirmed online');
});

t.test('several serving nodes: the freshest online binding first, the others as fallbacks', async (t) => {
  const w = await world(t);
  const c = newKey();
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 1, w.now + 3600)] });
  // the phone registers at b too: b's pending binding is fresher than a's confirmed one
  w.pool.add(bind(w.owner, w.b, 1, w.now + 3600));
  const r = resolveName(w.src, NAME, w.now, c.address);
  t.match(r, { kind: 'remote', status: 'online', confirmed: false, sipUris: ['sip:10.0.0.2:5060'] });
  t.same(r.kind === 'remote' && r.nodeId, w.b.address, 'the phone registered at b last');
  t.same(r.kind === 'remote' && r.next.map((n) => n.nodeId), [w.a.address], 'a is the fallback');
  t.same(resolveName(w.src, NAME, w.now, w.b.address), { kind: 'local', confirmed: false, next: [{ nodeId: w.a.address, sipUris: ['sip:10.0.0.1:5060', 'sip:10.0.0.1:5060;transport=tcp'], p2pAddrs: ['/ip4/127.0.0.1/tcp/1/p2p/x1'] }] }, 'on b: local, with a behind it');
  // Once mined, b's binding (the later block) stays first.
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.b, 1, w.now + 3600)] });
  const m = resolveName(w.src, NAME, w.now, c.address);
  t.match(m, { kind: 'remote', confirmed: true, sipUris: ['sip:10.0.0.2:5060'] });
  t.same(m.kind === 'remote' && m.next.map((n) => n.nodeId), [w.a.address]);
  // b says the phone left: a (still online) is first; an offline node is never a fallback
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.b, 2, w.now + 3600, BindingStatus.Offline)] });
  const o = resolveName(w.src, NAME, w.now, c.address);
  t.same(o.kind === 'remote' && [o.nodeId, o.next.length], [w.a.address, 0]);
  // the owner takes b off the list: b's binding stops counting at once
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.b, 3, w.now + 3600), delegate(w.owner, [w.a], 1)] });
  const d = resolveName(w.src, NAME, w.now, c.address);
  t.same(d.kind === 'remote' && [d.nodeId, d.next.length], [w.a.address, 0], 'a delegate removed no longer routes');
});

t.test('a pending binding alone (nothing confirmed) routes', async (t) => {
  const w = await world(t);
  w.pool.add(bind(w.owner, w.a, 1, w.now + 3600));
  t.match(resolveName(w.src, NAME, w.now, w.b.address), { kind: 'remote', status: 'online', confirmed: false });
});

t.test('offline and expired bindings are offline', async (t) => {
  const w = await world(t);
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 1, w.now + 3600, BindingStatus.Offline)] });
  t.match(resolveName(w.src, NAME, w.now, w.b.address), { kind: 'remote', status: 'offline', confirmed: true });
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 2, w.now + 3600)] });
  t.match(resolveName(w.src, NAME, w.now, w.b.address), { kind: 'remote', status: 'online' });
  t.match(resolveName(w.src, NAME, w.now + 3600, w.b.address), { kind: 'remote', status: 'offline' }, 'expired at its expiry');
  t.match(resolveName(w.src, NAME, w.now + 3599, w.b.address), { kind: 'remote', status: 'online' });
});

t.test('unknown names', async (t) => {
  const w = await world(t);
  t.same(resolveName(w.src, 'sip:nobody@a.test', w.now, w.a.address), { kind: 'unknown', reason: 'unclaimed' });
  t.same(resolveName(w.src, NAME, w.now, w.a.address), { kind: 'unknown', reason: 'unbound' }, 'claimed but never bound');
  // A lapsed claim routes nowhere, whatever its old binding said.
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 1, w.now + 3600)] });
  const lapsed: RoutingSource = { state: w.chain.state, pool: w.pool, tip: { height: w.chain.tip.height + w.chain.params.nameLifetime } };
  t.same(resolveName(lapsed, NAME, w.now, w.b.address), { kind: 'unknown', reason: 'unclaimed' });
});

t.test('nodes without a usable announcement', async (t) => {
  const w = await world(t);
  const bare = newKey();
  await extend(w.chain, w.chain.tip, 1, { recs: [announce(bare, []), delegate(w.owner, [w.a, w.b, bare], 1)] });
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, bare, 1, w.now + 3600)] });
  t.match(resolveName(w.src, NAME, w.now, w.a.address), { kind: 'remote', status: 'offline', sipUris: [] }, 'announced without a SIP URI: unreachable');
  // A pending re-announcement with a SIP URI is used at once.
  const again = announce(bare, ['sip:10.0.0.9:5060'], 2);
  w.pool.add(again);
  t.match(resolveName(w.src, NAME, w.now, w.a.address), { kind: 'remote', status: 'online', sipUris: ['sip:10.0.0.9:5060'] });
  t.same(nodeAddresses(w.src, bare.address)?.sipUris, ['sip:10.0.0.9:5060']);
  t.equal(nodeAddresses(w.src, newKey().address), undefined);
  t.equal(w.pool.pendingAnnouncements(bare.address).length, 1, 'the pool keeps it by its node');
  t.equal(w.pool.pendingAnnouncements(w.a.address).length, 0, 'and for no other node');
  // mined, it leaves the pool's index and routes as confirmed
  await extend(w.chain, w.chain.tip, 1, { recs: [again] });
  t.equal(w.pool.pendingAnnouncements(bare.address).length, 0, 'mined: no longer pending');
  t.same(nodeAddresses(w.src, bare.address)?.sipUris, ['sip:10.0.0.9:5060'], 'the confirmed address');
  // A binding to a node the state does not know (only transiently possible, in a reorganisation).
  const hidden: StateReader = { get: (k) => (k === keys.node(bare.address) ? undefined : w.chain.state.get(k)) };
  const noPool = { pendingBindings: () => [], pendingAnnouncements: () => [], routingVersion: 0 };
  t.same(resolveName({ state: hidden, pool: noPool, tip: w.chain.tip }, NAME, w.now, w.a.address), { kind: 'unknown', reason: 'no-node' });
});

t.test('numbers from a carrier: a number block routes to its holder\'s nodes; a ported number to its new operator at once', async (t) => {
  const { chain, pool } = await openChain(t);
  const src = routingSource(chain, pool);
  const carrier = newKey(); // node A, holding the block +1555
  const other = newKey(); // node B, another operator
  const salt = randomBytes(32);
  let tip = await extend(chain, chain.tip, 1, { recs: [announce(carrier, ['sip:10.0.0.1:5060']), announce(other, ['sip:10.0.0.2:5060']), commit(carrier, '+1555', salt), commit(carrier, '+15550002', salt)] });
  tip = await extend(chain, tip, 1, { recs: [claim(carrier, '+1555', salt)] });
  tip = await extend(chain, tip, 1, { recs: [claim(carrier, '+15550002', salt)] });
  const now = chain.params.genesis.time;
  t.match(resolveName(src, '+15550001', now, other.address), { kind: 'remote', status: 'online', sipUris: ['sip:10.0.0.1:5060'] }, 'a number of the block nobody claimed alone: to the block\'s holder');
  t.match(resolveName(src, '+15550001', now, carrier.address), { kind: 'local' }, 'at the holder itself: local (its trunk)');
  t.match(resolveName(src, '+15550002', now, other.address), { kind: 'remote', sipUris: ['sip:10.0.0.1:5060'] }, 'a number the holder claimed and never bound: still the holder');
  t.match(resolveName(src, '+15560001', now, other.address), { kind: 'unknown', reason: 'unclaimed' }, 'a number outside every block: nobody');
  t.match(resolveName(src, '+1555', now, other.address), { kind: 'remote', sipUris: ['sip:10.0.0.1:5060'] }, 'the block itself');
  // ported: the holder transfers +15550002 to the other operator's key, served by its node
  const port = signRecord<NameTransfer>(NET, carrier.secret, { kind: Kind.NameTransfer, name: '+15550002', pubkey: carrier.pub, newOwner: other.pub, delegates: [other.address], nameSeq: 0 });
  await extend(chain, tip, 1, { recs: [port] });
  t.match(resolveName(src, '+15550002', now, carrier.address), { kind: 'remote', sipUris: ['sip:10.0.0.2:5060'] }, 'the ported number routes to its new operator in the block that moved it');
  t.match(resolveName(src, '+15550001', now, other.address), { kind: 'remote', sipUris: ['sip:10.0.0.1:5060'] }, 'the rest of the block stays with its holder');
});

t.test('the proxy\'s locator keeps a route only while the tip, the pending pool and the time say the same', async (t) => {
  const w = await world(t);
  const c = newKey();
  let now = w.now;
  const loc = chainLocator(w.src, () => now, c.address);
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 1, w.now + 3600)] });
  const first = loc.locate(NAME);
  t.match(first, { kind: 'remote', online: true, nodes: [{ uris: ['sip:10.0.0.1:5060', 'sip:10.0.0.1:5060;transport=tcp'] }] });
  t.equal(loc.locate(NAME), first, 'asked again, the kept route is given (the chain is not read)');
  // a pending record routing does not read (a name commitment) keeps it
  w.pool.add(commit(newKey(), 'sip:zed@a.test', randomBytes(32)));
  t.equal(loc.locate(NAME), first, 'a pending record of another kind leaves the route kept');
  // the phone registers at b: b's pending binding is read at once
  w.pool.add(bind(w.owner, w.b, 1, w.now + 1800));
  const atB = loc.locate(NAME);
  t.same(atB.kind === 'remote' && atB.nodes.map((n) => n.nodeId), [w.b.address, w.a.address], 'a new pending binding: b first, a behind it');
  // node b moves: its pending announcement is followed at once
  w.pool.add(announce(w.b, ['sip:10.0.0.22:5060'], 2));
  const moved = loc.locate(NAME);
  t.same(moved.kind === 'remote' && moved.nodes[0].uris, ['sip:10.0.0.22:5060'], 'a pending announcement: b at its new address');
  // b's binding runs out before a's: at its expiry the route changes with no record arriving
  now = w.now + 1799;
  t.same((loc.locate(NAME) as { nodes: Array<{ nodeId: Uint8Array }> }).nodes[0].nodeId, w.b.address, 'a second before b\'s binding expires, b still first');
  now = w.now + 1800;
  const after = loc.locate(NAME);
  t.same(after.kind === 'remote' && after.nodes.map((n) => n.nodeId), [w.a.address], 'at its expiry b is dropped: a only');
  // a block: a says the phone left
  await extend(w.chain, w.chain.tip, 1, { recs: [bind(w.owner, w.a, 2, w.now + 3600, BindingStatus.Offline)] });
  t.match(loc.locate(NAME), { kind: 'remote', online: false }, 'a new tip is read at once');
  // a clock set back is never served a route read later
  now = w.now;
  t.same(loc.locate(NAME), { kind: 'remote', online: true, nodes: [{ nodeId: w.b.address, uris: ['sip:10.0.0.22:5060'] }] }, 'the clock set back: read again (b\'s binding is live again at that time)');
  // every answer the locator gave is what reading the chain then gives
  for (const when of [w.now, w.now + 1000, w.now + 1800, w.now + 4000]) {
    now = when;
    const fresh = chainLocator(w.src, () => when, c.address).locate(NAME);
    t.same(loc.locate(NAME), fresh, `at +${when - w.now} s the kept locator agrees with a fresh one`);
  }
});
