// Misbehaving peers, written here with libp2p directly: each one passes the handshake, then sends
// an invalid block, a block with bad proof of work, garbage bytes, or a flood; the honest node
// disconnects and bans it, does not forward what it sent, and the honest nodes keep going. A peer
// of another network is refused at the handshake. And what a stranger may ask: blocks are served
// in the order asked, never one the node found invalid.
import '../p2p/polyfill.ts';
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { Libp2p, PeerId } from '@libp2p/interface';
import type { GossipSub } from '@libp2p/gossipsub';
import type { Identify } from '@libp2p/identify';
import { sha256 } from '@noble/hashes/sha2.js';
import { makeBlock, encodeBlock, decodeBlock, headerHash, type Block } from '../core/block.ts';
import { hashToHex, hexToHash } from '../core/hash.ts';
import { merkleRoot } from '../core/merkle.ts';
import { makeRec, Kind } from '../core/records.ts';
import { NETWORKS } from '../consensus/params.ts';
import { checkProofOfWork } from '../consensus/validate.ts';
import { workFromBits } from '../consensus/pow.ts';
import { SYNC_PROTOCOL, decodeRequest, decodeResponse, encodeRequest, encodeResponse, type Request, type Response, type Status } from '../p2p/messages.ts';
import { Harness, converged, type NodeProc } from './util/proc.ts';
import { waitFor } from './util/wait.ts';

const P = NETWORKS.regtest;

interface Evil {
  node: Libp2p<{ pubsub: GossipSub; identify: Identify }>;
  target: PeerId;
  blocks: string;
  records: string;
  connected(): boolean;
  stop(): Promise<void>;
}

/** A libp2p peer that passes the handshake as `status` says, then does whatever the test does. */
async function evilPeer(t: { teardown(fn: () => Promise<void>): void }, target: NodeProc, genesisHex: string, network = 'regtest'): Promise<Evil> {
  const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { identify }, gs, { multiaddr }, { lpStream }] = await Promise.all([
    import('libp2p'),
    import('@libp2p/tcp'),
    import('@chainsafe/libp2p-noise'),
    import('@chainsafe/libp2p-yamux'),
    import('@libp2p/identify'),
    import('@libp2p/gossipsub'),
    import('@multiformats/multiaddr'),
    import('@libp2p/utils'),
  ]);
  const node = await createLibp2p<{ pubsub: GossipSub; identify: Identify }>({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      pubsub: gs.gossipsub({ globalSignaturePolicy: 'StrictNoSign', msgIdFn: (m) => sha256(m.data).subarray(0, 20), allowPublishToZeroTopicPeers: true, emitSelf: false }),
    },
  });
  t.teardown(async () => {
    await node.stop();
  });
  const genesis = hexToHash(genesisHex);
  const status: Status = { network, genesis, height: 0, tip: genesis, work: workFromBits(P.powLimitBits), agent: 'evil/1' };
  await node.handle(SYNC_PROTOCOL, async (stream) => {
    const lp = lpStream(stream);
    try {
      const req = decodeRequest((await lp.read()).subarray());
      await lp.write(encodeResponse(req.type === 'status' ? { type: 'status', status } : { type: 'error', code: 'no', message: 'no' }));
      await stream.close();
    } catch {
      stream.abort(new Error('bye'));
    }
  });
  const net = `/dots/${network}/${genesisHex}`;
  const blocks = `${net}/blocks/1`;
  const records = `${net}/records/1`;
  node.services.pubsub.subscribe(blocks);
  node.services.pubsub.subscribe(records);
  const ma = multiaddr(target.p2p);
  const conn = await node.dial(ma);
  const targetId = conn.remotePeer;
  return {
    node,
    target: targetId,
    blocks,
    records,
    connected: () => node.getConnections(targetId).some((c) => c.status === 'open'),
    stop: async () => {
      await node.stop();
    },
  };
}

/** Waits until the honest node lists the evil peer and both sides know the gossip topics. */
async function ready(evil: Evil, honest: NodeProc): Promise<void> {
  const id = evil.node.peerId.toString();
  await waitFor('handshake', async () => (await honest.peers()).some((p) => p.id === id), 10_000);
  await waitFor('gossip subscriptions', async () => evil.node.services.pubsub.getSubscribers(evil.blocks).some((p) => p.equals(evil.target)), 10_000);
}

