// The record kinds of a block body, their canonical encodings, ids and signatures.
// Every record is a fixed-order msgpack array whose first element is its kind; signed kinds end
// with a 64-byte signature over taggedHash("DOTS/<network>/<kind>", encoding of the other fields),
// so a signature is bound to one kind on one network. Only context-free checks live here; rules
// that need the chain state are in state.ts.
import { NonCanonicalError, encode, decode, asArray, asUint, asBytes, asString, asStringList, type Value } from './encoding.ts';
import { EncodingError, ValidationError } from './errors.ts';
import { taggedHash, taggedHashInto, toHex, bytesEqual } from './hash.ts';
import { signTagged, verifyTagged, publicKeyOf, PUBKEY_BYTES, SIG_BYTES } from './sig.ts';
import { ADDRESS_BYTES, addressOf } from './address.ts';

export const Kind = {
  Coinbase: 0,
  NodeAnnounce: 1,
  NameCommit: 2,
  NameClaim: 3,
  NameRenew: 4,
  NameTransfer: 5,
  NameDelegate: 6,
  Binding: 7,
  Transfer: 8,
  CallReceipt: 9,
  Presence: 10,
} as const;
export type KindCode = (typeof Kind)[keyof typeof Kind];
export const KIND_NAMES: Record<KindCode, string> = {
  0: 'coinbase',
  1: 'node-announce',
  2: 'name-commit',
  3: 'name-claim',
  4: 'name-renew',
  5: 'name-transfer',
  6: 'name-delegate',
  7: 'binding',
  8: 'transfer',
  9: 'call-receipt',
  10: 'presence',
};

export const MAX_RECORD_BYTES = 4096;
/** most nodes one name may be delegated to (each may sign bindings naming itself) */
export const MAX_DELEGATES = 8;
export const MAX_NAME_LENGTH = 128;
export const BindingStatus = { Offline: 0, Online: 1 } as const;
/**
 * Most changes one presence record carries: at 10 bytes an entry at worst, a full record stays
 * within MAX_RECORD_BYTES (a node with more changes in a block signs several).
 */
export const MAX_PRESENCE_ENTRIES = 384;

export interface Coinbase {
  kind: 0;
  height: number;
  rewardAddress: Uint8Array;
  amount: number;
  extraNonce: Uint8Array;
  note: string;
}
export interface NodeAnnounce {
  kind: 1;
  pubkey: Uint8Array;
  sipUris: string[];
  p2pAddrs: string[];
  rewardAddress: Uint8Array;
  seq: number;
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}
export interface NameCommit {
  kind: 2;
  pubkey: Uint8Array;
  commitment: Uint8Array;
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}
export interface NameClaim {
  kind: 3;
  name: string;
  pubkey: Uint8Array;
  salt: Uint8Array;
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}
export interface NameRenew {
  kind: 4;
  name: string;
  pubkey: Uint8Array;
  nameSeq: number;
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}
export interface NameTransfer {
  kind: 5;
  name: string;
  pubkey: Uint8Array;
  newOwner: Uint8Array;
  /**
   * the serving nodes the new owner starts with (node ids, in order of preference): a node that
   * claims a name for its user and hands it over keeps serving it until the user delegates anew
   */
  delegates: Uint8Array[];
  nameSeq: number;
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}
export interface NameDelegate {
  kind: 6;
  name: string;
  pubkey: Uint8Array;
  /** the node ids (20 bytes each, at most MAX_DELEGATES, in order of preference) that may serve the name; none revokes all */
  nodes: Uint8Array[];
  nameSeq: number;
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}
export interface Binding {
  kind: 7;
  name: string;
  node: Uint8Array;
  status: number;
  /** unix seconds until which the binding holds */
  expires: number;
  seq: number;
  pubkey: Uint8Array;
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}
export interface Transfer {
  kind: 8;
  pubkey: Uint8Array;
  to: Uint8Array;
  amount: number;
  fee: number;
  nonce: number;
  sig: Uint8Array;
}

/**
 * A completed call between two different nodes, countersigned by both. Both sign the same
 * message (every field but the two signatures); `pubkey` is the originating node's key and
 * `termPubkey` the terminating node's, whose ids must be `orig` and `term`.
 */
