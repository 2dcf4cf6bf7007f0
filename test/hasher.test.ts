import t from 'tap';
import { readHeaderFixtures, withNonce } from './helpers.ts';
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { HeaderHasher } from '../mining/hasher.ts';
import { WASM_FILE, WasmHeaderHasher, type HeaderScanner } from '../mining/wasm-hasher.ts';
import { buildSha256dWasm, DEFAULT_BUILD } from '../mining/wasm-gen.ts';
import { NativeHeaderHasher, nativeHasherStatus } from '../mining/native-hasher.ts';
import { headerScannerKind } from '../mining/wasm-hasher.ts';
import { arch } from 'node:os';
import { compactToTarget, hashMeetsTarget, hashToHex, sha256d, targetToBytesLE } from '../consensus/pow.ts';

const GENESIS_NONCE = 2083236893;


function nonceOf(header: Uint8Array): number {
  return new DataView(header.buffer, header.byteOffset, 80).getUint32(76, true);
}

const fixtures = readHeaderFixtures();
const genesis = fixtures.find((f) => f.name === 'bitcoin-genesis');
if (!genesis) throw new Error('bitcoin-genesis row missing from headers.tsv');

/** First nonce of [start, start + count) (mod 2^32) meeting `target`, by @noble/hashes. */
function reference(header: Uint8Array, start: number, count: number, target: bigint): number {
  for (let i = 0; i < count; i++) {
    const n = (start + i) >>> 0;
    if (hashMeetsTarget(sha256d(withNonce(header, n)), target)) return n;
  }
  return -1;
}

const HASHERS: Array<{ name: string; make: (h: Uint8Array) => HeaderScanner }> = [
  { name: 'JavaScript', make: (h) => new HeaderHasher(h) },
  { name: 'wasm SIMD', make: (h) => new WasmHeaderHasher(h) },
  // The generator's other shapes must compute the same thing (the defaults were picked by speed).
  { name: 'wasm SIMD, one loop, no spills', make: (h) => new WasmHeaderHasher(h, buildSha256dWasm({ stages: 1, spill: Infinity })) },
  { name: 'wasm SIMD, 3 stages, batch 7, spill 30', make: (h) => new WasmHeaderHasher(h, buildSha256dWasm({ stages: 3, batch: 7, spill: 30 })) },
  // the SHA-NI addon, where it was built and the CPU has the extensions (checked below)
  ...(nativeHasherStatus().available ? [{ name: 'native SHA-NI', make: (h: Uint8Array) => new NativeHeaderHasher(h) }] : []),
];

