// Proof-of-work primitives: compact difficulty encoding, chain work, and the
// hash-versus-target comparison. Everything here is consensus-critical, so it
// uses integers only (bigint for 256-bit values, u32 numbers for nBits) and
// mirrors Bitcoin Core's arith_uint256 semantics bit for bit.

import { hashToHex } from '../core/hash.ts';

export { sha256d, hashToHex, hexToHash } from '../core/hash.ts';

export class PowError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PowError';
  }
}

const TWO_256 = 1n << 256n;

function fmtBits(bits: number): string {
  return '0x' + (bits >>> 0).toString(16).padStart(8, '0');
}

/**
 * Decode Bitcoin's nBits (SetCompact). Bitcoin silently produces a "negative"
 * or overflowed arith_uint256 and lets CheckProofOfWork reject it later; we throw
 * instead so an invalid encoding can never reach a comparison as a real target.
 * A zero target is returned as 0n (valid encoding, unsatisfiable target) and is
 * left for the caller's range check, as in Bitcoin.
 */
export function compactToTarget(bits: number): bigint {
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffffffff) {
    throw new PowError(`compact bits must be a u32 integer, got ${String(bits)}`);
  }
  const size = bits >>> 24;
  const word = bits & 0x007fffff;
  // The sign bit only matters when the mantissa is non-zero (Bitcoin: -0 is 0).
  if (word !== 0 && (bits & 0x00800000) !== 0) {
    throw new PowError(`compact bits ${fmtBits(bits)} encode a negative target`);
  }
  // Same three overflow conditions as SetCompact: the mantissa would be shifted
  // past bit 255.
  if (word !== 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32))) {
    throw new PowError(`compact bits ${fmtBits(bits)} overflow 256 bits`);
  }
  if (size <= 3) {
    // Small sizes shift the mantissa right, dropping low bytes (non-canonical
    // but valid encodings, e.g. 0x01003456 -> 0).
    return BigInt(word >>> (8 * (3 - size)));
  }
  return BigInt(word) << BigInt(8 * (size - 3));
}

/** Number of significant bytes in a non-negative bigint (0 for 0n). */
function byteLength(x: bigint): number {
  if (x === 0n) return 0;
  return (x.toString(16).length + 1) >> 1;
}

/**
 * Encode a target as canonical nBits (GetCompact). The mantissa's top bit is a
 * sign bit, so when it would be set we move one byte into the exponent instead;
 * this is what makes the encoding canonical and round-trippable.
 */
export function targetToCompact(target: bigint): number {
  if (target < 0n) throw new PowError('cannot encode a negative target');
  if (target >= TWO_256) throw new PowError('target does not fit in 256 bits');
  let size = byteLength(target);
  let compact: number;
  if (size <= 3) {
    compact = Number(target) << (8 * (3 - size));
  } else {
    compact = Number(target >> BigInt(8 * (size - 3)));
  }
  if ((compact & 0x00800000) !== 0) {
    compact >>>= 8;
    size += 1;
  }
  return ((size << 24) | compact) >>> 0;
}

/**
 * Expected number of hashes to find a block at this target, as Bitcoin's
 * GetBlockProof computes it (~target / (target+1) + 1 == floor(2^256/(target+1))).
 * Chain selection sums this, so it must be exact.
 */
export function workFromTarget(target: bigint): bigint {
  if (target < 0n) throw new PowError('cannot compute work of a negative target');
  return TWO_256 / (target + 1n);
}

export function workFromBits(bits: number): bigint {
  return workFromTarget(compactToTarget(bits));
}


function assertHash(hash: Uint8Array): void {
  if (hash.length !== 32) throw new PowError(`hash must be 32 bytes, got ${hash.length}`);
}

/** The hash as the 256-bit number Bitcoin compares with the target (little-endian read). */
export function hashToBigInt(hash: Uint8Array): bigint {
  return BigInt('0x' + hashToHex(hash));
}

/**
 * Target as 32 little-endian bytes, the same layout as a raw hash, so the
 * comparison can walk both from byte 31 (most significant) and usually stop at
 * the first byte.
 */
export function targetToBytesLE(target: bigint): Uint8Array {
  if (target < 0n) throw new PowError('target must not be negative');
  if (target >= TWO_256) throw new PowError('target does not fit in 256 bits');
  const out = new Uint8Array(32);
  let t = target;
  for (let i = 0; i < 32 && t !== 0n; i++) {
    out[i] = Number(t & 0xffn);
    t >>= 8n;
  }
  return out;
}

/** hash <= target, both as 32 little-endian bytes (Bitcoin: fail iff hash > target). */
export function hashMeetsTargetBytes(hash: Uint8Array, targetLE: Uint8Array): boolean {
  assertHash(hash);
  if (targetLE.length !== 32) throw new PowError('target bytes must be 32 bytes');
  for (let i = 31; i >= 0; i--) {
    const h = hash[i];
    const t = targetLE[i];
    if (h !== t) return h < t;
  }
  return true;
}

// Consecutive checks almost always use the same target (every header of a
// retarget window, every mined nonce), so one cached conversion removes the
// bigint work from the hot path without changing the public signature.
let cachedTarget = -1n;
let cachedTargetLE: Uint8Array = new Uint8Array(32);

export function hashMeetsTarget(hash: Uint8Array, target: bigint): boolean {
  if (target < 0n) return false;
  if (target >= TWO_256 - 1n) {
    assertHash(hash);
    return true;
  }
  if (target !== cachedTarget) {
    cachedTargetLE = targetToBytesLE(target);
    cachedTarget = target;
  }
  return hashMeetsTargetBytes(hash, cachedTargetLE);
}

