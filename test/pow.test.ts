import t from 'tap';
import { readHeaderFixtures } from './helpers.ts';
import {
  PowError,
  compactToTarget,
  hashMeetsTarget,
  hashMeetsTargetBytes,
  hashToBigInt,
  hashToHex,
  hexToHash,
  sha256d,
  targetToBytesLE,
  targetToCompact,
  workFromBits,
  workFromTarget,
} from '../consensus/pow.ts';

const hex = (b: number) => '0x' + b.toString(16).padStart(8, '0');

t.test('compactToTarget known values', (t) => {
  t.equal(compactToTarget(0x1d00ffff), 0xffffn << 208n, 'bitcoin pow limit');
  t.equal(compactToTarget(0x207fffff), 0x7fffffn << 232n, 'regtest limit');
  t.equal(compactToTarget(0x03123456), 0x123456n);
  t.equal(compactToTarget(0x04123456), 0x12345600n);
  t.equal(compactToTarget(0x02123456), 0x1234n, 'size 2 drops a byte');
  t.equal(compactToTarget(0x01123456), 0x12n, 'size 1 drops two bytes');
  t.equal(compactToTarget(0x01003456), 0n);
  t.equal(compactToTarget(0x00123456), 0n);
  t.equal(compactToTarget(0x05009234), 0x92340000n);
  t.equal(compactToTarget(0x01fedcba & 0xff7fffff), 0x7en, 'sign bit cleared');
  t.equal(compactToTarget(0x00800000), 0n, 'negative zero is zero (Bitcoin semantics)');
  t.equal(compactToTarget(0x01800000), 0n, 'sign bit with zero mantissa is zero');
  t.equal(compactToTarget(0x22000001), 1n << 248n, 'largest size with one-byte mantissa');
  t.equal(compactToTarget(0xff000000), 0n, 'zero mantissa never overflows');
  t.end();
});

t.test('negative and overflowing encodings are rejected', (t) => {
  for (const bits of [0x04923456, 0x01fedcba, 0x1d80ffff, 0x03800001, 0x20800000 | 1]) {
    t.throws(() => compactToTarget(bits), PowError, `negative ${hex(bits)}`);
  }
  for (const bits of [0x23000001, 0x22000100, 0x21010000, 0xff123456]) {
    t.throws(() => compactToTarget(bits), PowError, `overflow ${hex(bits)}`);
  }
  t.throws(() => compactToTarget(-1), PowError, 'not a u32');
  t.throws(() => compactToTarget(2 ** 32), PowError, 'not a u32');
  t.throws(() => compactToTarget(1.5), PowError, 'not an integer');
  try {
    compactToTarget(0x04923456);
  } catch (e) {
    t.match((e as Error).message, /negative/, 'message says why');
  }
  t.end();
});

t.test('targetToCompact is canonical GetCompact', (t) => {
  t.equal(targetToCompact(0n), 0);
  t.equal(targetToCompact(1n), 0x01010000);
  t.equal(targetToCompact(0x80n), 0x02008000, 'high bit moves into the exponent');
  t.equal(targetToCompact(0x123456n), 0x03123456);
  t.equal(targetToCompact(0x12345600n), 0x04123456);
  t.equal(targetToCompact(0x92340000n), 0x05009234);
  t.equal(targetToCompact((1n << 224n) - 1n), 0x1d00ffff, 'full pow limit truncates to 0x1d00ffff');
  t.equal(targetToCompact((1n << 256n) - 1n), 0x2100ffff);
  t.throws(() => targetToCompact(-1n), PowError);
  t.throws(() => targetToCompact(1n << 256n), PowError);
  t.end();
});

