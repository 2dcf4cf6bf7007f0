// The transaction-stateful proxy of RFC 3261 section 16: what the node does with a request that
// is for a user rather than for itself. The service decides where a request goes (a plan: groups
// of hops, the hops of a group tried in parallel, the groups one after another); this module
// forwards it (Via, Max-Forwards, Record-Route, Route for a registration's Path), keeps a client
// transaction per branch, relays provisional and 2xx responses at once, picks the best final
// response when every branch has failed, CANCELs the branches left when one answers or the caller
// gives up, and fails over to the next group when a hop does not answer in time.
//
// It also keeps the dialogs of the calls it record-routed: in-dialog requests (ACK, BYE,
// re-INVITE) are forwarded only for those, which keeps the node from being an open relay for
// requests that merely carry a Route to it; and when a call between this node's phone and
// another node ends, it reports who, which nodes and when (the call receipts are built from it).
import { hash } from 'node:crypto';
import { getHeader, getHeaderValues, ownString, splitHeaderList, type SipHeader, type SipRequest, type SipResponse } from './message.ts';
import { newTag, serializeMessage } from './serialize.ts';
import { bareHost, nameAddrParam, parseCSeq, parseMaxForwards, parseNameAddr, parseSipUri, parseVia, type SipUri } from './uri.ts';
import { isSecure, viaFor, type Flow, type Proto, type SipTransport } from './transport.ts';
import { NODE_PROOF_HEADER, hasSdesKeys } from './tls.ts';
import { hopRequest, replyTo, type AcceptedSink, type ClientHandler, type ClientTransaction, type IncomingRequest, type ServerTransaction, type TransactionLayer } from './transaction.ts';
import { packWay, unpackWay } from './flow-bytes.ts';
import { FairShare } from './fair-share.ts';

/** One place to send a request to. */
export interface Hop {
  /** the Request-URI to send (a registered contact when retargeting), or null to keep the request's */
  ruri: string | null;
  /** Route values to put on top (the registration's Path, RFC 3327) */
  route: readonly string[];
  /** how to reach it when known (the flow the contact registered on); else from the first Route or the Request-URI */
  flow: Flow | null;
  /** a short label for logs and Warning headers ("node 1a2b..", "contact 2") */
  label: string;
  /** the node this hop reaches, when it is another node: the call's peer if it answers there */
  node?: Uint8Array;
}

/** The call a forwarded initial INVITE may become, for the call-end report. */
export interface CallRole {
  role: 'orig' | 'term' | 'local';
  /** the other node (orig: the one the chain named; term: the one that proved itself on the caller's TLS connection, sip/tls.ts), else null */
  peer: Uint8Array | null;
}

export interface ForwardPlan {
  /** tried in order; the hops of one group in parallel (forking) */
  groups: Hop[][];
  /** add our Record-Route (initial INVITE and SUBSCRIBE: keeps the node on the dialog's path) */
  recordRoute: boolean;
  /** for an initial INVITE */
  call?: CallRole;
  /** told the final status once (0 when no hop answered and the proxy made its own) */
  onFinal?: (status: number) => void;
}

export interface ProxyHost {
  readonly transport: SipTransport;
  readonly tx: TransactionLayer;
  /** host:port as the node writes it in Via and Record-Route */
  readonly hostport: string;
  /** host:port of the node's side reached over `proto` (its TLS or WebSocket port for those) */
  hostportFor(proto: Proto): string;
  /** the Record-Route value for the node's side reached over `proto` */
  recordRouteFor(proto: Proto): string;
  /** this node's proof for a TLS flow to another node (a header value), or null */
  proofFor(flow: Flow): string | null;
  readonly domain: string;
  debug(msg: string): void;
}

/** One answered call between a phone of this node and a phone of another node, ended by BYE. */
export interface CallEnd {
  /** the SIP Call-ID */
  callId: string;
  /** tag of the caller (From) and of the callee (To): with the Call-ID they name the dialog */
  fromTag: string;
  toTag: string;
  /** orig: this node's phone called out; term: a call from elsewhere reached this node's phone */
  role: 'orig' | 'term';
  /** the other node's id (20 bytes) when the chain named it (orig) or it proved itself on its TLS connection (term), else null */
  peerNodeId: Uint8Array | null;
  /** unix seconds the 2xx to the INVITE passed this node, and the BYE */
  answered: number;
  ended: number;
}

