// The call log wired to the receipt exchange, as the node wires it: two nodes, each with its own
// chain, P2PNetwork (real libp2p on 127.0.0.1) and CallLog. The proxy's call-end events go in (term
// at one node, orig at the other) and a CallReceipt with both signatures comes out in the
// originating node's pending pool; calls the terminating node never saw, or saw at other times,
// are refused; calls the chain would not pay are never asked for.
import '../p2p/polyfill.ts';
import t, { type Test } from 'tap';
import { openChain, blockOn, newKey, type Key } from './helpers.ts';
import { signRecord, signReceipt, makeRec, sigTag, signingMessage, checkRecordSignature, Kind, type NodeAnnounce, type Rec, type CallReceipt } from '../core/records.ts';
import { getAccount } from '../core/state.ts';
import { bytesEqual, toHex } from '../core/hash.ts';
import { verifyTagged } from '../core/sig.ts';
import { silentLogger, type Logger } from '../core/log.ts';
import { CallLog, dialogHash, type CallEnd, type ReceiptOutcome } from '../telecom/calls.ts';
import { ReceiptExchange, ReceiptError, type UnsignedReceipt } from '../p2p/receipts.ts';
import { ValidationError } from '../core/errors.ts';
import type { Chain } from '../consensus/chain.ts';
import type { Mempool } from '../core/mempool.ts';
import { tmpDir } from './util/tmp.ts';
import { startReceiptNode, type ReceiptNode } from './util/receipt-node.ts';
import { until, waitFor } from './util/wait.ts';

const NET = 'regtest';

function announce(k: Key, p2pAddrs: string[]): Rec {
  return signRecord<NodeAnnounce>(NET, k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [], p2pAddrs, rewardAddress: k.address, seq: 1 });
}

/** Mines the same blocks on every chain, so the nodes agree without syncing. */
async function mineAll(chains: Chain[], n: number, recs: Rec[] = [], amount?: number, reward?: Uint8Array): Promise<void> {
  for (let i = 0; i < n; i++) {
    const [first] = chains;
    const b = blockOn(first, first.tip, i === 0 ? recs : [], { ...(amount === undefined ? {} : { amount }), ...(reward === undefined ? {} : { reward }) });
    for (const c of chains) {
      const r = await c.processBlock(b);
      if (r.status !== 'connected') throw new Error(`block not connected: ${r.status}`);
    }
  }
}

interface Side extends ReceiptNode {
  chain: Chain;
  pool: Mempool;
  lines: string[];
  /** how often the terminating side's knowsCall was asked */
  asked: number;
}

interface World {
  orig: Side;
  term: Side;
  /** a third announced node, when asked for (`third: true`) */
  third?: Side;
}