export interface CallReceipt {
  kind: 9;
  /** taggedHash of the SIP dialog id (Call-ID and tags): the receipt's identity */
  callId: Uint8Array;
  orig: Uint8Array;
  term: Uint8Array;
  answered: number;
  ended: number;
  pubkey: Uint8Array;
  termPubkey: Uint8Array;
  /** units the originating node pays the miner for carrying the receipt */
  fee: number;
  sig: Uint8Array;
  termSig: Uint8Array;
}

/** One user's change in a presence record: the name by its number on the chain (NameEntry.ref). */
export interface PresenceEntry {
  ref: number;
  status: number;
  /** unix seconds until which it holds, at or after the record's `base` */
  expires: number;
}

/**
 * The compact form of presence (issue 17): one record per node per block for all of its users'
 * changes, each change as the name's number and a varint of status and expiry, so the key,
 * the signature and the node id are paid once for all of them. Each entry follows the rules of
 * a Binding that the signing node makes for itself, with the record's `seq` as every entry's
 * sequence (docs/presence-scale.md).
 */
export interface Presence {
  kind: 10;
  /** the serving node's key: the node every entry binds is its id */
  pubkey: Uint8Array;
  seq: number;
  /** unix seconds the entries' expiries count from */
  base: number;
  /** at least one, at most MAX_PRESENCE_ENTRIES, refs strictly increasing */
  entries: PresenceEntry[];
  /** units paid to the miner, at least the network's minFeeRate per byte of the record */
  fee: number;
  sig: Uint8Array;
}

export type RecordBody = Coinbase | NodeAnnounce | NameCommit | NameClaim | NameRenew | NameTransfer | NameDelegate | Binding | Transfer | CallReceipt | Presence;
export type SignedBody = Exclude<RecordBody, Coinbase>;
/**
 * A record body without its signature, as a signer builds it; without a fee, signRecord sets
 * the one its fee rate asks for.
 */
export type Unsigned<T extends SignedBody> = Omit<T, 'sig' | 'fee'> & { fee?: number };

/** A decoded record with the bytes it came from and its id. */
export interface Rec {
  body: RecordBody;
  bytes: Uint8Array;
  id: Uint8Array;
}

// SIP AoR in lower case (user part may hold escapes and ';'), an E.164 number, or a domain.
const SIP_NAME_RE = /^sips?:[a-z0-9\-_.!~*'()%&=+$,;?/]{1,64}@[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
// one digit is a country code's prefix (+1): a block of numbers, the costliest name there is
const E164_RE = /^\+[1-9][0-9]{0,14}$/;
const DOMAIN_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/**
 * The domain a `sip:user@domain` name lives under (whose owner alone may hand it out), or null
 * for a name that is no SIP address (a domain, a number).
 */
export function domainOf(name: string): string | null {
  if (!name.startsWith('sip:') && !name.startsWith('sips:')) return null;
  const at = name.lastIndexOf('@');
  return at < 0 ? null : name.slice(at + 1);
}

/**
 * A node's own domain, `n` + the first 16 hex digits of its node id + `.dots`: what a node
 * serves unless told another, so no two nodes share a default. The chain reserves it for that
 * node (a claim of it by any other key is refused).
 */
export function ownDomainOf(nodeIdHex: string): string {
  return `n${nodeIdHex.slice(0, 16)}.dots`;
}

const OWN_DOMAIN_RE = /^n([0-9a-f]{16})\.dots$/;

/** For a node's own domain, the 16 hex digits its node id must begin with; null for any other name. */
export function ownDomainPrefix(name: string): string | null {
  return OWN_DOMAIN_RE.exec(name)?.[1] ?? null;
}

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && (SIP_NAME_RE.test(name) || E164_RE.test(name) || DOMAIN_RE.test(name));
}

