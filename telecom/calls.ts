// Calls that crossed two nodes, as the SIP proxy reports them when they end: what the call
// receipts (docs/receipts.md) are built from. The CallLog below remembers the calls this node
// terminated (so it countersigns only those) and receipts the calls it originated, through the
// receipt exchange (p2p/receipts.ts, docs/routing.md).

import type { Multiaddr } from '@multiformats/multiaddr';
import { ReceiptError, dialTargets, type ReceiptExchange, type UnsignedReceipt } from '../p2p/receipts.ts';
import { bytesEqual, taggedHash, toHex } from '../core/hash.ts';
import { addressOf } from '../core/address.ts';
import { publicKeyOf } from '../core/sig.ts';
import { Kind, receiptFee } from '../core/records.ts';
import { getNode, keys } from '../core/state.ts';
import { nodeAddresses, routingSource, type PendingRecords, type RoutingSource } from './routing.ts';
import { ValidationError } from '../core/errors.ts';
import type { Chain } from '../consensus/chain.ts';
import type { Logger } from '../core/log.ts';
import type { CallEnd } from '../sip/proxy.ts';

export type { CallEnd };

// ---- the call log and the receipts it drives ---------------------------------------------------

const utf8 = new TextEncoder();

/**
 * The receipt's 32-byte callId: a tagged hash of the SIP dialog. Each part is length-prefixed
 * (4 bytes, big-endian) so no two different dialogs hash the same bytes ('ab','c' vs 'a','bc').
 * Both nodes of a call see the same Call-ID and tags, so both compute the same id.
 */
export function dialogHash(callId: string, fromTag: string, toTag: string): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of [callId, fromTag, toTag]) {
    const b = utf8.encode(s);
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, b.length);
    parts.push(len, b);
  }
  return taggedHash('DOTS/call-id', ...parts);
}

/** What became of one originated call's receipt (for logs, metrics and tests). */
export type ReceiptOutcome =
  | { status: 'receipted'; callId: Uint8Array; recordId: Uint8Array }
  /** never asked: the chain would refuse it, or there is nobody to ask */
  | { status: 'skipped'; callId: Uint8Array; reason: SkipReason }
  /** asked and refused, unreachable after every retry, or refused by our own chain */
  | { status: 'failed'; callId: Uint8Array; code: string; message: string };

export type SkipReason = 'no-peer' | 'self' | 'duration' | 'not-announced' | 'peer-not-announced' | 'no-address' | 'duplicate' | 'busy' | 'stopped';

export interface CallLogOptions {
  chain: Chain;
  /** the pending records, which routing reads with the chain (a node that moved announces its new address) */
  pool: PendingRecords;
  /** this node's key: its node id is the address of its public key */
  secret: Uint8Array;
  log: Logger;
  /** the exchange to settle through; the call log becomes its `knowsCall` */
  exchange: Pick<ReceiptExchange, 'settle' | 'knowsCall'>;
  /** terminated calls remembered (default 100,000; the oldest go first) */
  maxCalls?: number;
  /** how long a terminated call is remembered, ms (default 6 h) */
  maxAgeMs?: number;
  /** how far apart the two nodes' answer and end times may be, seconds (default 2) */
  toleranceSeconds?: number;
  /** waits before each retry of an unreachable or busy peer, ms (default 5 s, 30 s, 2 min) */
  retryDelaysMs?: number[];
  /** receipts being settled at once; more calls ending meanwhile are skipped (default 1,000) */
  maxInFlight?: number;
  /**
   * receipts started per second at most (default 100). Every receipt is a record that gossip
   * carries to every node and a block must hold: the peers take 500 records a second from one
   * node before they count it as a flood (p2p/score.ts), and a mainnet block (1 MB a minute)
   * holds about 55 receipts a second for the whole network. The receipts of a quarter second
   * go to the exchange together, so they travel in one request.
   */
  maxPerSecond?: number;
  onOutcome?: (o: ReceiptOutcome) => void;
  /** units per byte the receipts pay their miners (default: the network's least, minFeeRate) */
  feeRate?: number;
  /**
   * how long after a terminated call its receipt must be on the chain, ms (default 15 min: the
   * originating node's retries take under 3 minutes, and miners a few blocks)
   */
  settleGraceMs?: number;
  /** calls a node may leave unsettled past the grace before this node refuses its calls (default 5) */
  maxUnsettled?: number;
  /** the clock, ms (tests) */
  now?: () => number;
}

