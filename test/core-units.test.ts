// Unit tests of the core building blocks: canonical encoding, tagged hashes, Merkle proofs,
// record round trips, key files, and the genesis blocks of every network.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode, encodeFull, encodeInto, decode, decodeCanonical, decodeFull, NonCanonicalError, type Value } from '../core/encoding.ts';
import { EncodingError, UserError } from '../core/errors.ts';
import { bytesEqual, taggedHash, truncatedTaggedHash, toHex, toBase64url, sha256, sha256Parts, HASHER, NATIVE_HASH_FILE, hashAddon } from '../core/hash.ts';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { hash as opensslHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { makeBlock, encodeBlock, decodeBlock } from '../core/block.ts';
import { merkleRoot, merkleRootRecursive, inclusionProof, verifyInclusion, leafHash, nodeHash } from '../core/merkle.ts';
import { decodeBody, encodeBody, signRecord, makeRec, recordId, Kind, isValidName, checkRecordSignature, type Transfer, type RecordBody } from '../core/records.ts';
import { writeKeyFile, readKeyFile, loadOrCreateKey } from '../wallet/keys.ts';
import { PUBLIC_KEYS, SELF_CHECK, SIGNERS, SigCache, VERIFIER, generateSecretKey, hasVerifier, isLowS, isValidSecretKey, publicKeyOf, signTagged, verifyTagged } from '../core/sig.ts';
import { encodeAddress, decodeAddress, addressOf } from '../core/address.ts';
import { NETWORKS, NETWORK_NAMES } from '../consensus/params.ts';
import { genesisBlock } from '../consensus/genesis.ts';
import { findGenesisNonce } from '../tools/genesis.ts';
import { compactToTarget, hashMeetsTarget } from '../consensus/pow.ts';
import { newKey } from './helpers.ts';
import { tmpDir } from './util/tmp.ts';

t.test('canonical encoding', async (t) => {
  const v = [1, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER, 'text', new Uint8Array([1, 2, 3]), [[], ['x']]];
  const b = encode(v);
  t.same(decode(b), v, 'round trip');
  t.throws(() => encode([1.5]), EncodingError, 'floats refused');
  t.throws(() => encode([-1]), EncodingError, 'negative integers refused');
  t.throws(() => decode(Uint8Array.from([0x91, 0xcd, 0x00, 0x01])), NonCanonicalError, 'uint16 for a fixint');
  t.throws(() => decode(Uint8Array.from([0x91, 0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0])), NonCanonicalError, 'float64 holding an integer');
  t.throws(() => decode(Uint8Array.from([0x91, 0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])), EncodingError, 'float64 holding 1.5');
  t.throws(() => decode(Uint8Array.from([0x81, 0xa1, 0x61, 0x01])), EncodingError, 'maps');
  t.throws(() => decode(Uint8Array.from([0xc0])), EncodingError, 'nil');
  t.throws(() => decode(Uint8Array.from([0x92, 0x01])), EncodingError, 'truncated');
  t.throws(() => decode(Uint8Array.from([0x91, 0x01, 0x02])), EncodingError, 'trailing bytes');
  t.throws(() => decode(Uint8Array.from([0x91, 0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 1])), EncodingError, 'integer above 2^53');
});

/** A value written out with its types (byte strings in hex), to compare two decodings exactly. */
function shown(v: Value): string {
  if (v instanceof Uint8Array) return `b:${Buffer.from(v).toString('hex')}`;
  if (Array.isArray(v)) return `[${v.map(shown).join(',')}]`;
  return typeof v === 'number' ? `n:${v}` : `s:${JSON.stringify(v)}`;
}

t.test('the fast decoder reads what encode writes, and accepts no bytes the full decoder refuses', async (t) => {
  let seed = 7;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)];
  const INTS = [0, 1, 127, 128, 255, 256, 65535, 65536, 0xffffffff, 0x100000000, Number.MAX_SAFE_INTEGER];
  const LENGTHS = [0, 1, 15, 16, 31, 32, 255, 256, 300];
  const ascii = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(32 + rnd(95))).join('');
  const value = (depth: number, unicode: boolean): Value => {
    switch (rnd(depth >= 3 ? 4 : 5)) {
      case 0:
        return rnd(2) === 0 ? pick(INTS) : rnd(2 ** 31) * (rnd(3) === 0 ? 4096 : 1);
      case 1:
        return unicode && rnd(3) === 0 ? 'é'.repeat(rnd(40)) + ascii(rnd(40)) : ascii(rnd(2) === 0 ? pick(LENGTHS) : rnd(70));
      case 2:
        return Uint8Array.from({ length: rnd(2) === 0 ? pick(LENGTHS) : rnd(100) }, () => rnd(256));
      case 3:
        return rnd(8) === 0 ? 'x' : pick(INTS);
      default:
        return Array.from({ length: rnd(2) === 0 ? pick([0, 1, 15, 16, 17]) : rnd(6) }, () => value(depth + 1, unicode));
    }
  };
  let read = 0;
  let unicodeLeft = 0;
  let written = 0;
  let writtenInto = 0;
  let short = 0;
  const encodings: Uint8Array[] = [];
  for (let i = 0; i < 600; i++) {
    const unicode = i % 4 === 0;
    const v = value(0, unicode);
    const b = encode(v);
    if (Buffer.from(b).equals(encodeFull(v))) written++;
    // encodeInto: the same bytes at an offset, or -1 and nothing written where encode takes msgpackr's path
    const into = new Uint8Array(b.length + 5).fill(0xee);
    const end = encodeInto(v, into, 3);
    if (end === 3 + b.length ? Buffer.from(into.subarray(3, end)).equals(b) && into[2] === 0xee && into[end] === 0xee : end === -1 && into.every((x) => x === 0xee)) writtenInto++;
    if (encodeInto(v, new Uint8Array(b.length - 1 + 3), 3) === -1) short++;
    encodings.push(b);
    const fast = decodeCanonical(b);
    if (fast === undefined) {
      if (unicode) unicodeLeft++;
      continue;
    }
    if (shown(fast) === shown(v) && shown(fast) === shown(decodeFull(b))) read++;
  }
  t.equal(written, 600, 'encode writes every value in the bytes msgpackr writes for it');
  t.equal(writtenInto, 600, 'encodeInto writes the same bytes where it writes (not text beyond ASCII), and nothing around them');
  t.equal(short, 600, 'and writes nothing when they do not fit');
  t.equal(read + unicodeLeft, 600, 'every encoding without non-ASCII text read back exactly, as the full decoder reads it');
  t.ok(unicodeLeft > 0 && unicodeLeft < 150, `text beyond ASCII (${unicodeLeft} values) is left to the full decoder`);
  // long forms: 16- and 32-bit lengths
  for (const v of ['y'.repeat(65535), 'z'.repeat(65536), new Uint8Array(65535), new Uint8Array(65536), Array(65535).fill(3) as Value[], Array(65536).fill(3) as Value[], [Array(16).fill(1) as Value[]]]) {
    t.equal(shown(decodeCanonical(encode(v)) ?? 'refused'), shown(v), `read: ${shown(v).slice(0, 12)}... of ${encode(v).length} bytes`);
    t.ok(Buffer.from(encode(v)).equals(encodeFull(v)), `and written as msgpackr writes it`);
  }
  // every integer boundary, and a Buffer (a Uint8Array too)
  const edges = [0, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 0x1fffffffffffff, 2 ** 40 + 12345, Buffer.from('abc')];
  t.ok(Buffer.from(encode(edges)).equals(encodeFull(edges)), 'integers at every header boundary and a Buffer written as msgpackr writes them');
  for (const bad of [-1, 1.5, 2 ** 53, Number.NaN]) t.throws(() => encode(bad), EncodingError, `encode refuses ${bad}`);
  // damaged encodings: what the fast decoder reads, the full one reads the same
  let accepted = 0;
  let agreed = 0;
  let mutants = 0;
  for (const b of encodings) {
    for (let k = 0; k < 20; k++) {
      const m = Uint8Array.from(b);
      const kind = rnd(4);
      let x: Uint8Array = m;
      if (kind === 0 && m.length > 0) m[rnd(m.length)] = rnd(256);
      else if (kind === 1 && m.length > 0) m[rnd(m.length)] ^= 1 << rnd(8);
      else if (kind === 2) x = m.subarray(0, rnd(m.length + 1));
      else x = Uint8Array.from([...m.subarray(0, rnd(m.length + 1)), rnd(256), ...m.subarray(rnd(m.length + 1))]);
      mutants++;
      const fast = decodeCanonical(x);
      if (fast === undefined) continue;
      accepted++;
      try {
        if (shown(decodeFull(x)) === shown(fast)) agreed++;
      } catch {
        // refused by the full decoder: counted as a disagreement
      }
    }
  }
  t.equal(agreed, accepted, `of ${mutants} damaged encodings the fast decoder read ${accepted}, each as the full decoder does`);
  // forms encode never writes: refused here, and judged as before by the full decoder
  const notWritten: Array<[string, number[]]> = [
    ['uint8 for a fixint', [0xcc, 0x05]],
    ['uint16 for a uint8', [0xcd, 0x00, 0xff]],
    ['uint32 for a uint16', [0xce, 0x00, 0x00, 0xff, 0xff]],
    ['int64 for a uint32', [0xd3, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]],
    ['int64 above 2^53', [0xd3, 0, 0x20, 0, 0, 0, 0, 0, 0]],
    ['uint64', [0xcf, 0, 0, 0, 1, 0, 0, 0, 0]],
    ['bin16 for 16 bytes', [0xc5, 0x00, 0x10, ...new Uint8Array(16)]],
    ['str8 for 5 characters', [0xd9, 0x05, 0x61, 0x62, 0x63, 0x64, 0x65]],
    ['array16 for 3 items', [0xdc, 0x00, 0x03, 1, 2, 3]],
    ['float64', [0xcb, 0x40, 0x00, 0, 0, 0, 0, 0, 0]],
    ['nil', [0xc0]],
    ['a map', [0x81, 0xa1, 0x61, 0x01]],
    ['trailing bytes', [0x91, 0x01, 0x02]],
    ['truncated', [0x92, 0x01]],
    ['a truncated length', [0xc5, 0x01]],
    ['nesting past 8', [0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x01]],
  ];
  for (const [what, bytes] of notWritten) {
    const b = Uint8Array.from(bytes);
    t.equal(decodeCanonical(b), undefined, `fast decoder refuses ${what}`);
    let refused: unknown = null;
    try {
      decode(b);
    } catch (e) {
      refused = e;
    }
    t.ok(refused instanceof EncodingError, `and decode refuses it: ${what} (${(refused as Error | null)?.message})`);
  }
});