function fieldsOf(b: RecordBody): Value[] {
  switch (b.kind) {
    case 0:
      return [0, b.height, b.rewardAddress, b.amount, b.extraNonce, b.note];
    case 1:
      return [1, b.pubkey, b.sipUris, b.p2pAddrs, b.rewardAddress, b.seq, b.fee];
    case 2:
      return [2, b.pubkey, b.commitment, b.fee];
    case 3:
      return [3, b.name, b.pubkey, b.salt, b.fee];
    case 4:
      return [4, b.name, b.pubkey, b.nameSeq, b.fee];
    case 5:
      return [5, b.name, b.pubkey, b.newOwner, b.delegates, b.nameSeq, b.fee];
    case 6:
      return [6, b.name, b.pubkey, b.nodes, b.nameSeq, b.fee];
    case 7:
      return [7, b.name, b.node, b.status, b.expires, b.seq, b.pubkey, b.fee];
    case 8:
      return [8, b.pubkey, b.to, b.amount, b.fee, b.nonce];
    case 9:
      return [9, b.callId, b.orig, b.term, b.answered, b.ended, b.pubkey, b.termPubkey, b.fee];
    case 10:
      return [10, b.pubkey, b.seq, b.base, packEntries(b.base, b.entries), b.fee];
  }
}

// Presence entries packed as unsigned LEB128 varints, two per entry: the ref's gap after the
// previous ref (the first ref itself; refs strictly increase, so a gap of 0 means "the next
// number"), then (expires - base) * 2 + status. Multiplication, not shifts: values pass 2^31.
function putVarint(out: number[], x: number): void {
  while (x >= 0x80) {
    out.push((x % 0x80) + 0x80);
    x = Math.floor(x / 0x80);
  }
  out.push(x);
}

/** Packs entries (sorted by ref) against `base`; throws EncodingError for what cannot be packed. */
export function packEntries(base: number, entries: readonly PresenceEntry[]): Uint8Array {
  const out: number[] = [];
  let prev = -1;
  for (const e of entries) {
    if (!Number.isSafeInteger(e.ref) || e.ref <= prev || e.ref > 0xffffffff) throw new EncodingError('presence entries must have strictly increasing refs below 2^32');
    if (!Number.isSafeInteger(e.expires) || e.expires < base || e.expires > 0xffffffff) throw new EncodingError('a presence entry expires before the record\'s base');
    if (e.status !== 0 && e.status !== 1) throw new EncodingError('a presence status is 0 or 1');
    putVarint(out, e.ref - prev - 1);
    putVarint(out, (e.expires - base) * 2 + e.status);
    prev = e.ref;
  }
  return Uint8Array.from(out);
}

/** Reads one canonical varint of at most 5 bytes at `at`; returns [value, next offset]. */
function getVarint(b: Uint8Array, at: number): [number, number] {
  let x = 0;
  let mul = 1;
  for (let i = 0; i < 5; i++) {
    if (at + i >= b.length) throw new EncodingError('presence entries end inside a number');
    const byte = b[at + i];
    x += (byte & 0x7f) * mul;
    if (byte < 0x80) {
      if (byte === 0 && i > 0) throw new NonCanonicalError('presence entries: a number with a needless trailing byte');
      return [x, at + i + 1];
    }
    mul *= 0x80;
  }
  throw new EncodingError('presence entries: a number longer than 5 bytes');
}

export function unpackEntries(base: number, b: Uint8Array): PresenceEntry[] {
  const list: PresenceEntry[] = [];
  let at = 0;
  let prev = -1;
  while (at < b.length) {
    if (list.length === MAX_PRESENCE_ENTRIES) throw new EncodingError(`a presence record carries at most ${MAX_PRESENCE_ENTRIES} entries`);
    const [gap, a1] = getVarint(b, at);
    const [v, a2] = getVarint(b, a1);
    at = a2;
    const ref = prev + 1 + gap;
    const expires = base + Math.floor(v / 2);
    if (ref > 0xffffffff || expires > 0xffffffff) throw new EncodingError('presence entry out of range');
    list.push({ ref, status: v % 2, expires });
    prev = ref;
  }
  if (list.length === 0) throw new EncodingError('a presence record carries at least one entry');
  return list;
}

export function sigTag(network: string, kind: KindCode): string {
  return `DOTS/${network}/${KIND_NAMES[kind]}`;
}

/** The bytes a signer signs: the record's fields without the signature. */
export function signingMessage(b: RecordBody): Uint8Array {
  return encode(fieldsOf(b));
}

