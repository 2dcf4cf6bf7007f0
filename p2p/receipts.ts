// The call-receipt exchange, /dots/receipt/3.0.0. After a call between two nodes ends, the
// originating node signs the receipt and asks the terminating node to countersign it; with both
// signatures it becomes a CallReceipt record, which the originator submits to its chain (and
// gossip spreads from there). See docs/routing.md.
//
// Wire: one request and one response per stream, each a single length-prefixed frame holding a
// canonical msgpack array. A request carries up to MAX_BATCH receipts between the same two
// nodes, so the parts they share are sent once:
//   request  [1, orig, term, origPubkey, termPubkey, [[callId, answered, ended, fee, origSig], ...]]
//   response [2, [termSig | [code, message], ...]]   one answer per receipt, in order
//            [0, code, message]                       the whole request refused
// Batches, because a stream per receipt cost the two nodes about 5 ms of CPU a receipt (a libp2p
// stream's noise frames, yamux, multistream negotiation and peer-store writes; `dots bench
// receipts`), which at a few hundred calls a second was more than the calls themselves.
// The terminating node countersigns only a call its own call log knows (`knowsCall`, supplied by
// the SIP side) and only after the originator's signature verifies, so it never vouches for a
// call it did not carry, and nobody but the originating node can start the exchange.
import './polyfill.ts';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { encode, decode, asArray, asBytes, asString, asUint, type Value } from '../core/encoding.ts';
import { DotsError, EncodingError } from '../core/errors.ts';
import { bytesEqual, toHex } from '../core/hash.ts';
import { addressOf } from '../core/address.ts';
import { publicKeyOf, verifyTagged, PUBKEY_BYTES, SIG_BYTES } from '../core/sig.ts';
import { Kind, makeRec, sigTag, signReceipt, signingMessage, type CallReceipt, type Rec } from '../core/records.ts';
import type { Mempool } from '../core/mempool.ts';
import type { NetworkParams } from '../consensus/params.ts';
import type { Logger } from '../core/log.ts';
import { PeerScores, TokenBucket, type Offence } from './score.ts';

export const RECEIPT_PROTOCOL = '/dots/receipt/3.0.0';
/** receipts in one request at most */
export const MAX_BATCH = 64;
/** A request of MAX_BATCH receipts is ~7.4 kB; anything much larger is not one. */
export const MAX_RECEIPT_REQUEST_BYTES = 12 * 1024;
/** MAX_BATCH answers, each at most a code and a message */
export const MAX_RECEIPT_RESPONSE_BYTES = 20 * 1024;
const MAX_CODE = 32;
const MAX_MESSAGE = 200;
const DEFAULT_TIMEOUT_MS = 10_000;
/** countersignatures remembered, so a retry after a lost answer gets the same one */
const MAX_REMEMBERED = 10_000;
/** requests on the wire to one node at once; receipts wait for one to end, and go in the next */
const REQUESTS_PER_PEER = 2;
/** receipts checked or signed between two turns of the event loop, so SIP is not kept waiting */
const CHUNK = 16;

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

/**
 * A request for `batch`: 1 to MAX_BATCH receipts with the same two nodes (their ids and keys are
 * sent once). Throws a ReceiptError 'bad-receipt' for a batch that is not that.
 */
export function encodeReceiptRequest(batch: readonly ProposedReceipt[]): Uint8Array {
  if (batch.length === 0 || batch.length > MAX_BATCH) throw new ReceiptError('bad-receipt', `a request carries 1 to ${MAX_BATCH} receipts`);
  const [f] = batch;
  for (const r of batch) {
    if (!bytesEqual(r.orig, f.orig) || !bytesEqual(r.term, f.term) || !bytesEqual(r.pubkey, f.pubkey) || !bytesEqual(r.termPubkey, f.termPubkey)) {
      throw new ReceiptError('bad-receipt', 'the receipts of one request name the same two nodes');
    }
  }
  return encode([T.request, f.orig, f.term, f.pubkey, f.termPubkey, batch.map((r) => [r.callId, r.answered, r.ended, r.fee, r.sig])]);
}

function malformed<X>(what: string, fn: () => X): X {
  try {
    return fn();
  } catch (e) {
    if (e instanceof EncodingError) throw new ReceiptError('malformed', `${what}: ${e.message}`);
    throw e;
  }
}

