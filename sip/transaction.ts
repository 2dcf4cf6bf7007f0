// The RFC 3261 transaction layer (section 17): server transactions absorb request
// retransmissions and retransmit their last response; client transactions retransmit requests
// over UDP (Timer E) until a response or Timer F. INVITE server transactions retransmit a final
// non-2xx response (Timer G) until the ACK (Timer H bounds the wait, Timer I absorbs ACKs).
//
// Completed non-INVITE server transactions wait Timer J (64*T1 over UDP) for retransmissions.
// At tens of thousands of REGISTERs per second that is a million transactions, so a completed
// one is reduced to what Timer J needs (its key and the bytes of its final response, sent back
// to whoever retransmits the request), kept in a FIFO (Timer J is the same for all) swept on one
// interval rather than a timer each, and bounded: past `maxServerTransactions` the oldest go
// first (Kamailio bounds its wait timer the same way). A retransmission that arrives after that
// is still recognised by the registrar from the binding's branch (see registrar.ts).
//
// A request the TU marks stateless (a REGISTER without credentials: see SipService) gets a
// transaction object for its answer but is never kept (RFC 3261 8.2.7): a retransmission is
// processed again and answered the same, with the same To tag (`statelessTag`). At tens of
// thousands of REGISTERs a second, a completed entry kept even for T4 lives through several
// young-generation collections and is promoted, and copying those was most of the garbage
// collector's time.

import { getHeader, type SipRequest, type SipResponse } from './message.ts';
import { newTag, responseBytes, serializeMessage, statelessTag } from './serialize.ts';
import {
  bareHost,
  formatVia,
  getParam,
  isRfc3261Branch,
  parseCSeq,
  parseNameAddr,
  parseVia,
  setParam,
  type Via,
} from './uri.ts';
import { splitHeaderList } from './message.ts';
import type { Flow, SipTransport } from './transport.ts';
import { DoneStore } from './done-store.ts';
import { packWay, unpackWay } from './flow-bytes.ts';

export interface Timers {
  /** RTT estimate (ms), RFC 3261 default 500 */
  t1: number;
  /** maximum retransmit interval for non-INVITE requests and INVITE responses (ms), default 4000 */
  t2: number;
  /** maximum time a message remains in the network (ms), default 5000 */
  t4: number;
}

export const DEFAULT_TIMERS: Timers = { t1: 500, t2: 4000, t4: 5000 };

const enum State {
  Trying,
  Proceeding,
  Completed,
  Confirmed,
  Terminated,
}

/** What the transaction layer hands to its user with each new request. */
export interface IncomingRequest {
  req: SipRequest;
  flow: Flow;
  /** the top Via as parsed (received/rport already added) */
  via: Via;
  /** null for an ACK (never a transaction of its own) */
  tx: ServerTransaction | null;
  /** for a CANCEL: the key of the INVITE it cancels (taken from the Via as received) */
  inviteKey?: string | null;
  /** the To already has a tag (set by the TU after validation; responses then add none) */
  toTagged?: boolean;
}

/**
 * Answers a request in its transaction with a body-less response; a To without a tag gets a new
 * one (RFC 3261 8.2.6.2), a To that has one (a request inside a dialog) keeps it alone.
 */
export function replyTo(inc: IncomingRequest, status: number, reason: string, headers?: ReadonlyArray<readonly [string, string]>, toTag: string | null = status === 100 || inc.toTagged === true ? null : inc.tx?.stateless === true ? statelessTag(inc.req, inc.via) : newTag()): void {
  inc.tx?.respondBytes(responseBytes(inc.req, status, reason, headers, toTag), status);
}

export class ServerTransaction {
  state: State = State.Trying;
  lastResponse: Buffer | null = null;
  lastStatus = 0;
  /** the INVITE's key in the layer's branch index (see TransactionLayer.inviteIndex) */
  indexKey: string | null = null;
  private timerG: NodeJS.Timeout | null = null;
  private timerH: NodeJS.Timeout | null = null;
  private gInterval = 0;
  /**
   * whether the final response is kept for retransmissions (Timer J); false for a request
   * answered without side effects, whose retransmission may as well be answered again
   */
  keep = true;

  constructor(
    private readonly layer: TransactionLayer,
    readonly key: string,
    readonly method: string,
    readonly flow: Flow,
    /** sent-by port of the top Via (where a response goes if the TCP connection is gone) */
    readonly viaPort: number | null,
    /** answered without keeping any state (RFC 3261 8.2.7); its key is empty */
    readonly stateless = false,
  ) {}