export function encodeBody(b: RecordBody): Uint8Array {
  const f = fieldsOf(b);
  if (b.kind !== Kind.Coinbase) f.push(b.sig);
  if (b.kind === Kind.CallReceipt) f.push(b.termSig);
  return encode(f);
}

const RECORD_ID_TAG = 'DOTS/record-id';

export function recordId(bytes: Uint8Array): Uint8Array {
  return taggedHash(RECORD_ID_TAG, bytes);
}

export function makeRec(body: RecordBody): Rec {
  const bytes = encodeBody(body);
  return { body, bytes, id: recordId(bytes) };
}

/**
 * The fee a record pays at `rate` units per byte of its encoding (its signatures included).
 * The fee is part of what it pays for, so it is found by raising it until it covers the size
 * its own encoding adds (msgpack grows by a few bytes at most, so two or three rounds).
 */
export function feeAtRate(body: SignedBody, rate: number): number {
  if (rate === 0) return 0;
  let fee = 0;
  for (;;) {
    const need = rate * encodeBody({ ...body, fee }).length;
    if (need <= fee) return fee;
    fee = need;
  }
}

/** A record's fee per byte, in units (what the pool and the templates rank records by). */
export function feeRate(rec: Rec): number {
  const b = rec.body;
  return b.kind === Kind.Coinbase ? 0 : b.fee / rec.bytes.length;
}

/** Signs a record; its fee is `unsigned.fee` when given, else what `rate` units per byte ask. */
export function signRecord<T extends Exclude<SignedBody, CallReceipt>>(network: string, secretKey: Uint8Array, unsigned: Unsigned<T>, rate = 0): Rec {
  const probe = { ...unsigned, fee: unsigned.fee ?? 0, sig: new Uint8Array(SIG_BYTES) } as unknown as T;
  if (unsigned.fee === undefined) probe.fee = feeAtRate(probe, rate);
  const sig = signTagged(secretKey, sigTag(network, probe.kind), signingMessage(probe));
  return makeRec({ ...probe, sig });
}

/** One node's signature over a call receipt (the other node makes its own over the same bytes). */
export function signReceipt(network: string, secretKey: Uint8Array, r: Omit<CallReceipt, 'sig' | 'termSig'>): Uint8Array {
  return signTagged(secretKey, sigTag(network, Kind.CallReceipt), signingMessage({ ...r, sig: new Uint8Array(0), termSig: new Uint8Array(0) }));
}

/** The fee a call receipt pays at `rate` (both signatures counted). */
export function receiptFee(r: Omit<CallReceipt, 'sig' | 'termSig' | 'fee'>, rate: number): number {
  return feeAtRate({ ...r, fee: 0, sig: new Uint8Array(SIG_BYTES), termSig: new Uint8Array(SIG_BYTES) }, rate);
}

export { publicKeyOf };

function pk(v: Value, what: string): Uint8Array {
  return asBytes(v, what, PUBKEY_BYTES);
}
function sigOf(v: Value): Uint8Array {
  return asBytes(v, 'sig', SIG_BYTES);
}
function nameOf(v: Value): string {
  const n = asString(v, 'name', MAX_NAME_LENGTH);
  if (!isValidName(n)) throw new EncodingError(`name "${n}" is not a lower-case SIP address, E.164 number or domain`);
  return n;
}

/** A list of distinct node ids, at most MAX_DELEGATES: who serves a name, in order. */
function nodeList(v: Value, what: string): Uint8Array[] {
  const list = asArray(v, [0, MAX_DELEGATES], what).map((x, i) => asBytes(x, `${what}[${i}]`, ADDRESS_BYTES));
  for (let i = 1; i < list.length; i++) {
    for (let j = 0; j < i; j++) if (bytesEqual(list[i], list[j])) throw new EncodingError(`${what}: node ${toHex(list[i])} is listed twice`);
  }
  return list;
}

