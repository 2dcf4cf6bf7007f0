// What the explorer checks by itself rather than trusting the node: a record's id, its Merkle
// inclusion proof (RFC 9162 section 2.1.3.2, leaves 0x00 and nodes 0x01 as in RFC 6962), that the
// block header commits to the root, that the header hashes to the block hash and meets its
// target. The same rules as core/merkle.ts, core/records.ts and consensus/pow.ts, written again
// here so nothing the node says is taken on faith.
//
// SHA-256 comes from WebCrypto where the page is a secure context (localhost, https). A page
// opened over plain http on a LAN address (a phone on the same Wi-Fi) has no crypto.subtle, so a
// small synchronous SHA-256 backs it up; a test checks both against node:crypto.

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
  0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
  0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** SHA-256 in plain JavaScript (FIPS 180-4), for pages without WebCrypto. */
export function sha256Sync(data) {
  const bitLen = data.length * 8;
  const padded = new Uint8Array(((data.length + 9 + 63) >> 6) << 6);
  padded.set(data);
  padded[data.length] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor(bitLen / 0x100000000));
  dv.setUint32(padded.length - 4, bitLen >>> 0);
  const H = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const W = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = dv.getUint32(off + i * 4);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(W[i - 15], 7) ^ rotr(W[i - 15], 18) ^ (W[i - 15] >>> 3);
      const s1 = rotr(W[i - 2], 17) ^ rotr(W[i - 2], 19) ^ (W[i - 2] >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) >>> 0;
    }
    let [a, b, c, d, e, f, g, h] = H;
    for (let i = 0; i < 64; i++) {
      const t1 = (h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + W[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) >>> 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) >>> 0;
    }
    H[0] += a;
    H[1] += b;
    H[2] += c;
    H[3] += d;
    H[4] += e;
    H[5] += f;
    H[6] += g;
    H[7] += h;
  }
  const out = new Uint8Array(32);
  const odv = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) odv.setUint32(i * 4, H[i]);
  return out;
}

const subtle = globalThis.crypto?.subtle;

/** Which SHA-256 this page uses: "webcrypto" or "javascript". */
export const sha256Source = subtle !== undefined ? 'webcrypto' : 'javascript';

