// The call-receipt exchange between two real libp2p nodes on 127.0.0.1: the originating node gets
// a countersignature and the record is accepted by the chain; unknown calls, forged signatures,
// receipts for another node and garbage are refused, and garbage costs the sender score.
import '../p2p/polyfill.ts';
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { Libp2p } from '@libp2p/interface';
import { openChain, extend, newKey, type Key } from './helpers.ts';
import { eventually } from './util/wait.ts';
import { signRecord, signReceipt, Kind, type NodeAnnounce, type Rec, type CallReceipt } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { encode } from '../core/encoding.ts';
import { silentLogger } from '../core/log.ts';
import type { Chain } from '../consensus/chain.ts';
import type { Mempool } from '../core/mempool.ts';
import type { Offence } from '../p2p/score.ts';
import {
  RECEIPT_PROTOCOL,
  ReceiptError,
  ReceiptExchange,
  decodeReceiptRequest,
  decodeReceiptResponse,
  encodeReceiptRequest,
  encodeReceiptResponse,
  type UnsignedReceipt,
} from '../p2p/receipts.ts';

const NET = 'regtest';

function announce(k: Key): Rec {
  return signRecord<NodeAnnounce>(NET, k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [], p2pAddrs: [], rewardAddress: k.address, seq: 1 });
}

async function libp2pNode(t: Test): Promise<Libp2p> {
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }] = await Promise.all([import('libp2p'), import('@libp2p/tcp'), import('@chainsafe/libp2p-noise'), import('@chainsafe/libp2p-yamux')]);
  const node = await createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
  t.teardown(() => node.stop());
  return node;
}

interface Pair {
  chain: Chain;
  pool: Mempool;
  a: Key;
  b: Key;
  origEx: ReceiptExchange;
  termEx: ReceiptExchange;
  origNode: Libp2p;
  termNode: Libp2p;
  known: Set<string>;
  charged: Array<[string, Offence]>;
}

/** Node a originates, node b terminates; both are announced and old enough to be paid. */
async function pair(t: Test): Promise<Pair> {
  const { chain, pool } = await openChain(t);
  const a = newKey();
  const b = newKey();
  const tip = await extend(chain, chain.tip, 1, { recs: [announce(a), announce(b)] });
  // the originating node pays for the calls it settles
  await extend(chain, tip, 2, { reward: a.address });
  const [origNode, termNode] = await Promise.all([libp2pNode(t), libp2pNode(t)]);
  const known = new Set<string>();
  const charged: Array<[string, Offence]> = [];
  const origEx = new ReceiptExchange({ params: chain.params, pool, secret: a.secret, log: silentLogger, timeoutMs: 2000 });
  const termEx = new ReceiptExchange({
    params: chain.params,
    pool,
    secret: b.secret,
    log: silentLogger,
    timeoutMs: 2000,
    knowsCall: (r) => known.has(toHex(r.callId)),
    penalize: (id, offence) => charged.push([id, offence]),
  });
  await origEx.start(origNode);
  await termEx.start(termNode);
  await origNode.dial(termNode.getMultiaddrs()[0]);
  return { chain, pool, a, b, origEx, termEx, origNode, termNode, known, charged };
}

/** A call that just ended (the pool checks receipts against now). */
function unsigned(orig: Key, term: Key, seconds = 60, ended = Math.floor(Date.now() / 1000) - 5): UnsignedReceipt {
  return { kind: Kind.CallReceipt, callId: randomBytes(32), orig: orig.address, term: term.address, answered: ended - seconds, ended, pubkey: orig.pub, termPubkey: term.pub, fee: 0 };
}

/** Sends raw bytes on the receipt protocol and returns the decoded answer. */
async function raw(p: Pair, bytes: Uint8Array): Promise<ReturnType<typeof decodeReceiptResponse>> {
  const { lpStream } = await import('@libp2p/utils');
  const stream = await p.origNode.dialProtocol(p.termNode.peerId, RECEIPT_PROTOCOL);
  const lp = lpStream(stream);
  await lp.write(bytes);
  const res = decodeReceiptResponse((await lp.read()).subarray());
  await stream.close();
  return res;
}