interface LoggedCall {
  answered: number;
  ended: number;
  peer: Uint8Array | null;
  /** when it was logged, ms */
  at: number;
}

/**
 * Codes worth asking again: the peer may come back, or it was only busy; and `unknown-call`,
 * because the two nodes log a call when the BYE's 200 passes each of them, so when the callee
 * hangs up the originating node may ask a moment before the other has logged it.
 */
const RETRYABLE = new Set(['unreachable', 'timeout', 'rate-limited', 'internal', 'unknown-call']);

/** paced receipts start on these boundaries, ms: those of one tick go in one request */
const PACE_TICK_MS = 250;

/**
 * The node's memory of calls that crossed to another node, and the receipts they earn.
 *
 * - A call this node terminated is remembered for a while, so that when the originating node asks
 *   for a countersignature, `knowsCall` can say whether this node really carried that call.
 * - A call this node originated is receipted: the receipt is built from the chain (both keys
 *   come from the nodes' announcements), the terminating node is asked to countersign it over
 *   the receipt exchange, and the record goes to the chain.
 *
 * `callEnded` never throws and never waits: the proxy calls it from its BYE handling.
 */
export class CallLog {
  private readonly chain: Chain;
  private readonly routing: RoutingSource;
  private readonly log: Logger;
  private readonly pub: Uint8Array;
  readonly nodeId: Uint8Array;
  private readonly maxCalls: number;
  private readonly maxAgeMs: number;
  private readonly tolerance: number;
  private readonly retryDelaysMs: number[];
  private readonly maxInFlight: number;
  private readonly spacingMs: number;
  private readonly feeRate: number;
  /** the node was told once that its receipts go unpaid for want of coins */
  private warnedUnpaid = false;
  private nextStartAt = 0;
  /** paced receipts waiting, by the tick they start at */
  private readonly ticks = new Map<number, Array<(go: boolean) => void>>();
  private readonly now: () => number;
  /** dialog hash hex -> terminated call, oldest first (Map keeps insertion order) */
  private readonly terminated = new Map<string, LoggedCall>();
  /** terminated calls from proven nodes whose settlement is looked for when their grace ends, oldest first */
  private dues: Array<{ callId: Uint8Array; peer: string; due: number; at: number }> = [];
  /** the first due not yet looked at (the array is compacted now and then, not shifted per call) */
  private duesHead = 0;
  /** node id hex -> calls it left unsettled past their grace (dialog hash, logged at), oldest first */
  private readonly owed = new Map<string, Array<{ callId: Uint8Array; at: number }>>();
  private readonly settleGraceMs: number;
  private readonly maxUnsettled: number;
  /** dialog hashes of originated calls being settled: one attempt per call */
  private readonly settling = new Set<string>();
  private readonly timers = new Set<{ timer: NodeJS.Timeout; wake: () => void }>();
  private stopped = false;

  constructor(private readonly o: CallLogOptions) {
    this.chain = o.chain;
    this.routing = routingSource(o.chain, o.pool);
    this.log = o.log;
    this.pub = publicKeyOf(o.secret);
    this.nodeId = addressOf(this.pub);
    this.maxCalls = o.maxCalls ?? 100_000;
    this.maxAgeMs = o.maxAgeMs ?? 6 * 3600_000;
    this.tolerance = o.toleranceSeconds ?? 2;
    this.retryDelaysMs = o.retryDelaysMs ?? [5_000, 30_000, 120_000];
    this.maxInFlight = o.maxInFlight ?? 1_000;
    this.spacingMs = 1000 / (o.maxPerSecond ?? 100);
    this.feeRate = o.feeRate ?? o.chain.params.minFeeRate;
    this.settleGraceMs = o.settleGraceMs ?? 15 * 60_000;
    this.maxUnsettled = o.maxUnsettled ?? 5;
    this.now = o.now ?? Date.now;
    // The exchange countersigns only what this log knows; without it, it countersigns nothing.
    o.exchange.knowsCall = (r) => this.knowsCall(r);
  }

