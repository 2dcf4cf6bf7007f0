// The p2p building blocks in-process, without sockets: wire messages, scores and rate limits,
// block locators, the peer key file, and the header-first sync engine against a fake peer that
// serves from another chain (fork, reorganisation, lying peers).
import t from 'tap';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { encode } from '../core/encoding.ts';
import { encodeHeader, decodeHeader } from '../core/block.ts';
import { silentLogger } from '../core/log.ts';
import { hashToHex } from '../core/hash.ts';
import { signRecord, Kind, type NameCommit } from '../core/records.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import type { Chain } from '../consensus/chain.ts';
import {
  MAX_BLOCKS_PER_REQUEST,
  MAX_HEADERS,
  MAX_LOCATOR,
  ProtocolError,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  workFromBytes,
  workToBytes,
  type Request,
  type Response,
} from '../p2p/messages.ts';
import { PeerScores, TokenBucket, PeerLimits } from '../p2p/score.ts';
import { forkPoint, headersAfter, locatorHeights, mainLocator } from '../p2p/locator.ts';
import { loadOrCreateIdentity } from '../p2p/identity.ts';
import { Synchronizer, type SyncHost, type SyncPeer } from '../p2p/sync.ts';
import type { Offence } from '../p2p/score.ts';
import { openChain } from './helpers.ts';
import { tmpDir } from './util/tmp.ts';
import { until } from './util/wait.ts';

t.test('wire messages round-trip and reject what is malformed or oversized', async (t) => {
  const h = randomBytes(32);
  const status = { network: 'regtest', genesis: h, height: 7, tip: h, work: 123456789012345678901234567890n, agent: 'dots/0.1.0' };
  const reqs: Request[] = [
    { type: 'status', status },
    { type: 'headers', locator: [h, h], max: 10 },
    { type: 'blocks', hashes: [h] },
    { type: 'records', records: [new Uint8Array([1, 2, 3])] },
  ];
  for (const r of reqs) t.same(decodeRequest(encodeRequest(r)), r, `${r.type} request`);
  const res: Array<[Response, Request]> = [
    [{ type: 'status', status }, reqs[0]],
    [{ type: 'headers', headers: [new Uint8Array(80)] }, reqs[1]],
    [{ type: 'blocks', blocks: [new Uint8Array(0)] }, reqs[2]],
    [{ type: 'records', accepted: 1 }, reqs[3]],
    [{ type: 'error', code: 'x', message: 'y' }, reqs[1]],
  ];
  for (const [r, q] of res) t.same(decodeResponse(encodeResponse(r), q, 1000), r, `${r.type} response`);
  t.equal(workFromBytes(workToBytes(0n)), 0n);
  t.equal(workFromBytes(workToBytes(2n ** 200n + 5n)), 2n ** 200n + 5n);

  t.throws(() => decodeRequest(randomBytes(100)), ProtocolError, 'garbage');
  t.throws(() => decodeRequest(encode([9, 1])), ProtocolError, 'unknown type');
  t.throws(() => decodeRequest(encode([2, Array.from({ length: MAX_LOCATOR + 1 }, () => h), 1])), ProtocolError, 'locator too long');
  t.throws(() => decodeRequest(encode([2, [h], MAX_HEADERS + 1])), ProtocolError, 'too many headers asked');
  const hashes = (n: number): Uint8Array[] => Array.from({ length: n }, () => h);
  t.equal((decodeRequest(encodeRequest({ type: 'blocks', hashes: hashes(MAX_BLOCKS_PER_REQUEST) })) as { hashes: Uint8Array[] }).hashes.length, MAX_BLOCKS_PER_REQUEST, 'a blocks request of the most hashes allowed reads');
  t.throws(() => decodeRequest(encodeRequest({ type: 'blocks', hashes: hashes(MAX_BLOCKS_PER_REQUEST + 1) })), ProtocolError, 'one hash more is refused');
  t.throws(() => decodeRequest(new Uint8Array(2_000_000)), { code: 'oversize' }, 'oversized request');
  t.throws(() => decodeResponse(encodeResponse({ type: 'headers', headers: [new Uint8Array(80), new Uint8Array(80)] }), { type: 'headers', locator: [], max: 1 }, 1000), ProtocolError, 'more headers than asked');
  t.throws(() => decodeResponse(encodeResponse({ type: 'headers', headers: [new Uint8Array(79)] }), reqs[1], 1000), ProtocolError, 'short header');
  t.throws(() => decodeResponse(encodeResponse({ type: 'records', accepted: 1 }), reqs[1], 1000), { code: 'unexpected' }, 'answer of the wrong type');
});