export interface ProxyOptions {
  /** ms a branch may go without any response before it fails over (default 4000) */
  noAnswerMs?: number;
  /**
   * ms an INVITE to another node may go without its 100 Trying before the next node is tried
   * (default 1500), when there is a next one: a live node sends 100 Trying at once (16.2), so
   * silence this long (the INVITE sent three times, at 0, 500 and 1500 ms) means it is gone,
   * and the caller should not wait the full noAnswerMs for a fallback that is known
   */
  nodeTryingMs?: number;
  /** ms an INVITE branch may ring after a provisional response (Timer C, default 180,000) */
  ringMs?: number;
  /** most dialogs tracked; beyond it new calls are refused with 503 (default 100,000) */
  maxDialogs?: number;
  /** longest call tracked (seconds); a dialog older than this is forgotten (default 24 h) */
  maxCallSeconds?: number;
  /**
   * forwarded requests in progress beyond which new calls and messages get 503 with Retry-After
   * (default 2,000): past its capacity a proxy that keeps accepting work falls behind on all of
   * it, its socket drops datagrams and retransmissions pile up; refusing early keeps the calls
   * it has working (in-dialog requests are never refused)
   */
  maxActive?: number;
  /** a call between this node's phone and another node ended */
  onCallEnd?: (e: CallEnd) => void;
  /** SDP with SRTP keys (a=crypto) leaves on TLS (or wss) only: a hop over UDP, TCP or ws is given up instead (--require-tls) */
  sdesOverTlsOnly?: boolean;
}

interface Dialog {
  callId: string;
  fromTag: string;
  /** the callee's tag, '' until answered */
  toTag: string;
  role: CallRole['role'];
  peer: Uint8Array | null;
  /** ms; 0 while early */
  answeredAt: number;
  /** ms; 0 while it lasts */
  endedAt: number;
  createdAt: number;
  /**
   * the TCP, TLS or WebSocket connections the caller's INVITE came on and the callee answered on
   * (null: UDP, or not yet): a phone on a connection names in its Contact an address where nothing takes a
   * new one, so the dialog's requests for it go on its connection while that is open
   */
  callerFlow: Flow | null;
  calleeFlow: Flow | null;
}

interface Branch {
  hop: Hop;
  /** the branch parameter of our Via on it ('' until sent) */
  branch: string;
  req: SipRequest | null;
  flow: Flow | null;
  ctx: ClientTransaction | null;
  done: boolean;
  /** a CANCEL is wanted (sent once a provisional response makes it possible) */
  cancel: boolean;
  cancelSent: boolean;
  timer: NodeJS.Timeout | null;
  /**
   * the context of the request this branch forwards, until the request has left the proxy (a
   * branch's client transaction holds its handler until the transaction is Accepted, when it is
   * kept as bytes instead: acceptedWay)
   */
  owner: ProxyTx | null;
  /** once the owner is let go of: where a late 2xx (a retransmission, another fork's) goes, for acceptedWay */
  upstream: Upstream | null;
}

/**
 * A branch's client transaction handler. It reaches the request's context through the branch
 * only (see Branch.owner), and it is a class: a closure made beside others that hold the
 * context would hold it too (V8 keeps one scope object for a function's closures), and the
 * TypeScript loader gives each named closure a property of its own (esbuild's keepNames).
 */
class BranchHandler implements ClientHandler {
  constructor(
    private readonly proxy: Proxy,
    private readonly b: Branch,
  ) {}

  response(res: SipResponse): void {
    this.proxy.branchResponse(this.b, res);
  }

  timeout(): void {
    this.proxy.branchTimeout(this.b);
  }

  accepted(): { sink: AcceptedSink; bytes: Buffer } | null {
    return this.proxy.acceptedWay(this.b);
  }
}

/** What relaying a response upstream needs of the request it answers: its Vias and where it came from. */
interface Upstream {
  vias: SipHeader[];
  flow: Flow;
  viaPort: number | null;
}

const enum Rank {
  Global = 0,
  Redirect = 1,
  Auth = 2,
  Client = 3,
  Server = 4,
  None = 5,
}

function rankOf(status: number): Rank {
  if (status >= 600) return Rank.Global;
  if (status < 400) return Rank.Redirect;
  if (status === 401 || status === 407 || status === 415 || status === 420 || status === 484) return Rank.Auth;
  return status < 500 ? Rank.Client : Rank.Server;
}

/** One forwarded request and its branches (RFC 3261 16.2's response context). */
class ProxyTx {
  readonly branches: Branch[] = [];
  group = 0;
  best: SipResponse | null = null;
  bestRank = Rank.None;
  /** a final response went upstream (for INVITE: the first 2xx, or the best failure) */
  finished = false;
  /** a branch answered 2xx (its client transaction then stays Accepted for 32 s) */
  answered = false;
  cancelled = false;
  /** why the last hop failed without a response, for the Warning of our own 480 */
  failure = '';
  /** every branch ended and the proxy let go of it */
  done = false;
  /** the source address whose share of `maxActive` this holds (null: in-dialog, not counted) */
  source: string | null = null;