  get isInvite(): boolean {
    return this.method === 'INVITE';
  }

  get completed(): boolean {
    return this.state >= State.Completed;
  }

  /** Sends a response in this transaction (a second final response is ignored). */
  respond(res: SipResponse): void {
    if (this.state >= State.Completed) return;
    this.respondBytes(serializeMessage(res), res.status);
  }

  /** Sends the serialised response `buf` with status `status` in this transaction. */
  respondBytes(buf: Buffer, status: number): void {
    if (this.state >= State.Completed) return;
    const res = { status };
    this.lastResponse = buf;
    this.lastStatus = res.status;
    this.layer.sendResponse(this.flow, buf, this.viaPort);
    if (res.status < 200) {
      this.state = State.Proceeding;
      return;
    }
    // A request refused outright (a failure before any provisional response: 401, 403, 404,
    // 407, 503, ...) keeps no state once answered, as a stateless UAS (RFC 3261 8.2.7): its
    // retransmission passes the same checks and gets the same answer. An INVITE so refused is
    // not retransmitted on Timer G nor held 32 s for its ACK. Keeping them let a flood grow the
    // node's memory with every request, and from a forged source Timer G sent each refusal
    // about ten times toward the victim.
    if (res.status >= 300 && this.state === State.Trying) this.keep = false;
    if (this.isInvite && this.keep) this.completeInvite(res.status);
    else {
      this.state = State.Completed;
      this.layer.completed(this);
    }
  }

  private completeInvite(status: number): void {
    const t = this.layer.timers;
    if (status < 300) {
      // a 2xx to INVITE is the TU's to retransmit; the transaction ends here (RFC 3261 17.2.1)
      this.terminate();
      return;
    }
    this.state = State.Completed;
    if (this.flow.proto === 'udp') {
      this.gInterval = t.t1;
      const g = (): void => {
        if (this.state !== State.Completed || this.lastResponse === null) return;
        this.layer.sendResponse(this.flow, this.lastResponse, this.viaPort);
        this.gInterval = Math.min(this.gInterval * 2, t.t2);
        this.timerG = setTimeout(g, this.gInterval).unref();
      };
      this.timerG = setTimeout(g, this.gInterval).unref();
    }
    this.timerH = setTimeout(() => this.terminate(), 64 * t.t1).unref();
  }

  /** A retransmission of the request arrived. */
  retransmitted(): void {
    if ((this.state === State.Proceeding || this.state === State.Completed) && this.lastResponse !== null) {
      this.layer.sendResponse(this.flow, this.lastResponse, this.viaPort);
    }
  }

  /** The ACK of a non-2xx final response to this INVITE. */
  acked(): void {
    if (this.state !== State.Completed) return;
    this.state = State.Confirmed;
    if (this.timerG !== null) clearTimeout(this.timerG);
    if (this.timerH !== null) clearTimeout(this.timerH);
    this.timerG = this.timerH = null;
    const wait = this.flow.proto === 'udp' ? this.layer.timers.t4 : 0;
    this.timerH = setTimeout(() => this.terminate(), wait).unref();
  }

  terminate(): void {
    this.state = State.Terminated;
    if (this.timerG !== null) clearTimeout(this.timerG);
    if (this.timerH !== null) clearTimeout(this.timerH);
    this.timerG = this.timerH = null;
    this.layer.forget(this);
  }
}

/** What a client transaction tells its user. */
export interface ClientHandler {
  /**
   * A response that matched: provisional ones, the final one, and for INVITE every 2xx that
   * arrives while the transaction is Accepted (RFC 6026: retransmissions and other forks' 2xx,
   * which a proxy forwards too).
   */
  response(res: SipResponse): void;
  /** No final response in time (Timer B or F), or the flow could not carry the request. */
  timeout(): void;
  /**
   * For an INVITE's handler: what it does with the 2xx its transaction passes on while Accepted
   * (64*T1), as bytes and the long-lived object that reads them. Asked once, after `response`
   * has had the first 2xx; the transaction is then kept as those bytes off the JavaScript heap
   * (done-store.ts) instead of as itself and its handler. Without it (or given null) the
   * transaction and its handler stay as they are.
   */
  accepted?(): { sink: AcceptedSink; bytes: Buffer } | null;
}