export async function sha256(data) {
  if (subtle === undefined) return sha256Sync(data);
  return new Uint8Array(await subtle.digest('SHA-256', data));
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function hexToBytes(hex) {
  if (typeof hex !== 'string' || !/^(?:[0-9a-f]{2})*$/.test(hex)) throw new TypeError('not lower-case hex of whole bytes');
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function bytesEqual(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function leafHash(id) {
  return sha256(concat(Uint8Array.of(0), id));
}

export function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

/** RFC 9162 section 2.1.3.2: does `path` lead from leaf `index` of a tree of `size` to `root`? */
export async function verifyInclusion(id, index, size, path, root) {
  if (!Number.isInteger(index) || !Number.isInteger(size) || index < 0 || index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = await leafHash(id);
  for (const p of path) {
    if (sn === 0) return false;
    if ((fn & 1) === 1 || fn === sn) {
      r = await nodeHash(p, r);
      if ((fn & 1) === 0) {
        while ((fn & 1) === 0 && fn !== 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  return sn === 0 && bytesEqual(r, root);
}

const utf8 = new TextEncoder();

/** BIP-340 style tagged hash: sha256(sha256(tag) || sha256(tag) || data). */
export async function taggedHash(tag, data) {
  const t = await sha256(utf8.encode(tag));
  return sha256(concat(t, t, data));
}

export function recordId(bytes) {
  return taggedHash('DOTS/record-id', bytes);
}

/** The 20-byte address of a compressed public key. */
export async function addressOf(pubkey) {
  return (await taggedHash('DOTS/address', pubkey)).subarray(0, 20);
}

/** Block hash as shown everywhere: double SHA-256 of the 80-byte header, byte-reversed. */
export async function blockHashHex(header) {
  const h = await sha256(await sha256(header));
  return bytesToHex(h.reverse());
}

/** The target a compact `bits` value encodes (as consensus/pow.ts decodes it). */
export function targetFromBits(bits) {
  const exp = bits >>> 24;
  const mant = BigInt(bits & 0x007fffff);
  // A set sign bit with a non-zero mantissa is a negative target: nothing meets it.
  if ((bits & 0x00800000) !== 0 && mant !== 0n) return -1n;
  return exp <= 3 ? mant >> BigInt(8 * (3 - exp)) : mant << BigInt(8 * (exp - 3));
}

/** The 256-bit number a displayed (big-endian) hash hex stands for. */
export function hashNumber(hex) {
  return BigInt('0x' + hex);
}

/**
 * Checks a confirmed record as GET /api/records/{id} returns it, step by step. Each step says
 * what was checked and whether it held; `ok` is true only when all hold.
 */
export async function verifyRecord(r) {
  const steps = [];
  const step = (name, ok, detail) => steps.push({ name, ok, detail });
  try {
    const bytes = hexToBytes(r.bytes);
    const id = hexToBytes(r.id);
    const computedId = await recordId(bytes);
    step('record id', bytesEqual(computedId, id), 'the tagged SHA-256 of the record bytes is its id');
    const root = hexToBytes(r.proof.merkleRoot);
    const path = r.proof.path.map(hexToBytes);
    const included = await verifyInclusion(id, r.proof.leafIndex, r.proof.treeSize, path, root);
    step('inclusion proof', included, `leaf ${r.proof.leafIndex} of ${r.proof.treeSize}, ${path.length} sibling hash${path.length === 1 ? '' : 'es'} lead to the Merkle root`);
    const header = hexToBytes(r.header);
    const headerOk = header.length === 80;
    step('header commits to the root', headerOk && bytesEqual(header.subarray(36, 68), root), 'bytes 36..68 of the 80-byte header are that Merkle root');
    const hash = headerOk ? await blockHashHex(header) : '';
    step('header is the block', hash === r.block, 'double SHA-256 of the header, byte-reversed, is the block hash');
    const bits = headerOk ? new DataView(header.buffer, header.byteOffset).getUint32(72, true) : 0;
    const target = targetFromBits(bits);
    step('proof of work', headerOk && target >= 0n && hash !== '' && hashNumber(hash) <= target, `the block hash is at most the target of bits 0x${bits.toString(16).padStart(8, '0')}`);
  } catch (e) {
    step('well-formed proof', false, String(e && e.message ? e.message : e));
  }
  return { ok: steps.length > 0 && steps.every((s) => s.ok), steps };
}

// bech32m (BIP-350) encoding of addresses, so the page can link every key and address it shows.
const CHARSET = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l';
const BECH32M = 0x2bc830a3;

function polymod(values) {
  const GEN = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
  let chk = 1;
  for (const v of values) {
    const top = chk >>> 25;
    chk = ((chk & 0x1ffffff) << 5) ^ v;
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) chk ^= GEN[i];
  }
  return chk >>> 0;
}

export function encodeAddress(hrp, bytes) {
  const words = [];
  let acc = 0;
  let bits = 0;
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      words.push((acc >>> bits) & 31);
    }
  }
  if (bits > 0) words.push((acc << (5 - bits)) & 31);
  const expand = [...hrp].map((c) => c.charCodeAt(0) >> 5).concat([0], [...hrp].map((c) => c.charCodeAt(0) & 31));
  const mod = polymod(expand.concat(words, [0, 0, 0, 0, 0, 0])) ^ BECH32M;
  const checksum = [0, 1, 2, 3, 4, 5].map((i) => (mod >>> (5 * (5 - i))) & 31);
  return hrp + '1' + words.concat(checksum).map((w) => CHARSET[w]).join('');
}