  constructor(
    readonly inc: IncomingRequest,
    readonly server: ServerTransaction,
    readonly plan: ForwardPlan,
    readonly loop: string,
  ) {}

  get invite(): boolean {
    return this.inc.req.method === 'INVITE';
  }
}

export class Proxy implements AcceptedSink {
  private readonly noAnswerMs: number;
  private readonly nodeTryingMs: number;
  private readonly sdesOverTlsOnly: boolean;
  private readonly ringMs: number;
  private readonly maxDialogs: number;
  private readonly maxCallMs: number;
  private readonly maxActive: number;
  private active = 0;
  /** new requests in progress by source: one address may hold no more than is left free */
  private readonly shares: FairShare;
  /** INVITE server transaction key -> its context, for CANCEL */
  private readonly invites = new Map<string, ProxyTx>();
  private readonly dialogs = new Map<string, Dialog>();
  private readonly sweeper: NodeJS.Timeout;
  onCallEnd: ((e: CallEnd) => void) | null;
  /** counters for logs, tests and the metrics */
  stats = { forwarded: 0, answered: 0, failed: 0, cancelled: 0, loops: 0, callsEnded: 0, strays: 0, inDialog: 0, shed: 0, callsFailed: 0, callsCancelled: 0, messagesDelivered: 0, messagesFailed: 0 };

  constructor(
    private readonly host: ProxyHost,
    opts: ProxyOptions = {},
  ) {
    this.noAnswerMs = opts.noAnswerMs ?? 4000;
    this.nodeTryingMs = Math.min(opts.nodeTryingMs ?? 1500, this.noAnswerMs);
    this.sdesOverTlsOnly = opts.sdesOverTlsOnly === true;
    this.ringMs = opts.ringMs ?? 180_000;
    this.maxDialogs = opts.maxDialogs ?? 100_000;
    this.maxCallMs = (opts.maxCallSeconds ?? 86_400) * 1000;
    this.maxActive = opts.maxActive ?? 2000;
    this.shares = new FairShare(this.maxActive);
    this.onCallEnd = opts.onCallEnd ?? null;
    this.sweeper = setInterval(() => this.sweep(Date.now()), 10_000).unref();
  }

  stop(): void {
    clearInterval(this.sweeper);
    for (const p of this.invites.values()) for (const b of p.branches) this.endBranch(b);
    this.invites.clear();
  }

  /** forwarded requests in progress */
  get activeCount(): number {
    return this.active;
  }

  get dialogCount(): number {
    return this.dialogs.size;
  }

  // -------------------------------------------------------------------------
  // loops (RFC 3261 16.3 step 4)

  /**
   * The part of our branch that names the request's routing state: a request that comes back
   * with our Via and the same hash has looped; with another hash (a new Request-URI) it spirals.
   */
  private loopHash(req: SipRequest): string {
    const cseq = getHeader(req, 'cseq') ?? '';
    return hash('sha256', `${req.uri}\n${tagOf(req, 'from')}\n${tagOf(req, 'to')}\n${getHeader(req, 'call-id') ?? ''}\n${cseq.split(/\s/)[0]}\n${getHeader(req, 'proxy-require') ?? ''}`, 'base64url').slice(0, 12);
  }

  /** True when the request carries a Via of ours with its loop hash `loop`: it came round. */
  private isLoop(req: SipRequest, loop: string): boolean {
    const me = ' ' + this.host.hostport;
    const meTls = ' ' + this.host.hostportFor('tls');
    let ours = false;
    for (const h of req.headers) if (h.key === 'via' && (h.value.includes(me) || h.value.includes(meTls))) ours = true;
    if (!ours) return false;
    const mark = 'branch=z9hG4bK' + loop + '.';
    for (const v of getHeaderValues(req, 'via')) if ((v.includes(me) || v.includes(meTls)) && v.includes(mark)) return true;
    return false;
  }

  // -------------------------------------------------------------------------
  // forwarding (16.6)

