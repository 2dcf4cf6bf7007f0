// The explorer's own checks (node/explorer/verify.js, plain browser JavaScript) against the
// node's implementations: SHA-256 without WebCrypto, RFC 9162 inclusion proofs, record ids,
// block hashes, targets and addresses, and a whole record answer from the API, intact and tampered.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { inclusionProof, merkleRoot } from '../core/merkle.ts';
import { toHex, sha256d, hashToHex } from '../core/hash.ts';
import { recordId } from '../core/records.ts';
import { addressOf, encodeAddress } from '../core/address.ts';
import { compactToTarget } from '../consensus/pow.ts';
import { signRecord, Kind, type NodeAnnounce } from '../core/records.ts';
import { buildApi } from '../node/api/server.ts';
import { openChain, extend, newKey } from './helpers.ts';

interface Step {
  name: string;
  ok: boolean;
}
interface VerifyModule {
  sha256Sync(b: Uint8Array): Uint8Array;
  sha256(b: Uint8Array): Promise<Uint8Array>;
  verifyInclusion(id: Uint8Array, index: number, size: number, path: Uint8Array[], root: Uint8Array): Promise<boolean>;
  recordId(b: Uint8Array): Promise<Uint8Array>;
  addressOf(pub: Uint8Array): Promise<Uint8Array>;
  blockHashHex(header: Uint8Array): Promise<string>;
  targetFromBits(bits: number): bigint;
  encodeAddress(hrp: string, b: Uint8Array): string;
  verifyRecord(r: unknown): Promise<{ ok: boolean; steps: Step[] }>;
  sha256Source: string;
}

// Loaded by URL: it is a browser module without TypeScript types.
const v = (await import(new URL('../node/explorer/verify.js', import.meta.url).href)) as VerifyModule;

t.test('SHA-256 without WebCrypto matches node:crypto', async (t) => {
  for (let n = 0; n <= 200; n++) {
    const b = randomBytes(n);
    const want = createHash('sha256').update(b).digest('hex');
    if (toHex(v.sha256Sync(b)) !== want) t.fail(`length ${n}`);
    if (toHex(await v.sha256(b)) !== want) t.fail(`WebCrypto, length ${n}`);
  }
  const big = randomBytes(100_000);
  t.equal(toHex(v.sha256Sync(big)), createHash('sha256').update(big).digest('hex'));
  t.equal(v.sha256Source, 'webcrypto', 'Node has WebCrypto, as a secure-context page does');
});

t.test('inclusion proofs: every leaf of trees of 1..33 leaves', async (t) => {
  let checked = 0;
  for (let size = 1; size <= 33; size++) {
    const ids = Array.from({ length: size }, () => new Uint8Array(randomBytes(32)));
    const root = merkleRoot(ids);
    for (let i = 0; i < size; i++) {
      const path = inclusionProof(ids, i);
      if (!(await v.verifyInclusion(ids[i], i, size, path, root))) t.fail(`size ${size} leaf ${i}`);
      if (await v.verifyInclusion(ids[(i + 1) % size], i, size, path, root)) {
        if (size > 1) t.fail(`another leaf verified at size ${size} leaf ${i}`);
      }
      if (size > 1 && (await v.verifyInclusion(ids[i], (i + 1) % size, size, path, root))) {
        // Two positions can share a path only in degenerate trees; the root would differ.
        t.fail(`wrong index verified at size ${size} leaf ${i}`);
      }
      if (path.length > 0) {
        const bad = path.map((p) => Uint8Array.from(p));
        bad[0][0] ^= 1;
        if (await v.verifyInclusion(ids[i], i, size, bad, root)) t.fail(`tampered path verified at size ${size} leaf ${i}`);
      }
      if (await v.verifyInclusion(ids[i], i, size, [...path, root], root)) t.fail(`overlong path verified at size ${size} leaf ${i}`);
      checked++;
    }
  }
  t.equal(checked, (33 * 34) / 2);
  t.notOk(await v.verifyInclusion(new Uint8Array(32), 0, 0, [], new Uint8Array(32)), 'empty tree');
  t.notOk(await v.verifyInclusion(new Uint8Array(32), -1, 1, [], new Uint8Array(32)), 'negative index');
});

t.test('record ids, block hashes, targets and addresses', async (t) => {
  const key = newKey();
  const rec = signRecord<NodeAnnounce>('regtest', key.secret, { kind: Kind.NodeAnnounce, pubkey: key.pub, sipUris: [], p2pAddrs: [], rewardAddress: key.address, seq: 1 });
  t.equal(toHex(await v.recordId(rec.bytes)), toHex(recordId(rec.bytes)));
  t.equal(toHex(await v.addressOf(key.pub)), toHex(addressOf(key.pub)));
  for (const hrp of ['dots', 'tdots', 'ddots', 'rdots']) t.equal(v.encodeAddress(hrp, key.address), encodeAddress(hrp, key.address), hrp);
  const header = randomBytes(80);
  t.equal(await v.blockHashHex(header), hashToHex(sha256d(header)));
  for (const bits of [0x207fffff, 0x1e040000, 0x1d00ffff, 0x1b0404cb, 0x03123456, 0x01003456, 0x1f00ffff]) {
    t.equal(v.targetFromBits(bits), compactToTarget(bits), `bits 0x${bits.toString(16)}`);
  }
});

t.test('a record answer from the API verifies, and tampering is caught', async (t) => {
  const { chain, pool } = await openChain(t);
  const keys = [newKey(), newKey(), newKey()];
  const recs = keys.map((k) => signRecord<NodeAnnounce>('regtest', k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: ['sip:x.test'], p2pAddrs: [], rewardAddress: k.address, seq: 1 }));
  await extend(chain, chain.tip, 1, { recs });
  const app = await buildApi({ chain, pool, hashrate: () => 0, peers: () => [], syncing: () => false });
  t.teardown(() => app.close());
  const res = await app.inject({ url: `/api/records/${toHex(recs[1].id)}` });
  const answer = JSON.parse(res.body) as { proof: { path: string[]; merkleRoot: string; leafIndex: number }; header: string; bytes: string; block: string };
  const good = await v.verifyRecord(answer);
  t.ok(good.ok, 'verifies');
  t.same(good.steps.map((s) => s.name), ['record id', 'inclusion proof', 'header commits to the root', 'header is the block', 'proof of work']);

  const failing = async (mutate: (a: typeof answer) => void): Promise<string[]> => {
    const a = JSON.parse(JSON.stringify(answer)) as typeof answer;
    mutate(a);
    const r = await v.verifyRecord(a);
    t.notOk(r.ok);
    return r.steps.filter((s) => !s.ok).map((s) => s.name);
  };
  const flip = (hex: string, at = 0): string => hex.slice(0, at) + (hex[at] === '0' ? '1' : '0') + hex.slice(at + 1);
  t.same(await failing((a) => (a.proof.path[0] = flip(a.proof.path[0]))), ['inclusion proof']);
  t.same(await failing((a) => (a.proof.leafIndex = 0)), ['inclusion proof']);
  t.same(await failing((a) => (a.bytes = flip(a.bytes, a.bytes.length - 2))), ['record id']);
  t.same(await failing((a) => (a.header = flip(a.header, 150))), ['header is the block', 'proof of work']);
  t.same(await failing((a) => (a.block = flip(a.block))), ['header is the block']);
  t.same(await failing((a) => (a.header = 'zz')), ['well-formed proof']);
});
