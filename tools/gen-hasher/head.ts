// GENERATED FILE, do not edit: tools/gen-hasher writes it (cat head.ts <(node emit2.mjs)), and
// test/hasher.test.ts checks it is what the generator makes. Change the generator, then rebuild.
//
// Mining-speed SHA-256d for 80-byte Bitcoin-layout headers.
//
// Why this exists: a generic sha256d over 80 bytes costs three compressions
// plus allocation and byte shuffling per call. For mining, bytes 0..63 do not
// change with the nonce, so their compression (the "midstate") is computed once
// per header, and per nonce we only run the second block of the first hash and
// the single block of the second hash, on plain int32 locals with no allocation.
//
// The kernels at the bottom are straight-line code emitted by a small
// generator script (not part of the runtime tree; test/hasher.test.ts checks
// them against @noble/hashes sha256d). The generator:
//   - fully unrolls all rounds and the message schedule into SSA consts, which
//     V8 keeps in registers/stack slots instead of array loads/stores;
//   - constant-folds everything known up front: the padding words, the IV of
//     the second hash, K[t] + W[t] where W[t] is a constant;
//   - hoists everything that depends only on the header (rounds 0..2 of the
//     second block use only merkle-tail/time/bits, and W16/W17 likewise) out of
//     the nonce loop, so the nonce enters at round 3;
//   - in the scan kernel stops the second hash after round 61: the final word 7
//     is IV7 + (e after round 61), since e only shifts into f, g, h afterwards.
// All arithmetic is int32 with `| 0`, which is exactly SHA-256's mod 2^32.
//
// Hash-vs-target prefilter: the hash compares as a little-endian 256-bit
// number, so its most significant 32 bits are digest bytes 31..28, i.e. state
// word 7 byte-swapped. Comparing that one word rejects all but ~top/2^32 of the
// nonces; survivors (including ties) get a full 32-byte comparison.

import { hashMeetsTargetBytes } from '../consensus/pow.ts';

export const IV = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

export const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

// Above this many nonces per kernel call the loop counter would leave V8's
// small-integer range; chunking keeps the hot loop on int32 arithmetic.
const KERNEL_CHUNK = 1 << 30;
const U32_SPAN = 0x100000000;

function bswap32(x: number): number {
  return (x << 24) | ((x & 0xff00) << 8) | ((x >>> 8) & 0xff00) | (x >>> 24);
}

function readBE(b: Uint8Array, o: number): number {
  return (b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3];
}

/** Generic one-block compression, used once per header for the midstate (not hot). */
function compressBlock(state: Int32Array, w: Int32Array): void {
  for (let t = 16; t < 64; t++) {
    const x = w[t - 15];
    const y = w[t - 2];
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    w[t] = (s1 + w[t - 7] + s0 + w[t - 16]) | 0;
  }
  let a = state[0], b = state[1], c = state[2], d = state[3];
  let e = state[4], f = state[5], g = state[6], h = state[7];
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + (g ^ (e & (f ^ g))) + K[t] + w[t]) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) | (c & (a | b)))) | 0;
    h = g; g = f; f = e; e = (d + t1) | 0;
    d = c; c = b; b = a; a = (t1 + t2) | 0;
  }
  state[0] = (state[0] + a) | 0; state[1] = (state[1] + b) | 0;
  state[2] = (state[2] + c) | 0; state[3] = (state[3] + d) | 0;
  state[4] = (state[4] + e) | 0; state[5] = (state[5] + f) | 0;
  state[6] = (state[6] + g) | 0; state[7] = (state[7] + h) | 0;
}

/**
 * Offset of the first nonce in [start, start+count) whose hash's top word,
 * biased to signed, is <= topBiased; -1 if none. A prefilter only: ties and
 * hits are confirmed by the caller with a full comparison.
 */