  /** Forwards `inc` along `plan`; answers 100 Trying to an INVITE once it is on its way. */
  forward(inc: IncomingRequest, plan: ForwardPlan, inDialog = false): void {
    const server = inc.tx;
    if (server === null) return;
    const req = inc.req;
    const loop = this.loopHash(req);
    if (this.isLoop(req, loop)) {
      this.stats.loops++;
      replyTo(inc, 482, 'Loop Detected');
      return;
    }
    if (plan.call !== undefined && this.dialogs.size >= this.maxDialogs) {
      replyTo(inc, 503, 'Service Unavailable', [['Retry-After', '30']]);
      return;
    }
    // past the limit, or past its source's fair share of it, a new request is refused (to its
    // sender only: the others' share is what is left)
    const source = inc.flow.address;
    if (!inDialog && (this.active >= this.maxActive || !this.shares.take(source))) {
      this.stats.shed++;
      replyTo(inc, 503, 'Service Unavailable', [['Retry-After', '1']]);
      return;
    }
    const p = new ProxyTx(inc, server, plan, loop);
    if (!inDialog) p.source = source;
    this.active++;
    if (p.invite) this.invites.set(server.key, p);
    if (plan.call !== undefined) {
      const callId = ownString(getHeader(req, 'call-id') ?? '');
      if (!this.dialogs.has(callId)) {
        const callerFlow = inc.flow.proto === 'udp' ? null : inc.flow;
        this.dialogs.set(callId, { callId, fromTag: ownString(tagOf(req, 'from')), toTag: '', role: plan.call.role, peer: plan.call.peer, answeredAt: 0, endedAt: 0, createdAt: Date.now(), callerFlow, calleeFlow: null });
      }
    }
    this.stats.forwarded++;
    this.nextGroup(p);
    // 100 Trying goes after the INVITE it answers has gone on (the same turn's flush sends both
    // in that order): the next hop is on the call's path and the caller is not, so the caller's
    // wake-up is not paid before the INVITE leaves
    if (p.invite && !p.finished) replyTo(inc, 100, 'Trying');
  }

  private nextGroup(p: ProxyTx): void {
    while (p.group < p.plan.groups.length) {
      const hops = p.plan.groups[p.group++];
      if (hops.length === 0) continue;
      // every branch of the group is counted before any starts: one that fails at once (no way
      // to reach it) must not look like the last of its group and move on while the rest wait
      const started = p.branches.length;
      for (const hop of hops) p.branches.push({ hop, branch: '', req: null, flow: null, ctx: null, done: false, cancel: false, cancelSent: false, timer: null, owner: p, upstream: null });
      const end = p.branches.length;
      for (let i = started; i < end; i++) this.startBranch(p, p.branches[i]);
      return;
    }
    this.finish(p);
  }

  private startBranch(p: ProxyTx, b: Branch): void {
    const req = this.forwardedRequest(p.inc.req, b.hop);
    const next = b.hop.flow;
    if (next !== null && this.host.transport.isOpen(next)) {
      this.sendBranch(p, b, req, next);
      return;
    }
    const uri = nextHop(req);
    if (uri === null) {
      this.branchFailed(p, b, 'the next hop is not a SIP URI');
      return;
    }
    // a connection already open (or UDP) is used in this turn; a name to resolve or a connection
    // to open is waited for, and connecting (TCP, TLS) counts against the same patience as the
    // answer: a node whose host is gone lets a TLS connect hang, where a dead process on a live
    // host refuses it at once
    const now = this.host.transport.flowNow(uri);
    if (now === null) {
      this.branchFailed(p, b, `cannot reach ${uri.host}`);
      return;
    }
    if (now !== undefined) {
      this.sendBranch(p, b, req, now);
      return;
    }
    void this.host.transport.flowTo(uri, this.silentMs(p, b)).then(
      (flow) => {
        if (b.done) return;
        if (flow === null) this.branchFailed(p, b, `cannot reach ${uri.host}`);
        else this.sendBranch(p, b, req, flow);
      },
      () => this.branchFailed(p, b, `cannot connect to ${uri.host}`),
    );
  }

  /** The request as it leaves for one hop (16.6 steps 1 to 8). */
  private forwardedRequest(src: SipRequest, hop: Hop): SipRequest {
    const headers: SipHeader[] = [];
    let mf = false;
    let routesAt = -1;
    for (const h of src.headers) {
      if (h.key === 'max-forwards') {
        mf = true;
        // validated before (0 was answered 483)
        headers.push({ name: h.name, key: h.key, value: String(Math.max(0, Math.min(parseMaxForwards(h.value) - 1, 255))) });
        continue;
      }
      if (h.key === 'route' && routesAt < 0) routesAt = headers.length;
      headers.push(h);
    }
    if (!mf) headers.push({ name: 'Max-Forwards', key: 'max-forwards', value: '70' });
    if (hop.route.length > 0) {
      const at = routesAt < 0 ? headers.length : routesAt;
      headers.splice(at, 0, ...hop.route.map((r) => ({ name: 'Route', key: 'route', value: r })));
    }
    return { kind: 'request', method: src.method, uri: hop.ruri ?? src.uri, version: 'SIP/2.0', headers, body: src.body };
  }