  /** The proxy's report of a call that ended: remembered (term) or receipted (orig). */
  callEnded(e: CallEnd): void {
    try {
      if (this.stopped) return;
      if (e.role === 'term') this.remember(e);
      else this.originated(e);
    } catch (err) {
      // The proxy must never fail a BYE because of receipts.
      this.log.warn(`receipts: call ${e.callId.slice(0, 24)} not handled: ${(err as Error).message}`);
    }
  }

  /**
   * Whether this node terminated the call a receipt describes: same dialog, this node named as
   * the terminating node, answer and end times each within the tolerance (the two nodes see the
   * 200 and the BYE a few ms apart, possibly across a second boundary), and the originating
   * node the one the call came from, proved on its TLS connection: a call from a node that proved
   * nothing (a plain hop) is receipted for nobody, or any node that learnt the dialog's Call-ID
   * and tags could claim the originator's share.
   */
  knowsCall(r: UnsignedReceipt): boolean {
    this.expire();
    if (!bytesEqual(r.term, this.nodeId)) return false;
    const c = this.terminated.get(toHex(r.callId));
    if (c === undefined) return false;
    if (c.peer === null || !bytesEqual(c.peer, r.orig)) return false;
    return Math.abs(c.answered - r.answered) <= this.tolerance && Math.abs(c.ended - r.ended) <= this.tolerance;
  }

  /**
   * Why this node refuses calls from node `nodeId` now: it left at least maxUnsettled of the calls
   * this node terminated for it without a receipt on the chain past their grace. The originating
   * node pays for calls (docs/economics.md), so a node that stops paying stops being carried;
   * it is taken again as soon as its receipts reach the chain, or its unpaid calls are older
   * than the window in which a receipt could still settle them (6 h).
   */
  refusesCallsFrom(nodeId: Uint8Array): string | null {
    this.sweep();
    const hex = toHex(nodeId);
    const list = this.owed.get(hex);
    if (list === undefined) return null;
    const oldest = this.now() - this.maxAgeMs;
    const left = list.filter((c) => c.at > oldest && !this.settled(c.callId));
    if (left.length === 0) this.owed.delete(hex);
    else this.owed.set(hex, left);
    return left.length >= this.maxUnsettled ? `${left.length} calls this node carried for yours are unsettled: submit their receipts` : null;
  }

  /** Calls node `nodeId` left unsettled past their grace, as last counted. */
  unsettledBy(nodeId: Uint8Array): number {
    this.refusesCallsFrom(nodeId);
    return this.owed.get(toHex(nodeId))?.length ?? 0;
  }

  private settled(callId: Uint8Array): boolean {
    return this.chain.state.get(keys.receipt(callId)) !== undefined;
  }

  /** Calls whose grace ended: those without a receipt on the chain count against their node. */
  private sweep(): void {
    const now = this.now();
    let i = this.duesHead;
    for (; i < this.dues.length && this.dues[i].due <= now; i++) {
      const d = this.dues[i];
      if (this.settled(d.callId)) continue;
      const list = this.owed.get(d.peer) ?? [];
      list.push({ callId: d.callId, at: d.at });
      // enough to refuse by, and to see the refusal end as the node pays
      if (list.length > 4 * this.maxUnsettled) list.shift();
      this.owed.set(d.peer, list);
    }
    this.duesHead = i;
    if (i > 1024 && i > this.dues.length / 2) {
      this.dues = this.dues.slice(i);
      this.duesHead = 0;
    }
  }

  /** Terminated calls remembered now. */
  get size(): number {
    this.expire();
    return this.terminated.size;
  }