t.test('wire messages round-trip; malformed ones are refused', async (t) => {
  const a = newKey();
  const b = newKey();
  const u = unsigned(a, b);
  const req = { ...u, sig: signReceipt(NET, a.secret, u) };
  t.same(decodeReceiptRequest(encodeReceiptRequest(req)), req);
  const ok = { ok: true as const, termSig: randomBytes(64) };
  t.same(decodeReceiptResponse(encodeReceiptResponse(ok)), ok);
  t.same(decodeReceiptResponse(encodeReceiptResponse({ ok: false, code: 'unknown-call', message: 'no' })), { ok: false, code: 'unknown-call', message: 'no' });
  t.throws(() => decodeReceiptRequest(randomBytes(40)), { code: 'malformed' });
  t.throws(() => decodeReceiptRequest(new Uint8Array(600)), { code: 'malformed' }, 'oversized');
  t.throws(() => decodeReceiptRequest(encode([2, ok.termSig])), { code: 'malformed' }, 'a response is not a request');
  t.throws(() => decodeReceiptResponse(encode([7])), { code: 'malformed' }, 'unknown type');
  t.throws(() => decodeReceiptResponse(encode([2, randomBytes(63)])), { code: 'malformed' }, 'short signature');
  t.throws(() => decodeReceiptResponse(new Uint8Array(600)), { code: 'malformed' }, 'oversized response');
});

t.test('a countersigned receipt becomes a record the chain accepts', async (t) => {
  const p = await pair(t);
  const u = unsigned(p.a, p.b);
  p.known.add(toHex(u.callId));
  const rec = await p.origEx.settle(p.termNode.peerId, u);
  const body = rec.body as CallReceipt;
  t.equal(body.kind, Kind.CallReceipt);
  t.same(body.orig, p.a.address);
  t.same(body.term, p.b.address);
  t.ok(p.pool.has(toHex(rec.id)), 'the record is pending, ready to be mined and gossiped');
  // A retry (the answer was lost) gets the same countersignature, so the same record.
  const again = await p.origEx.requestCountersign(p.termNode.peerId, u);
  t.same(again.id, rec.id);
  // The same call with other details is never countersigned twice.
  await t.rejects(p.origEx.requestCountersign(p.termNode.peerId, { ...u, answered: u.answered - 100 }), { code: 'conflict' });
  // Dialling by multiaddr works too.
  const v = unsigned(p.a, p.b, 30);
  p.known.add(toHex(v.callId));
  const byAddr = await p.origEx.requestCountersign(p.termNode.getMultiaddrs()[0], v);
  t.same((byAddr.body as CallReceipt).callId, v.callId);
  t.same(p.charged, [], 'honest requests cost nothing');
});

t.test('a request for an unknown call is refused', async (t) => {
  const p = await pair(t);
  const err = await p.origEx.requestCountersign(p.termNode.peerId, unsigned(p.a, p.b)).catch((e: unknown) => e);
  t.ok(err instanceof ReceiptError);
  t.equal((err as ReceiptError).code, 'unknown-call');
  t.same(p.charged, [], 'an unknown call may be an honest race: no penalty');
  // Without a knowsCall hook nothing is countersigned at all.
  const bare = new ReceiptExchange({ params: p.chain.params, pool: p.pool, secret: p.b.secret, log: silentLogger });
  t.equal(await bare.knowsCall(unsigned(p.a, p.b)), false);
});

t.test('a tampered originating signature is refused and charged', async (t) => {
  const p = await pair(t);
  const u = unsigned(p.a, p.b);
  p.known.add(toHex(u.callId));
  const sig = signReceipt(NET, p.a.secret, u);
  sig[10] ^= 1;
  const res = await raw(p, encodeReceiptRequest({ ...u, sig }));
  t.match(res, { ok: false, code: 'bad-signature' });
  // Signed by another key than the one it names.
  const res2 = await raw(p, encodeReceiptRequest({ ...u, sig: signReceipt(NET, newKey().secret, u) }));
  t.match(res2, { ok: false, code: 'bad-signature' });
  // Durations (and details) changed after signing.
  const res3 = await raw(p, encodeReceiptRequest({ ...u, ended: u.ended + 1, sig: signReceipt(NET, p.a.secret, u) }));
  t.match(res3, { ok: false, code: 'bad-signature' });
  t.same(
    p.charged.map((c) => c[1]),
    ['invalidRecord', 'invalidRecord', 'invalidRecord'],
  );
  t.equal(p.charged[0][0], p.origNode.peerId.toString());
});