async function tipOf(n: NodeProc): Promise<{ hash: string; height: number; time: number }> {
  const s = await n.status();
  return { hash: s.tip, height: s.height, time: s.time };
}

/** A block on `tip` whose proof of work is valid (or, with `badPow`, invalid). */
function blockOn(tip: { hash: string; height: number; time: number }, o: { amount?: number; badPow?: boolean; prev?: Uint8Array } = {}): Block {
  const cb = makeRec({ kind: Kind.Coinbase, height: tip.height + 1, rewardAddress: randomBytes(20), amount: o.amount ?? P.subsidy(tip.height + 1), extraNonce: randomBytes(8), note: '' });
  const header = { version: 1, prev: o.prev ?? hexToHash(tip.hash), merkleRoot: merkleRoot([cb.id]), time: Math.max(tip.time + 1, Math.floor(Date.now() / 1000)), bits: P.powLimitBits, nonce: 0 };
  for (let nonce = 0; ; nonce++) {
    const b = makeBlock({ ...header, nonce }, [cb]);
    let ok = true;
    try {
      checkProofOfWork(b.header, b.hash, P);
    } catch {
      ok = false;
    }
    if (ok !== (o.badPow === true)) return b;
  }
}

async function expectBanned(t: Test, evil: Evil, honest: NodeProc, what: string): Promise<void> {
  await waitFor(`${what}: the peer to be disconnected`, async () => !evil.connected(), 10_000);
  const id = evil.node.peerId.toString();
  t.notOk((await honest.peers()).some((p) => p.id === id), `${what}: ${honest.name} dropped the peer`);
  t.ok(honest.lines.some((l) => l.includes('banned peer') && l.includes(id.slice(-6))), `${what}: ${honest.name} logged the ban`);
  // A banned peer cannot come straight back.
  const { multiaddr } = await import('@multiformats/multiaddr');
  await evil.node.dial(multiaddr(honest.p2p)).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(evil.connected(), `${what}: redial refused`);
  await evil.stop();
}

/** A peer gossips `honest` a block on its tip whose coinbase pays too much, and is banned for it; the block. */
async function gossipInvalidBlock(t: Test, honest: NodeProc, genesisHex: string): Promise<Block> {
  const evil = await evilPeer(t, honest, genesisHex);
  await ready(evil, honest);
  const bad = blockOn(await tipOf(honest), { amount: P.subsidy(1) * 1000 });
  await evil.node.services.pubsub.publish(evil.blocks, encodeBlock(bad));
  await expectBanned(t, evil, honest, 'invalid block');
  return bad;
}