t.test('scores ban at the threshold, forgive over time, bans expire', async (t) => {
  let now = 0;
  const s = new PeerScores({ now: () => now, banMs: 60_000, decayPerSecond: 1 });
  t.equal(s.penalize('p', 'invalidRecord'), false);
  t.equal(s.score('p'), -25);
  now += 10_000;
  t.equal(s.score('p'), -15, 'forgiven 1 point per second');
  now += 60_000;
  t.equal(s.score('p'), 0, 'never above zero');
  t.equal(s.penalize('p', 'malformed'), false);
  t.equal(s.penalize('p', 'malformed'), true, 'two malformed messages ban');
  t.ok(s.isBanned('p'));
  t.same(s.banned(), ['p']);
  t.equal(s.penalize('p', 'malformed'), false, 'a banned peer is not charged again');
  now += 60_001;
  t.notOk(s.isBanned('p'), 'ban expired');
  t.equal(s.penalize('q', 'invalidBlock'), true, 'one invalid block bans');

  const b = new TokenBucket(10, 5, () => now);
  for (let i = 0; i < 5; i++) t.ok(b.take());
  t.notOk(b.take(), 'burst used up');
  now += 100;
  t.ok(b.take(), 'refilled at the rate');
  t.notOk(b.take());
  const l = new PeerLimits({ records: [1, 1], blocks: [1, 1], requests: [1, 2], status: [1, 1] });
  t.ok(l.take('x', 'requests'));
  t.ok(l.take('x', 'requests'));
  t.notOk(l.take('x', 'requests'));
  t.ok(l.take('y', 'requests'), 'per peer');
});

t.test('block locators', async (t) => {
  t.same(locatorHeights(0), [0]);
  t.same(locatorHeights(12), [12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 1, 0]);
  const long = locatorHeights(10_000_000);
  t.ok(long.length <= MAX_LOCATOR, 'bounded');
  t.equal(long[long.length - 1], 0, 'ends at genesis');
  const { chain, miner } = await openChain(t);
  await miner.mineBlocks(30);
  const loc = mainLocator(chain);
  t.equal(loc[0], chain.tip.hash);
  t.equal(forkPoint(chain, [randomBytes(32), chain.main[17].hash]).height, 17, 'newest known entry');
  t.equal(forkPoint(chain, [randomBytes(32)]).height, 0, 'genesis when nothing is known');
  const hs = headersAfter(chain, [chain.main[25].hash], 100);
  t.equal(hs.length, 5);
  t.same(hs[0], chain.main[26].headerBytes);
  t.equal(headersAfter(chain, [], 10).length, 10, 'from genesis, capped');
});

t.test('the peer key is created owner-only and reused', async (t) => {
  const dir = tmpDir(t);
  const a = await loadOrCreateIdentity(join(dir, 'p2p.key'));
  t.ok(a.created);
  t.equal(statSync(join(dir, 'p2p.key')).mode & 0o777, 0o600);
  const b = await loadOrCreateIdentity(join(dir, 'p2p.key'));
  t.notOk(b.created);
  t.ok(a.privateKey.equals(b.privateKey), 'same key after restart');
  writeFileSync(join(dir, 'bad.key'), 'nonsense');
  await t.rejects(loadOrCreateIdentity(join(dir, 'bad.key')), /damaged/);
});