/** What reads the bytes a ClientHandler gave for its Accepted transaction. */
export interface AcceptedSink {
  /** A 2xx to a transaction kept as `bytes` while Accepted. */
  acceptedResponse(bytes: Buffer, res: SipResponse): void;
}

interface ClientTx {
  key: string;
  flow: Flow;
  /** the request and its bytes, let go of once a final response came (see accept) */
  req: SipRequest | null;
  buf: Buffer | null;
  invite: boolean;
  state: State;
  interval: number;
  /** Timer A or E */
  timerE: NodeJS.Timeout | null;
  /** Timer B or F */
  timerF: NodeJS.Timeout | null;
  /** the end of Accepted, for a transaction kept as itself (see accept) */
  timerD: NodeJS.Timeout | null;
  handler: ClientHandler;
}

const EMPTY = Buffer.alloc(0);

/**
 * A client transaction as its user holds it. A class, not an object literal of closures: one is
 * made for every request sent and lives as long as its user holds it, and the
 * TypeScript loader gives each named closure a property of its own (esbuild's keepNames).
 */
class ClientHandle implements ClientTransaction {
  constructor(
    private readonly layer: TransactionLayer,
    private readonly tx: ClientTx,
  ) {}

  get key(): string {
    return this.tx.key;
  }

  abandon(): void {
    this.layer.abandonClient(this.tx);
  }

  get proceeding(): boolean {
    return this.tx.state === State.Proceeding;
  }

  get terminated(): boolean {
    return this.tx.state === State.Terminated;
  }
}

/** A client transaction as its user sees it. */
export interface ClientTransaction {
  readonly key: string;
  /** Stops retransmitting and forgets the transaction (a proxy giving up on a branch). */
  abandon(): void;
  /** A provisional response arrived (for INVITE: a CANCEL may be sent). */
  readonly proceeding: boolean;
  readonly terminated: boolean;
}

export interface TransactionOptions {
  timers?: Partial<Timers>;
  /** bound on live server transactions (completed ones are evicted oldest first) */
  maxServerTransactions?: number;
  /**
   * bound on the bytes completed transactions keep (their keys and final responses, default
   * 64 MB): a response echoes the request's Vias, so a count alone bounds nothing
   */
  maxCompletedBytes?: number;
}

/** Sends `res` toward the client: the flow's address and port, or a new TCP connection (RFC 3261 18.2.2). */
export class TransactionLayer {
  readonly timers: Timers;
  /** live server transactions by key */
  private readonly server = new Map<string, ServerTransaction>();
  private readonly client = new Map<string, ClientTx>();
  /**
   * Live INVITE server transactions by their RFC 3261 17.2.3 key (branch, sent-by, method): a
   * CANCEL or ACK matches its INVITE by branch even when its Via is written differently (a
   * client that copies the Via of a response brings received and rport along).
   */
  private readonly inviteIndex = new Map<string, ServerTransaction>();
  /**
   * Completed non-INVITE transactions over UDP, as the bytes of their key and final response,
   * off the JS heap (see done-store.ts), one store per wait (so each is in expiry order): a
   * REGISTER that is kept (one with credentials) waits T4, every other request Timer J (64*T1).
   * The registrar recognises a REGISTER retransmitted later by the binding's branch and answers
   * it the same, so keeping its response 32 s buys nothing (Kamailio's wait timer is 5 s too).
   * The two share one budget of entries and bytes; REGISTERs (safe to forget) go first.
   */
  private readonly doneShort: DoneStore;
  private readonly doneLong: DoneStore;
  private readonly maxDoneBytes: number;
  /**
   * Finished client transactions as bytes, one store per wait, so each is in expiry order: an
   * answered INVITE whose handler can say what to do with later 2xx in bytes (Accepted, 64*T1:
   * the index of its sink, then the bytes), a failed INVITE over UDP (Timer D: its flow and ACK),
   * a non-INVITE over UDP (Timer K, T4: the key alone). Each call through a proxy leaves one
   * Accepted transaction for 32 s; as objects they were what most of a call kept alive past a
   * young-generation collection.
   */
  private readonly accepted: DoneStore;
  private readonly sinks: AcceptedSink[] = [];
  private readonly timerD: DoneStore;
  private readonly timerK: DoneStore;
  private readonly sweeper: NodeJS.Timeout;
  private readonly maxServer: number;
  /** counters for logs and tests */
  stats = { retransmissionsAbsorbed: 0, evicted: 0, strayResponses: 0, clientTimeouts: 0 };

