// aserti3-2d difficulty adjustment (Bitcoin Cash, 2020-11-15 upgrade spec).
//
// The ideal rule is  target = anchorTarget * 2^((timeDiff - ideal*(heightDiff+1)) / halfLife),
// which needs an exponential; consensus cannot use floating point, so the spec
// fixes one integer approximation (16-bit fixed point exponent, cubic for the
// fractional part) and every node must reproduce it exactly. All arithmetic is
// bigint: heights may exceed 2^53 (the conformance vectors go past 2^63), and
// the target times the factor needs up to ~241 bits.

import { PowError, compactToTarget, targetToCompact } from './pow.ts';

export interface AsertParams {
  /** Target seconds between blocks (BCH: 600). */
  idealBlockTime: number;
  /** Seconds of schedule drift that halve/double the target (BCH: 172800). */
  halfLife: number;
  /** Compact encoding of the easiest allowed target. */
  powLimitBits: number;
}

export interface AsertAnchor {
  /** Height of the anchor block. A bigint is accepted so heights beyond 2^53 stay exact. */
  height: number | bigint;
  /** Timestamp of the anchor block's parent (the spec anchors time one block earlier). */
  parentTime: number;
  /** nBits of the anchor block. */
  bits: number;
}

const RADIX_BITS = 16n;
const RADIX = 1n << RADIX_BITS;
// Coefficients of 2^x ~= 1 + 0.695502049x + 0.2262698x^2 + 0.0782318x^3 scaled
// to 48 fractional bits; 2^47 makes the final >> 48 round to nearest. Values are
// normative: changing any digit forks the chain.
const C1 = 195_766_423_245_049n;
const C2 = 971_821_376n;
const C3 = 5_127n;
const HALF_48 = 1n << 47n;

// Beyond these shift counts the result is certainly clamped (target < 2^256 and
// factor < 2^17), so we short-circuit rather than build enormous bigints when a
// timestamp or height is absurd.
const MAX_LEFT_SHIFT = 256n;
const MAX_RIGHT_SHIFT = 256n + 17n + 16n;

function toBigIntInt(v: number | bigint, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (!Number.isSafeInteger(v)) throw new PowError(`ASERT ${what} must be a safe integer, got ${String(v)}`);
  return BigInt(v);
}

/**
 * Compact bits required of the block following the tip (tipHeight, tipTime),
 * given the fixed anchor. Integer-exact port of the spec / BCHN CalculateASERT.
 */
export function asertNextBits(
  params: AsertParams,
  anchor: AsertAnchor,
  tipHeight: number | bigint,
  tipTime: number,
): number {
  const ideal = toBigIntInt(params.idealBlockTime, 'idealBlockTime');
  const halfLife = toBigIntInt(params.halfLife, 'halfLife');
  if (ideal <= 0n || halfLife <= 0n) throw new PowError('ASERT idealBlockTime and halfLife must be positive');

  const powLimit = compactToTarget(params.powLimitBits);
  const anchorTarget = compactToTarget(anchor.bits);
  // BCHN asserts these; an anchor outside (0, limit] means the caller picked a
  // block that could not be valid, which is a bug, not a consensus outcome.
  if (anchorTarget <= 0n || anchorTarget > powLimit) {
    throw new PowError(`ASERT anchor bits 0x${anchor.bits.toString(16)} outside (0, pow limit]`);
  }

  const heightDiff = toBigIntInt(tipHeight, 'tipHeight') - toBigIntInt(anchor.height, 'anchor height');
  if (heightDiff < 0n) throw new PowError('ASERT tip height is below the anchor height');
  const timeDiff = toBigIntInt(tipTime, 'tipTime') - toBigIntInt(anchor.parentTime, 'anchor parentTime');

  // The block being computed is heightDiff+1 blocks after the anchor, hence the +1.
  // bigint '/' truncates toward zero, the same as the C++ int64 division the
  // spec mandates (not Python-style floor); negative drift depends on this.
  const exponent = ((timeDiff - ideal * (heightDiff + 1n)) * RADIX) / halfLife;

  // Arithmetic shift floors, so frac is always in [0, 65536) even for negative
  // exponents, keeping the polynomial in its accurate interval.
  let shifts = exponent >> RADIX_BITS;
  const frac = exponent - (shifts << RADIX_BITS);

  const factor = RADIX + ((C1 * frac + C2 * frac * frac + C3 * frac * frac * frac + HALF_48) >> 48n);

  // target * 2^shifts * factor/65536, done as one shift so the rounding
  // (floor) happens exactly once, as in BCHN.
  let next = anchorTarget * factor;
  shifts -= RADIX_BITS;
  if (shifts > MAX_LEFT_SHIFT) {
    next = powLimit + 1n;
  } else if (shifts < -MAX_RIGHT_SHIFT) {
    next = 0n;
  } else if (shifts <= 0n) {
    next >>= -shifts;
  } else {
    next <<= shifts;
  }

  // 0 is not a valid target but 1 is (the hardest possible); above the limit
  // we clamp to the limit's own encoding.
  if (next === 0n) return targetToCompact(1n);
  if (next > powLimit) return targetToCompact(powLimit);
  return targetToCompact(next);
}
