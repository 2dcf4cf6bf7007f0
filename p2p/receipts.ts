// The call-receipt exchange, /dots/receipt/2.0.0. After a call between two nodes ends, the
// originating node signs the receipt and asks the terminating node to countersign it; with both
// signatures it becomes a CallReceipt record, which the originator submits to its chain (and
// gossip spreads from there). See docs/routing.md.
//
// Wire: one request and one response per stream, each a single length-prefixed frame holding a
// canonical msgpack array.
//   request  [1, callId, orig, term, answered, ended, origPubkey, termPubkey, fee, origSig]
//   response [2, termSig] | [0, code, message]
// The terminating node countersigns only a call its own call log knows (`knowsCall`, supplied by
// the SIP side) and only after the originator's signature verifies, so it never vouches for a
// call it did not carry, and nobody but the originating node can start the exchange.
import './polyfill.ts';
import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { encode, decode, asArray, asBytes, asString, asUint } from '../core/encoding.ts';
import { DotsError, EncodingError } from '../core/errors.ts';
import { bytesEqual, toHex } from '../core/hash.ts';
import { addressOf } from '../core/address.ts';
import { publicKeyOf, verifyTagged, PUBKEY_BYTES, SIG_BYTES } from '../core/sig.ts';
import { Kind, makeRec, sigTag, signReceipt, signingMessage, type CallReceipt, type Rec } from '../core/records.ts';
import type { Mempool } from '../core/mempool.ts';
import type { NetworkParams } from '../consensus/params.ts';
import type { Logger } from '../core/log.ts';
import { PeerScores, TokenBucket, type Offence } from './score.ts';

export const RECEIPT_PROTOCOL = '/dots/receipt/2.0.0';
/** A request is ~270 bytes; anything much larger is not one. */
export const MAX_RECEIPT_REQUEST_BYTES = 512;
export const MAX_RECEIPT_RESPONSE_BYTES = 512;
const MAX_CODE = 32;
const MAX_MESSAGE = 200;
const DEFAULT_TIMEOUT_MS = 10_000;
/** countersignatures remembered, so a retry after a lost answer gets the same one */
const MAX_REMEMBERED = 10_000;

/** A receipt before either node signed it. */
export type UnsignedReceipt = Omit<CallReceipt, 'sig' | 'termSig'>;
/** What the terminating node is asked to countersign: the receipt and the originator's signature. */
export type ProposedReceipt = UnsignedReceipt & { sig: Uint8Array };

/** Why a countersignature was not obtained or not given (codes are stable, on the wire). */
export type ReceiptCode =
  | 'malformed'
  | 'bad-signature'
  | 'bad-receipt'
  | 'not-for-us'
  | 'unknown-call'
  | 'conflict'
  | 'rate-limited'
  | 'internal'
  | 'unreachable'
  | 'timeout'
  | 'refused';