  constructor(
    private readonly transport: SipTransport,
    opts: TransactionOptions = {},
  ) {
    this.timers = { ...DEFAULT_TIMERS, ...opts.timers };
    this.maxServer = opts.maxServerTransactions ?? 300_000;
    this.maxDoneBytes = opts.maxCompletedBytes ?? 64 << 20;
    // each store may take the whole budget; completed() keeps their sum within it
    this.doneShort = new DoneStore(this.maxServer, this.maxDoneBytes);
    this.doneLong = new DoneStore(this.maxServer, this.maxDoneBytes);
    this.accepted = new DoneStore(this.maxServer, this.maxDoneBytes);
    this.timerD = new DoneStore(this.maxServer, this.maxDoneBytes);
    this.timerK = new DoneStore(this.maxServer, this.maxDoneBytes);
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.max(50, Math.min(1000, this.timers.t1))).unref();
  }

  /** server transactions kept, live and completed */
  get serverCount(): number {
    return this.server.size + this.doneShort.size + this.doneLong.size;
  }

  /** client transactions kept, live and finished */
  get clientCount(): number {
    return this.client.size + this.accepted.size + this.timerD.size + this.timerK.size;
  }

  /**
   * Matches a request to a server transaction (RFC 3261 17.2.3, with the RFC 2543 rules when
   * the branch lacks the magic cookie). Returns the new request for the TU, or null when it was a
   * retransmission or an ACK the transaction layer consumed. Throws SipParseError on a bad Via.
   */
  receiveRequest(req: SipRequest, flow: Flow, parsedVia?: Via, quick?: string | null, stateless = false): IncomingRequest | null {
    const method = req.method;
    if (stateless && method !== 'ACK' && method !== 'INVITE' && method !== 'CANCEL') {
      const via = topVia(req, flow, parsedVia);
      return { req, flow, via, tx: new ServerTransaction(this, '', method, flow, via.port, true) };
    }
    const key = quick ?? null;
    const inviteKey = method === 'CANCEL' ? this.quickKey(req, 'INVITE') : null;
    const via = topVia(req, flow, parsedVia);
    if (key !== null) {
      // absorb() has looked this key up already: it is a new request
      if (method === 'ACK') {
        const inv = this.inviteIndex.get(serverKey(req, via, 'INVITE'));
        if (inv !== undefined) {
          inv.acked();
          return null;
        }
        return { req, flow, via, tx: null };
      }
      const ntx = new ServerTransaction(this, key, method, flow, via.port);
      this.server.set(key, ntx);
      if (method === 'INVITE') {
        ntx.indexKey = serverKey(req, via, 'INVITE');
        this.inviteIndex.set(ntx.indexKey, ntx);
      }
      return { req, flow, via, tx: ntx, inviteKey };
    }
    const k = serverKey(req, via, method === 'ACK' ? 'INVITE' : method);
    if (method === 'ACK') {
      const tx = this.server.get(k);
      if (tx !== undefined && tx.isInvite) {
        tx.acked();
        return null;
      }
      return { req, flow, via, tx: null };
    }
    if (this.absorb(k, req, flow)) return null;
    const ntx = new ServerTransaction(this, k, method, flow, via.port);
    this.server.set(k, ntx);
    return { req, flow, via, tx: ntx, inviteKey };
  }

  /**
   * The transaction key of a request with an RFC 3261 branch, from the top Via as received
   * (it holds the branch and sent-by of 17.2.3), the method (ACK and CANCEL name their INVITE's)
   * and the Call-ID; null without the magic cookie (the RFC 2543 rules need the parsed request).
   * A retransmission is the same bytes, so this finds it before the request is validated.
   */
  quickKey(req: SipRequest, method: string = req.method === 'ACK' ? 'INVITE' : req.method): string | null {
    const hs = req.headers;
    let raw: string | undefined;
    let callId = '';
    for (let i = 0; i < hs.length; i++) {
      const k = hs[i].key;
      if (k === 'via' && raw === undefined) raw = hs[i].value;
      else if (k === 'call-id' && callId === '') callId = hs[i].value;
    }
    if (raw === undefined) return null;
    const v = raw.indexOf(',') < 0 ? raw : splitHeaderList(raw)[0];
    const b = v.indexOf('branch=z9hG4bK');
    if (b < 0) return null;
    const next = v.charCodeAt(b + 14);
    if (Number.isNaN(next) || next === 59 || next === 32 || next === 9) return null; // a bare cookie is RFC 2543 style
    return v + '\n' + method + '\n' + callId;
  }

  /**
   * Absorbs a retransmission (or the ACK of a non-2xx final response) by its quick key, before
   * any validation; true when it was one.
   */
  absorb(key: string, req: SipRequest, flow: Flow): boolean {
    const tx = this.server.get(key);
    if (tx === undefined) {
      // an INVITE is never kept completed (see respondBytes), nor is anything an ACK matches
      if (req.method === 'ACK' || req.method === 'INVITE') return false;
      // Timer J: a retransmission of a completed request gets the final response again
      const done = this.doneShort.get(key) ?? this.doneLong.get(key);
      if (done === undefined) return false;
      this.stats.retransmissionsAbsorbed++;
      this.transport.send(flow, done);
      return true;
    }
    if (req.method === 'ACK') {
      if (tx.isInvite) tx.acked();
      return true;
    }
    this.stats.retransmissionsAbsorbed++;
    tx.retransmitted();
    return true;
  }

  /** The INVITE transaction a CANCEL refers to (same branch and sent-by, RFC 3261 9.2). */
  findInviteFor(inc: IncomingRequest): ServerTransaction | undefined {
    const tx = this.server.get(inc.inviteKey ?? serverKey(inc.req, inc.via, 'INVITE'));
    if (tx !== undefined) return tx;
    return this.inviteIndex.get(serverKey(inc.req, inc.via, 'INVITE'));
  }

  /** @internal called by a non-INVITE server transaction entering Completed, or a request refused outright */
  completed(tx: ServerTransaction): void {
    this.unindex(tx);
    if (tx.stateless || this.server.get(tx.key) !== tx) return;
    this.server.delete(tx.key);
    // reliable transports: Timer J is zero
    if (tx.flow.proto !== 'udp' || tx.lastResponse === null || !tx.keep) return;
    const now = Date.now();
    if (tx.method === 'REGISTER') this.stats.evicted += this.doneShort.put(tx.key, tx.lastResponse, now + this.timers.t4);
    else this.stats.evicted += this.doneLong.put(tx.key, tx.lastResponse, now + 64 * this.timers.t1);
    if (this.overBudget()) this.evict();
  }

  private overBudget(): boolean {
    return this.doneShort.size + this.doneLong.size > this.maxServer || this.completedBytes > this.maxDoneBytes;
  }

  /** Bytes completed transactions keep now (for tests and metrics). */
  get completedBytes(): number {
    return this.doneShort.bytes + this.doneLong.bytes;
  }

  /** Takes an INVITE out of the branch index (a CANCEL or ACK no longer finds it there). */
  private unindex(tx: ServerTransaction): void {
    if (tx.indexKey !== null && this.inviteIndex.get(tx.indexKey) === tx) this.inviteIndex.delete(tx.indexKey);
  }

  /** @internal */
  forget(tx: ServerTransaction): void {
    if (tx.stateless) return;
    if (this.server.get(tx.key) === tx) this.server.delete(tx.key);
    this.unindex(tx);
  }

  /** @internal */
  sendResponse(flow: Flow, buf: Buffer, viaPort: number | null): void {
    if (this.transport.send(flow, buf) || (flow.proto !== 'tcp' && flow.proto !== 'tls')) return;
    // the connection is gone: open a new one to the received address and the sent-by port
    void this.transport
      .connect(flow.address, viaPort ?? (flow.proto === 'tls' ? 5061 : 5060), 5000, flow.proto)
      .then((f) => this.transport.send(f, buf))
      .catch(() => undefined);
  }

  /** Keeps the two stores within their shared budget: the oldest go, REGISTERs before the others; live ones are never evicted. */
  private evict(): void {
    for (const q of [this.doneShort, this.doneLong]) {
      while (q.size > 0 && this.overBudget()) {
        q.dropOldest();
        this.stats.evicted++;
      }
    }
  }

  private sweep(now: number): void {
    this.doneShort.expire(now);
    this.doneLong.expire(now);
    this.accepted.expire(now);
    this.timerD.expire(now);
    this.timerK.expire(now);
  }

  /**
   * Sends `req` in a client transaction (RFC 3261 17.1, INVITE and non-INVITE) on `flow`;
   * `branch` is the one in the request's top Via. Retransmits over UDP (Timer A/E), gives up
   * after Timer B/F (or `timeoutMs`), acknowledges non-2xx final responses to INVITE itself and
   * absorbs their retransmissions (Timer D/K).
   */
  send(req: SipRequest, flow: Flow, branch: string, handler: ClientHandler, timeoutMs?: number): ClientTransaction {
    const key = branch + '\n' + req.method;
    const buf = serializeMessage(req);
    const t = this.timers;
    const tx: ClientTx = { key, flow, req, buf, invite: req.method === 'INVITE', state: State.Trying, interval: t.t1, timerE: null, timerF: null, timerD: null, handler };
    const handle = new ClientHandle(this, tx);
    if (!this.transport.send(flow, buf)) {
      tx.state = State.Terminated;
      queueMicrotask(() => handler.timeout());
      return handle;
    }
    const old = this.client.get(key);
    if (old !== undefined) this.endClient(old);
    this.client.set(key, tx);
    tx.timerF = setTimeout(() => {
      tx.timerF = null;
      if (tx.state >= State.Completed) return;
      this.stats.clientTimeouts++;
      this.endClient(tx);
      handler.timeout();
    }, Math.min(timeoutMs ?? Infinity, 64 * t.t1)).unref();
    if (flow.proto === 'udp') tx.timerE = setTimeout(() => this.retransmit(tx), tx.interval).unref();
    return handle;
  }

  /** Timer A or E fired: the request again, and the timer again. */
  private retransmit(tx: ClientTx): void {
    tx.timerE = null;
    if (tx.state >= State.Completed || (tx.invite && tx.state === State.Proceeding) || tx.buf === null) return;
    this.transport.send(tx.flow, tx.buf);
    // INVITE doubles without bound (Timer A); non-INVITE caps at T2, and at T2 once proceeding
    const t2 = this.timers.t2;
    tx.interval = tx.invite ? tx.interval * 2 : tx.state === State.Proceeding ? t2 : Math.min(tx.interval * 2, t2);
    tx.timerE = setTimeout(() => this.retransmit(tx), tx.interval).unref();
  }

  /** @internal ClientHandle.abandon */
  abandonClient(tx: ClientTx): void {
    this.endClient(tx);
  }

  /**
   * A non-INVITE request in a client transaction, as a promise of its final response (null on
   * timeout or when the flow cannot carry it). Used for keepalive pings and NOTIFY.
   */
  request(req: SipRequest, flow: Flow, branch: string, timeoutMs?: number): Promise<SipResponse | null> {
    return new Promise((resolve) => {
      this.send(req, flow, branch, { response: (r) => r.status >= 200 && resolve(r), timeout: () => resolve(null) }, timeoutMs);
    });
  }

  private clearTimers(tx: ClientTx): void {
    if (tx.timerE !== null) clearTimeout(tx.timerE);
    if (tx.timerF !== null) clearTimeout(tx.timerF);
    if (tx.timerD !== null) clearTimeout(tx.timerD);
    tx.timerE = tx.timerF = tx.timerD = null;
  }

  private endClient(tx: ClientTx): void {
    tx.state = State.Terminated;
    this.clearTimers(tx);
    if (this.client.get(tx.key) === tx) this.client.delete(tx.key);
  }

  /**
   * A client transaction that got its final response, kept for `ms` to absorb retransmissions
   * of it (Completed: Timer D with the ACK to send again, or Timer K), as bytes in a store.
   */
  private complete(tx: ClientTx, ms: number, ack?: Buffer): void {
    this.endClient(tx);
    if (ms <= 0) return;
    const at = Date.now() + ms;
    if (tx.invite) this.stats.evicted += this.timerD.put(tx.key, packWay(tx.flow, null, [], ack), at);
    else this.stats.evicted += this.timerK.put(tx.key, EMPTY, at);
  }

  /**
   * An INVITE's transaction that got a 2xx stays Accepted for 64*T1 and passes on later 2xx
   * (RFC 6026): as the bytes its handler gives, or as itself when the handler gives none.
   */
  private accept(tx: ClientTx): void {
    if (tx.state !== State.Confirmed) return; // its user let go of it on hearing the 2xx
    const ms = 64 * this.timers.t1;
    const a = tx.handler.accepted?.() ?? null;
    if (a === null) {
      tx.req = null;
      tx.buf = null;
      tx.timerD = setTimeout(() => this.endClient(tx), ms).unref();
      return;
    }
    this.endClient(tx);
    let sink = this.sinks.indexOf(a.sink);
    if (sink < 0) sink = this.sinks.push(a.sink) - 1;
    const bytes = Buffer.allocUnsafe(1 + a.bytes.length);
    bytes[0] = sink;
    a.bytes.copy(bytes, 1);
    this.stats.evicted += this.accepted.put(tx.key, bytes, Date.now() + ms);
  }

  /** A response to a client transaction kept as bytes (see `accepted`); false when none is kept under `key`. */
  private finished(key: string, invite: boolean, res: SipResponse): boolean {
    const now = Date.now();
    const status = res.status;
    if (!invite) {
      this.timerK.expire(now);
      return this.timerK.get(key) !== undefined;
    }
    this.accepted.expire(now);
    const a = this.accepted.get(key);
    if (a !== undefined) {
      if (status >= 200 && status < 300) this.sinks[a[0]].acceptedResponse(a.subarray(1), res);
      return true;
    }
    this.timerD.expire(now);
    const d = this.timerD.get(key);
    if (d === undefined) return false;
    // a retransmitted final response: ACK it again
    if (status >= 300) {
      const w = unpackWay(d);
      this.transport.send(w.flow, w.tail);
    }
    return true;
  }

  /** Matches a response to a client transaction (RFC 3261 17.1.3); false when none matched. */
  receiveResponse(res: SipResponse): boolean {
    const v = getHeader(res, 'via');
    const cs = getHeader(res, 'cseq');
    if (v === undefined || cs === undefined) return false;
    let branch: string | null;
    let method: string;
    try {
      branch = parseVia(v.indexOf(',') < 0 ? v : splitHeaderList(v)[0]).branch;
      method = parseCSeq(cs).method;
    } catch {
      return false;
    }
    if (branch === null) {
      this.stats.strayResponses++;
      return false;
    }
    const key = branch + '\n' + method;
    const tx = this.client.get(key);
    if (tx === undefined) {
      if (this.finished(key, method === 'INVITE', res)) return true;
      this.stats.strayResponses++;
      return false;
    }
    const status = res.status;
    const reliable = tx.flow.proto !== 'udp';
    switch (tx.state) {
      case State.Trying:
      case State.Proceeding:
        if (status < 200) {
          tx.state = State.Proceeding;
          // INVITE: Timer B stops once the far end is known to be working on it (17.1.1.2)
          if (tx.invite && tx.timerF !== null) {
            clearTimeout(tx.timerF);
            tx.timerF = null;
          }
          tx.handler.response(res);
          return true;
        }
        const handler = tx.handler;
        if (tx.invite && status < 300) {
          // Accepted (RFC 6026): the user hears the 2xx first, then says how to pass on more
          this.clearTimers(tx);
          tx.state = State.Confirmed;
          handler.response(res);
          this.accept(tx);
          return true;
        }
        if (tx.invite) {
          const ack = serializeMessage(ackFor(tx.req as SipRequest, res));
          this.complete(tx, reliable ? 0 : 32_000, ack); // Timer D
          // the failure goes on before its ACK goes back: a turn's messages leave in the order
          // they are made, and the caller is waiting for the one, nobody for the other
          handler.response(res);
          this.transport.send(tx.flow, ack);
          return true;
        }
        this.complete(tx, reliable ? 0 : this.timers.t4); // Timer K
        handler.response(res);
        return true;
      case State.Confirmed:
        if (status >= 200 && status < 300) tx.handler.response(res);
        return true;
      default:
        return true;
    }
  }

  stop(): void {
    clearInterval(this.sweeper);
    for (const tx of [...this.client.values()]) {
      const live = tx.state < State.Completed;
      this.endClient(tx);
      if (live) tx.handler.timeout();
    }
    for (const tx of [...this.server.values()]) tx.terminate();
    this.server.clear();
    this.inviteIndex.clear();
    this.doneShort.clear();
    this.doneLong.clear();
    this.accepted.clear();
    this.timerD.clear();
    this.timerK.clear();
  }
}