function scanRange(ctx: Int32Array, mid: Int32Array, start: number, count: number, topBiased: number): number {
  let n = start | 0;
  for (let i = 0; i < count; i++, n = (n + 1) | 0) {
    kernelFirst(ctx, bswap32(n), mid);
    const top = bswap32(kernelSecondWord7(mid));
    if ((top ^ -0x80000000) <= topBiased) return i;
  }
  return -1;
}

export class HeaderHasher {
  // Per-header context for the kernels: [0..7] midstate after bytes 0..63,
  // [8..10] big-endian words of bytes 64..75 (merkle tail, time, bits), then
  // the nonce-independent values kernelPrep hoists out of the loop.
  private readonly ctx = new Int32Array(CTX_SIZE);
  private readonly w = new Int32Array(64);
  private readonly mid = new Int32Array(8);
  private readonly digest = new Int32Array(8);
  private readonly check = new Uint8Array(32);

  constructor(header80: Uint8Array) {
    this.setHeader(header80);
  }

  /** Re-target the hasher at a new header (new time, merkle root...); the nonce bytes are ignored. */
  setHeader(header80: Uint8Array): void {
    if (header80.length !== 80) throw new RangeError(`header must be 80 bytes, got ${header80.length}`);
    const w = this.w;
    for (let i = 0; i < 16; i++) w[i] = readBE(header80, i * 4);
    const ctx = this.ctx;
    ctx.set(IV, 0);
    compressBlock(ctx, w);
    ctx[8] = readBE(header80, 64);
    ctx[9] = readBE(header80, 68);
    ctx[10] = readBE(header80, 72);
    kernelPrep(ctx);
  }

  /** SHA-256d of the header with this nonce, in raw (internal) byte order, into out32. */
  hashNonce(nonce: number, out32: Uint8Array): void {
    if (out32.length < 32) throw new RangeError('output buffer must hold 32 bytes');
    const d = this.digest;
    // The header stores the nonce little-endian; SHA-256 reads words big-endian.
    kernelFirst(this.ctx, bswap32(nonce | 0), this.mid);
    kernelSecond(this.mid, d);
    for (let i = 0; i < 8; i++) {
      const x = d[i];
      const o = i * 4;
      out32[o] = x >>> 24;
      out32[o + 1] = (x >>> 16) & 0xff;
      out32[o + 2] = (x >>> 8) & 0xff;
      out32[o + 3] = x & 0xff;
    }
  }

  /**
   * Try `count` nonces from `startNonce` (wrapping mod 2^32) and return the
   * first whose hash is <= the target (32 bytes, little-endian, as
   * targetToBytesLE gives), or -1.
   */
  scan(startNonce: number, count: number, targetLE32: Uint8Array): number {
    if (targetLE32.length !== 32) throw new RangeError('target must be 32 little-endian bytes');
    if (!Number.isInteger(count) || count < 0) throw new RangeError('count must be a non-negative integer');
    // More than 2^32 nonces would only revisit the same ones.
    const total = Math.min(count, U32_SPAN);
    const top = (targetLE32[31] << 24) | (targetLE32[30] << 16) | (targetLE32[29] << 8) | targetLE32[28];
    // Biasing by 2^31 turns the unsigned comparison into a signed int32 one,
    // which V8 does without leaving int32 representation.
    const topBiased = top ^ -0x80000000;
    let done = 0;
    while (done < total) {
      const start = (startNonce + done) >>> 0;
      const chunk = Math.min(total - done, KERNEL_CHUNK);
      const off = scanRange(this.ctx, this.mid, start, chunk, topBiased);
      if (off < 0) {
        done += chunk;
        continue;
      }
      const nonce = (start + off) >>> 0;
      // The prefilter passes ties on the top word; settle them (and re-check
      // every hit, which is rare and cheap) with the full comparison.
      this.hashNonce(nonce, this.check);
      if (hashMeetsTargetBytes(this.check, targetLE32)) return nonce;
      done += off + 1;
    }
    return -1;
  }
}