/** Decodes a request into its receipts; any shape, size or canonicality fault is a ReceiptError 'malformed'. */
export function decodeReceiptRequest(bytes: Uint8Array): ProposedReceipt[] {
  if (bytes.length > MAX_RECEIPT_REQUEST_BYTES) throw new ReceiptError('malformed', 'request too large');
  return malformed('receipt request', () => {
    const a = asArray(decode(bytes), 6, 'receipt request');
    if (asUint(a[0], 'type') !== T.request) throw new EncodingError('not a receipt request');
    const orig = asBytes(a[1], 'orig', 20);
    const term = asBytes(a[2], 'term', 20);
    const pubkey = asBytes(a[3], 'origPubkey', PUBKEY_BYTES);
    const termPubkey = asBytes(a[4], 'termPubkey', PUBKEY_BYTES);
    const items = asArray(a[5], [1, MAX_BATCH], 'receipts');
    return items.map((v, i): ProposedReceipt => {
      const x = asArray(v, 5, `receipt ${i}`);
      return {
        kind: Kind.CallReceipt,
        callId: asBytes(x[0], 'callId', 32),
        orig,
        term,
        answered: asUint(x[1], 'answered', 0xffffffff),
        ended: asUint(x[2], 'ended', 0xffffffff),
        pubkey,
        termPubkey,
        fee: asUint(x[3], 'fee'),
        sig: asBytes(x[4], 'sig', SIG_BYTES),
      };
    });
  });
}

/** The answer for one receipt of a request. */
export type ReceiptResult = { ok: true; termSig: Uint8Array } | { ok: false; code: string; message: string };
/** The answer to a request: one result per receipt, or the whole request refused. */
export type ReceiptResponse = { ok: true; results: ReceiptResult[] } | { ok: false; code: string; message: string };

export function encodeReceiptResponse(r: ReceiptResponse): Uint8Array {
  if (!r.ok) return encode([T.error, r.code.slice(0, MAX_CODE), r.message.slice(0, MAX_MESSAGE)]);
  return encode([T.countersign, r.results.map((x): Value => (x.ok ? x.termSig : [x.code.slice(0, MAX_CODE), x.message.slice(0, MAX_MESSAGE)]))]);
}

