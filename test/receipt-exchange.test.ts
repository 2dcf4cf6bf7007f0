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
  MAX_BATCH,
  decodeReceiptRequest,
  decodeReceiptResponse,
  encodeReceiptRequest,
  encodeReceiptResponse,
  type ProposedReceipt,
  type ReceiptResult,
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
async function pair(t: Test, rate?: [number, number]): Promise<Pair> {
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
    ...(rate === undefined ? {} : { rate }),
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

/** Sends one receipt in a request of its own; its answer, or the whole request's refusal. */
async function rawOne(p: Pair, r: ProposedReceipt): Promise<ReceiptResult> {
  const res = await raw(p, encodeReceiptRequest([r]));
  if (!res.ok) return res;
  if (res.results.length !== 1) throw new Error(`${res.results.length} answers to one receipt`);
  return res.results[0];
}

t.test('wire messages round-trip; malformed ones are refused', async (t) => {
  const a = newKey();
  const b = newKey();
  const u = unsigned(a, b);
  const req = { ...u, sig: signReceipt(NET, a.secret, u) };
  const v = unsigned(a, b, 5);
  const req2 = { ...v, sig: signReceipt(NET, a.secret, v) };
  t.same(decodeReceiptRequest(encodeReceiptRequest([req])), [req]);
  t.same(decodeReceiptRequest(encodeReceiptRequest([req, req2])), [req, req2], 'a batch: the two nodes sent once, each receipt whole again');
  t.ok(encodeReceiptRequest([req, req2]).length < 2 * encodeReceiptRequest([req]).length - 100, 'the shared parts are not repeated');
  const ok = { ok: true as const, termSig: randomBytes(64) };
  const no = { ok: false as const, code: 'unknown-call', message: 'no' };
  t.same(decodeReceiptResponse(encodeReceiptResponse({ ok: true, results: [ok, no] })), { ok: true, results: [ok, no] });
  t.same(decodeReceiptResponse(encodeReceiptResponse({ ok: false, code: 'rate-limited', message: 'slow down' })), { ok: false, code: 'rate-limited', message: 'slow down' });
  t.throws(() => decodeReceiptRequest(randomBytes(40)), { code: 'malformed' });
  t.throws(() => decodeReceiptRequest(new Uint8Array(13_000)), { code: 'malformed' }, 'oversized');
  t.throws(() => decodeReceiptRequest(encode([2, ok.termSig])), { code: 'malformed' }, 'a response is not a request');
  t.throws(() => decodeReceiptRequest(encode([1, a.address, b.address, a.pub, b.pub, []])), { code: 'malformed' }, 'an empty batch');
  const many = encode([1, a.address, b.address, a.pub, b.pub, Array.from({ length: MAX_BATCH + 1 }, () => [req.callId, req.answered, req.ended, req.fee, req.sig])]);
  t.throws(() => decodeReceiptRequest(many), { code: 'malformed' }, 'more receipts than a batch holds');
  t.throws(() => encodeReceiptRequest(Array.from({ length: MAX_BATCH + 1 }, () => req)), { code: 'bad-receipt' }, 'and none is sent');
  t.throws(() => encodeReceiptRequest([req, { ...req2, term: newKey().address }]), { code: 'bad-receipt' }, 'one request, one pair of nodes');
  t.throws(() => decodeReceiptResponse(encode([7])), { code: 'malformed' }, 'unknown type');
  t.throws(() => decodeReceiptResponse(encode([2, [randomBytes(63)]])), { code: 'malformed' }, 'short signature');
  t.throws(() => decodeReceiptResponse(encode([2, [['code']]])), { code: 'malformed' }, 'an answer that is neither');
  t.throws(() => decodeReceiptResponse(new Uint8Array(21_000)), { code: 'malformed' }, 'oversized response');
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
  // made-up calls with made-up signatures are refused before any signature is checked
  const made = Array.from({ length: 10 }, () => ({ ...unsigned(p.a, p.b), sig: randomBytes(64) }));
  const res = await raw(p, encodeReceiptRequest(made));
  t.ok(res.ok && res.results.every((r) => !r.ok && r.code === 'unknown-call'), 'unknown-call, not bad-signature: nothing was verified');
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
  const res = await rawOne(p, { ...u, sig });
  t.match(res, { ok: false, code: 'bad-signature' });
  // Signed by another key than the one it names.
  const res2 = await rawOne(p, { ...u, sig: signReceipt(NET, newKey().secret, u) });
  t.match(res2, { ok: false, code: 'bad-signature' });
  // Durations (and details) changed after signing.
  const res3 = await rawOne(p, { ...u, ended: u.ended + 1, sig: signReceipt(NET, p.a.secret, u) });
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
  t.match(await rawOne(p, { ...forC, sig: signReceipt(NET, p.a.secret, forC) }), { ok: false, code: 'not-for-us' });
  await t.rejects(p.origEx.requestCountersign(p.termNode.peerId, unsigned(p.b, p.a)), { code: 'bad-receipt' }, 'we only originate our own receipts');
  await t.rejects(p.origEx.requestCountersign(p.termNode.peerId, unsigned(p.a, p.b, 0)), { code: 'bad-receipt' }, 'zero duration is not sent');
  const zero = unsigned(p.a, p.b, 0);
  t.match(await rawOne(p, { ...zero, sig: signReceipt(NET, p.a.secret, zero) }), { ok: false, code: 'bad-receipt' });
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
  await send(new Uint8Array(16_384)); // over the frame limit: the stream is reset
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
    await lp.write(encodeReceiptResponse({ ok: true, results: [{ ok: true, termSig: randomBytes(64) }] }));
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

t.test('receipts asked together go in few requests, and each is answered on its own', async (t) => {
  const p = await pair(t);
  const good = Array.from({ length: 100 }, () => unsigned(p.a, p.b));
  for (const u of good) p.known.add(toHex(u.callId));
  const unknown = Array.from({ length: 5 }, () => unsigned(p.a, p.b));
  // all asked in one turn of the event loop, as a busy node's calls end
  const all = [...good, ...unknown].map((u) => p.origEx.settle(p.termNode.peerId, u).then((rec) => ({ ok: true as const, rec }), (e: unknown) => ({ ok: false as const, e })));
  const out = await Promise.all(all);
  t.equal(out.slice(0, 100).filter((x) => x.ok).length, 100, 'every known call countersigned');
  t.ok(out.slice(100).every((x) => !x.ok && x.e instanceof ReceiptError && x.e.code === 'unknown-call'), 'the unknown ones refused, one by one');
  t.equal(p.origEx.stats.receiptsSent, 105);
  t.ok(p.origEx.stats.requestsSent <= 3, `105 receipts in ${p.origEx.stats.requestsSent} requests (at most ${MAX_BATCH} each)`);
  t.equal(p.termEx.stats.requestsServed, p.origEx.stats.requestsSent);
  for (const x of out.slice(0, 100)) if (x.ok) t.ok(p.pool.has(toHex(x.rec.id)));
  t.same(p.charged, [], 'honest batches cost nothing, unknown calls included');
});

t.test('a batch with forged receipts among good ones: the good are countersigned, the sender charged', async (t) => {
  const p = await pair(t);
  const batch: ProposedReceipt[] = [];
  for (let i = 0; i < 20; i++) {
    const u = unsigned(p.a, p.b);
    p.known.add(toHex(u.callId));
    const sig = signReceipt(NET, p.a.secret, u);
    if (i % 5 === 4) sig[3] ^= 1;
    batch.push({ ...u, sig });
  }
  const res = await raw(p, encodeReceiptRequest(batch));
  if (!res.ok) throw new Error(`refused: ${res.code}`);
  t.equal(res.results.length, 20);
  t.same(res.results.map((r) => (r.ok ? 'ok' : r.code)), batch.map((_, i) => (i % 5 === 4 ? 'bad-signature' : 'ok')));
  t.equal(p.charged.filter((c) => c[1] === 'invalidRecord').length, 4, 'each forged receipt charged');
});

t.test('the rate limit counts receipts, not requests; a refused batch costs nothing', async (t) => {
  const p = await pair(t, [1, 10]);
  const batch = Array.from({ length: 30 }, () => {
    const u = unsigned(p.a, p.b);
    p.known.add(toHex(u.callId));
    return { ...u, sig: signReceipt(NET, p.a.secret, u) };
  });
  t.match(await raw(p, encodeReceiptRequest(batch)), { ok: false, code: 'rate-limited' }, '30 receipts over a burst of 10');
  const small = await raw(p, encodeReceiptRequest(batch.slice(0, 5)));
  t.ok(small.ok && small.results.every((r) => r.ok), 'five fit');
  t.same(p.charged, []);
  // the originating side sees each receipt refused as rate-limited (its call log retries later)
  const u = unsigned(p.a, p.b);
  p.known.add(toHex(u.callId));
  const more = Array.from({ length: 12 }, () => unsigned(p.a, p.b));
  for (const m of more) p.known.add(toHex(m.callId));
  const out = await Promise.all([u, ...more].map((x) => p.origEx.requestCountersign(p.termNode.peerId, x).then(() => 'ok', (e: unknown) => (e as ReceiptError).code)));
  t.ok(out.includes('rate-limited'), 'over the limit: rate-limited');
});

t.test('a terminating node that answers a batch with the wrong number of answers is charged', async (t) => {
  const p = await pair(t);
  const fake = await libp2pNode(t);
  const { lpStream } = await import('@libp2p/utils');
  await fake.handle(RECEIPT_PROTOCOL, async (stream) => {
    const lp = lpStream(stream, { maxDataLength: 16_384 });
    await lp.read();
    // one answer, whatever was asked
    await lp.write(encodeReceiptResponse({ ok: true, results: [{ ok: false, code: 'unknown-call', message: 'no' }] }));
    await stream.close();
  });
  const charged: Array<[string, Offence]> = [];
  const origEx = new ReceiptExchange({ params: p.chain.params, pool: p.pool, secret: p.a.secret, log: silentLogger, timeoutMs: 2000, penalize: (id, offence) => charged.push([id, offence]) });
  await origEx.start(await libp2pNode(t));
  t.teardown(() => origEx.stop());
  const addr = fake.getMultiaddrs()[0];
  const out = await Promise.all([1, 2, 3].map(() => origEx.requestCountersign(addr, unsigned(p.a, p.b)).then(() => 'ok', (e: unknown) => (e as ReceiptError).code)));
  t.same(out, ['malformed', 'malformed', 'malformed'], 'no receipt of the batch is taken');
  t.same(charged.map((c) => c[1]), ['malformed']);
  t.equal(p.pool.size, 0);
});