  private sendBranch(p: ProxyTx, b: Branch, req: SipRequest, flow: Flow): void {
    if (this.sdesOverTlsOnly && !isSecure(flow.proto) && hasSdesKeys(req)) {
      this.branchFailed(p, b, `${b.hop.label} is not on TLS, and the SDP carries SRTP keys (a=crypto)`);
      return;
    }
    // RFC 5630: a request to a sips: address goes over TLS to the end, the last hop too
    if (!isSecure(flow.proto) && /^sips:/i.test(p.inc.req.uri)) {
      this.branchFailed(p, b, `${b.hop.label} is not on TLS, and the request is for a sips: address`);
      return;
    }
    const branch = `z9hG4bK${p.loop}.${newTag()}`;
    if (p.plan.recordRoute) {
      // one entry per side the dialog passes (RFC 5658): a phone on TLS and a node on UDP each
      // reach the node again the way they came; the outgoing side's on top, for the callee
      const inSide = this.host.recordRouteFor(p.inc.flow.proto);
      const outSide = this.host.recordRouteFor(flow.proto);
      if (inSide !== outSide) req.headers.unshift({ name: 'Record-Route', key: 'record-route', value: inSide });
      req.headers.unshift({ name: 'Record-Route', key: 'record-route', value: outSide });
    }
    req.headers.unshift({ name: 'Via', key: 'via', value: viaFor(flow, this.host.hostportFor(flow.proto), branch) });
    // to another node over TLS: who is calling, proved on this connection
    const proof = b.hop.node !== undefined ? this.host.proofFor(flow) : null;
    if (proof !== null) req.headers.push({ name: NODE_PROOF_HEADER, key: NODE_PROOF_HEADER.toLowerCase(), value: proof });
    b.branch = branch;
    b.req = req;
    b.flow = flow;
    b.ctx = this.host.tx.send(req, flow, branch, new BranchHandler(this, b));
    // a hop that sends nothing at all (not even 100 Trying) in time is given up
    b.timer = setTimeout(() => {
      b.timer = null;
      if (!b.done && (b.ctx === null || !b.ctx.proceeding)) this.branchFailed(p, b, `${b.hop.label} did not answer`);
    }, this.silentMs(p, b)).unref();
  }

  /** How long a branch may stay silent: an INVITE to a node with another node left to try, nodeTryingMs; else noAnswerMs. */
  private silentMs(p: ProxyTx, b: Branch): number {
    return p.invite && b.hop.node !== undefined && p.group < p.plan.groups.length ? this.nodeTryingMs : this.noAnswerMs;
  }

  private endBranch(b: Branch): void {
    b.done = true;
    b.req = null; // only a CANCEL needed it; an answered INVITE's branch lingers 32 s (Accepted)
    if (b.timer !== null) clearTimeout(b.timer);
    b.timer = null;
  }

  /** A hop failed without a response (unreachable, timed out). */
  private branchFailed(p: ProxyTx, b: Branch, why: string): void {
    if (b.done) return;
    this.endBranch(b);
    b.ctx?.abandon();
    if (p.bestRank === Rank.None) p.failure = why;
    this.host.debug(`sip proxy: ${why}`);
    this.afterBranch(p);
  }

  /** @internal BranchHandler: a response in the branch's client transaction */
  branchResponse(b: Branch, res: SipResponse): void {
    // after the request left the proxy, a 2xx reaches acceptedResponse (its transaction is kept as bytes)
    if (b.owner !== null) this.onResponse(b.owner, b, res);
  }

  /**
   * @internal BranchHandler: the branch's transaction is Accepted, after its first 2xx went
   * upstream. It is kept as the way upstream in bytes for its 64*T1 (transaction.ts), so neither
   * the branch nor the request's context outlives the request.
   */
  acceptedWay(b: Branch): { sink: AcceptedSink; bytes: Buffer } | null {
    const p = b.owner;
    const up = p !== null ? upstreamOf(p) : b.upstream;
    return up === null ? null : { sink: this, bytes: packWay(up.flow, up.viaPort, up.vias) };
  }

  /** @internal AcceptedSink: a later 2xx to a branch kept as its way upstream goes up (16.7 step 5) */
  acceptedResponse(bytes: Buffer, res: SipResponse): void {
    const w = unpackWay(bytes);
    this.host.tx.sendResponse(w.flow, serializeMessage(withVias(res, w.headers)), w.viaPort);
  }

  /** @internal BranchHandler: no final response in time */
  branchTimeout(b: Branch): void {
    if (b.owner !== null) this.branchFailed(b.owner, b, `${b.hop.label} did not answer`);
  }

