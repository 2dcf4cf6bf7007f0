// ECDSA over secp256k1 on domain-separated digests. Signatures are deterministic (RFC 6979 nonces)
// and low-S, so any correct signer gives the same bytes: libsecp256k1 signs where its addon loads
// (a node signs a receipt per call, and noble's JavaScript took most of a millisecond a
// signature), @noble/secp256k1 elsewhere. Signature checks bound sync speed, so verification takes
// the fastest correct verifier the machine has: libsecp256k1 (Bitcoin Core's library, through the
// `secp256k1` package's prebuilt Node-API addon; about 15,000 checks a second per core here),
// else OpenSSL through node:crypto (about 2,800-4,300, most of a new key's cost in parsing it).
// Both check the same digest: taggedHash(tag, message) = sha256(tagPrefix || message), which
// noble signed with prehash disabled, and both refuse high-S twins.
import * as secp from '@noble/secp256k1';
import { hmac } from '@noble/hashes/hmac.js';
import { createRequire } from 'node:module';
import { createPublicKey, verify as osslVerify, type KeyObject } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import { tagPrefix, taggedHash, concatBytes, bytesEqual } from './hash.ts';
import { IdSet, ID_BYTES } from './idset.ts';

// noble's own hash for noble's signer: its HMAC needs the hash's streaming interface
secp.hashes.sha256 = sha256 as typeof secp.hashes.sha256;
secp.hashes.hmacSha256 = ((key: Uint8Array, msg: Uint8Array) => hmac(sha256, key, msg)) as typeof secp.hashes.hmacSha256;

export const PUBKEY_BYTES = 33;
export const SIG_BYTES = 64;

// Half the curve order, big-endian: signatures with s above it are the malleated twin of a valid one.
const HALF_N = Uint8Array.from(Buffer.from('7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0', 'hex'));
const SPKI_PREFIX = Uint8Array.from(Buffer.from('3036301006072a8648ce3d020106052b8104000a032200', 'hex'));

export function generateSecretKey(): Uint8Array {
  return secp.utils.randomSecretKey();
}

/** One way to the compressed public key of a secret key; throws on a key that is not one (zero, or not below the curve order). */
type PublicKeyOf = (secretKey: Uint8Array) => Uint8Array;

const noblePublicKey: PublicKeyOf = (secretKey) => secp.getPublicKey(secretKey, true);

export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return publicKeyWith(secretKey);
}

export function isValidSecretKey(secretKey: Uint8Array): boolean {
  try {
    publicKeyWith(secretKey);
    return true;
  } catch {
    return false;
  }
}

/** One signer: the 64-byte compact low-S signature of a 32-byte digest. */
type Sign = (digest: Uint8Array, secretKey: Uint8Array) => Uint8Array;

const nobleSign: Sign = (digest, secretKey) => secp.sign(digest, secretKey, { prehash: false, lowS: true });