export function decodeReceiptResponse(bytes: Uint8Array): ReceiptResponse {
  if (bytes.length > MAX_RECEIPT_RESPONSE_BYTES) throw new ReceiptError('malformed', 'response too large');
  return malformed('receipt response', () => {
    const v = decode(bytes);
    if (!Array.isArray(v) || v.length === 0) throw new EncodingError('expected a non-empty array');
    const type = asUint(v[0], 'type');
    if (type === T.countersign) {
      const items = asArray(asArray(v, 2, 'countersign')[1], [1, MAX_BATCH], 'answers');
      return {
        ok: true,
        results: items.map((x, i): ReceiptResult => {
          if (x instanceof Uint8Array) return { ok: true, termSig: asBytes(x, `termSig ${i}`, SIG_BYTES) };
          const e = asArray(x, 2, `answer ${i}`);
          return { ok: false, code: asString(e[0], 'code', MAX_CODE), message: asString(e[1], 'message', MAX_MESSAGE) };
        }),
      };
    }
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
  /** receipts countersigned per peer: per second and burst (honest nodes ask once per call) */
  rate?: [number, number];
}

/** A receipt waiting to be sent, signed by this node, and who waits for its record. */
interface Outgoing {
  receipt: UnsignedReceipt;
  sig: Uint8Array;
  resolve: (rec: Rec) => void;
  reject: (e: ReceiptError) => void;
}

/** The receipts waiting for one terminating node (one dial target). */
interface Outbox {
  target: PeerId | Multiaddr;
  queue: Outgoing[];
  inFlight: number;
  /** a send is due at the next turn of the event loop */
  scheduled: boolean;
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
  /** dial target -> the receipts waiting for it */
  private readonly outboxes = new Map<string, Outbox>();
  knowsCall: (r: UnsignedReceipt) => boolean | Promise<boolean>;
  /** counters for metrics and tests: requests and receipts sent (originating) and served (terminating) */
  readonly stats = { requestsSent: 0, receiptsSent: 0, requestsServed: 0, receiptsServed: 0 };

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
    // what was waiting for a request is not sent now
    for (const box of this.outboxes.values()) for (const x of box.queue.splice(0)) x.reject(new ReceiptError('internal', 'the receipt exchange stopped'));
    this.outboxes.clear();
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

  private bucket(id: string): TokenBucket {
    let b = this.buckets.get(id);
    if (b === undefined) {
      const [rate, burst] = this.o.rate ?? [500, 2000];
      b = new TokenBucket(rate, burst);
      this.buckets.set(id, b);
      if (this.buckets.size > 10_000) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    return b;
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
      } else if (!this.bucket(id).take(1)) {
        // Refused before anything is read or verified, so it costs us nothing; an honest node
        // with a burst of calls ends up here too, and retries later: no charge.
        res = RATE_LIMITED;
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

  /**
   * Checks a request's receipts and countersigns each it can, saying for each that it cannot why
   * not (charging the peer for garbage). One token of the peer's rate was taken before reading;
   * the rest of the batch's are taken here.
   */
  async answer(peer: string, bytes: Uint8Array): Promise<ReceiptResponse> {
    let batch: ProposedReceipt[];
    try {
      batch = decodeReceiptRequest(bytes);
    } catch (e) {
      if (!(e instanceof ReceiptError)) throw e;
      this.penalize(peer, 'malformed', e.message);
      return told(e);
    }
    if (batch.length > 1 && !this.bucket(peer).take(batch.length - 1)) return RATE_LIMITED;
    this.stats.requestsServed++;
    this.stats.receiptsServed += batch.length;
    const results: ReceiptResult[] = [];
    for (let i = 0; i < batch.length; i++) {
      if (i > 0 && i % CHUNK === 0) await nextTurn();
      results.push(await this.answerOne(peer, batch[i]));
    }
    return { ok: true, results };
  }

  private async answerOne(peer: string, r: ProposedReceipt): Promise<ReceiptResult> {
    try {
      return { ok: true, termSig: await this.countersign(r) };
    } catch (e) {
      if (!(e instanceof ReceiptError)) {
        this.o.log.warn(`receipts: countersigning failed: ${(e as Error).message}`);
        return { ok: false, code: 'internal', message: 'could not check the receipt' };
      }
      // Forged signatures and inconsistent receipts cost score; a call we do not know may be an
      // honest race (our log lost it, the clocks differ), so it costs only the rate limit.
      if (e.code === 'bad-signature' || e.code === 'bad-receipt') this.penalize(peer, 'invalidRecord', e.message);
      return told(e);
    }
  }

  private async countersign(r: ProposedReceipt): Promise<Uint8Array> {
    if (!bytesEqual(r.term, this.nodeId) || !bytesEqual(r.termPubkey, this.pub)) throw new ReceiptError('not-for-us', 'the receipt names another terminating node');
    checkShape(r, this.o.params.maxCallSeconds);
    const key = toHex(r.callId);
    const prev = this.signed.get(key);
    const unsigned: UnsignedReceipt = { kind: r.kind, callId: r.callId, orig: r.orig, term: r.term, answered: r.answered, ended: r.ended, pubkey: r.pubkey, termPubkey: r.termPubkey, fee: r.fee };
    // A call this node did not carry for the node named is refused before its signature is
    // checked: a stranger's made-up calls cost a lookup, not a verification.
    if (prev === undefined && !(await this.knowsCall(unsigned))) throw new ReceiptError('unknown-call', 'this node has no record of that call');
    const msg = messageOf(r);
    if (!verifyTagged(r.pubkey, sigTag(this.network, Kind.CallReceipt), msg, r.sig)) throw new ReceiptError('bad-signature', 'the originating node signature does not verify');
    if (prev !== undefined) {
      // A retry after a lost answer gets the same countersignature; another version of the call never does.
      if (prev.msg === toHex(msg)) return prev.termSig;
      throw new ReceiptError('conflict', 'this call was countersigned with other details');
    }
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
   *
   * Receipts for the same peer go together: what is asked in one turn of the event loop goes in
   * one request, and while REQUESTS_PER_PEER requests are on the wire the next ones wait and
   * go together (up to MAX_BATCH a request) as soon as one ends. A quiet node asks at once; a
   * busy one sends fewer, larger requests.
   */
  requestCountersign(peer: PeerId | Multiaddr, receipt: UnsignedReceipt): Promise<Rec> {
    if (this.node === undefined) return Promise.reject(new ReceiptError('internal', 'the receipt exchange is not started'));
    if (!bytesEqual(receipt.orig, this.nodeId) || !bytesEqual(receipt.pubkey, this.pub)) return Promise.reject(new ReceiptError('bad-receipt', "this node is not the receipt's originating node"));
    try {
      checkShape(receipt, this.o.params.maxCallSeconds);
    } catch (e) {
      return Promise.reject(e as Error);
    }
    const sig = signReceipt(this.network, this.o.secret, receipt);
    const key = peer.toString();
    let box = this.outboxes.get(key);
    if (box === undefined) {
      box = { target: peer, queue: [], inFlight: 0, scheduled: false };
      this.outboxes.set(key, box);
    }
    const b = box;
    return new Promise<Rec>((resolve, reject) => {
      b.queue.push({ receipt, sig, resolve, reject });
      if (!b.scheduled && b.inFlight < REQUESTS_PER_PEER) {
        b.scheduled = true;
        setImmediate(() => this.pump(key, b));
      }
    });
  }

  /** Sends what waits for a target, up to REQUESTS_PER_PEER requests at once. */
  private pump(key: string, box: Outbox): void {
    box.scheduled = false;
    while (box.inFlight < REQUESTS_PER_PEER && box.queue.length > 0) {
      const batch = box.queue.splice(0, MAX_BATCH);
      box.inFlight++;
      void this.send(box.target, batch).finally(() => {
        box.inFlight--;
        if (box.queue.length > 0) this.pump(key, box);
        else if (box.inFlight === 0 && this.outboxes.get(key) === box) this.outboxes.delete(key);
      });
    }
  }

  /** One request: settles every receipt of `batch` (never rejects itself). */
  private async send(peer: PeerId | Multiaddr, batch: Outgoing[]): Promise<void> {
    const node = this.node;
    const failAll = (e: ReceiptError): void => {
      for (const x of batch) x.reject(e);
    };
    if (node === undefined) return failAll(new ReceiptError('internal', 'the receipt exchange is not started'));
    const signal = AbortSignal.timeout(this.timeoutMs);
    let stream: Stream | undefined;
    let res: ReceiptResponse;
    const remote = peerIdOf(peer);
    try {
      this.stats.requestsSent++;
      this.stats.receiptsSent += batch.length;
      stream = await node.dialProtocol(peer, RECEIPT_PROTOCOL, { signal });
      const lp = this.lpStream(stream, { maxDataLength: MAX_RECEIPT_RESPONSE_BYTES });
      await lp.write(encodeReceiptRequest(batch.map((x) => ({ ...x.receipt, sig: x.sig }))), { signal });
      const buf = await lp.read({ signal });
      void stream.close().catch(() => undefined);
      res = decodeReceiptResponse(buf.subarray());
      if (res.ok && res.results.length !== batch.length) throw new ReceiptError('malformed', `${res.results.length} answers to ${batch.length} receipts`);
    } catch (e) {
      stream?.abort(e as Error);
      if (e instanceof ReceiptError) {
        if (remote !== undefined) this.penalize(remote, 'malformed', `receipt response: ${e.message}`);
        return failAll(e);
      }
      if (signal.aborted) {
        if (remote !== undefined) this.penalize(remote, 'timeout', 'receipt request timed out');
        return failAll(new ReceiptError('timeout', `no answer within ${this.timeoutMs} ms`));
      }
      return failAll(new ReceiptError(stream === undefined ? 'unreachable' : 'malformed', String((e as Error | undefined)?.message ?? e).split('\n')[0]));
    }
    if (!res.ok) return failAll(refusal(res));
    const tag = sigTag(this.network, Kind.CallReceipt);
    let forged = 0;
    for (let i = 0; i < batch.length; i++) {
      if (i > 0 && i % CHUNK === 0) await nextTurn();
      const { receipt, sig, resolve, reject } = batch[i];
      const r = res.results[i];
      if (!r.ok) {
        reject(refusal(r));
        continue;
      }
      // our own signature was just made and the keys were checked (checkShape): the
      // countersignature is the one left to verify, once, here rather than again in the pool
      if (!verifyTagged(receipt.termPubkey, tag, messageOf(receipt), r.termSig)) {
        forged++;
        reject(new ReceiptError('bad-signature', "the terminating node's countersignature does not verify (call receipt lacks a valid signature of the terminating node)"));
        continue;
      }
      const rec = makeRec({ ...receipt, sig, termSig: r.termSig });
      this.o.pool.signaturesChecked(rec.id);
      resolve(rec);
    }
    if (forged > 0 && remote !== undefined) this.penalize(remote, 'invalidRecord', `${forged} countersignatures do not verify`);
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

/** A ReceiptError raised here, as the refusal the other node is sent (its code, and the message without it). */
function told(e: ReceiptError): { ok: false; code: ReceiptCode; message: string } {
  return { ok: false, code: e.code, message: e.message.slice(e.code.length + 2) };
}

/** The answer to a peer over its rate: refused before anything is verified, and not charged. */
const RATE_LIMITED = { ok: false, code: 'rate-limited', message: 'too many receipt requests' } as const;

/** A refusal the other node sent, as the error raised here (a code we do not know is `refused`). */
function refusal(r: { code: string; message: string }): ReceiptError {
  return new ReceiptError(isCode(r.code) ? r.code : 'refused', r.message);
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