export class ReceiptError extends DotsError {
  override name = 'ReceiptError';
  constructor(
    readonly code: ReceiptCode,
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

const T = { error: 0, request: 1, countersign: 2 } as const;

export function encodeReceiptRequest(r: ProposedReceipt): Uint8Array {
  return encode([T.request, r.callId, r.orig, r.term, r.answered, r.ended, r.pubkey, r.termPubkey, r.fee, r.sig]);
}

function malformed<X>(what: string, fn: () => X): X {
  try {
    return fn();
  } catch (e) {
    if (e instanceof EncodingError) throw new ReceiptError('malformed', `${what}: ${e.message}`);
    throw e;
  }
}

/** Decodes a request; any shape, size or canonicality fault is a ReceiptError 'malformed'. */
export function decodeReceiptRequest(bytes: Uint8Array): ProposedReceipt {
  if (bytes.length > MAX_RECEIPT_REQUEST_BYTES) throw new ReceiptError('malformed', 'request too large');
  return malformed('receipt request', () => {
    const a = asArray(decode(bytes), 10, 'receipt request');
    if (asUint(a[0], 'type') !== T.request) throw new EncodingError('not a receipt request');
    return {
      kind: Kind.CallReceipt,
      callId: asBytes(a[1], 'callId', 32),
      orig: asBytes(a[2], 'orig', 20),
      term: asBytes(a[3], 'term', 20),
      answered: asUint(a[4], 'answered', 0xffffffff),
      ended: asUint(a[5], 'ended', 0xffffffff),
      pubkey: asBytes(a[6], 'pubkey', PUBKEY_BYTES),
      termPubkey: asBytes(a[7], 'termPubkey', PUBKEY_BYTES),
      fee: asUint(a[8], 'fee'),
      sig: asBytes(a[9], 'sig', SIG_BYTES),
    };
  });
}

export type ReceiptResponse = { ok: true; termSig: Uint8Array } | { ok: false; code: string; message: string };

export function encodeReceiptResponse(r: ReceiptResponse): Uint8Array {
  return r.ok ? encode([T.countersign, r.termSig]) : encode([T.error, r.code.slice(0, MAX_CODE), r.message.slice(0, MAX_MESSAGE)]);
}

export function decodeReceiptResponse(bytes: Uint8Array): ReceiptResponse {
  if (bytes.length > MAX_RECEIPT_RESPONSE_BYTES) throw new ReceiptError('malformed', 'response too large');
  return malformed('receipt response', () => {
    const v = decode(bytes);
    if (!Array.isArray(v) || v.length === 0) throw new EncodingError('expected a non-empty array');
    const type = asUint(v[0], 'type');
    if (type === T.countersign) return { ok: true, termSig: asBytes(asArray(v, 2, 'countersign')[1], 'termSig', SIG_BYTES) };
    if (type === T.error) {
      const a = asArray(v, 3, 'error');
      return { ok: false, code: asString(a[1], 'code', MAX_CODE), message: asString(a[2], 'message', MAX_MESSAGE) };
    }
    throw new EncodingError(`unknown response type ${type}`);
  });
}

function messageOf(r: UnsignedReceipt): Uint8Array {
  return signingMessage({ ...r, sig: new Uint8Array(0), termSig: new Uint8Array(0) });
}

/** The parts of a receipt checkable without the chain: the same rules the chain applies later. */
function checkShape(r: UnsignedReceipt, maxCallSeconds: number): void {
  if (!bytesEqual(addressOf(r.pubkey), r.orig) || !bytesEqual(addressOf(r.termPubkey), r.term)) {
    throw new ReceiptError('bad-receipt', 'receipt keys do not belong to the nodes it names');
  }
  if (bytesEqual(r.orig, r.term)) throw new ReceiptError('bad-receipt', 'a receipt needs two different nodes');
  if (r.ended <= r.answered || r.ended - r.answered > maxCallSeconds) throw new ReceiptError('bad-receipt', `call duration must be 1..${maxCallSeconds} seconds`);
}

export interface ReceiptExchangeOptions {
  params: NetworkParams;
  /** where a settled receipt goes (the pending pool, which gossip spreads from), and what it need not verify again */
  pool: Pick<Mempool, 'add' | 'signaturesChecked'>;
  /** this node's key (its node id is the address of its public key) */
  secret: Uint8Array;
  log: Logger;
  /**
   * Whether this node carried the call the receipt describes (as the terminating node), with
   * these times: the SIP side's call log decides. Until it is set, every request is refused.
   */
  knowsCall?: (r: UnsignedReceipt) => boolean | Promise<boolean>;
  /**
   * Charges a peer that sent garbage: pass `P2PNetwork.penalize` to share the node's scores and
   * bans. Without it the exchange keeps scores of its own and hangs up on peers it bans.
   */
  penalize?: (peerId: string, offence: Offence, why: string) => void;
  timeoutMs?: number;
  /** requests served per peer: per second and burst (honest nodes send one per call) */
  rate?: [number, number];
}

export class ReceiptExchange {
  private node?: Libp2p;
  private lpStream!: typeof import('@libp2p/utils').lpStream;
  private readonly pub: Uint8Array;
  readonly nodeId: Uint8Array;
  private readonly network: string;
  private readonly timeoutMs: number;
  private readonly scores = new PeerScores();
  private readonly buckets = new Map<string, TokenBucket>();
  /** callId hex -> [signing message hex, termSig]: what we countersigned */
  private readonly signed = new Map<string, { msg: string; termSig: Uint8Array }>();
  knowsCall: (r: UnsignedReceipt) => boolean | Promise<boolean>;

  constructor(private readonly o: ReceiptExchangeOptions) {
    this.pub = publicKeyOf(o.secret);
    this.nodeId = addressOf(this.pub);
    this.network = o.params.name;
    this.timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.knowsCall = o.knowsCall ?? ((): boolean => false);
  }

  async start(node: Libp2p): Promise<void> {
    // Loaded after the polyfill (imported above), like every libp2p module (see p2p/network.ts).
    this.lpStream = (await import('@libp2p/utils')).lpStream;
    this.node = node;
    await node.handle(RECEIPT_PROTOCOL, (stream, conn) => this.serve(stream, conn), { maxInboundStreams: 8, maxOutboundStreams: 8 });
  }

  async stop(): Promise<void> {
    await this.node?.unhandle(RECEIPT_PROTOCOL);
    this.node = undefined;
  }

  private penalize(id: string, offence: Offence, why: string): void {
    this.o.log.debug(`receipts: peer ${id.slice(-8)} ${offence}: ${why}`);
    if (this.o.penalize !== undefined) {
      this.o.penalize(id, offence, why);
      return;
    }
    if (this.scores.penalize(id, offence)) {
      this.o.log.warn(`receipts: disconnected peer ${id.slice(-8)}: ${why}`);
      for (const c of this.node?.getConnections() ?? []) if (c.remotePeer.toString() === id) void c.close().catch(() => c.abort(new Error('banned')));
    }
  }

  private take(id: string): boolean {
    let b = this.buckets.get(id);
    if (b === undefined) {
      const [rate, burst] = this.o.rate ?? [500, 2000];
      b = new TokenBucket(rate, burst);
      this.buckets.set(id, b);
      if (this.buckets.size > 10_000) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    return b.take();
  }

  // ---- terminating side ----------------------------------------------------------------------

  private async serve(stream: Stream, conn: Connection): Promise<void> {
    const id = conn.remotePeer.toString();
    const lp = this.lpStream(stream, { maxDataLength: MAX_RECEIPT_REQUEST_BYTES });
    const signal = AbortSignal.timeout(this.timeoutMs);
    try {
      let res: ReceiptResponse;
      if (this.o.penalize === undefined && this.scores.isBanned(id)) {
        res = { ok: false, code: 'refused', message: 'banned' };
      } else if (!this.take(id)) {
        // Refused before anything is read or verified, so it costs us nothing; an honest node
        // with a burst of calls ends up here too, and retries later: no charge.
        res = { ok: false, code: 'rate-limited', message: 'too many receipt requests' };
      } else {
        const buf = await lp.read({ signal });
        res = await this.answer(id, buf.subarray());
      }
      await lp.write(encodeReceiptResponse(res), { signal });
      await stream.close({ signal });
    } catch (e) {
      stream.abort(e as Error);
      const name = (e as Error).name;
      if (name === 'InvalidDataLengthError' || name === 'InvalidDataLengthLengthError' || name === 'InvalidMessageLengthError') this.penalize(id, 'oversize', 'receipt request too large');
      else if (signal.aborted) this.penalize(id, 'timeout', 'receipt request not sent in time');
      else this.o.log.debug(`receipts: serving ${id.slice(-8)} failed: ${(e as Error).message}`);
    }
  }

  /** Checks a request and countersigns it, or says why not (charging the peer for garbage). */
  async answer(peer: string, bytes: Uint8Array): Promise<ReceiptResponse> {
    try {
      const termSig = await this.countersign(decodeReceiptRequest(bytes));
      return { ok: true, termSig };
    } catch (e) {
      if (!(e instanceof ReceiptError)) {
        this.o.log.warn(`receipts: countersigning failed: ${(e as Error).message}`);
        return { ok: false, code: 'internal', message: 'could not check the receipt' };
      }
      // Garbage and forged signatures cost score; a call we do not know may be an honest race
      // (our log lost it, the clocks differ), so it only costs the rate limit.
      if (e.code === 'malformed') this.penalize(peer, 'malformed', e.message);
      else if (e.code === 'bad-signature' || e.code === 'bad-receipt') this.penalize(peer, 'invalidRecord', e.message);
      return { ok: false, code: e.code, message: e.message.slice(e.code.length + 2) };
    }
  }

  private async countersign(r: ProposedReceipt): Promise<Uint8Array> {
    if (!bytesEqual(r.term, this.nodeId) || !bytesEqual(r.termPubkey, this.pub)) throw new ReceiptError('not-for-us', 'the receipt names another terminating node');
    checkShape(r, this.o.params.maxCallSeconds);
    const msg = messageOf(r);
    if (!verifyTagged(r.pubkey, sigTag(this.network, Kind.CallReceipt), msg, r.sig)) throw new ReceiptError('bad-signature', 'the originating node signature does not verify');
    const key = toHex(r.callId);
    const prev = this.signed.get(key);
    if (prev !== undefined) {
      // A retry after a lost answer gets the same countersignature; another version of the call never does.
      if (prev.msg === toHex(msg)) return prev.termSig;
      throw new ReceiptError('conflict', 'this call was countersigned with other details');
    }
    const unsigned: UnsignedReceipt = { kind: r.kind, callId: r.callId, orig: r.orig, term: r.term, answered: r.answered, ended: r.ended, pubkey: r.pubkey, termPubkey: r.termPubkey, fee: r.fee };
    if (!(await this.knowsCall(unsigned))) throw new ReceiptError('unknown-call', 'this node has no record of that call');
    const termSig = signReceipt(this.network, this.o.secret, unsigned);
    // the record the originating node will make and gossip: its signature checked above, ours
    // just made, its keys checked (checkShape), so this node's pool does not check them again
    this.o.pool.signaturesChecked(makeRec({ ...unsigned, sig: r.sig, termSig }).id);
    this.signed.set(key, { msg: toHex(msg), termSig });
    if (this.signed.size > MAX_REMEMBERED) this.signed.delete(this.signed.keys().next().value as string);
    return termSig;
  }

  // ---- originating side ----------------------------------------------------------------------

  /**
   * Signs `receipt` as its originating node, has the terminating node (`peer`) countersign it,
   * and returns the complete record, checked exactly as the chain checks signatures. Throws a
   * ReceiptError saying why when there is no valid countersignature.
   */
  async requestCountersign(peer: PeerId | Multiaddr, receipt: UnsignedReceipt): Promise<Rec> {
    const node = this.node;
    if (node === undefined) throw new ReceiptError('internal', 'the receipt exchange is not started');
    if (!bytesEqual(receipt.orig, this.nodeId) || !bytesEqual(receipt.pubkey, this.pub)) throw new ReceiptError('bad-receipt', 'this node is not the receipt\'s originating node');
    checkShape(receipt, this.o.params.maxCallSeconds);
    const sig = signReceipt(this.network, this.o.secret, receipt);
    const signal = AbortSignal.timeout(this.timeoutMs);
    let stream: Stream | undefined;
    let res: ReceiptResponse;
    try {
      stream = await node.dialProtocol(peer, RECEIPT_PROTOCOL, { signal });
      const lp = this.lpStream(stream, { maxDataLength: MAX_RECEIPT_RESPONSE_BYTES });
      await lp.write(encodeReceiptRequest({ ...receipt, sig }), { signal });
      const buf = await lp.read({ signal });
      void stream.close().catch(() => undefined);
      res = decodeReceiptResponse(buf.subarray());
    } catch (e) {
      stream?.abort(e as Error);
      const remote = peerIdOf(peer);
      if (e instanceof ReceiptError) {
        if (remote !== undefined) this.penalize(remote, 'malformed', `receipt response: ${e.message}`);
        throw e;
      }
      if (signal.aborted) {
        if (remote !== undefined) this.penalize(remote, 'timeout', 'receipt request timed out');
        throw new ReceiptError('timeout', `no answer within ${this.timeoutMs} ms`);
      }
      throw new ReceiptError(stream === undefined ? 'unreachable' : 'malformed', String((e as Error | undefined)?.message ?? e).split('\n')[0]);
    }
    if (!res.ok) throw new ReceiptError(isCode(res.code) ? res.code : 'refused', res.message);
    const rec = makeRec({ ...receipt, sig, termSig: res.termSig });
    // our own signature was just made and the keys were checked (checkShape): the countersignature
    // is the one left to verify, once, here rather than again in the pool
    if (!verifyTagged(receipt.termPubkey, sigTag(this.network, Kind.CallReceipt), messageOf(receipt), res.termSig)) {
      const who = peerIdOf(peer);
      if (who !== undefined) this.penalize(who, 'invalidRecord', 'countersignature does not verify');
      throw new ReceiptError('bad-signature', "the terminating node's countersignature does not verify (call receipt lacks a valid signature of the terminating node)");
    }
    this.o.pool.signaturesChecked(rec.id);
    return rec;
  }

  /** requestCountersign, then adds the record to the pending pool (which gossips it); the pool's refusals throw ValidationError. */
  async settle(peer: PeerId | Multiaddr, receipt: UnsignedReceipt): Promise<Rec> {
    const rec = await this.requestCountersign(peer, receipt);
    this.o.pool.add(rec);
    return rec;
  }
}

const CODES = new Set<string>(['malformed', 'bad-signature', 'bad-receipt', 'not-for-us', 'unknown-call', 'conflict', 'rate-limited', 'internal', 'refused']);
function isCode(c: string): c is ReceiptCode {
  return CODES.has(c);
}

/**
 * A node's announced p2p addresses as dial targets, those naming its peer id first (the
 * connection then proves who answers). What does not parse is skipped: an announcement may carry
 * garbage, and that only costs its author the calls.
 */
export function dialTargets(addrs: readonly string[]): Multiaddr[] {
  const withId: Multiaddr[] = [];
  const bare: Multiaddr[] = [];
  for (const s of addrs) {
    let a: Multiaddr;
    try {
      a = multiaddr(s);
    } catch {
      continue;
    }
    (a.getComponents().some((c) => c.name === 'p2p') ? withId : bare).push(a);
  }
  return [...withId, ...bare];
}

/** The peer id a dial target names, if it names one (a multiaddr may end without /p2p/). */
function peerIdOf(peer: PeerId | Multiaddr): string | undefined {
  if ('getComponents' in peer) return peer.getComponents().find((c) => c.name === 'p2p')?.value;
  return peer.toString();
}