t.test("a decoded block's record ids are the ids of its records' bytes, short records and long", async (t) => {
  const k = newKey();
  const announce = (uris: number): RecordBody => ({ kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: Array.from({ length: uris }, (_, i) => `sip:${'n'.repeat(200)}${i}.test`), p2pAddrs: [], rewardAddress: k.address, seq: 1, fee: 0, sig: new Uint8Array(64) });
  const recs = [makeRec({ kind: Kind.Coinbase, height: 1, rewardAddress: new Uint8Array(20), amount: 1, extraNonce: new Uint8Array(4), note: 'x' }), makeRec(announce(1)), makeRec(announce(8))];
  t.ok(recs[2].bytes.length > 1024, `one record of ${recs[2].bytes.length} bytes (past the hasher's bound buffer)`);
  const block = decodeBlock(encodeBlock(makeBlock({ version: 1, prev: new Uint8Array(32), merkleRoot: new Uint8Array(32), time: 1, bits: 0x207fffff, nonce: 0 }, recs)), 1_000_000);
  t.same(block.records.map((r) => toHex(r.id)), recs.map((r) => toHex(recordId(r.bytes))), 'each id is recordId of its bytes');
  t.same(block.records.map((r) => r.id.length), [32, 32, 32], 'of 32 bytes each');
});