  private onResponse(p: ProxyTx, b: Branch, res: SipResponse): void {
    const status = res.status;
    if (status < 200) {
      if (b.done) return;
      if (b.timer !== null) clearTimeout(b.timer);
      // Timer C: a ringing branch gets ringMs more, then it is cancelled
      b.timer = setTimeout(() => {
        b.timer = null;
        if (!b.done) this.cancelBranch(b);
        // the far end answers the CANCEL with 487; if it does not, give up on the branch
        b.timer = setTimeout(() => this.branchFailed(p, b, `${b.hop.label} rang too long`), 32 * 1000).unref();
      }, this.ringMs).unref();
      if (b.cancel && !b.cancelSent) this.cancelBranch(b);
      if (status !== 100 && !p.finished) this.relay(p, res);
      return;
    }
    if (status < 300) {
      // every 2xx goes upstream, even a second fork's or a retransmission (16.7 step 5)
      if (!b.done) this.endBranch(b);
      p.answered = true;
      if (p.invite) this.answered(p, b, res);
      else if (!p.finished && p.inc.req.method === 'MESSAGE') this.stats.messagesDelivered++;
      if (!p.finished || p.invite) this.relay(p, res);
      if (!p.finished) p.plan.onFinal?.(status);
      p.finished = true;
      if (p.invite) for (const o of p.branches) if (o !== b && !o.done) this.cancelBranch(o);
      this.afterBranch(p);
      return;
    }
    if (b.done) return;
    this.endBranch(b);
    const rank = rankOf(status);
    if (rank < p.bestRank) {
      p.best = res;
      p.bestRank = rank;
    }
    if (rank === Rank.Global && p.invite) for (const o of p.branches) if (!o.done) this.cancelBranch(o);
    this.afterBranch(p);
  }

  /** After a branch ended: start the next group, or send the best final response. */
  private afterBranch(p: ProxyTx): void {
    for (const b of p.branches) if (!b.done) return;
    if (!p.finished && !p.cancelled && p.bestRank !== Rank.Global && p.group < p.plan.groups.length) {
      this.nextGroup(p);
      return;
    }
    this.finish(p);
  }

  /** Every branch is done: the request leaves the proxy (with its best response, unless one went already). */
  private finish(p: ProxyTx): void {
    if (p.done) return;
    p.done = true;
    // an answered INVITE's branches outlive the request (Accepted): they keep only the way up
    const up: Upstream | null = p.invite && p.answered ? upstreamOf(p) : null;
    for (const b of p.branches) {
      b.owner = null;
      b.upstream = up;
    }
    this.active--;
    if (p.source !== null) this.shares.release(p.source);
    if (p.invite) this.invites.delete(p.server.key);
    if (p.finished) return;
    p.finished = true;
    this.stats.failed++;
    if (p.plan.call !== undefined) {
      if (p.cancelled) this.stats.callsCancelled++;
      else this.stats.callsFailed++;
    } else if (p.inc.req.method === 'MESSAGE') this.stats.messagesFailed++;
    const req = p.inc.req;
    if (p.plan.call !== undefined) {
      const callId = getHeader(req, 'call-id') ?? '';
      const d = this.dialogs.get(callId);
      if (d !== undefined && d.answeredAt === 0) this.dialogs.delete(callId);
    }
    const best = p.best;
    p.plan.onFinal?.(best?.status ?? 0);
    if (best === null) {
      if (p.cancelled) replyTo(p.inc, 487, 'Request Terminated');
      else replyTo(p.inc, 480, 'Temporarily Unavailable', [['Warning', `399 ${this.host.domain} "${(p.failure || 'no reachable contact').replace(/["\\]/g, '')}"`]]);
      return;
    }
    // 16.7 step 6: a 503 from downstream is this proxy's 500 (it says nothing of this node's load)
    if (best.status === 503) {
      best.status = 500;
      best.reason = 'Server Internal Error';
    }
    this.relay(p, best);
  }

  /**
   * Sends a response upstream without our Via (16.7 step 9). The Vias below ours are by rule the
   * request's own; they are taken from the request, so a sloppy phone that builds its 487 from
   * the CANCEL (which carries our Via only) is still answered.
   */
  private relay(p: ProxyTx, res: SipResponse): void {
    const buf = serializeMessage(withVias(res, p.inc.req.headers));
    if (p.server.completed || p.server.lastStatus >= 200) this.host.tx.sendResponse(p.server.flow, buf, p.server.viaPort);
    else p.server.respondBytes(buf, res.status);
  }

  /** CANCELs a branch (16.10): possible once it has a provisional response, else marked for then. */
  private cancelBranch(b: Branch): void {
    if (b.done || b.req === null || b.flow === null || b.req.method !== 'INVITE') return;
    b.cancel = true;
    if (b.cancelSent || b.ctx === null || !b.ctx.proceeding) return;
    b.cancelSent = true;
    this.host.tx.send(hopRequest(b.req, 'CANCEL'), b.flow, b.branch, { response: () => undefined, timeout: () => undefined });
  }