/** Decodes record bytes into a typed body; throws EncodingError on any shape or canonicality fault. */
export function decodeBody(bytes: Uint8Array): RecordBody {
  if (bytes.length > MAX_RECORD_BYTES) throw new EncodingError(`record larger than ${MAX_RECORD_BYTES} bytes`);
  const v = decode(bytes);
  if (!Array.isArray(v) || v.length === 0) throw new EncodingError('record: expected a non-empty array');
  const kind = asUint(v[0], 'kind', 10) as KindCode;
  switch (kind) {
    case 0: {
      const a = asArray(v, 6, 'coinbase');
      return {
        kind,
        height: asUint(a[1], 'height', 0xffffffff),
        rewardAddress: asBytes(a[2], 'rewardAddress', ADDRESS_BYTES),
        amount: asUint(a[3], 'amount'),
        extraNonce: asBytes(a[4], 'extraNonce', [0, 32]),
        note: asString(a[5], 'note', 80),
      };
    }
    case 1: {
      const a = asArray(v, 8, 'node-announce');
      return {
        kind,
        pubkey: pk(a[1], 'pubkey'),
        sipUris: asStringList(a[2], 'sipUris', 8, 256),
        p2pAddrs: asStringList(a[3], 'p2pAddrs', 8, 256),
        rewardAddress: asBytes(a[4], 'rewardAddress', ADDRESS_BYTES),
        seq: asUint(a[5], 'seq'),
        fee: asUint(a[6], 'fee'),
        sig: sigOf(a[7]),
      };
    }
    case 2: {
      const a = asArray(v, 5, 'name-commit');
      return { kind, pubkey: pk(a[1], 'pubkey'), commitment: asBytes(a[2], 'commitment', 32), fee: asUint(a[3], 'fee'), sig: sigOf(a[4]) };
    }
    case 3: {
      const a = asArray(v, 6, 'name-claim');
      return { kind, name: nameOf(a[1]), pubkey: pk(a[2], 'pubkey'), salt: asBytes(a[3], 'salt', 32), fee: asUint(a[4], 'fee'), sig: sigOf(a[5]) };
    }
    case 4: {
      const a = asArray(v, 6, 'name-renew');
      return { kind, name: nameOf(a[1]), pubkey: pk(a[2], 'pubkey'), nameSeq: asUint(a[3], 'nameSeq'), fee: asUint(a[4], 'fee'), sig: sigOf(a[5]) };
    }
    case 5: {
      const a = asArray(v, 8, 'name-transfer');
      return {
        kind,
        name: nameOf(a[1]),
        pubkey: pk(a[2], 'pubkey'),
        newOwner: pk(a[3], 'newOwner'),
        delegates: nodeList(a[4], 'delegates'),
        nameSeq: asUint(a[5], 'nameSeq'),
        fee: asUint(a[6], 'fee'),
        sig: sigOf(a[7]),
      };
    }
    case 6: {
      const a = asArray(v, 7, 'name-delegate');
      return { kind, name: nameOf(a[1]), pubkey: pk(a[2], 'pubkey'), nodes: nodeList(a[3], 'nodes'), nameSeq: asUint(a[4], 'nameSeq'), fee: asUint(a[5], 'fee'), sig: sigOf(a[6]) };
    }
    case 7: {
      const a = asArray(v, 9, 'binding');
      return {
        kind,
        name: nameOf(a[1]),
        node: asBytes(a[2], 'node', ADDRESS_BYTES),
        status: asUint(a[3], 'status', 1),
        expires: asUint(a[4], 'expires', 0xffffffff),
        seq: asUint(a[5], 'seq'),
        pubkey: pk(a[6], 'pubkey'),
        fee: asUint(a[7], 'fee'),
        sig: sigOf(a[8]),
      };
    }
    case 8: {
      const a = asArray(v, 7, 'transfer');
      return {
        kind,
        pubkey: pk(a[1], 'pubkey'),
        to: asBytes(a[2], 'to', ADDRESS_BYTES),
        amount: asUint(a[3], 'amount'),
        fee: asUint(a[4], 'fee'),
        nonce: asUint(a[5], 'nonce'),
        sig: sigOf(a[6]),
      };
    }
    case 9: {
      const a = asArray(v, 11, 'call-receipt');
      return {
        kind,
        callId: asBytes(a[1], 'callId', 32),
        orig: asBytes(a[2], 'orig', ADDRESS_BYTES),
        term: asBytes(a[3], 'term', ADDRESS_BYTES),
        answered: asUint(a[4], 'answered', 0xffffffff),
        ended: asUint(a[5], 'ended', 0xffffffff),
        pubkey: pk(a[6], 'pubkey'),
        termPubkey: pk(a[7], 'termPubkey'),
        fee: asUint(a[8], 'fee'),
        sig: sigOf(a[9]),
        termSig: asBytes(a[10], 'termSig', SIG_BYTES),
      };
    }
    case 10: {
      const a = asArray(v, 7, 'presence');
      const base = asUint(a[3], 'base', 0xffffffff);
      return {
        kind,
        pubkey: pk(a[1], 'pubkey'),
        seq: asUint(a[2], 'seq'),
        base,
        entries: unpackEntries(base, asBytes(a[4], 'entries', [1, MAX_RECORD_BYTES])),
        fee: asUint(a[5], 'fee'),
        sig: sigOf(a[6]),
      };
    }
    default:
      throw new EncodingError(`unknown record kind ${kind as number}`);
  }
}

