import t from 'tap';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { HeaderHasher } from '../consensus/hasher.ts';
import { compactToTarget, hashMeetsTarget, hashToHex, sha256d, targetToBytesLE } from '../consensus/pow.ts';

const GENESIS_NONCE = 2083236893;

function readFixtures(): Array<{ name: string; header: Uint8Array; display: string }> {
  const text = readFileSync(new URL('./fixtures/headers.tsv', import.meta.url), 'utf8');
  const rows = text
    .split(/\r?\n/)
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t'));
  if (rows.length === 0) throw new Error('headers.tsv: no rows parsed');
  return rows.map(([name, hex, display]) => ({ name, header: Uint8Array.from(Buffer.from(hex, 'hex')), display }));
}

function withNonce(header: Uint8Array, nonce: number): Uint8Array {
  const h = header.slice();
  new DataView(h.buffer, h.byteOffset, 80).setUint32(76, nonce >>> 0, true);
  return h;
}

function nonceOf(header: Uint8Array): number {
  return new DataView(header.buffer, header.byteOffset, 80).getUint32(76, true);
}

const fixtures = readFixtures();
const genesis = fixtures.find((f) => f.name === 'bitcoin-genesis');
if (!genesis) throw new Error('bitcoin-genesis row missing from headers.tsv');

t.test('hashNonce equals sha256d on fixture headers', (t) => {
  const out = new Uint8Array(32);
  for (const f of fixtures) {
    const hh = new HeaderHasher(f.header);
    hh.hashNonce(nonceOf(f.header), out);
    t.equal(hashToHex(out), f.display, `${f.name}: listed hash`);
    t.same(out, sha256d(f.header), `${f.name}: equals sha256d`);
  }
  t.end();
});

t.test('hashNonce equals sha256d on 200 random headers and nonces', (t) => {
  const out = new Uint8Array(32);
  const hh = new HeaderHasher(new Uint8Array(80));
  // Edge nonces exercise the byte swap and the sign bit of the int32 view.
  const edge = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x01020304];
  let mismatches = 0;
  for (let i = 0; i < 200; i++) {
    const header = new Uint8Array(randomBytes(80));
    const nonce = i < edge.length ? edge[i] : randomBytes(4).readUInt32LE(0);
    hh.setHeader(header); // reuse: setHeader must fully reset per-header state
    hh.hashNonce(nonce, out);
    const expect = sha256d(withNonce(header, nonce));
    if (hashToHex(out) !== hashToHex(expect)) {
      mismatches++;
      t.fail(`header ${Buffer.from(header).toString('hex')} nonce ${nonce}`);
    }
  }
  t.equal(mismatches, 0, '200 random header/nonce pairs match');
  t.throws(() => new HeaderHasher(new Uint8Array(79)), RangeError);
  t.end();
});

t.test('scan finds the genesis nonce', (t) => {
  const target = targetToBytesLE(compactToTarget(0x1d00ffff));
  const hh = new HeaderHasher(genesis.header);
  t.equal(hh.scan(GENESIS_NONCE - 5000, 10000, target), GENESIS_NONCE, 'exactly the genesis nonce');
  t.equal(hh.scan(GENESIS_NONCE, 1, target), GENESIS_NONCE, 'single-nonce range');
  t.equal(hh.scan(GENESIS_NONCE - 5000, 5000, target), -1, 'range just before it has no solution');
  t.equal(hh.scan(GENESIS_NONCE + 1, 5000, target), -1, 'range just after it has no solution');
  t.equal(hh.scan(GENESIS_NONCE, 0, target), -1, 'empty range');
  t.end();
});

t.test('scan honours the full 256-bit comparison and wraps nonces', (t) => {
  const hh = new HeaderHasher(genesis.header);
  const out = new Uint8Array(32);
  hh.hashNonce(GENESIS_NONCE, out);
  const exact = BigInt('0x' + hashToHex(out));
  // Target equal to the hash: top words tie, full compare must accept.
  t.equal(hh.scan(GENESIS_NONCE - 10, 20, targetToBytesLE(exact)), GENESIS_NONCE, 'target == hash accepted');
  // One below: same top word, must be rejected by the full compare.
  t.equal(hh.scan(GENESIS_NONCE - 10, 20, targetToBytesLE(exact - 1n)), -1, 'target == hash - 1 rejected');

  // An easy target (top byte 0x7f..) accepts about half of all nonces; the
  // first hit must be the first nonce that really meets it, across the wrap.
  const easy = (1n << 255n) - 1n;
  const easyLE = targetToBytesLE(easy);
  const found = hh.scan(0xfffffffe, 64, easyLE);
  let expected = -1;
  for (let i = 0; i < 64; i++) {
    const n = (0xfffffffe + i) >>> 0;
    if (hashMeetsTarget(sha256d(withNonce(genesis.header, n)), easy)) {
      expected = n;
      break;
    }
  }
  t.not(expected, -1, 'some nonce in range meets the easy target');
  t.equal(found, expected, 'first easy-target nonce from 0xfffffffe');

  // Wrap: find a header variant whose best hash among nonces 0..31 beats every
  // hash among 0xffffffe0..0xffffffff, then scan across the boundary with that
  // best hash as the target; only the post-wrap nonce may be returned.
  const refHash = (h: Uint8Array, n: number) => BigInt('0x' + hashToHex(sha256d(withNonce(h, n))));
  let checked = false;
  for (let time = 0; time < 64 && !checked; time++) {
    const header = genesis.header.slice();
    header[68] = time;
    let best = -1;
    let bestHash = 1n << 256n;
    for (let n = 0; n < 32; n++) {
      const v = refHash(header, n);
      if (v < bestHash) [best, bestHash] = [n, v];
    }
    let preWrapMin = 1n << 256n;
    for (let n = 0xffffffe0; n <= 0xffffffff; n++) {
      const v = refHash(header, n);
      if (v < preWrapMin) preWrapMin = v;
    }
    if (preWrapMin <= bestHash) continue;
    const w = new HeaderHasher(header);
    t.equal(w.scan(0xffffffe0, 64, targetToBytesLE(bestHash)), best, `wrap: finds post-wrap nonce ${best}`);
    checked = true;
  }
  t.ok(checked, 'found a header variant to test the wrap with');
  t.end();
});
