// ECDSA over secp256k1 on domain-separated digests. Signing uses @noble/secp256k1 (deterministic
// RFC 6979 nonces, low-S); verification goes through OpenSSL via node:crypto because it is about
// 7x faster here and signature checks bound sync speed. Both sides agree on the signed digest:
// digest = taggedHash(tag, message) = sha256(tagPrefix || message), so OpenSSL's own SHA-256 of
// (tagPrefix || message) is the same digest noble signed with prehash disabled.
import * as secp from '@noble/secp256k1';
import { hmac } from '@noble/hashes/hmac.js';
import { createPublicKey, verify as osslVerify, type KeyObject } from 'node:crypto';
import { sha256, tagPrefix, taggedHash, concatBytes } from './hash.ts';

secp.hashes.sha256 = sha256 as typeof secp.hashes.sha256;
secp.hashes.hmacSha256 = ((key: Uint8Array, msg: Uint8Array) => hmac(sha256, key, msg)) as typeof secp.hashes.hmacSha256;

export const PUBKEY_BYTES = 33;
export const SIG_BYTES = 64;

// Half the curve order: signatures with s above it are the malleated twin of a valid one.
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;
const SPKI_PREFIX = Uint8Array.from(Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex'));

export function generateSecretKey(): Uint8Array {
  return secp.utils.randomSecretKey();
}

export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return secp.getPublicKey(secretKey, true);
}

export function isValidSecretKey(secretKey: Uint8Array): boolean {
  try {
    secp.getPublicKey(secretKey, true);
    return true;
  } catch {
    return false;
  }
}

/** Signs taggedHash(tag, message); returns the 64-byte compact low-S signature. */
export function signTagged(secretKey: Uint8Array, tag: string, message: Uint8Array): Uint8Array {
  return secp.sign(taggedHash(tag, message), secretKey, { prehash: false, lowS: true });
}

const keyCache = new Map<string, KeyObject | null>();
const KEY_CACHE_MAX = 50_000;

function keyObject(pubkey: Uint8Array): KeyObject | null {
  const k = Buffer.from(pubkey).toString('latin1');
  let ko = keyCache.get(k);
  if (ko !== undefined) return ko;
  if (pubkey.length !== PUBKEY_BYTES || (pubkey[0] !== 2 && pubkey[0] !== 3)) {
    ko = null;
  } else {
    try {
      ko = createPublicKey({ key: Buffer.from(concatBytes(SPKI_PREFIX, pubkey)), format: 'der', type: 'spki' });
    } catch {
      ko = null; // not a point on the curve
    }
  }
  if (keyCache.size >= KEY_CACHE_MAX) keyCache.clear();
  keyCache.set(k, ko);
  return ko;
}

export function isValidPublicKey(pubkey: Uint8Array): boolean {
  return keyObject(pubkey) !== null;
}

function isLowS(sig: Uint8Array): boolean {
  let s = 0n;
  for (let i = 32; i < 64; i++) s = (s << 8n) | BigInt(sig[i]);
  return s !== 0n && s <= HALF_N;
}

/** Verifies a signature made by signTagged. High-S signatures are rejected (malleability). */
export function verifyTagged(pubkey: Uint8Array, tag: string, message: Uint8Array, sig: Uint8Array): boolean {
  if (sig.length !== SIG_BYTES || !isLowS(sig)) return false;
  const key = keyObject(pubkey);
  if (key === null) return false;
  const data = concatBytes(tagPrefix(tag), message);
  return osslVerify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, sig);
}

/** Ids of records whose signatures were already verified (in the pool or an earlier block). */
export class SigCache {
  private readonly set = new Set<string>();
  constructor(private readonly max = 200_000) {}
  has(id: Uint8Array): boolean {
    return this.set.has(Buffer.from(id).toString('latin1'));
  }
  add(id: Uint8Array): void {
    if (this.set.size >= this.max) this.set.clear();
    this.set.add(Buffer.from(id).toString('latin1'));
  }
}