  /**
   * Stops retrying and settling. A request already on the wire is not awaited: it fails as soon
   * as the p2p node stops (which the node does next), and waiting for its timeout would only
   * delay shutdown.
   */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) {
      clearTimeout(t.timer);
      t.wake();
    }
    this.timers.clear();
  }

  // ---- terminating side ----------------------------------------------------------------------

  private remember(e: CallEnd): void {
    const callId = dialogHash(e.callId, e.fromTag, e.toTag);
    const key = toHex(callId);
    const now = this.now();
    // A call the chain would settle (a proven originating node, a length it pays): its receipt is looked for when its grace ends.
    const duration = e.ended - e.answered;
    if (e.peerNodeId !== null && !this.terminated.has(key) && duration >= 1 && duration <= this.chain.params.maxCallSeconds) {
      this.dues.push({ callId, peer: toHex(e.peerNodeId), due: now + this.settleGraceMs, at: now });
      if (this.dues.length - this.duesHead > this.maxCalls) this.duesHead++;
    }
    // Re-inserted, so a call reported twice is kept as fresh as its latest report.
    this.terminated.delete(key);
    this.terminated.set(key, { answered: e.answered, ended: e.ended, peer: e.peerNodeId, at: now });
    while (this.terminated.size > this.maxCalls) this.terminated.delete(this.terminated.keys().next().value as string);
    this.expire();
  }

  /** Drops calls older than maxAgeMs; they were logged in time order, so only the front. */
  private expire(): void {
    const oldest = this.now() - this.maxAgeMs;
    for (const [key, c] of this.terminated) {
      if (c.at > oldest) break;
      this.terminated.delete(key);
    }
  }

  // ---- originating side ----------------------------------------------------------------------

  private outcome(o: ReceiptOutcome): void {
    try {
      this.o.onOutcome?.(o);
    } catch (e) {
      this.log.warn(`receipts: outcome hook failed: ${(e as Error).message}`);
    }
  }

  private skip(callId: Uint8Array, reason: SkipReason, why: string): void {
    this.log.debug(`receipts: no receipt for call ${toHex(callId).slice(0, 16)}: ${why}`);
    this.outcome({ status: 'skipped', callId, reason });
  }

  private originated(e: CallEnd): void {
    const callId = dialogHash(e.callId, e.fromTag, e.toTag);
    const key = toHex(callId);
    const peer = e.peerNodeId;
    if (peer === null) return this.skip(callId, 'no-peer', 'the proxy did not name the terminating node');
    if (bytesEqual(peer, this.nodeId)) return this.skip(callId, 'self', 'the call stayed on this node');
    const max = this.chain.params.maxCallSeconds;
    const duration = e.ended - e.answered;
    if (!Number.isSafeInteger(e.answered) || !Number.isSafeInteger(e.ended) || e.answered < 0 || e.ended > 0xffffffff || duration < 1 || duration > max) {
      return this.skip(callId, 'duration', `the call lasted ${duration} s, receipts pay 1..${max} s`);
    }
    // The chain pays only announced nodes of some age: asking for a receipt it would refuse
    // would cost the peer a signature for nothing.
    const self = getNode(this.chain.state, this.nodeId);
    if (self === undefined) return this.skip(callId, 'not-announced', 'this node is not announced on the chain');
    const term = getNode(this.chain.state, peer);
    if (term === undefined) return this.skip(callId, 'peer-not-announced', `node ${toHex(peer).slice(0, 16)} is not announced on the chain`);
    if (this.settling.has(key)) return this.skip(callId, 'duplicate', 'this call is being receipted already');
    if (this.settling.size >= this.maxInFlight) return this.skip(callId, 'busy', `${this.maxInFlight} receipts are being settled`);
    const unpaid = { kind: Kind.CallReceipt, callId, orig: this.nodeId, term: peer, answered: e.answered, ended: e.ended, pubkey: this.pub, termPubkey: term.pubkey } as const;
    const receipt: UnsignedReceipt = { ...unpaid, fee: receiptFee(unpaid, this.feeRate) };
    this.settling.add(key);
    void this.settle(receipt)
      .catch((err: unknown) => this.log.warn(`receipts: call ${key.slice(0, 16)}: ${(err as Error).message}`))
      .finally(() => this.settling.delete(key));
  }

  /** The peer's announced p2p addresses, those naming its peer id first (they are authenticated). */
  private targets(peer: Uint8Array): Multiaddr[] {
    return dialTargets(nodeAddresses(this.routing, peer)?.p2pAddrs ?? []);
  }

  private async settle(r: UnsignedReceipt): Promise<void> {
    const id = toHex(r.callId).slice(0, 16);
    const who = toHex(r.term).slice(0, 16);
    let last: ReceiptError | undefined;
    for (let attempt = 0; attempt <= this.retryDelaysMs.length; attempt++) {
      if (attempt > 0 && !(await this.sleep(this.retryDelaysMs[attempt - 1]))) break;
      if (this.stopped) break;
      // Read afresh each time: a node that moved announces its new address.
      const targets = this.targets(r.term);
      if (targets.length === 0) {
        this.log.warn(`receipts: call ${id}: node ${who} announced no p2p address to ask for a countersignature`);
        this.outcome({ status: 'skipped', callId: r.callId, reason: 'no-address' });
        return;
      }
      for (const target of targets) {
        if (this.stopped) break;
        try {
          if (!(await this.paced())) break;
          const rec = await this.o.exchange.settle(target, r);
          this.log.info(`receipts: call ${id} with node ${who} (${r.ended - r.answered} s) receipted, record ${toHex(rec.id)}`);
          this.outcome({ status: 'receipted', callId: r.callId, recordId: rec.id });
          return;
        } catch (e) {
          if (e instanceof ValidationError) {
            // Our own chain refused it (a duplicate, a reorganisation, a balance that cannot pay):
            // asking again would get the same countersignature and the same answer. A node short
            // of coins would say so for every call: once is enough, with what to do.
            if (e.code === 'settlement-unpaid' || e.code === 'fee-unpaid') {
              if (!this.warnedUnpaid) this.log.warn(`receipts: call ${id} with node ${who}: the chain refused the receipt: ${e.message}; this node's key pays for the calls it sends to other nodes: mine (--mine) or send coins to its address (said once)`);
              else this.log.debug(`receipts: call ${id} with node ${who}: the chain refused the receipt: ${e.message}`);
              this.warnedUnpaid = true;
            } else this.log.warn(`receipts: call ${id} with node ${who}: the chain refused the receipt: ${e.message}`);
            this.outcome({ status: 'failed', callId: r.callId, code: e.code, message: e.message });
            return;
          }
          if (!(e instanceof ReceiptError)) {
            this.log.warn(`receipts: call ${id} with node ${who}: ${(e as Error).message}`);
            this.outcome({ status: 'failed', callId: r.callId, code: 'internal', message: (e as Error).message });
            return;
          }
          last = e;
          if (!RETRYABLE.has(e.code)) {
            this.log.warn(`receipts: call ${id}: node ${who} did not countersign: ${e.message}`);
            this.outcome({ status: 'failed', callId: r.callId, code: e.code, message: e.message });
            return;
          }
          this.log.debug(`receipts: call ${id}: asking node ${who} at ${target.toString()} failed (attempt ${attempt + 1}): ${e.message}`);
          // Another address may work at once; a node that timed out or is busy needs a pause.
          if (e.code !== 'unreachable') break;
        }
      }
    }
    if (this.stopped) {
      this.outcome({ status: 'skipped', callId: r.callId, reason: 'stopped' });
      return;
    }
    const code = last?.code ?? 'unreachable';
    const message = last?.message ?? 'no attempt made';
    this.log.warn(`receipts: call ${id}: gave up asking node ${who} for a countersignature after ${this.retryDelaysMs.length + 1} attempts: ${message}`);
    this.outcome({ status: 'failed', callId: r.callId, code, message });
  }

  /**
   * Waits for this receipt's turn at maxPerSecond; false when stopped meanwhile. A turn that is
   * not now starts at the next PACE_TICK_MS boundary after it, with the other turns due by then.
   */
  private paced(): Promise<boolean> {
    const now = Date.now();
    const at = Math.max(now, this.nextStartAt);
    this.nextStartAt = at + this.spacingMs;
    if (at <= now) return Promise.resolve(true);
    // one timer a tick, whose waiters all go on in the same turn (a timer each would fire
    // across turns, and split the tick's receipts over several requests)
    const tick = Math.ceil(at / PACE_TICK_MS) * PACE_TICK_MS;
    const waiting = this.ticks.get(tick) ?? this.startTick(tick, now);
    return new Promise((resolve) => waiting.push(resolve));
  }

  /** The waiters of a tick not yet started, with the one timer that lets them all go on. */
  private startTick(tick: number, now: number): Array<(go: boolean) => void> {
    const list: Array<(go: boolean) => void> = [];
    this.ticks.set(tick, list);
    void this.sleep(tick - now).then((go) => {
      this.ticks.delete(tick);
      for (const resolve of list) resolve(go);
    });
    return list;
  }

  /** Waits ms; false when stopped meanwhile. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          this.timers.delete(entry);
          resolve(!this.stopped);
        }, ms),
        wake: () => resolve(false),
      };
      // A pending retry must not keep a stopping process alive.
      entry.timer.unref();
      this.timers.add(entry);
    });
  }
}