  /** A CANCEL for an INVITE this proxy forwarded: true when one was found (the service answers 481 otherwise). */
  cancel(inviteKey: string): boolean {
    const p = this.invites.get(inviteKey);
    if (p === undefined || p.finished) return false;
    p.cancelled = true;
    this.stats.cancelled++;
    for (const b of p.branches) {
      if (b.done) continue;
      if (b.ctx !== null && b.ctx.proceeding) this.cancelBranch(b);
      else {
        // nothing heard from it yet: it cannot be cancelled (9.1), only given up on
        b.cancel = true;
        this.endBranch(b);
        b.ctx?.abandon();
      }
    }
    this.afterBranch(p);
    return true;
  }

  // -------------------------------------------------------------------------
  // dialogs and calls

  private answered(p: ProxyTx, b: Branch, res: SipResponse): void {
    const callId = getHeader(res, 'call-id') ?? '';
    const d = this.dialogs.get(callId);
    if (d === undefined || d.answeredAt !== 0) return;
    // the node that answered is the call's peer (a fallback node when the first did not answer)
    if (b.hop.node !== undefined) d.peer = b.hop.node;
    d.toTag = ownString(tagOf(res, 'to'));
    d.calleeFlow = b.flow !== null && b.flow.proto !== 'udp' ? b.flow : null;
    d.answeredAt = Date.now();
    this.stats.answered++;
  }

  /** Calls answered and not yet ended. */
  get activeCalls(): number {
    let n = 0;
    for (const d of this.dialogs.values()) if (d.answeredAt !== 0 && d.endedAt === 0) n++;
    return n;
  }

  /** Whether an in-dialog request belongs to a dialog this node record-routed. */
  knowsDialog(callId: string): boolean {
    return this.dialogs.has(callId);
  }

  /**
   * Forwards an in-dialog request (its Route set already stripped of our entry) to the next
   * Route or its Request-URI; ACKs for 2xx statelessly. A BYE ends the call it belongs to.
   */
  forwardInDialog(inc: IncomingRequest): void {
    const req = inc.req;
    this.stats.inDialog++;
    const flow = this.phoneConnection(req);
    if (inc.tx === null) {
      this.forwardAck(req, flow);
      return;
    }
    const end = req.method === 'BYE' ? this.ended(req) : null;
    // a call ends for the receipts only once the far side took the BYE: a BYE lost on the way
    // would leave the other node with no end to countersign
    const onFinal = end === null ? undefined : (status: number): void => {
      if (status >= 200 && status < 300) this.reportEnd(end);
    };
    this.forward(inc, { groups: [[{ ruri: null, route: [], flow, label: 'the next hop' }]], recordRoute: false, onFinal }, true);
  }

  /**
   * The open connection of the phone an in-dialog request is for, when no Route is left (the
   * next hop is the phone itself) and that phone is on TCP or TLS; null otherwise (the request
   * goes where its Route or Request-URI says).
   */
  private phoneConnection(req: SipRequest): Flow | null {
    if (req.headers.some((h) => h.key === 'route')) return null;
    const d = this.dialogs.get(getHeader(req, 'call-id') ?? '');
    if (d === undefined) return null;
    const flow = tagOf(req, 'from') === d.fromTag ? d.calleeFlow : d.callerFlow;
    return flow !== null && this.host.transport.isOpen(flow) ? flow : null;
  }

  private forwardAck(req: SipRequest, conn: Flow | null): void {
    const out = this.forwardedRequest(req, { ruri: null, route: [], flow: null, label: 'ack' });
    const uri = nextHop(out);
    if (uri === null) return;
    // (sendAck is a method, not a closure made per ACK: under tsx every closure made is also
    // named through Object.defineProperty, which cost more than the rest of this function)
    const now = conn ?? this.host.transport.flowNow(uri);
    if (now !== undefined) this.sendAck(out, now);
    else void this.host.transport.flowTo(uri, this.noAnswerMs).then((flow) => this.sendAck(out, flow), () => undefined);
  }

  /** An ACK forwarded on its flow, with a Via of ours for that flow. */
  private sendAck(out: SipRequest, flow: Flow | null): void {
    if (flow === null) return;
    out.headers.unshift({ name: 'Via', key: 'via', value: viaFor(flow, this.host.hostportFor(flow.proto), `z9hG4bK${newTag()}`) });
    this.host.transport.send(flow, serializeMessage(out));
  }

