// Unit tests of the core building blocks: canonical encoding, tagged hashes, Merkle proofs,
// record round trips, key files, and the genesis blocks of every network.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { chmodSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encode, decode, NonCanonicalError } from '../core/encoding.ts';
import { EncodingError, UserError } from '../core/errors.ts';
import { bytesEqual, taggedHash, toHex, sha256, sha256Parts, HASHER, NATIVE_HASH_FILE, hashAddon } from '../core/hash.ts';
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { hash as opensslHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { merkleRoot, inclusionProof, verifyInclusion, leafHash, nodeHash } from '../core/merkle.ts';
import { decodeBody, encodeBody, signRecord, makeRec, Kind, isValidName, checkRecordSignature, type Transfer, type RecordBody } from '../core/records.ts';
import { writeKeyFile, readKeyFile, loadOrCreateKey } from '../wallet/keys.ts';
import { SELF_CHECK, SIGNERS, VERIFIER, generateSecretKey, hasVerifier, publicKeyOf, signTagged, verifyTagged } from '../core/sig.ts';
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

t.test('tagged hashes are domain separated', async (t) => {
  const m = new Uint8Array([1, 2, 3]);
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
  const script = `import { taggedHash, HASHER, toHex } from './core/hash.ts'; import { merkleRoot } from './core/merkle.ts'; const d = Buffer.from('${toHex(data)}', 'hex'); console.log(HASHER, toHex(taggedHash('DOTS/record-id', d)), toHex(merkleRoot([d.subarray(0, 32), d.subarray(32, 64), d.subarray(64, 96)])));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: join(import.meta.dirname, '..'), env: { ...process.env, DOTS_HASHER: 'node:crypto' } }).toString().trim();
  t.equal(out, `node:crypto ${toHex(taggedHash('DOTS/record-id', data))} ${toHex(merkleRoot([data.subarray(0, 32), data.subarray(32, 64), data.subarray(64, 96)]))}`, 'the same record id and Merkle root from node:crypto');
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
  t.same(publicKeyOf(c.secretKey), c.pubkey, 'the public key of 07..07');
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