/** Signs taggedHash(tag, message); returns the 64-byte compact low-S signature. */
export function signTagged(secretKey: Uint8Array, tag: string, message: Uint8Array): Uint8Array {
  return signWith(taggedHash(tag, message), secretKey);
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

/** 0 < s <= HALF_N, s being the signature's last 32 bytes big-endian (compared byte by byte: BigInts cost each check a microsecond). */
export function isLowS(sig: Uint8Array): boolean {
  let any = 0;
  for (let i = 32; i < 64; i++) any |= sig[i];
  if (any === 0) return false;
  for (let i = 0; i < 32; i++) {
    const b = sig[32 + i];
    if (b !== HALF_N[i]) return b < HALF_N[i];
  }
  return true; // s = HALF_N
}

/** The `secp256k1` package's API over its addon (it throws on keys off the curve and on bad secret keys). */
interface NativeSecp {
  ecdsaVerify(sig: Uint8Array, msg32: Uint8Array, pubkey: Uint8Array): boolean;
  ecdsaSign(msg32: Uint8Array, seckey: Uint8Array): { signature: Uint8Array };
  publicKeyCreate(seckey: Uint8Array, compressed: boolean): Uint8Array;
}

/** The verifiers signatures can be checked with, by name. */
export type VerifierName = 'libsecp256k1' | 'openssl';

/** One verifier: does `sig` sign taggedHash(tag, message) for `pubkey` (the high-S check is done before it). */
type Verify = (pubkey: Uint8Array, tag: string, message: Uint8Array, sig: Uint8Array) => boolean;

const opensslVerify: Verify = (pubkey, tag, message, sig) => {
  const key = keyObject(pubkey);
  if (key === null) return false;
  return osslVerify('sha256', concatBytes(tagPrefix(tag), message), { key, dsaEncoding: 'ieee-p1363' }, sig);
};

function nativeVerify(lib: NativeSecp): Verify {
  return (pubkey, tag, message, sig) => {
    if (pubkey.length !== PUBKEY_BYTES || (pubkey[0] !== 2 && pubkey[0] !== 3)) return false;
    try {
      return lib.ecdsaVerify(sig, taggedHash(tag, message), pubkey);
    } catch {
      return false; // a key that is not a point on the curve
    }
  };
}

/**
 * What the addon must reproduce before it is trusted: noble's compressed public key of the secret
 * key 07..07, its signature of taggedHash('DOTS/self-check', 'verifier self-check'), and its
 * signature of the same message without its first byte (test/core-units.test.ts checks that noble
 * still gives these). Fixed bytes, not signed by noble at load: noble's first key costs it about
 * 45 ms of precomputation, in every process and in every signature worker as it starts.
 */
export const SELF_CHECK = {
  secretKey: new Uint8Array(32).fill(7),
  tag: 'DOTS/self-check',
  message: new TextEncoder().encode('verifier self-check'),
  pubkey: Uint8Array.from(Buffer.from('02989c0b76cb563971fdc9bef31ec06c3560f3249d6ee9e5d83c57625596e05f6f', 'hex')),
  sig: Uint8Array.from(Buffer.from('ca92db93da2083277d7a0a5db429812a214ed8ee30fcce09132ae20b28caedb95baa1f17802dcc615044a63bf65a3607d30f838bb8d6122a1e55f7caaea2e477', 'hex')),
  /** the signature of message.subarray(1) */
  otherSig: Uint8Array.from(Buffer.from('6072667c84da4f43608bd203210812447e9b188ef7d3249fb026e8fbd01e496c3d6ced55dab00929372c6b801bbdbc8a354bdc3ff3eee84e188b0a45c4ab61b4', 'hex')),
} as const;

/**
 * libsecp256k1 when its addon loads, verifies SELF_CHECK's signature and refuses its other one
 * for that message, signs SELF_CHECK's bytes exactly and gives its public key (a broken or
 * foreign binary must not decide validity, nor sign, nor name a key); else null.
 * DOTS_VERIFIER=openssl asks for OpenSSL and noble (to compare them).
 */
function loadNative(): { verify: Verify; sign: Sign; publicKey: PublicKeyOf } | null {
  if (process.env.DOTS_VERIFIER === 'openssl') return null;
  try {
    const lib = createRequire(import.meta.url)('secp256k1/bindings') as NativeSecp;
    const v = nativeVerify(lib);
    const sign: Sign = (digest, secretKey) => lib.ecdsaSign(digest, secretKey).signature;
    const publicKey: PublicKeyOf = (secretKey) => lib.publicKeyCreate(secretKey, true);
    const c = SELF_CHECK;
    const same = bytesEqual(sign(taggedHash(c.tag, c.message), c.secretKey), c.sig) && bytesEqual(publicKey(c.secretKey), c.pubkey);
    return same && v(c.pubkey, c.tag, c.message, c.sig) && !v(c.pubkey, c.tag, c.message, c.otherSig) ? { verify: v, sign, publicKey } : null;
  } catch {
    return null;
  }
}

const NATIVE = loadNative();

const VERIFIERS: Record<VerifierName, Verify | null> = {
  libsecp256k1: NATIVE?.verify ?? null,
  openssl: opensslVerify,
};

/** The signers, by the library's name (tests compare them). */
export const SIGNERS: Record<'libsecp256k1' | 'noble', Sign | null> = { libsecp256k1: NATIVE?.sign ?? null, noble: nobleSign };
const signWith: Sign = NATIVE?.sign ?? nobleSign;

/**
 * The public-key makers, by the library's name (tests compare them). libsecp256k1 where it loads:
 * noble's first key costs it 50-60 ms of precomputation, which every node paid at start for its
 * node key (CPU profiles of `dots node` starting).
 */
export const PUBLIC_KEYS: Record<'libsecp256k1' | 'noble', PublicKeyOf | null> = { libsecp256k1: NATIVE?.publicKey ?? null, noble: noblePublicKey };
const publicKeyWith: PublicKeyOf = NATIVE?.publicKey ?? noblePublicKey;

/** The verifier this process checks signatures with (also in the node's start-up log line). */
export const VERIFIER: VerifierName = VERIFIERS.libsecp256k1 !== null ? 'libsecp256k1' : 'openssl';
const verifyWith = VERIFIERS[VERIFIER] as Verify;

/** Whether a verifier loaded in this process (tests compare every one that did). */
export function hasVerifier(name: VerifierName): boolean {
  return VERIFIERS[name] !== null;
}

/**
 * Verifies a signature made by signTagged, with `verifier` when given (tests and benchmarks), else
 * this process's. High-S signatures are rejected (malleability).
 */
export function verifyTagged(pubkey: Uint8Array, tag: string, message: Uint8Array, sig: Uint8Array, verifier?: VerifierName): boolean {
  if (sig.length !== SIG_BYTES || !isLowS(sig)) return false;
  const f = verifier === undefined ? verifyWith : VERIFIERS[verifier];
  if (f === null) throw new Error(`signature verifier ${verifier} is not available here`);
  return f(pubkey, tag, message, sig);
}

/**
 * Ids of records whose signatures were already verified (in the pool or an earlier block): it
 * remembers at least the last max/2 ids added and at most max, in two generations; when the newer
 * is full, the older is emptied and takes the new ids. Only ids of exactly 32 bytes are kept (a
 * record id always is). Every block's records are looked up here two or three times, so a look-up
 * allocates nothing (a string key per look-up cost a microsecond and a half of each record).
 */
export class SigCache {
  private newer: IdSet;
  private older: IdSet;

  constructor(max = 200_000) {
    const half = Math.max(1, Math.ceil(max / 2));
    this.newer = new IdSet(half);
    this.older = new IdSet(half);
  }

  has(id: Uint8Array): boolean {
    return id.length === ID_BYTES && (this.newer.has(id) || this.older.has(id));
  }

  add(id: Uint8Array): void {
    if (id.length !== ID_BYTES || this.has(id)) return;
    if (!this.newer.add(id)) {
      const t = this.older;
      t.clear();
      this.older = this.newer;
      this.newer = t;
      this.newer.add(id);
    }
  }
}