t.test('a decoded block encodes as the bytes it came from, until its parts change', async (t) => {
  const cb = (n: number) => makeRec({ kind: Kind.Coinbase, height: n, rewardAddress: new Uint8Array(20), amount: 1, extraNonce: new Uint8Array(4), note: 'x' });
  const made = makeBlock({ version: 1, prev: new Uint8Array(32), merkleRoot: new Uint8Array(32), time: 1, bits: 0x207fffff, nonce: 0 }, [cb(1), cb(2)]);
  const bytes = encodeBlock(made);
  const block = decodeBlock(bytes, 1_000_000);
  t.equal(encodeBlock(block), bytes, 'the very bytes, not encoded again');
  block.records[1] = cb(3);
  const changed = encodeBlock(block);
  t.not(changed, bytes, 'a record swapped: encoded afresh');
  t.same(decodeBlock(changed, 1_000_000).records.map((r) => r.body), [cb(1).body, cb(3).body], 'with the new record');
  block.records.push(cb(4));
  t.equal(decodeBlock(encodeBlock(block), 1_000_000).records.length, 3, 'a record added: encoded afresh');
});

t.test('toHex and toBase64url write what Buffer writes, at every length, from views at any offset', async (t) => {
  let same = 0;
  for (let n = 0; n <= 300; n++) {
    const b = randomBytes(n + 8).subarray(3, 3 + n);
    const want = Buffer.from(b);
    if (toHex(b) === want.toString('hex') && toBase64url(b) === want.toString('base64url') && toBase64url(b, 12) === want.subarray(0, 12).toString('base64url')) same++;
  }
  t.equal(same, 301, 'hex, base64url and base64url of the first 12 bytes, lengths 0 to 300 (past the scratch buffer)');
});