/**
 * Parses the top Via and stamps it as RFC 3261 18.2.1 and RFC 3581 ask: `received` when the
 * sent-by host is not the source address, `rport` filled in when the client asked for it.
 * The request's Via header is rewritten so responses built from it carry both.
 */
export function topVia(req: SipRequest, flow: Flow, parsed?: Via): Via {
  const hs = req.headers;
  let i = 0;
  while (i < hs.length && hs[i].key !== 'via') i++;
  const h = hs[i];
  const raw = h.value;
  const comma = raw.indexOf(',');
  let first = raw;
  let rest = '';
  if (comma >= 0) {
    const parts = splitHeaderList(raw);
    first = parts[0];
    rest = parts.slice(1).join(', ');
  }
  const via = parsed ?? parseVia(first);
  let add = '';
  if (bareHost(via.host) !== flow.address) {
    setParam(via.params, 'received', flow.address);
    via.received = flow.address;
    add = ';received=' + flow.address;
  }
  if (via.hasRport && via.rport === null) {
    setParam(via.params, 'rport', String(flow.port));
    via.rport = flow.port;
    // fill in the valueless rport where it stands (cheaper than re-serialising the Via)
    const m = RPORT_RE.exec(first);
    if (m !== null) first = first.slice(0, m.index) + ';rport=' + flow.port + first.slice(m.index + m[0].length);
    else add += ';rport=' + flow.port;
  } else if (add === '') return via;
  const v = first + add;
  hs[i] = { name: h.name, key: h.key, value: rest === '' ? v : v + ', ' + rest };
  return via;
}

