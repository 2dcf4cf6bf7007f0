// Hashing primitives shared by every layer: SHA-256, double SHA-256 and BIP-340 style tagged hashes.
import { hash as nodeHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** core/native/sha256.cc, built at install by tools/build-native.ts */
export const NATIVE_HASH_FILE = fileURLToPath(new URL('./native/sha256.node', import.meta.url));

/** The addon's API (core/native/sha256.cc). */
interface HashAddon {
  /** a function that hashes input's first `len` bytes into output's first 32 */
  bind(input: Uint8Array, output: Uint8Array): (len: number) => void;
  implementation(): 'sha-ni' | 'portable';
  digest(data: Uint8Array, portable?: boolean): Uint8Array;
}

/** What SHA-256 runs on: the addon with the SHA extensions, the addon's portable C, or OpenSSL through node:crypto. */
export type HasherName = 'sha-ni' | 'portable' | 'node:crypto';

/**
 * The parts of a hash are written here, and the addon reads them from here (bound once, so a call
 * passes only their length): a Merkle node or a tagged digest is a hash of a 64-byte tag prefix and
 * a few short parts, and a new array for each was a tenth of connecting a block's records.
 */
const SCRATCH = new Uint8Array(1024);
/** where the addon writes each digest (an ArrayBuffer of its own: its bytes never move) */
const DIGEST = new Uint8Array(new ArrayBuffer(32));

/** Inputs the addon must hash as OpenSSL does before it is trusted: every padding case of one and two blocks. */
const CHECK_LENGTHS = [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 230, SCRATCH.length];

/**
 * The addon, bound to SCRATCH and DIGEST, when it loads and hashes CHECK_LENGTHS' inputs exactly
 * as node:crypto does (a broken or foreign binary must not decide a record's id); else null, and
 * node:crypto hashes. DOTS_HASHER=node:crypto asks for node:crypto (to compare them).
 */
function loadAddon(): { addon: HashAddon; hash: (len: number) => void; name: HasherName } | null {
  if (process.env.DOTS_HASHER === 'node:crypto') return null;
  try {
    const addon = createRequire(import.meta.url)(NATIVE_HASH_FILE) as HashAddon;
    const hash = addon.bind(SCRATCH, DIGEST);
    for (const n of CHECK_LENGTHS) {
      for (let i = 0; i < n; i++) SCRATCH[i] = (i * 7 + n) & 0xff;
      hash(n);
      if (!bytesEqual(DIGEST, nodeHash('sha256', SCRATCH.subarray(0, n), 'buffer'))) return null;
    }
    return { addon, hash, name: addon.implementation() };
  } catch {
    return null;
  }
}

const NATIVE = loadAddon();

/** What this process hashes with (in the node's start-up log line and `dots bench chain`). */
export const HASHER: HasherName = NATIVE?.name ?? 'node:crypto';

/** The addon, for tests that compare its two implementations with node:crypto; null without it. */
export const hashAddon: Pick<HashAddon, 'digest'> | null = NATIVE?.addon ?? null;

/**
 * SHA-256 of the parts one after another: the record ids, tagged digests and Merkle nodes of block
 * validation. Through the addon when it loaded and they fit SCRATCH (100-250 ns a hash here);
 * else node:crypto's one-shot hash (about 1.4 us a call, twice as fast as the JS hasher on
 * these short inputs).
 */
export function sha256Parts(...parts: Uint8Array[]): Uint8Array {
  const n = totalLength(parts);
  if (NATIVE !== null && n <= SCRATCH.length) {
    writeParts(parts, SCRATCH);
    NATIVE.hash(n);
    return DIGEST.slice();
  }
  const b = nodeHash('sha256', parts.length === 1 ? parts[0] : writeParts(parts, n > SCRATCH.length ? new Uint8Array(n) : SCRATCH.subarray(0, n)), 'buffer');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * SHA-256 of one byte `prefix` followed by src[from, from + len), written into out at `at`: a
 * Merkle leaf or node computed where its level is kept, with no array made per hash. src and out
 * may be the same array (the input is read before the digest is written).
 */
export function sha256PrefixedInto(prefix: number, src: Uint8Array, from: number, len: number, out: Uint8Array, at: number): void {
  if (NATIVE !== null && len < SCRATCH.length) {
    SCRATCH[0] = prefix;
    for (let i = 0; i < len; i++) SCRATCH[1 + i] = src[from + i];
    NATIVE.hash(len + 1);
    out.set(DIGEST, at);
    return;
  }
  out.set(sha256Parts(Uint8Array.of(prefix), src.subarray(from, from + len)), at);
}

/** SHA-256 of one input (sha256Parts of it). */
export function sha256(data: Uint8Array): Uint8Array {
  return sha256Parts(data);
}

export function sha256d(data: Uint8Array): Uint8Array {
  return sha256(sha256(data));
}

const tagPrefixes = new Map<string, Uint8Array>();

/** sha256(tag) || sha256(tag): precomputed per tag, so hashes of different kinds can never collide. */
export function tagPrefix(tag: string): Uint8Array {
  let p = tagPrefixes.get(tag);
  if (p === undefined) {
    const t = sha256(new TextEncoder().encode(tag));
    p = new Uint8Array(64);
    p.set(t, 0);
    p.set(t, 32);
    tagPrefixes.set(tag, p);
  }
  return p;
}

/** Tagged hash: sha256(sha256(tag) || sha256(tag) || data). */
export function taggedHash(tag: string, ...parts: Uint8Array[]): Uint8Array {
  return sha256Parts(tagPrefix(tag), ...parts);
}

/**
 * taggedHash(tag, data) left in DIGEST by the addon, for the callers below to take without an
 * array made for the digest; false, with nothing hashed, without the addon or past SCRATCH.
 */
function taggedToDigest(tag: string, data: Uint8Array): boolean {
  const prefix = tagPrefix(tag);
  const n = prefix.length + data.length;
  if (NATIVE === null || n > SCRATCH.length) return false;
  SCRATCH.set(prefix, 0);
  SCRATCH.set(data, prefix.length);
  NATIVE.hash(n);
  return true;
}

/** taggedHash(tag, data) written into out at `at` (32 bytes): a block's record ids in one array. */
export function taggedHashInto(tag: string, data: Uint8Array, out: Uint8Array, at: number): void {
  out.set(taggedToDigest(tag, data) ? DIGEST : taggedHash(tag, data), at);
}

/** The first `bytes` bytes of taggedHash(tag, data), in an array of their own (an address: one array, not a digest and a view of it). */
export function truncatedTaggedHash(tag: string, bytes: number, data: Uint8Array): Uint8Array {
  return taggedToDigest(tag, data) ? DIGEST.slice(0, bytes) : taggedHash(tag, data).slice(0, bytes);
}

/**
 * Short inputs are copied here to be written out as text: a Buffer made over each one (to call
 * its toString) was an object per record id, key and address shown.
 */
const TEXT_SCRATCH = Buffer.alloc(256);

/** b's first n bytes as text in `encoding`: through TEXT_SCRATCH when they fit, else through a Buffer over them. */
function bytesToText(b: Uint8Array, encoding: 'hex' | 'base64url', n: number): string {
  if (n > TEXT_SCRATCH.length) return Buffer.from(b.buffer, b.byteOffset, n).toString(encoding);
  for (let i = 0; i < n; i++) TEXT_SCRATCH[i] = b[i];
  return TEXT_SCRATCH.toString(encoding, 0, n);
}

export function toHex(b: Uint8Array): string {
  return bytesToText(b, 'hex', b.length);
}

/** The first n bytes of b (all by default) in RFC 4648 base64url without padding: two thirds the length of hex (the state's and record index's keys). */
export function toBase64url(b: Uint8Array, n = b.length): string {
  return bytesToText(b, 'base64url', Math.min(n, b.length));
}

const HEX_RE = /^(?:[0-9a-f]{2})*$/;

export function fromHex(s: string): Uint8Array {
  if (!HEX_RE.test(s)) throw new TypeError('not lower-case hex of whole bytes');
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export function isHex(s: string, bytes: number): boolean {
  return s.length === bytes * 2 && HEX_RE.test(s);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  return writeParts(parts, new Uint8Array(totalLength(parts)));
}

function totalLength(parts: readonly Uint8Array[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** The parts one after another into `out` (exactly their length); `out`. */
function writeParts(parts: readonly Uint8Array[], out: Uint8Array): Uint8Array {
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Display form of a block hash: SHA-256 output is stored least significant byte first, and
 * Bitcoin (and we) print 256-bit numbers most significant byte first, hence the reversal.
 */
export function hashToHex(hash: Uint8Array): string {
  if (hash.length !== 32) throw new TypeError(`hash must be 32 bytes, got ${hash.length}`);
  return toHex(Uint8Array.from(hash).reverse());
}

export function hexToHash(hex: string): Uint8Array {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new TypeError('hash hex must be exactly 64 hex characters');
  return Uint8Array.from(Buffer.from(hex, 'hex')).reverse();
}