t.test('tagged hashes are domain separated', async (t) => {
  const m = new Uint8Array([1, 2, 3]);
  for (const data of [m, randomBytes(33), randomBytes(2000)]) t.same(truncatedTaggedHash('a', 20, data), taggedHash('a', data).subarray(0, 20), `truncated: the first 20 bytes of the tagged hash of ${data.length} bytes`);
  t.notSame(taggedHash('a', m), taggedHash('b', m));
  const tag = sha256(new TextEncoder().encode('a'));
  t.same(taggedHash('a', m), sha256(new Uint8Array([...tag, ...tag, ...m])), 'BIP-340 construction');
});

t.test('sha256Parts hashes its parts one after another, however long, call after call', async (t) => {
  const part = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 255);
  const cases = [
    [part(64, 1), part(32, 2), part(32, 3)], // a Merkle node: joined in the reused buffer
    [part(1000, 4), part(24, 5)], // exactly the reused buffer's size
    [part(1000, 6), part(25, 7)], // one byte more: joined in a new array
    [part(5000, 8)], // one part: hashed as it is
    [new Uint8Array(0), part(3, 9)],
  ];
  const results = cases.map((parts) => sha256Parts(...parts));
  cases.forEach((parts, i) => {
    const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts) {
      all.set(p, o);
      o += p.length;
    }
    t.same(results[i], nobleSha256(all), `case ${i}: noble's hash of the parts joined (checked after every call, so none overwrote another)`);
  });
});