t.test('receipts for another node, bad shapes and garbage', async (t) => {
  const p = await pair(t);
  const c = newKey();
  const forC = unsigned(p.a, c);
  t.match(await raw(p, encodeReceiptRequest({ ...forC, sig: signReceipt(NET, p.a.secret, forC) })), { ok: false, code: 'not-for-us' });
  await t.rejects(p.origEx.requestCountersign(p.termNode.peerId, unsigned(p.b, p.a)), { code: 'bad-receipt' }, 'we only originate our own receipts');
  await t.rejects(p.origEx.requestCountersign(p.termNode.peerId, unsigned(p.a, p.b, 0)), { code: 'bad-receipt' }, 'zero duration is not sent');
  const zero = unsigned(p.a, p.b, 0);
  t.match(await raw(p, encodeReceiptRequest({ ...zero, sig: signReceipt(NET, p.a.secret, zero) })), { ok: false, code: 'bad-receipt' });
  t.match(await raw(p, randomBytes(100)), { ok: false, code: 'malformed' });
  t.same(
    p.charged.map((x) => x[1]),
    ['invalidRecord', 'malformed'],
  );
});

t.test('own scores: a peer that keeps sending garbage is cut off; oversized frames are charged', async (t) => {
  const p = await pair(t);
  const strict = new ReceiptExchange({ params: p.chain.params, pool: p.pool, secret: p.b.secret, log: silentLogger, knowsCall: () => true });
  const other = await libp2pNode(t);
  await strict.start(other);
  const { lpStream } = await import('@libp2p/utils');
  await p.origNode.dial(other.getMultiaddrs()[0]);
  const send = async (bytes: Uint8Array): Promise<void> => {
    const s = await p.origNode.dialProtocol(other.peerId, RECEIPT_PROTOCOL);
    const lp = lpStream(s);
    await lp.write(bytes);
    await lp.read().catch(() => undefined);
    s.abort(new Error('done'));
  };
  await send(randomBytes(50));
  await send(new Uint8Array(4096)); // over the frame limit: the stream is reset
  // Two 60-point offences reach the ban threshold: the connection is closed.
  await eventually(() => other.getConnections(p.origNode.peerId).length === 0, 3000, 20);
  t.equal(other.getConnections(p.origNode.peerId).length, 0, 'disconnected');
  await strict.stop();
  await p.termEx.stop();
});

t.test('an unreachable or unstarted peer is a clear error', async (t) => {
  const p = await pair(t);
  const idle = new ReceiptExchange({ params: p.chain.params, pool: p.pool, secret: p.a.secret, log: silentLogger });
  await t.rejects(idle.requestCountersign(p.termNode.peerId, unsigned(p.a, p.b)), { code: 'internal' });
  const gone = await libp2pNode(t);
  const addr = gone.getMultiaddrs()[0];
  await gone.stop();
  await t.rejects(p.origEx.requestCountersign(addr, unsigned(p.a, p.b)), { code: 'unreachable' });
});

t.test('a forged countersignature is refused and charged; nothing reaches the pool', async (t) => {
  const p = await pair(t);
  // a "terminating node" that answers every request with 64 random bytes as its signature
  const fake = await libp2pNode(t);
  const { lpStream } = await import('@libp2p/utils');
  await fake.handle(RECEIPT_PROTOCOL, async (stream) => {
    const lp = lpStream(stream);
    await lp.read();
    await lp.write(encodeReceiptResponse({ ok: true, termSig: randomBytes(64) }));
    await stream.close();
  });
  const charged: Array<[string, Offence]> = [];
  const origEx = new ReceiptExchange({ params: p.chain.params, pool: p.pool, secret: p.a.secret, log: silentLogger, timeoutMs: 2000, penalize: (id, offence) => charged.push([id, offence]) });
  await origEx.start(await libp2pNode(t));
  t.teardown(() => origEx.stop());
  await t.rejects(origEx.settle(fake.getMultiaddrs()[0], unsigned(p.a, p.b)), { code: 'bad-signature' }, 'the countersignature is checked before anything is kept');
  t.same(charged.map((c) => c[1]), ['invalidRecord'], 'and the peer that sent it is charged');
  t.equal(p.pool.size, 0, 'nothing reached the pool');
});