/**
 * Decodes and id-stamps a record; encoding faults become a ValidationError with code bad-encoding.
 * Given `ids`, its id is written there at `at` and is a view of it (a block's ids share one array).
 */
export function decodeRec(bytes: Uint8Array, ids?: Uint8Array, at = 0): Rec {
  try {
    const body = decodeBody(bytes);
    if (ids === undefined) return { body, bytes, id: recordId(bytes) };
    taggedHashInto(RECORD_ID_TAG, bytes, ids, at);
    return { body, bytes, id: ids.subarray(at, at + 32) };
  } catch (e) {
    throw asValidationError(e);
  }
}

/** Maps an encoding fault to its consensus reason: non-canonical bytes and malformed ones differ. */
export function asValidationError(e: unknown): unknown {
  if (e instanceof NonCanonicalError) return new ValidationError('non-canonical', e.message);
  if (e instanceof EncodingError) return new ValidationError('bad-encoding', e.message);
  return e;
}

/** Context-free checks every signed record must pass: signature and value ranges. */
export function checkRecordSignature(network: string, body: RecordBody): void {
  if (body.kind === Kind.Coinbase) return;
  if (body.kind === Kind.Transfer && body.amount === 0) throw new ValidationError('bad-amount', 'transfer amount must be positive');
  const msg = signingMessage(body);
  const tag = sigTag(network, body.kind);
  if (!verifyTagged(body.pubkey, tag, msg, body.sig)) {
    throw new ValidationError('bad-signature', `${KIND_NAMES[body.kind]} signature does not verify`);
  }
  if (body.kind === Kind.CallReceipt) {
    if (!bytesEqual(addressOf(body.pubkey), body.orig) || !bytesEqual(addressOf(body.termPubkey), body.term)) {
      throw new ValidationError('bad-receipt', 'receipt keys do not belong to the nodes it names');
    }
    if (!verifyTagged(body.termPubkey, tag, msg, body.termSig)) {
      throw new ValidationError('bad-signature', 'call receipt lacks a valid signature of the terminating node');
    }
  }
}

export function commitmentOf(name: string, salt: Uint8Array, pubkey: Uint8Array): Uint8Array {
  return taggedHash('DOTS/name-commit', encode([name, salt, pubkey]));
}

export function idHex(r: Rec): string {
  return toHex(r.id);
}

/**
 * A JSON view of a record for the API and the CLI; `nameOfRef` turns a presence entry's name
 * number back into the name (from the chain state), when the caller has one.
 */
export function recordJson(body: RecordBody, nameOfRef?: (ref: number) => string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = { kind: KIND_NAMES[body.kind] };
  for (const [k, v] of Object.entries(body)) {
    if (k === 'kind') continue;
    if (body.kind === Kind.Presence && k === 'entries') {
      out.node = toHex(addressOf(body.pubkey));
      out.entries = body.entries.map((e) => ({ name: nameOfRef?.(e.ref) ?? null, ...e }));
      continue;
    }
    out[k] = v instanceof Uint8Array ? toHex(v) : Array.isArray(v) ? v.map((x: unknown) => (x instanceof Uint8Array ? toHex(x) : x)) : v;
  }
  return out;
}