  /** The BYE of an answered call: marks it ended (at the BYE's arrival); the call end to report, if any. */
  private ended(bye: SipRequest): CallEnd | null {
    const callId = getHeader(bye, 'call-id') ?? '';
    const d = this.dialogs.get(callId);
    if (d === undefined || d.answeredAt === 0 || d.endedAt !== 0) return null;
    const a = tagOf(bye, 'from');
    const b = tagOf(bye, 'to');
    if (!((a === d.fromTag && b === d.toTag) || (a === d.toTag && b === d.fromTag))) return null;
    d.endedAt = Date.now();
    this.stats.callsEnded++;
    if (d.role === 'local') return null;
    return { callId, fromTag: d.fromTag, toTag: d.toTag, role: d.role, peerNodeId: d.peer, answered: Math.floor(d.answeredAt / 1000), ended: Math.floor(d.endedAt / 1000) };
  }

  private reportEnd(e: CallEnd): void {
    if (this.onCallEnd === null) return;
    try {
      this.onCallEnd(e);
    } catch (e) {
      this.host.debug(`sip proxy: call-end listener failed: ${(e as Error).message}`);
    }
  }

  /**
   * A response that matched no client transaction. A 2xx to an INVITE whose transaction is
   * gone (a late retransmission) still goes upstream statelessly when our Via is on top.
   */
  stray(res: SipResponse): void {
    const vias = getHeaderValues(res, 'via');
    if (vias.length < 2 || !(vias[0].includes(' ' + this.host.hostport + ';') || vias[0].includes(' ' + this.host.hostportFor('tls') + ';'))) return;
    let cseq;
    try {
      cseq = parseCSeq(getHeader(res, 'cseq') ?? '');
    } catch {
      return;
    }
    if (cseq.method !== 'INVITE' || res.status < 200 || res.status >= 300) return;
    let next;
    try {
      next = parseVia(vias[1]);
    } catch {
      return;
    }
    const up = withoutTopVia(res);
    if (up === null || next.transport !== 'UDP') return;
    this.stats.strays++;
    const address = next.received ?? bareHost(next.host);
    this.host.transport.send({ proto: 'udp', address, port: next.rport ?? next.port ?? 5060, conn: 0 }, serializeMessage(up));
  }

  private sweep(now: number): void {
    for (const [k, d] of this.dialogs) {
      const gone =
        (d.endedAt !== 0 && now - d.endedAt > 32_000) || // room for BYE retransmissions and the other side's BYE
        (d.answeredAt === 0 && now - d.createdAt > this.ringMs + 64_000) ||
        now - d.createdAt > this.maxCallMs;
      if (gone) this.dialogs.delete(k);
    }
  }
}

/** `res` with its Vias replaced by those of `from` (the request it answers, as it came in), where its first Via was. */
function withVias(res: SipResponse, from: readonly SipHeader[]): SipResponse {
  const headers: SipHeader[] = [];
  let vias = false;
  for (const h of res.headers) {
    if (h.key !== 'via') headers.push(h);
    else if (!vias) {
      vias = true;
      for (const v of from) if (v.key === 'via') headers.push(v);
    }
  }
  return { ...res, headers };
}

/** The request's Via headers, as strings of their own (not views of its head, see ownString). */
function ownVias(req: SipRequest): SipHeader[] {
  const out: SipHeader[] = [];
  for (const h of req.headers) if (h.key === 'via') out.push({ name: h.name, key: h.key, value: ownString(h.value) });
  return out;
}

/** The way a request's responses go back up: its own Vias and the flow it came on. */
function upstreamOf(p: ProxyTx): Upstream {
  return { vias: ownVias(p.inc.req), flow: p.server.flow, viaPort: p.server.viaPort };
}

/** The tag of the From or To ('' when it has none, or cannot be read: the message was validated). */
function tagOf(m: SipRequest | SipResponse, header: 'from' | 'to'): string {
  try {
    return nameAddrParam(getHeader(m, header) ?? '', 'tag') ?? '';
  } catch {
    return '';
  }
}

/** The response without its top Via value; null when no Via would be left. */
function withoutTopVia(res: SipResponse): SipResponse | null {
  const headers: SipHeader[] = [];
  let popped = false;
  for (const h of res.headers) {
    if (h.key === 'via' && !popped) {
      popped = true;
      if (h.value.indexOf(',') >= 0) {
        const rest = splitHeaderList(h.value).slice(1);
        if (rest.length > 0) headers.push({ name: h.name, key: h.key, value: rest.join(', ') });
      }
      continue;
    }
    headers.push(h);
  }
  let vias = false;
  for (const h of headers) if (h.key === 'via') vias = true;
  return vias ? { ...res, headers } : null;
}

/** Where a request goes next (16.6 step 7): its first Route (our Path entries included), else its Request-URI. */
function nextHop(req: SipRequest): SipUri | null {
  try {
    const first = getHeader(req, 'route');
    const u = first !== undefined ? parseNameAddr(splitHeaderList(first)[0]).uri : parseSipUri(req.uri);
    return u.kind === 'sip' ? u : null;
  } catch {
    return null;
  }
}
