// Hashing primitives shared by every layer: SHA-256, double SHA-256 and BIP-340 style tagged hashes.
import { sha256 } from '@noble/hashes/sha2.js';
import { hash as nodeHash } from 'node:crypto';

export { sha256 };

/**
 * SHA-256 of the parts one after another, through OpenSSL (node:crypto's one-shot hash): the
 * record ids, tagged digests and Merkle nodes of block validation, about twice as fast as the JS
 * hasher on these short inputs.
 */
export function sha256Parts(...parts: Uint8Array[]): Uint8Array {
  const b = nodeHash('sha256', parts.length === 1 ? parts[0] : joined(parts), 'buffer');
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * The parts one after another, in a buffer reused from call to call when they fit (the hash
 * reads it at once, and nothing else runs meanwhile): a Merkle node or a tagged digest is a
 * hash of a 64-byte tag prefix and a few short parts, and a new array for each was a tenth of
 * connecting a block's records.
 */
function joined(parts: Uint8Array[]): Uint8Array {
  const n = totalLength(parts);
  return n > SCRATCH.length ? writeParts(parts, new Uint8Array(n)) : writeParts(parts, SCRATCH.subarray(0, n));
}
const SCRATCH = new Uint8Array(1024);

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

export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
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