function capture(lines: string[]): Logger {
  const at = (lv: string) => (m: string): void => void lines.push(`${lv} ${m}`);
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * Two announced nodes, old enough to be paid. `termAddrs` edits the terminating node's announced
 * addresses; `startTerm: false` leaves its exchange unstarted (the protocol is not served).
 */
async function world(t: Test, o: { termAddrs?: (real: string[], peerId: string) => string[]; startTerm?: boolean; retryDelaysMs?: number[]; third?: boolean } = {}): Promise<World> {
  const make = async (): Promise<Side> => {
    const dir = tmpDir(t);
    const { chain, pool, close } = await openChain(t, { dir });
    const lines: string[] = [];
    const node = await startReceiptNode({ chain, pool, dir, log: capture(lines), timeoutMs: 2000, retryDelaysMs: o.retryDelaysMs ?? [100, 200] });
    const side: Side = { ...node, chain, pool, lines, asked: 0 };
    const known = node.ex.knowsCall;
    node.ex.knowsCall = (r) => {
      side.asked++;
      return known(r);
    };
    // One teardown in the node's stop order: call log, exchange, p2p, then the store.
    t.teardown(async () => {
      await node.stop();
      await close();
    });
    return side;
  };
  const orig = await make();
  const term = await make();
  const third = o.third === true ? await make() : undefined;
  const termAddrs = o.termAddrs?.(term.net.multiaddrs(), term.net.peerId) ?? term.net.multiaddrs();
  const sides = [orig, term, ...(third === undefined ? [] : [third])];
  const announcements = [announce(orig.key, orig.net.multiaddrs()), announce(term.key, termAddrs), ...(third === undefined ? [] : [announce(third.key, third.net.multiaddrs())])];
  await mineAll(sides.map((s) => s.chain), 1, announcements);
  // the originating node pays the calls it settles: it needs coins
  await mineAll(sides.map((s) => s.chain), 2, [], undefined, orig.key.address);
  await orig.ex.start(orig.net.libp2p);
  if (o.startTerm !== false) await term.ex.start(term.net.libp2p);
  if (third !== undefined) await third.ex.start(third.net.libp2p);
  return { orig, term, third };
}

/** The next outcome at the originating side. */
async function outcome(s: Side, n = 1): Promise<ReceiptOutcome> {
  await until(`outcome ${n}`, () => s.outcomes.length >= n);
  return s.outcomes[n - 1];
}

let seq = 0;
/** A call that ended a few seconds ago and lasted `seconds`, as both proxies report it. */
function call(w: World, seconds = 60): { term: CallEnd; orig: CallEnd } {
  const ended = Math.floor(Date.now() / 1000) - 3;
  const base = { callId: `c${++seq}-${Date.now()}@10.0.0.1`, fromTag: `f${seq}`, toTag: `t${seq}`, answered: ended - seconds, ended };
  return {
    term: { ...base, role: 'term', peerNodeId: w.orig.key.address },
    orig: { ...base, role: 'orig', peerNodeId: w.term.key.address },
  };
}

t.test('dialogHash: deterministic, 32 bytes, and unambiguous', async (t) => {
  const h = dialogHash('a84b4c76e66710@pc33.example.com', '1928301774', 'a6c85cf');
  t.equal(h.length, 32);
  t.same(dialogHash('a84b4c76e66710@pc33.example.com', '1928301774', 'a6c85cf'), h);
  t.notSame(dialogHash('a84b4c76e66710@pc33.example.com', '1928301774', 'a6c85cg'), h, 'to tag');
  t.notSame(dialogHash('a84b4c76e66710@pc33.example.com', '1928301775', 'a6c85cf'), h, 'from tag');
  t.notSame(dialogHash('b84b4c76e66710@pc33.example.com', '1928301774', 'a6c85cf'), h, 'call id');
  t.notSame(dialogHash('ab', 'c', 'd'), dialogHash('a', 'bc', 'd'), 'moving a character across a boundary');
  t.notSame(dialogHash('a', 'bc', 'd'), dialogHash('a', 'b', 'cd'));
  t.notSame(dialogHash('a', 'b', ''), dialogHash('a', '', 'b'), 'empty parts');
  t.notSame(dialogHash('x', 'y', 'z'), dialogHash('y', 'x', 'z'), 'the caller and callee tags are not interchangeable');
  t.notSame(dialogHash('é', '', ''), dialogHash('e\u0301', '', ''), 'bytes, not normalised text');
});

t.test('a call ended at both nodes becomes a countersigned receipt the chain accepts', async (t) => {
  const w = await world(t);
  const c = call(w, 60);
  w.term.calls.callEnded(c.term);
  w.orig.calls.callEnded(c.orig);
  const o = await outcome(w.orig);
  if (o.status !== 'receipted') throw new Error(`not receipted: ${JSON.stringify(o)}`);
  t.same(o.callId, dialogHash(c.orig.callId, c.orig.fromTag, c.orig.toTag));
  const entry = w.orig.pool.get(toHex(o.recordId));
  t.ok(entry, 'the record is pending at the originating node');
  const body = entry?.rec.body as CallReceipt;
  t.equal(body.kind, Kind.CallReceipt);
  t.same(body.callId, o.callId);
  t.same(body.orig, w.orig.key.address);
  t.same(body.term, w.term.key.address);
  t.same(body.termPubkey, w.term.key.pub, 'the terminating key comes from its announcement');
  t.equal(body.answered, c.orig.answered);
  t.equal(body.ended, c.orig.ended);
  const tag = sigTag(NET, Kind.CallReceipt);
  t.ok(verifyTagged(body.pubkey, tag, signingMessage(body), body.sig), 'originating signature');
  t.ok(verifyTagged(body.termPubkey, tag, signingMessage(body), body.termSig), 'terminating signature');
  t.doesNotThrow(() => checkRecordSignature(NET, body));
  t.ok(w.orig.lines.some((l) => l.startsWith('info') && l.includes(toHex(o.recordId))), 'success is logged with the record id');
  t.equal(w.term.asked, 1);

  // A block with the receipt is valid: the originating node pays the terminating node for the
  // call, and the coinbase may claim the receipt's fee besides the subsidy.
  const owed = 60 * w.orig.chain.params.receiptRate;
  const height = w.orig.chain.tip.height + 1;
  const termBefore = getAccount(w.orig.chain.state, w.term.key.address).balance;
  const origBefore = getAccount(w.orig.chain.state, w.orig.key.address).balance;
  // Block time now: the test chain's blocks are stamped just after genesis, before the call ended.
  const b = blockOn(w.orig.chain, w.orig.chain.tip, [entry?.rec as Rec], { amount: w.orig.chain.params.subsidy(height) + body.fee, time: Math.floor(Date.now() / 1000) });
  t.match(await w.orig.chain.processBlock(b), { status: 'connected' });
  t.equal(getAccount(w.orig.chain.state, w.term.key.address).balance - termBefore, owed, 'the terminating node was paid per second of the call');
  t.equal(origBefore - getAccount(w.orig.chain.state, w.orig.key.address).balance, owed + body.fee, 'by the originating node');
  t.equal(w.orig.pool.has(toHex(o.recordId)), false, 'mined');

  // The proxy reporting the call again: the chain refuses a second receipt; logged, not retried.
  w.orig.calls.callEnded(c.orig);
  const again = await outcome(w.orig, 2);
  t.match(again, { status: 'failed', code: 'duplicate-receipt' });
  t.equal(w.term.asked, 1, 'the terminating node answered from what it countersigned before');
  t.ok(w.orig.lines.some((l) => l.startsWith('warn') && l.includes('the chain refused')));
});

t.test('calls ending together are receipted in a few requests, paced at 100 a second', async (t) => {
  const w = await world(t);
  const t0 = Date.now();
  for (let i = 0; i < 60; i++) {
    const c = call(w, 30);
    w.term.calls.callEnded(c.term);
    w.orig.calls.callEnded(c.orig);
  }
  await until('60 outcomes', () => w.orig.outcomes.length >= 60, 20_000);
  t.equal(w.orig.outcomes.filter((o) => o.status === 'receipted').length, 60, 'every call receipted');
  t.ok(Date.now() - t0 >= 450, 'no faster than 100 a second (the first at once, the 60th 590 ms later)');
  const sent = w.orig.ex.stats;
  t.equal(sent.receiptsSent, 60);
  t.ok(sent.requestsSent <= 6, `60 receipts in ${sent.requestsSent} requests: a quarter second's receipts go together`);
  t.equal(w.term.ex.stats.receiptsServed, 60);
});

t.test('a terminating node that never saw the call refuses it (asked again in case it logged it late)', async (t) => {
  const w = await world(t);
  const c = call(w);
  w.orig.calls.callEnded(c.orig);
  t.match(await outcome(w.orig), { status: 'failed', code: 'unknown-call' });
  t.equal(w.term.asked, 3, 'asked, then again after each retry delay');
  t.equal(
    w.orig.pool.list().filter((e) => e.rec.body.kind === Kind.CallReceipt).length,
    0,
    'nothing pending',
  );
  t.ok(w.orig.lines.some((l) => l.startsWith('warn') && l.includes('gave up')));
});

t.test('a call the terminating node logs a moment late is receipted on the retry', async (t) => {
  const w = await world(t);
  const c = call(w);
  w.orig.calls.callEnded(c.orig);
  await waitFor('the first request refused', async () => w.term.asked >= 1);
  w.term.calls.callEnded(c.term);
  t.match(await outcome(w.orig), { status: 'receipted' });
});

t.test('answer and end times must agree within 2 seconds', async (t) => {
  const w = await world(t);
  const off = call(w);
  w.term.calls.callEnded(off.term);
  w.orig.calls.callEnded({ ...off.orig, answered: off.orig.answered - 3 });
  t.match(await outcome(w.orig, 1), { status: 'failed', code: 'unknown-call' }, 'answer 3 s apart');
  const late = call(w);
  w.term.calls.callEnded(late.term);
  w.orig.calls.callEnded({ ...late.orig, ended: late.orig.ended + 3 });
  t.match(await outcome(w.orig, 2), { status: 'failed', code: 'unknown-call' }, 'end 3 s apart');
  const near = call(w);
  w.term.calls.callEnded(near.term);
  w.orig.calls.callEnded({ ...near.orig, answered: near.orig.answered + 2, ended: near.orig.ended - 2 });
  t.match(await outcome(w.orig, 3), { status: 'receipted' }, '2 s apart on both is the same call');
  // A term call names the node it came from: a receipt from another originator is not it.
  const stranger = call(w);
  w.term.calls.callEnded({ ...stranger.term, peerNodeId: newKey().address });
  w.orig.calls.callEnded(stranger.orig);
  t.match(await outcome(w.orig, 4), { status: 'failed', code: 'unknown-call' }, 'another originating node');
  // A call that reached the terminating node over a hop that proved no node (plain UDP or TCP):
  // whoever asks, even the real originator, gets no countersignature.
  const plain = call(w);
  w.term.calls.callEnded({ ...plain.term, peerNodeId: null });
  w.orig.calls.callEnded(plain.orig);
  t.match(await outcome(w.orig, 5), { status: 'failed', code: 'unknown-call' }, 'a call from a node that proved nothing is receipted for nobody');
});

t.test('a third node that knows the dialog cannot take the originator\'s share (issue 15: the hijack)', async (t) => {
  const w = await world(t, { third: true });
  const thief = w.third as Side;
  // orig -> term, proved on the TLS connection: term logged orig as the call's originating node
  const c = call(w, 120);
  w.term.calls.callEnded(c.term);
  // the thief learnt Call-ID and tags (a caller does) and reports the call as its own origination
  thief.calls.callEnded({ ...c.orig, peerNodeId: w.term.key.address });
  t.match(await outcome(thief), { status: 'failed', code: 'unknown-call' }, 'the terminating node refuses to countersign for the thief');
  t.equal(thief.pool.size, 0, 'nothing reaches the thief\'s pool');
  // the real originating node is then paid, not told "conflict"
  w.orig.calls.callEnded(c.orig);
  t.match(await outcome(w.orig), { status: 'receipted' }, 'the node that really originated the call gets its receipt');
});

t.test('calls the chain would not pay are never asked for', async (t) => {
  const w = await world(t);
  const short = call(w, 0);
  w.term.calls.callEnded(short.term);
  w.orig.calls.callEnded(short.orig);
  t.match(await outcome(w.orig, 1), { status: 'skipped', reason: 'duration' }, 'under a second');
  const long = call(w, w.orig.chain.params.maxCallSeconds + 1);
  w.orig.calls.callEnded(long.orig);
  t.match(await outcome(w.orig, 2), { status: 'skipped', reason: 'duration' }, 'over maxCallSeconds');
  const back = call(w, 10);
  w.orig.calls.callEnded({ ...back.orig, ended: back.orig.answered - 1 });
  t.match(await outcome(w.orig, 3), { status: 'skipped', reason: 'duration' }, 'ended before answered');
  const unnamed = call(w);
  w.orig.calls.callEnded({ ...unnamed.orig, peerNodeId: null });
  t.match(await outcome(w.orig, 4), { status: 'skipped', reason: 'no-peer' });
  const stranger = call(w);
  w.orig.calls.callEnded({ ...stranger.orig, peerNodeId: newKey().address });
  t.match(await outcome(w.orig, 5), { status: 'skipped', reason: 'peer-not-announced' });
  const self = call(w);
  w.orig.calls.callEnded({ ...self.orig, peerNodeId: w.orig.key.address });
  t.match(await outcome(w.orig, 6), { status: 'skipped', reason: 'self' });
  t.equal(w.term.asked, 0, 'no request reached the terminating node');
});

t.test('an unreachable address is skipped and an absent exchange is retried after a pause', async (t) => {
  const w = await world(t, {
    // A dead port first: the announcement's order is followed, and a failure moves on at once.
    termAddrs: (real, peerId) => [`/ip4/127.0.0.1/tcp/1/p2p/${peerId}`, ...real, 'not a multiaddr'],
    startTerm: false,
    retryDelaysMs: [300, 300, 300],
  });
  const c = call(w);
  w.term.calls.callEnded(c.term);
  w.orig.calls.callEnded(c.orig);
  // The terminating node comes up after the first round failed.
  await until('the first failed round', () => w.orig.lines.some((l) => l.includes('attempt 1') && !l.includes('tcp/1/')));
  t.ok(w.orig.lines.some((l) => l.includes('tcp/1/') && l.includes('attempt 1')), 'the dead address was tried');
  await w.term.ex.start(w.term.net.libp2p);
  t.match(await outcome(w.orig), { status: 'receipted' });
  t.equal(w.orig.outcomes.length, 1);
});

t.test('gives up after the last retry; stop() ends retries', async (t) => {
  const w = await world(t, { startTerm: false, retryDelaysMs: [50, 50] });
  const c = call(w);
  w.orig.calls.callEnded(c.orig);
  const o = await outcome(w.orig);
  t.match(o, { status: 'failed', code: 'unreachable' });
  t.ok(w.orig.lines.some((l) => l.startsWith('warn') && l.includes('after 3 attempts')));

  const slow = await world(t, { startTerm: false, retryDelaysMs: [60_000] });
  const d = call(slow);
  slow.orig.calls.callEnded(d.orig);
  await until('the first attempt', () => slow.orig.lines.some((l) => l.includes('attempt 1')));
  slow.orig.calls.stop();
  t.match(await outcome(slow.orig), { status: 'skipped', reason: 'stopped' }, 'a pending retry ends at once');
  slow.orig.calls.callEnded(call(slow).orig);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(slow.orig.outcomes.length, 1, 'a stopped log takes no more calls');
});

/**
 * The exchange seen through the two members CallLog uses, refusing every settlement; nothing
 * goes on the wire (for tests of what the log itself decides). `settled()` counts the attempts.
 */
function refusingExchange(): { exchange: Pick<ReceiptExchange, 'settle' | 'knowsCall'>; settled: () => number } {
  let n = 0;
  return {
    exchange: {
      knowsCall: () => false,
      settle: () => {
        n++;
        return Promise.reject(new ReceiptError('refused', 'no network in this test'));
      },
    },
    settled: () => n,
  };
}

t.test('the terminating log: what it knows, for how long, and how much', async (t) => {
  const { chain, pool } = await openChain(t);
  const me = newKey();
  const them = newKey();
  let now = 1_000_000;
  const { exchange, settled: count } = refusingExchange();
  const log = new CallLog({ chain, pool, secret: me.secret, log: silentLogger, exchange, maxCalls: 2, maxAgeMs: 3600_000, now: () => now });
  const ended = 1_795_000_000;
  const end = (callId: string, peer: Uint8Array | null = them.address): CallEnd => ({ callId, fromTag: 'f', toTag: 't', role: 'term', peerNodeId: peer, answered: ended - 30, ended });
  const receipt = (callId: string, o: Partial<UnsignedReceipt> = {}): UnsignedReceipt => ({
    kind: Kind.CallReceipt,
    callId: dialogHash(callId, 'f', 't'),
    orig: them.address,
    term: me.address,
    answered: ended - 30,
    ended,
    pubkey: them.pub,
    termPubkey: me.pub,
    fee: 0,
    ...o,
  });
  log.callEnded(end('one'));
  t.equal(log.knowsCall(receipt('one')), true);
  t.equal(await exchange.knowsCall(receipt('one')), true, 'the log answers for the exchange');
  t.equal(log.knowsCall(receipt('two')), false, 'another dialog');
  t.equal(log.knowsCall(receipt('one', { term: newKey().address })), false, 'another terminating node');
  t.equal(log.knowsCall(receipt('one', { orig: newKey().address })), false, 'another originating node than the proxy saw');
  t.equal(log.knowsCall(receipt('one', { answered: ended - 32, ended: ended + 2 })), true, 'within 2 s');
  t.equal(log.knowsCall(receipt('one', { answered: ended - 33 })), false, 'answered 3 s apart');
  t.equal(log.knowsCall(receipt('one', { ended: ended - 3 })), false, 'ended 3 s apart');
  log.callEnded(end('anon', null));
  t.equal(log.knowsCall(receipt('anon', { orig: newKey().address })), false, 'a call from a node that proved nothing: no node is vouched for');
  t.equal(log.knowsCall(receipt('anon')), false, 'not even the one that really sent it');
  log.callEnded({ ...end('out'), role: 'orig', peerNodeId: them.address });
  t.equal(log.knowsCall(receipt('out')), false, 'an originated call is not a terminated one');
  // Bounded: a third call pushes out the oldest.
  log.callEnded(end('three'));
  t.equal(log.size, 2);
  t.equal(log.knowsCall(receipt('one')), false, 'the oldest is forgotten');
  t.equal(log.knowsCall(receipt('three')), true);
  // Aged out.
  now += 3600_000;
  t.equal(log.knowsCall(receipt('three')), false, 'forgotten after maxAgeMs');
  t.equal(log.size, 0);
  t.equal(count(), 0, 'the originated call named unannounced nodes: never sent');
  log.stop();
});


t.test('a node that leaves the calls this node carried for it unsettled gets no more calls until it pays', async (t) => {
  const { chain, pool } = await openChain(t);
  const me = newKey();
  const them = newKey();
  const other = newKey();
  await mineAll([chain], 1, [announce(me, []), announce(them, [])]);
  await mineAll([chain], 2, [], undefined, them.address);
  let now = 1_000_000;
  const { exchange } = refusingExchange();
  const log = new CallLog({ chain, pool, secret: me.secret, log: silentLogger, exchange, now: () => now, settleGraceMs: 60_000, maxUnsettled: 3 });
  const ended = chain.tip.header.time;
  const end = (callId: string, peer: Uint8Array | null = them.address, seconds = 30): CallEnd => ({ callId, fromTag: 'f', toTag: 't', role: 'term', peerNodeId: peer, answered: ended - seconds, ended });
  for (const id of ['c1', 'c2', 'c3']) log.callEnded(end(id));
  log.callEnded(end('short', them.address, 0));
  log.callEnded(end('anon', null));
  for (const id of ['o1', 'o2', 'o3']) log.callEnded(end(id, other.address));
  t.equal(log.refusesCallsFrom(them.address), null, 'within the grace: calls are taken');
  now += 60_000;
  t.match(log.refusesCallsFrom(them.address), /3 calls .* unsettled/, 'three calls unsettled past the grace: refused');
  t.equal(log.unsettledBy(them.address), 3, 'the call under a second and the one from no proven node are not owed');
  // The node pays one of them: its receipt reaches the chain, and its calls are taken again.
  const body = { kind: Kind.CallReceipt, callId: dialogHash('c2', 'f', 't'), orig: them.address, term: me.address, answered: ended - 30, ended, pubkey: them.pub, termPubkey: me.pub, fee: 0 } as const;
  const sig = signReceipt(NET, them.secret, body);
  const termSig = signReceipt(NET, me.secret, body);
  const paidBefore = getAccount(chain.state, me.address).balance;
  await mineAll([chain], 1, [makeRec({ ...body, sig, termSig })]);
  t.equal(getAccount(chain.state, me.address).balance - paidBefore, 30 * chain.params.receiptRate, 'this node was paid for the call');
  t.equal(log.refusesCallsFrom(them.address), null, 'two left unsettled, under the limit: taken again');
  t.equal(log.unsettledBy(them.address), 2);
  t.match(log.refusesCallsFrom(other.address), /unsettled/, 'another node that pays nothing stays refused');
  // Unpaid calls older than the window in which a receipt could still settle them are let go.
  now += 6 * 3600_000;
  t.equal(log.refusesCallsFrom(other.address), null, 'after 6 hours');
  log.stop();
});

t.test('a node short of coins for its calls is told once, not at every call', async (t) => {
  const { chain, pool } = await openChain(t);
  const me = newKey();
  const them = newKey();
  await mineAll([chain], 1, [announce(me, []), announce(them, ['/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN'])]);
  const lines: string[] = [];
  const outcomes: ReceiptOutcome[] = [];
  // the exchange as the node has it: the countersigned record goes to the pool, which refuses it
  const exchange = {
    knowsCall: () => false,
    settle: () => Promise.reject(new ValidationError('settlement-unpaid', '30 s of call at 1000 per second costs 30000, the signer\'s balance is 0')),
  };
  const log = new CallLog({ chain, pool, secret: me.secret, log: capture(lines), exchange, onOutcome: (o) => outcomes.push(o) });
  const ended = Math.floor(Date.now() / 1000);
  for (const id of ['x', 'y', 'z']) log.callEnded({ callId: id, fromTag: 'f', toTag: 't', role: 'orig', peerNodeId: them.address, answered: ended - 30, ended });
  await until('three outcomes', () => outcomes.length === 3);
  t.same(outcomes.map((o) => o.status === 'failed' && o.code), ['settlement-unpaid', 'settlement-unpaid', 'settlement-unpaid']);
  const warned = lines.filter((l) => l.startsWith('warn') && l.includes('settlement-unpaid'));
  t.equal(warned.length, 1, 'one warning');
  t.match(warned[0], /this node's key pays for the calls it sends to other nodes: mine \(--mine\) or send coins to its address/, 'saying what to do');
  t.equal(lines.filter((l) => l.startsWith('debug') && l.includes('settlement-unpaid')).length, 2, 'the rest at debug');
  log.stop();
});