/** Whether this machine should have the native hasher: x86-64 with SHA-NI, g++ and Node's headers. */
function nativeExpected(): boolean {
  let flags = '';
  try {
    flags = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return false;
  }
  const gpp = (() => {
    try {
      execFileSync('g++', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  return arch() === 'x64' && /\bsha_ni\b/.test(flags) && gpp;
}

t.test('the native SHA-NI hasher is built and chosen where the machine can run it', (t) => {
  const status = nativeHasherStatus();
  if (nativeExpected()) {
    t.same(status, { available: true }, 'x86-64 with SHA-NI and g++: the install built it (npm run build:native)');
    t.equal(headerScannerKind(), 'native SHA-NI', 'and the miner picks it');
  } else {
    t.equal(status.available, false, 'no SHA-NI or no g++ here: not available');
    t.match(headerScannerKind(), /^(WebAssembly SIMD|JavaScript) \(native SHA-NI: .+\)$/, 'the miner says which hasher it uses and why not the native one');
  }
  t.end();
});

for (const { name, make } of HASHERS) {
  t.test(`${name}: hashNonce equals the listed hash and sha256d on fixture headers`, (t) => {
    const out = new Uint8Array(32);
    for (const f of fixtures) {
      const hh = make(f.header);
      hh.hashNonce(nonceOf(f.header), out);
      t.equal(hashToHex(out), f.display, `${f.name}: listed hash`);
      t.same(out, sha256d(f.header), `${f.name}: equals sha256d`);
    }
    t.end();
  });

  t.test(`${name}: hashNonce equals @noble/hashes sha256d on 200 random headers and nonces`, (t) => {
    const out = new Uint8Array(32);
    const hh = make(new Uint8Array(80));
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
    t.throws(() => make(new Uint8Array(79)), RangeError);
    t.end();
  });

  t.test(`${name}: scan finds the genesis nonce`, (t) => {
    const target = targetToBytesLE(compactToTarget(0x1d00ffff));
    const hh = make(genesis.header);
    t.equal(hh.scan(GENESIS_NONCE - 5000, 10000, target), GENESIS_NONCE, 'exactly the genesis nonce');
    t.equal(hh.scan(GENESIS_NONCE, 1, target), GENESIS_NONCE, 'single-nonce range');
    t.equal(hh.scan(GENESIS_NONCE - 5000, 5000, target), -1, 'range just before it has no solution');
    t.equal(hh.scan(GENESIS_NONCE + 1, 5000, target), -1, 'range just after it has no solution');
    t.equal(hh.scan(GENESIS_NONCE, 0, target), -1, 'empty range');
    // Ranges ending in the middle of a 4-nonce group: the lanes past the end must not count.
    for (let k = 1; k <= 4; k++) t.equal(hh.scan(GENESIS_NONCE - k, k, target), -1, `range of ${k} ending just before it`);
    for (let k = 1; k <= 8; k++) t.equal(hh.scan(GENESIS_NONCE - k, k + 1, target), GENESIS_NONCE, `range of ${k + 1} ending on it`);
    t.throws(() => hh.scan(0, 10, new Uint8Array(31)), RangeError);
    t.throws(() => hh.scan(0, -1, target), RangeError);
    t.end();
  });

  t.test(`${name}: scan honours the full 256-bit comparison and wraps nonces`, (t) => {
    const hh = make(genesis.header);
    const out = new Uint8Array(32);
    hh.hashNonce(GENESIS_NONCE, out);
    const exact = BigInt('0x' + hashToHex(out));
    // Target equal to the hash: top words tie, full compare must accept.
    t.equal(hh.scan(GENESIS_NONCE - 10, 20, targetToBytesLE(exact)), GENESIS_NONCE, 'target == hash accepted');
    // One below: same top word, must be rejected by the full compare.
    t.equal(hh.scan(GENESIS_NONCE - 10, 20, targetToBytesLE(exact - 1n)), -1, 'target == hash - 1 rejected');

    // Easy targets accept a fraction of all nonces; the first hit must be the first nonce that
    // really meets it (several lanes of one group may pass), across the wrap.
    for (const easy of [(1n << 255n) - 1n, (1n << 252n) - 1n, 0x0000_ffff_ffff_ffffn << 192n]) {
      const found = hh.scan(0xfffffff0, 96, targetToBytesLE(easy));
      const expected = reference(genesis.header, 0xfffffff0, 96, easy);
      t.equal(found, expected, `first nonce from 0xfffffff0 under target 0x${easy.toString(16).slice(0, 8)}...`);
    }

    // Wrap: find a header variant whose best hash among nonces 0..31 beats every hash among
    // 0xffffffe0..0xffffffff, then scan across the boundary with that best hash as the target;
    // only the post-wrap nonce may be returned.
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
      const w = make(header);
      t.equal(w.scan(0xffffffe0, 64, targetToBytesLE(bestHash)), best, `wrap: finds post-wrap nonce ${best}`);
      checked = true;
    }
    t.ok(checked, 'found a header variant to test the wrap with');
    t.end();
  });

  t.test(`${name}: scan agrees with @noble/hashes on random headers under easy targets`, (t) => {
    const hh = make(new Uint8Array(80));
    for (let i = 0; i < 20; i++) {
      const header = new Uint8Array(randomBytes(80));
      // About one nonce in 64 meets it: a few hits per range, at random lanes.
      const target = (1n << 250n) + BigInt('0x' + randomBytes(31).toString('hex'));
      const start = randomBytes(4).readUInt32LE(0);
      const count = 1 + (randomBytes(2).readUInt16LE(0) % 300);
      hh.setHeader(header);
      t.equal(hh.scan(start, count, targetToBytesLE(target)), reference(header, start, count, target), `header ${i}, ${count} nonces from ${start}`);
    }
    t.end();
  });
}

t.test('the installed wasm module is the generator output (reproducible build)', (t) => {
  const fresh = buildSha256dWasm();
  t.same(buildSha256dWasm(), fresh, 'two builds are byte-identical');
  t.same(buildSha256dWasm(DEFAULT_BUILD), fresh, 'the default build is DEFAULT_BUILD');
  let installed: Buffer | undefined;
  try {
    installed = readFileSync(WASM_FILE);
  } catch {
    installed = undefined;
  }
  t.ok(installed !== undefined, `${WASM_FILE} exists (written by the install; npm run build:wasm)`);
  if (installed !== undefined) t.ok(Buffer.from(fresh).equals(installed), 'installed file equals a fresh build (else: npm run build:wasm)');
  t.throws(() => buildSha256dWasm({ stages: 0 }), RangeError);
  t.throws(() => buildSha256dWasm({ batch: 0 }), RangeError);
  t.end();
});

t.test('mining/hasher.ts is what its generator writes (tools/gen-hasher)', (t) => {
  const dir = fileURLToPath(new URL('../tools/gen-hasher/', import.meta.url));
  const kernels = execFileSync(process.execPath, ['emit2.mjs'], { cwd: dir, maxBuffer: 64 * 1024 * 1024 });
  const generated = Buffer.concat([readFileSync(dir + 'head.ts'), kernels]);
  t.ok(generated.equals(readFileSync(new URL('../mining/hasher.ts', import.meta.url))), 'regenerate it: cd tools/gen-hasher && cat head.ts <(node emit2.mjs) > ../../mining/hasher.ts');
  t.end();
});