t.test('validation hashes with the native addon where it is built, and it hashes as OpenSSL does', async (t) => {
  // tools/build-native.ts builds it wherever g++ is (npm ci runs it): on this project's machines
  if (process.env.DOTS_HASHER === 'node:crypto') t.equal(HASHER, 'node:crypto', 'node:crypto when asked for');
  else t.ok(existsSync(NATIVE_HASH_FILE) && (HASHER === 'sha-ni' || HASHER === 'portable'), `the addon is built and in use (${HASHER})`);
  const addon = hashAddon;
  if (addon === null) return;
  // every length up to five blocks (each padding case), then long inputs past the bound buffer
  const lengths = [...Array.from({ length: 321 }, (_, i) => i), 1023, 1024, 1025, 5000];
  let same = 0;
  for (const n of lengths) {
    const data = randomBytes(n);
    const want = opensslHash('sha256', data, 'buffer');
    if (Buffer.from(addon.digest(data, true)).equals(want) && Buffer.from(addon.digest(data)).equals(want) && Buffer.from(sha256(data)).equals(want)) same++;
  }
  t.equal(same, lengths.length, `the portable C, the CPU's fastest and sha256() agree with node:crypto at ${lengths.length} lengths`);
  // a record id and a Merkle root as another process with node:crypto makes them
  const data = randomBytes(200);
  const script = `import { taggedHash, HASHER, toHex } from './core/hash.ts'; import { merkleRoot } from './core/merkle.ts'; import { addressOf } from './core/address.ts'; const d = Buffer.from('${toHex(data)}', 'hex'); console.log(HASHER, toHex(taggedHash('DOTS/record-id', d)), toHex(merkleRoot([d.subarray(0, 32), d.subarray(32, 64), d.subarray(64, 96)])), toHex(addressOf(d.subarray(0, 33))));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: join(import.meta.dirname, '..'), env: { ...process.env, DOTS_HASHER: 'node:crypto' } }).toString().trim();
  t.equal(out, `node:crypto ${toHex(taggedHash('DOTS/record-id', data))} ${toHex(merkleRoot([data.subarray(0, 32), data.subarray(32, 64), data.subarray(64, 96)]))} ${toHex(addressOf(data.subarray(0, 33)))}`, 'the same record id, Merkle root and address from node:crypto');
});

t.test('Merkle tree: RFC 6962 shape and inclusion proofs for every size and index', async (t) => {
  const id = (i: number): Uint8Array => sha256(new Uint8Array([i]));
  t.same(merkleRoot([id(0)]), leafHash(id(0)));
  t.same(merkleRoot([id(0), id(1), id(2)]), nodeHash(nodeHash(leafHash(id(0)), leafHash(id(1))), leafHash(id(2))), 'split at the largest power of two');
  // Duplicating the last leaf changes the root (no CVE-2012-2459 mutation).
  t.notSame(merkleRoot([id(0), id(1), id(2)]), merkleRoot([id(0), id(1), id(2), id(2)]));
  let ok = 0;
  let bad = 0;
  for (let n = 1; n <= 33; n++) {
    const ids = Array.from({ length: n }, (_, i) => id(i));
    const root = merkleRoot(ids);
    for (let i = 0; i < n; i++) {
      const path = inclusionProof(ids, i);
      if (verifyInclusion(ids[i], i, n, path, root)) ok++;
      if (verifyInclusion(ids[i], (i + 1) % n, n, path, root) && n > 1) bad++;
      if (verifyInclusion(id(99), i, n, path, root)) bad++;
    }
  }
  t.equal(ok, (33 * 34) / 2, 'every proof verifies');
  t.equal(bad, 0, 'no proof verifies for a wrong leaf or index');
  // the level-by-level root against the recursive definition, ids of 32 bytes and of others
  let same = 0;
  for (let n = 1; n <= 70; n++) {
    const ids = Array.from({ length: n }, (_, i) => (i % 3 === 2 ? randomBytes(i) : id(i)));
    if (Buffer.from(merkleRoot(ids)).equals(merkleRootRecursive(ids))) same++;
  }
  t.equal(same, 70, 'the level-by-level root is the recursive one at every size to 70');
  t.same(merkleRoot([]), sha256(new Uint8Array(0)), 'no leaves: the hash of nothing');
});

t.test('records round trip and signatures bind kind and network', async (t) => {
  const k = newKey();
  const tx = signRecord<Transfer>('regtest', k.secret, { kind: Kind.Transfer, pubkey: k.pub, to: newKey().address, amount: 5, fee: 1, nonce: 0 });
  t.same(decodeBody(tx.bytes), tx.body);
  t.same(encodeBody(decodeBody(tx.bytes)), tx.bytes);
  t.doesNotThrow(() => checkRecordSignature('regtest', tx.body));
  t.throws(() => checkRecordSignature('mainnet', tx.body), { code: 'bad-signature' }, 'another network');
  const asOtherKind = { ...(tx.body as Transfer), amount: 6 } as RecordBody;
  t.throws(() => checkRecordSignature('regtest', asOtherKind), { code: 'bad-signature' }, 'altered field');
  const cb = makeRec({ kind: Kind.Coinbase, height: 1, rewardAddress: new Uint8Array(20), amount: 1, extraNonce: new Uint8Array(4), note: 'x' });
  t.same(decodeBody(cb.bytes), cb.body);
  t.throws(() => decodeBody(encode([9, 1, 2])), EncodingError, 'unknown kind');
  t.throws(() => decodeBody(encode([8, new Uint8Array(33)])), EncodingError, 'wrong field count');
  // A high-S twin of a valid signature is refused.
  const digestSig = signTagged(k.secret, 'T', new Uint8Array([1]));
  t.ok(verifyTagged(k.pub, 'T', new Uint8Array([1]), digestSig));
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const s = BigInt('0x' + toHex(digestSig.subarray(32)));
  const highS = Uint8Array.from(Buffer.from((n - s).toString(16).padStart(64, '0'), 'hex'));
  const twin = new Uint8Array([...digestSig.subarray(0, 32), ...highS]);
  t.notOk(verifyTagged(k.pub, 'T', new Uint8Array([1]), twin), 'high-S twin rejected');
  t.notOk(verifyTagged(new Uint8Array(33), 'T', new Uint8Array([1]), digestSig), 'invalid public key');
});

t.test('the signature cache remembers the latest ids exactly, and nothing it was not given', async (t) => {
  const cache = new SigCache(1000);
  const added: Uint8Array[] = [];
  let misses = 0;
  let strangers = 0;
  for (let i = 0; i < 5000; i++) {
    const id = randomBytes(32);
    cache.add(id);
    added.push(id);
    if (i % 50 === 49) {
      // the last 500 added are all there, whatever was dropped before them
      for (const old of added.slice(-500)) if (!cache.has(old)) misses++;
      if (cache.has(randomBytes(32))) strangers++;
    }
  }
  t.equal(misses, 0, 'every one of the last max/2 ids added is found, checked 100 times over 5,000 adds');
  t.equal(strangers, 0, 'no id it was not given');
  t.notOk(cache.has(added[0]), 'the oldest were let go (it is bounded)');
  // ids that agree in everything the table hashes, and differ after it
  const twins = Array.from({ length: 300 }, (_, i) => Uint8Array.from([...new Uint8Array(8).fill(7), ...randomBytes(23), i & 255]));
  const few = new SigCache(1000);
  for (const id of twins.slice(0, 150)) few.add(id);
  t.equal(twins.slice(0, 150).filter((id) => few.has(id)).length, 150, 'ids sharing their first 8 bytes are told apart: all 150 added found');
  t.equal(twins.slice(150).filter((id) => few.has(id)).length, 0, 'and none of the 150 not added');
  const long = randomBytes(33);
  few.add(long);
  t.notOk(few.has(long), 'only 32-byte ids are kept');
});

t.test('low-S is 0 < s <= n/2, at and around each edge', async (t) => {
  const half = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;
  const sigWithS = (s: bigint): Uint8Array => Uint8Array.from([...new Uint8Array(32).fill(9), ...Buffer.from(s.toString(16).padStart(64, '0'), 'hex')]);
  const edges = [0n, 1n, 255n, 256n, half - 256n, half - 1n, half, half + 1n, half + 256n, 2n * half, 2n ** 256n - 1n];
  for (const s of edges) t.equal(isLowS(sigWithS(s)), s !== 0n && s <= half, `s = ${s.toString(16)}`);
  let same = 0;
  for (let i = 0; i < 2000; i++) {
    const s = BigInt('0x' + randomBytes(32).toString('hex')) >> BigInt(i % 3 === 0 ? 0 : i % 256);
    if (isLowS(sigWithS(s)) === (s !== 0n && s <= half)) same++;
  }
  t.equal(same, 2000, 'the same verdict as the number itself for 2,000 values of every size');
});

t.test('both signature verifiers give the same verdicts, and the faster one is chosen where it loads', async (t) => {
  t.ok(hasVerifier('libsecp256k1'), 'libsecp256k1 loads on this machine (the secp256k1 package\'s prebuilt addon)');
  t.equal(VERIFIER, process.env.DOTS_VERIFIER === 'openssl' ? 'openssl' : 'libsecp256k1', 'and checks this process\'s signatures');
  const k = newKey();
  const other = newKey();
  const msg = new Uint8Array([1, 2, 3]);
  const sig = signTagged(k.secret, 'T', msg);
  const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const highS = Uint8Array.from(Buffer.from((n - BigInt('0x' + toHex(sig.subarray(32)))).toString(16).padStart(64, '0'), 'hex'));
  // x = 5 is not the x of any point on secp256k1: a key that parses by its prefix but is off the curve
  const offCurve = Uint8Array.from([2, ...new Uint8Array(31), 5]);
  const uncompressed = Uint8Array.from([4, ...new Uint8Array(64).fill(1)]);
  const cases: Array<[string, Uint8Array, string, Uint8Array, Uint8Array, boolean]> = [
    ['valid', k.pub, 'T', msg, sig, true],
    ['another tag (kind or network)', k.pub, 'U', msg, sig, false],
    ['another message', k.pub, 'T', msg.subarray(1), sig, false],
    ['another key', other.pub, 'T', msg, sig, false],
    ['the high-S twin', k.pub, 'T', msg, new Uint8Array([...sig.subarray(0, 32), ...highS]), false],
    ['r = 0', k.pub, 'T', msg, new Uint8Array([...new Uint8Array(32), ...sig.subarray(32)]), false],
    ['s = 0', k.pub, 'T', msg, new Uint8Array([...sig.subarray(0, 32), ...new Uint8Array(32)]), false],
    ['r = n (out of range)', k.pub, 'T', msg, new Uint8Array([...Buffer.from(n.toString(16), 'hex'), ...sig.subarray(32)]), false],
    ['a key off the curve', offCurve, 'T', msg, sig, false],
    ['an all-zero key', new Uint8Array(33), 'T', msg, sig, false],
    ['an uncompressed key', uncompressed, 'T', msg, sig, false],
    ['a short signature', k.pub, 'T', msg, sig.subarray(1), false],
  ];
  for (const v of ['libsecp256k1', 'openssl'] as const) {
    for (const [what, pub, tag, m, s, want] of cases) t.equal(verifyTagged(pub, tag, m, s, v), want, `${v}: ${what}`);
  }
  // many signatures of many keys, as a block carries them
  let agree = 0;
  for (let i = 0; i < 200; i++) {
    const kk = newKey();
    const mm = randomBytes(40 + i);
    const ss = signTagged(kk.secret, 'DOTS/regtest/transfer', mm);
    if (i % 3 === 0) ss[5] ^= 1;
    if (verifyTagged(kk.pub, 'DOTS/regtest/transfer', mm, ss, 'libsecp256k1') === verifyTagged(kk.pub, 'DOTS/regtest/transfer', mm, ss, 'openssl')) agree++;
  }
  t.equal(agree, 200, 'the same verdict on 200 signatures, a third of them damaged');
});

t.test('the addon\'s self-check vectors are what noble gives', async (t) => {
  const c = SELF_CHECK;
  const noble = SIGNERS.noble as NonNullable<typeof SIGNERS.noble>;
  t.same((PUBLIC_KEYS.noble as NonNullable<typeof PUBLIC_KEYS.noble>)(c.secretKey), c.pubkey, 'the public key of 07..07');
  t.same(noble(taggedHash(c.tag, c.message), c.secretKey), c.sig, 'its signature of the message');
  t.same(noble(taggedHash(c.tag, c.message.subarray(1)), c.secretKey), c.otherSig, 'and of the message without its first byte');
  t.ok(verifyTagged(c.pubkey, c.tag, c.message, c.sig, 'openssl'), 'OpenSSL accepts the first for the message');
  t.notOk(verifyTagged(c.pubkey, c.tag, c.message, c.otherSig, 'openssl'), 'and refuses the other for it');
});

t.test('libsecp256k1 signs the same bytes as noble, and is the signer where it loads', async (t) => {
  const native = SIGNERS.libsecp256k1;
  if (native === null) {
    t.equal(process.env.DOTS_VERIFIER, 'openssl', 'the addon is only absent when asked to be');
    return;
  }
  const noble = SIGNERS.noble as NonNullable<typeof SIGNERS.noble>;
  let same = 0;
  for (let i = 0; i < 200; i++) {
    const kk = newKey();
    const digest = randomBytes(32);
    if (bytesEqual(native(digest, kk.secret), noble(digest, kk.secret))) same++;
  }
  t.equal(same, 200, 'RFC 6979 and low-S: 200 signatures of 200 keys alike, byte for byte');
  const k = newKey();
  const sig = signTagged(k.secret, 'DOTS/regtest/receipt', new Uint8Array([9]));
  t.same(sig, noble(taggedHash('DOTS/regtest/receipt', new Uint8Array([9])), k.secret), 'signTagged gives those bytes');
  t.throws(() => native(randomBytes(32), new Uint8Array(32)), 'a zero secret key is refused, as noble refuses it');
  t.throws(() => noble(randomBytes(32), new Uint8Array(32)));
});

t.test('libsecp256k1 gives the public keys noble gives, refuses the keys noble refuses, and is what publicKeyOf uses where it loads', async (t) => {
  const native = PUBLIC_KEYS.libsecp256k1;
  if (native === null) {
    t.equal(process.env.DOTS_VERIFIER, 'openssl', 'the addon is only absent when asked to be');
    return;
  }
  const noble = PUBLIC_KEYS.noble as NonNullable<typeof PUBLIC_KEYS.noble>;
  let same = 0;
  for (let i = 0; i < 200; i++) {
    const sk = generateSecretKey();
    if (bytesEqual(native(sk), noble(sk)) && bytesEqual(publicKeyOf(sk), native(sk))) same++;
  }
  t.equal(same, 200, '200 keys alike, byte for byte');
  const order = Buffer.from('fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141', 'hex');
  const below = Buffer.from(order);
  below[31] -= 1;
  for (const [what, sk] of [['zero', new Uint8Array(32)], ['the curve order', order], ['above it', Buffer.alloc(32, 0xff)]] as const) {
    t.throws(() => native(sk), `${what}: refused by libsecp256k1`);
    t.throws(() => noble(sk), `${what}: refused by noble`);
    t.notOk(isValidSecretKey(sk), `${what}: not a valid secret key`);
  }
  t.same(native(below), noble(below), 'the order minus one: a key, the same for both');
  t.ok(isValidSecretKey(below), 'and a valid secret key');
});

t.test('names', async (t) => {
  for (const ok of ['sip:alice@dots.test', '+15551234567', 'example.org', 'sip:a.b-c_d@x']) t.ok(isValidName(ok), ok);
  for (const bad of ['SIP:Alice@x', 'sip:@x', '+0123', '+1234567890123456', 'sip:a@', '', 'has space']) t.notOk(isValidName(bad), bad);
});

t.test('addresses catch typos and other networks', async (t) => {
  const a = addressOf(newKey().pub);
  const s = encodeAddress('dots', a);
  t.same(decodeAddress('dots', s), a);
  const typo = s.slice(0, -3) + (s.at(-3) === 'q' ? 'p' : 'q') + s.slice(-2);
  t.throws(() => decodeAddress('dots', typo), UserError);
  t.throws(() => decodeAddress('tdots', s), /another network/);
});

t.test('key files: owner-only, encrypted, wrong passphrase refused', async (t) => {
  const dir = tmpDir(t);
  const secret = generateSecretKey();
  const f = join(dir, 'w.key');
  writeKeyFile(f, secret, 'correct horse');
  t.equal(statSync(f).mode & 0o777, 0o600, 'mode 0600');
  t.notMatch(readFileSync(f, 'utf8'), toHex(secret), 'secret not in clear');
  t.same(readKeyFile(f, 'correct horse'), secret);
  t.throws(() => readKeyFile(f, 'wrong'), /wrong passphrase/);
  t.throws(() => readKeyFile(f), /is encrypted/);
  const j = JSON.parse(readFileSync(f, 'utf8')) as { crypto: { ciphertext: string } };
  j.crypto.ciphertext = (j.crypto.ciphertext[0] === '0' ? '1' : '0') + j.crypto.ciphertext.slice(1);
  writeFileSync(f, JSON.stringify(j));
  t.throws(() => readKeyFile(f, 'correct horse'), /wrong passphrase|altered/, 'tampering detected');
  const nodeKey = join(dir, 'node.key');
  const first = loadOrCreateKey(nodeKey);
  t.ok(first.created);
  t.equal(statSync(nodeKey).mode & 0o777, 0o600);
  t.same(loadOrCreateKey(nodeKey).secret, first.secret, 'reloaded');
  t.same(publicKeyOf(first.secret).length, 33);
  // A key others may read or change is not used (as ssh refuses such a private key), encrypted or not.
  for (const [file, pass] of [[nodeKey, undefined], [f, 'correct horse']] as const) {
    for (const mode of [0o644, 0o640, 0o606, 0o660]) {
      chmodSync(file, mode);
      t.throws(() => readKeyFile(file, pass), { message: new RegExp(`can be read or changed by other users \\(mode 0${mode.toString(8)}\\): run chmod 600 `) }, `mode 0${mode.toString(8)} refused`);
    }
    chmodSync(file, 0o600);
  }
  chmodSync(nodeKey, 0o644);
  t.throws(() => loadOrCreateKey(nodeKey), /can be read or changed by other users/, 'a node will not start on a node key others can read');
  chmodSync(nodeKey, 0o600);
  // A new key file takes no short passphrase.
  for (const short of ['', 'x', '1234567', 'äöüäöüä']) t.throws(() => writeKeyFile(join(dir, 'short.key'), secret, short), /at least 8 characters/, `"${short}" refused`);
  writeKeyFile(join(dir, 'ok.key'), secret, '12345678');
  t.same(readKeyFile(join(dir, 'ok.key'), '12345678'), secret, 'eight characters are enough');
});

t.test('genesis blocks are what the build script finds', async (t) => {
  for (const name of NETWORK_NAMES) {
    const p = NETWORKS[name];
    const g = genesisBlock(p);
    t.ok(hashMeetsTarget(g.hash, compactToTarget(p.powLimitBits)), `${name}: genesis meets its limit`);
    if (name !== 'mainnet') t.equal(findGenesisNonce(name), p.genesis.nonce, `${name}: first nonce found by the script`);
  }
  const hashes = new Set(NETWORK_NAMES.map((n) => toHex(genesisBlock(NETWORKS[n]).hash)));
  t.equal(hashes.size, NETWORK_NAMES.length, 'each network has its own genesis');
});