t.test('misbehaving peers are disconnected, honest nodes keep going', async (t) => {
  const h = new Harness(t);
  const a = await h.start('A');
  const b = await h.start('B', { bootstrap: [a.p2p] });
  await a.mine(2);
  await converged([a, b]);
  const genesis = (await a.status()).genesis;

  t.test('invalid block (coinbase pays too much)', async (t) => {
    await gossipInvalidBlock(t, a, genesis);
  });

  t.test('a blocks request is answered in its order; an invalid block it holds and an unknown one come back empty', async (t) => {
    // a block that breaks the state rules is kept with its index entry marked invalid
    const bad = await gossipInvalidBlock(t, a, genesis);
    const asker = await evilPeer(t, a, genesis);
    await ready(asker, a);
    const { lpStream } = await import('@libp2p/utils');
    const ask = async (req: Request): Promise<Response> => {
      const s = await asker.node.dialProtocol(asker.target, SYNC_PROTOCOL);
      const lp = lpStream(s);
      await lp.write(encodeRequest(req));
      const res = decodeResponse((await lp.read()).subarray(), req, P.maxBlockBytes);
      await s.close();
      return res;
    };
    const headers = await ask({ type: 'headers', locator: [hexToHash(genesis)], max: 10 });
    if (headers.type !== 'headers') throw new Error(`headers request answered ${headers.type}`);
    const main = [hexToHash(genesis), ...headers.headers.map((h) => headerHash(h))];
    t.equal(main.length, 3, 'genesis and the two blocks mined');
    // more hashes than one read of the store takes (8 blocks of the network's largest), repeats too
    const hashes = [...main, ...main, bad.hash, randomBytes(32), ...main, ...main, ...main];
    const res = await ask({ type: 'blocks', hashes });
    if (res.type !== 'blocks') throw new Error(`blocks request answered ${res.type}`);
    t.equal(res.blocks.length, hashes.length, 'an answer for every hash asked');
    const got = res.blocks.map((b) => (b.length === 0 ? 'none' : hashToHex(decodeBlock(b, P.maxBlockBytes).hash)));
    const want = hashes.map((h, i) => (i === 6 || i === 7 ? 'none' : hashToHex(h)));
    t.same(got, want, 'each block in the place it was asked for; the invalid one A holds and the unknown one empty');
    await asker.stop();
  });

  t.test('block with bad proof of work', async (t) => {
    const evil = await evilPeer(t, a, genesis);
    await ready(evil, a);
    await evil.node.services.pubsub.publish(evil.blocks, encodeBlock(blockOn(await tipOf(a), { badPow: true })));
    await expectBanned(t, evil, a, 'bad proof of work');
  });

  t.test('garbage bytes, by gossip and on the sync protocol', async (t) => {
    const evil = await evilPeer(t, a, genesis);
    await ready(evil, a);
    await evil.node.services.pubsub.publish(evil.records, randomBytes(300));
    const { lpStream } = await import('@libp2p/utils');
    const s = await evil.node.dialProtocol(evil.target, SYNC_PROTOCOL);
    await lpStream(s).write(randomBytes(500)).catch(() => undefined);
    await expectBanned(t, evil, a, 'garbage');
  });

  t.test('flood of orphan blocks', async (t) => {
    const evil = await evilPeer(t, a, genesis);
    await ready(evil, a);
    const tip = await tipOf(a);
    // Valid proof of work on unknown parents: each is cheap to check and costs nothing alone;
    // the rate is what gives the flood away.
    for (let i = 0; i < 1200 && evil.connected(); i++) {
      await evil.node.services.pubsub.publish(evil.blocks, encodeBlock(blockOn(tip, { prev: randomBytes(32) }))).catch(() => undefined);
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    await expectBanned(t, evil, a, 'flood');
  });

  t.test('a flood of status requests', async (t) => {
    const evil = await evilPeer(t, a, genesis);
    await ready(evil, a);
    const { lpStream } = await import('@libp2p/utils');
    const req = encodeRequest({ type: 'status', status: { network: 'regtest', genesis: hexToHash(genesis), height: 0, tip: hexToHash(genesis), work: 1n, agent: 'evil/1' } });
    const one = async (): Promise<void> => {
      const s = await evil.node.dialProtocol(evil.target, SYNC_PROTOCOL);
      const lp = lpStream(s);
      await lp.write(req);
      await lp.read();
      await s.close();
    };
    for (let i = 0; i < 100 && evil.connected(); i++) await Promise.all(Array.from({ length: 8 }, () => one().catch(() => undefined)));
    await expectBanned(t, evil, a, 'request flood');
  });

  t.test('a node of another network is refused', async (t) => {
    const evil = await evilPeer(t, a, 'ab'.repeat(32), 'regtest');
    await waitFor('refusal', async () => !evil.connected(), 10_000);
    // The log line may reach us a moment after the connection closed.
    t.ok(await waitFor('refusal logged', async () => a.lines.some((l) => l.includes('refused peer') && l.includes(evil.node.peerId.toString().slice(-6))), 5_000), 'A logged the refusal');
    t.notOk((await a.peers()).some((p) => p.id === evil.node.peerId.toString()), 'not a peer of A');
    await evil.stop();
  });

  t.test('honest nodes keep going', async (t) => {
    await a.mine(1);
    await converged([a, b]);
    await b.mine(1);
    const s = await converged([a, b]);
    t.equal(s.height, 4, 'A and B still mine and agree');
    t.ok((await b.peers()).some((p) => p.id === a.peerId), 'B kept A as a peer: nothing invalid was forwarded');
    t.notOk(b.lines.some((l) => l.includes('banned peer')), 'B banned nobody');
  });
});