t.test('compact round trips', (t) => {
  const canonical = [
    0x1d00ffff, 0x207fffff, 0x03123456, 0x04123456, 0x05009234, 0x1802aee8, 0x1a2b3c4d, 0x01010000,
    0x01120000, 0x02008000, 0x02123400, 0x170331db, 0x2100ffff, 0x20010000, 0x1c7f62c0,
  ];
  for (const bits of canonical) {
    t.equal(hex(targetToCompact(compactToTarget(bits))), hex(bits), `round trip ${hex(bits)}`);
  }
  // Non-canonical encodings decode fine but re-encode to the canonical form.
  t.equal(hex(targetToCompact(compactToTarget(0x04001234))), hex(0x03123400), 'leading zero byte');
  t.equal(hex(targetToCompact(compactToTarget(0x22000001))), hex(0x20010000), 'oversized exponent');
  t.equal(hex(targetToCompact(compactToTarget(0x02123456))), hex(0x02123400));
  // target -> compact -> target is the identity whenever the target's
  // significant bits fit the mantissa, including the sign-bit exponent bump.
  for (const mant of [0x7fffffn, 0x800000n, 0xffff00n, 0x010000n, 0x000001n]) {
    for (let shift = 0n; shift <= 232n; shift += 8n) {
      const target = mant << shift;
      if (target >= 1n << 256n) continue;
      t.equal(compactToTarget(targetToCompact(target)), target, `target 0x${mant.toString(16)} << ${shift}`);
    }
  }
  // Otherwise it truncates towards zero (never makes a target easier).
  let seed = 7;
  for (let i = 0; i < 500; i++) {
    let x = 0n;
    for (let j = 0; j < 8; j++) x = (x << 32n) | BigInt((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0));
    x >>= BigInt(i % 256);
    const back = compactToTarget(targetToCompact(x));
    if (!(back <= x && x - back < (x >> 15n) + 1n)) t.fail(`truncation bound for ${x.toString(16)}`);
  }
  t.end();
});

t.test('work', (t) => {
  t.equal(workFromBits(0x1d00ffff), 4295032833n);
  t.equal(workFromTarget(compactToTarget(0x1d00ffff)), 0x100010001n);
  t.equal(workFromTarget(0n), 1n << 256n);
  t.equal(workFromTarget((1n << 256n) - 1n), 1n);
  t.equal(workFromBits(0x207fffff), 2n, 'regtest: 2^256 / (0x7fffff<<232 + 1)');
  t.throws(() => workFromTarget(-1n), PowError);
  t.end();
});

t.test('hash byte order helpers', (t) => {
  const display = '000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f';
  const raw = hexToHash(display);
  t.equal(raw[0], 0x6f, 'raw byte 0 is the last display byte');
  t.equal(raw[31], 0x00);
  t.equal(hashToHex(raw), display);
  t.equal(hashToBigInt(raw), BigInt('0x' + display));
  t.throws(() => hexToHash('00'));
  t.throws(() => hexToHash('zz' + display.slice(2)));
  const le = targetToBytesLE(0x0102n);
  t.equal(le[0], 0x02);
  t.equal(le[1], 0x01);
  t.equal(le.length, 32);
  t.throws(() => targetToBytesLE(1n << 256n), PowError);
  t.end();
});

t.test('hashMeetsTarget boundaries agree with bigint comparison', (t) => {
  const h = hexToHash('00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048');
  const v = hashToBigInt(h);
  t.ok(hashMeetsTarget(h, v), 'hash == target meets');
  t.ok(hashMeetsTarget(h, v + 1n));
  t.notOk(hashMeetsTarget(h, v - 1n), 'hash == target + 1 fails');
  t.notOk(hashMeetsTarget(h, 0n));
  t.notOk(hashMeetsTarget(h, -1n));
  t.ok(hashMeetsTarget(h, (1n << 256n) - 1n));
  // Random cross-check of the byte comparison against bigints, including
  // targets that share a long prefix with the hash.
  let seed = 12345;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 24;
  let mismatches = 0;
  for (let i = 0; i < 2000; i++) {
    const hash = new Uint8Array(32).map(rnd);
    const tb = hash.slice();
    const flip = rnd() & 31;
    tb[flip] = rnd();
    const target = hashToBigInt(tb);
    if (hashMeetsTarget(hash, target) !== hashToBigInt(hash) <= target) mismatches++;
    if (hashMeetsTargetBytes(hash, tb) !== hashToBigInt(hash) <= target) mismatches++;
  }
  t.equal(mismatches, 0, 'byte comparison matches bigint comparison on 2000 random pairs');
  t.end();
});

t.test('fixture headers', (t) => {
  const rows = readHeaderFixtures();
  for (const { name, header, display: displayHash } of rows) {
    t.equal(header.length, 80, `${name}: 80 bytes`);
    const hash = sha256d(header);
    t.equal(hashToHex(hash), displayHash, `${name}: sha256d display hash`);
    const bits = (header[72] | (header[73] << 8) | (header[74] << 16) | (header[75] << 24)) >>> 0;
    const target = compactToTarget(bits);
    t.ok(hashMeetsTarget(hash, target), `${name}: hash meets its bits ${hex(bits)}`);
    t.ok(hashToBigInt(hash) <= target, `${name}: bigint comparison agrees`);
  }
  t.end();
});