const RPORT_RE = /;[ \t]*rport(?=[ \t]*(;|$))/i;

function serverKey(req: SipRequest, via: Via, method: string): string {
  const sentBy = via.port === null ? via.host : via.host + ':' + via.port;
  // RFC 3261 17.2.3 matches on branch, sent-by and method; the Call-ID is added because some
  // clients reuse a branch for different requests (RFC 4475's messages all do), and a
  // retransmission always carries the same Call-ID
  if (isRfc3261Branch(via.branch)) return (via.branch as string) + '\n' + sentBy + '\n' + method + '\n' + (getHeader(req, 'call-id') ?? '');
  // RFC 2543 (17.2.3): Request-URI, From tag, Call-ID, CSeq number, top Via, method
  let fromTag = '';
  let cseq = '';
  try {
    fromTag = getParam(parseNameAddr(getHeader(req, 'from') ?? '').params, 'tag') ?? '';
    cseq = String(parseCSeq(getHeader(req, 'cseq') ?? '').seq);
  } catch {
    // validated before: cannot happen; an empty part only makes the key less specific
  }
  return '2543\n' + req.uri + '\n' + fromTag + '\n' + (getHeader(req, 'call-id') ?? '') + '\n' + cseq + '\n' + formatVia(via) + '\n' + method;
}