/** A fake peer that serves `src` the way the network layer does, optionally lying. */
function fakeHost(dst: Chain, src: Chain, o: { tamperHeaders?: (h: Uint8Array[]) => Uint8Array[]; peers?: number } = {}) {
  const peers: SyncPeer[] = Array.from({ length: o.peers ?? 1 }, (_, i) => ({ id: `peer-${i + 1}`, bestWork: src.tip.work, bestHeight: src.tip.height, inflight: 0, retryAt: 0 }));
  const peer = peers[0];
  const penalties: Array<[string, Offence]> = [];
  const blockRequests = new Map<string, number>();
  const host: SyncHost = {
    chain: dst,
    log: silentLogger,
    readyPeers: () => peers,
    fromPeers: () => undefined,
    penalize: (id, offence) => void penalties.push([id, offence]),
    request: async (p, req) => {
      if (req.type === 'blocks') blockRequests.set(p.id, (blockRequests.get(p.id) ?? 0) + 1);
      if (req.type === 'headers') {
        const hs = headersAfter(src, req.locator, req.max);
        return { type: 'headers', headers: o.tamperHeaders?.(hs) ?? hs };
      }
      if (req.type === 'blocks') return { type: 'blocks', blocks: await Promise.all(req.hashes.map(async (h) => (await src.getBlockBytes(hashToHex(h))) ?? new Uint8Array(0))) };
      return null;
    },
  };
  return { host, peer, peers, penalties, blockRequests };
}

t.test('header-first sync: catches up, then follows a heavier fork', async (t) => {
  const src = await openChain(t);
  const dst = await openChain(t);
  for (let i = 0; i < 20; i++) {
    const sk = generateSecretKey();
    src.pool.add(signRecord<NameCommit>('regtest', sk, { kind: Kind.NameCommit, pubkey: publicKeyOf(sk), commitment: randomBytes(32) }));
  }
  await src.miner.mineBlocks(2500); // more than one batch of headers
  const { host, peer, peers, blockRequests } = fakeHost(dst.chain, src.chain, { peers: 2 });
  const sync = new Synchronizer(host, { window: 300 });
  sync.start();
  t.teardown(() => sync.stop());
  sync.wake();
  await until('catch-up', () => dst.chain.tip.height === 2500);
  t.equal(dst.chain.tip.hex, src.chain.tip.hex, 'same tip');
  t.equal(dst.chain.main[1].hex, src.chain.main[1].hex);
  await until('session end', () => !sync.syncing());
  t.equal(sync.progress().percent, 100);
  t.ok(peers.every((p) => (blockRequests.get(p.id) ?? 0) > 0), `bodies came from both peers (${[...blockRequests.values()].join(' and ')} requests)`);
  for (const p of peers) {
    p.bestWork = 0n; // only the first peer has the fork below
  }

  // dst mines 3 of its own; src mines 5 more on its old tip: src's branch has more work.
  await dst.miner.mineBlocks(3);
  await src.miner.mineBlocks(5);
  peer.bestWork = src.chain.tip.work;
  peer.bestHeight = src.chain.tip.height;
  sync.wake();
  await until('reorganisation', () => dst.chain.tip.hex === src.chain.tip.hex);
  t.equal(dst.chain.tip.height, 2505, 'dst moved to the heavier branch');
});

t.test('a peer whose headers break the rules is charged and not followed', async (t) => {
  const src = await openChain(t);
  const dst = await openChain(t);
  await src.miner.mineBlocks(10);
  const { host, penalties } = fakeHost(dst.chain, src.chain, {
    tamperHeaders: (hs) =>
      hs.map((b, i) => {
        if (i !== 3) return b;
        const h = decodeHeader(b);
        return encodeHeader({ ...h, bits: 0x1d00ffff }); // wrong difficulty (and no work for it)
      }),
  });
  const sync = new Synchronizer(host);
  sync.start();
  t.teardown(() => sync.stop());
  sync.wake();
  await until('penalty', () => penalties.length > 0);
  t.ok(penalties.some(([, o]) => o === 'badPow' || o === 'invalidBlock'), `charged: ${penalties.map((p) => p[1]).join(', ')}`);
  t.equal(dst.chain.tip.height, 0, 'nothing connected from a bad header chain');
});