/**
 * A request that goes hop by hop with an INVITE (RFC 3261 9.1 and 17.1.1.3): its Request-URI,
 * top Via, Route, From, Call-ID, Max-Forwards and CSeq number, with `method`; the To given (the
 * response's for an ACK) or the INVITE's (for a CANCEL).
 */
export function hopRequest(invite: SipRequest, method: 'ACK' | 'CANCEL', to?: string): SipRequest {
  const headers: SipRequest['headers'] = [];
  let via = false;
  for (const h of invite.headers) {
    if (h.key === 'via' && !via) {
      via = true;
      headers.push({ name: h.name, key: h.key, value: h.value.indexOf(',') < 0 ? h.value : splitHeaderList(h.value)[0] });
    } else if (h.key === 'route' || h.key === 'from' || h.key === 'call-id' || h.key === 'max-forwards') headers.push(h);
    else if (h.key === 'to' && to === undefined) headers.push(h);
    else if (h.key === 'cseq') headers.push({ name: h.name, key: h.key, value: parseCSeq(h.value).seq + ' ' + method });
  }
  if (to !== undefined) headers.push({ name: 'To', key: 'to', value: to });
  headers.push({ name: 'Content-Length', key: 'content-length', value: '0' });
  return { kind: 'request', method, uri: invite.uri, version: 'SIP/2.0', headers, body: Buffer.alloc(0) };
}

/** The ACK a client INVITE transaction sends for a non-2xx final response (RFC 3261 17.1.1.3). */
export function ackFor(invite: SipRequest, res: SipResponse): SipRequest {
  return hopRequest(invite, 'ACK', getHeader(res, 'to'));
}
