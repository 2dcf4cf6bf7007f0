// The node's SIP service: it builds the stack (transports, transaction layer, registrar, digest
// authentication, keepalives, proxy, presence agent), starts and stops it, and dispatches each
// request to the part that answers it, in the order of RFC 3261 8.2 (what the node answers
// itself) and 16.3 to 16.4 (what it would forward). Where a request for a user goes is
// routing.ts; a REGISTER is register-handler.ts; the pings are keepalive.ts.
//
// Every message is handled in a try/catch: bad input is answered (requests) or dropped
// (responses), never allowed to take the node down.

import { getHeader, removeHeaders, splitHeaderList, type SipMessage, type SipParseError, type SipRequest } from './message.ts';
import { emptyParsed, validateRequest, validateResponse, type ParsedRequest } from './validate.ts';
import { buildResponse, newTag, serializeMessage } from './serialize.ts';
import { getParam, parseMaxForwards, parseUri } from './uri.ts';
import { SipTransport, isSecure, type Flow, type Proto, type TlsOptions, type TransportOptions, type WsOptions } from './transport.ts';
import { NODE_PROOF_HEADER, NODE_PROOF_LABEL, hasSdesKeys, nodeProofValue, spkiFingerprint, tlsUri } from './tls.ts';
import { TransactionLayer, replyTo, topVia, type IncomingRequest, type Timers, type TransactionOptions } from './transaction.ts';
import { DigestAuth, type DigestOptions } from './digest.ts';
import { Registrar, type KeepaliveOptions, type PresenceListener, type RegistrarOptions } from './registrar.ts';
import { Proxy, type CallEnd, type ProxyOptions } from './proxy.ts';
import { PresenceAgent, type PresenceAgentOptions } from './presence-agent.ts';
import type { Locator, NodeProver, SipLogger, UserDirectory } from './injected.ts';
import { Trunk, type TrunkOptions } from './trunk.ts';
import { NodeIdentity } from './identity.ts';
import { ALLOW, KNOWN_METHODS, SUPPORTED_HEADER, acceptableBody, unsupported } from './uas.ts';
import { RegisterHandler, type RegisterResults } from './register-handler.ts';
import { Keepalive } from './keepalive.ts';
import { RelayPolicy } from './relay-policy.ts';
import { Router, type CallResults } from './routing.ts';

export type { Located, Locator, NodeProver, SipLogger, UserDirectory } from './injected.ts';

export interface SipServiceOptions {
  host: string;
  port: number;
  /** the address and port others reach the node at, when not `host` and `port` (NAT, a load balancer, a DNS name) */
  announce?: { host: string; port?: number };
  /** SIP over TLS too, on its own port, with this certificate */
  tls?: TlsOptions;
  /** SIP over WebSocket too (RFC 7118), on its own port: `ws`, or `wss` with the TLS certificate */
  ws?: WsOptions;
  /** how this node proves itself on TLS connections to other nodes */
  nodeProof?: NodeProver;
  /**
   * phones must use TLS: a REGISTER over UDP or TCP is refused (403), and so is a request whose
   * SDP carries SRTP keys (`a=crypto`, SDES) over a plain transport (488), rather than relayed
   * with the keys readable on the way
   */
  requireTls?: boolean;
  domain: string;
  /** anyone may register without credentials (devnet); credentials given are still checked */
  openRegistration: boolean;
  users: UserDirectory;
  timers?: Partial<Timers>;
  keepalive?: KeepaliveOptions;
  registrar?: Omit<RegistrarOptions, 'domain'>;
  digest?: Omit<DigestOptions, 'realm'>;
  log?: SipLogger;
  /** an address of record went online or offline (or its online period changed) */
  onPresence?: PresenceListener;
  /** where names of other nodes are served; without it only this node's users are reachable */
  locator?: Locator;
  proxy?: Omit<ProxyOptions, 'onCallEnd'>;
  presence?: PresenceAgentOptions;
  /** a call between this node's phone and another node's ended */
  onCallEnd?: (e: CallEnd) => void;
  /** TCP limits (connections per address, message and first-message timeouts, ...), the inbound queue, the ban list */
  transport?: Omit<TransportOptions, 'host' | 'port'>;
  /** bounds on what the transaction layer keeps */
  transactions?: Omit<TransactionOptions, 'timers'>;
  /** the operator's own SIP server, for the domain's users that do not register here (sip/trunk.ts) */
  trunk?: TrunkOptions;
}

const SILENT: SipLogger = { debug() {}, info() {}, warn() {} };

export class SipService {
  readonly transport: SipTransport;
  /** the SHA-256 of the TLS certificate's key (null: no TLS) */
  readonly tlsKey: string | null;
  private readonly requireTls: boolean;
  readonly tx: TransactionLayer;
  readonly registrar: Registrar;
  readonly digest: DigestAuth;
  readonly proxy: Proxy;
  readonly presence: PresenceAgent;
  readonly domain: string;
  private readonly log: SipLogger;
  /** the names that mean this node */
  private readonly self: NodeIdentity;
  private readonly registers: RegisterHandler;
  private readonly keepalive: Keepalive;
  private readonly router: Router;
  /** the trunk to the operator's server, when the node has one */
  readonly trunk: Trunk | undefined;
  private readonly users: UserDirectory;
  private readonly onPresence: PresenceListener | undefined;
  /** counters for logs and tests */
  stats = { requests: 0, responses: 0, malformed: 0, errors: 0 };
  /** REGISTER answers and calls answered here without forwarding, by result (for the metrics) */
  results: RegisterResults & CallResults = { registerOk: 0, registerChallenged: 0, registerRefused: 0, registerError: 0, callsNotFound: 0, callsOffline: 0 };

  constructor(opts: SipServiceOptions) {
    this.domain = opts.domain.toLowerCase();
    this.log = opts.log ?? SILENT;
    this.transport = new SipTransport({ ...opts.transport, host: opts.host, port: opts.port, tls: opts.tls, ws: opts.ws }, { message: (m, f) => this.onMessage(m, f), malformed: (e, p, f) => this.onMalformed(e, p, f) });
    this.tx = new TransactionLayer(this.transport, { ...opts.transactions, timers: opts.timers });
    const self = new NodeIdentity(this.domain, opts.host, this.transport, opts.announce);
    this.tlsKey = opts.tls === undefined ? null : spkiFingerprint(opts.tls.cert);
    this.requireTls = opts.requireTls === true;
    this.self = self;
    this.registrar = new Registrar({ ...opts.registrar, domain: this.domain }, opts.keepalive);
    this.keepalive = new Keepalive(self, this.transport, this.tx, this.registrar);
    this.registrar.pinger = (b) => this.keepalive.ping(b);
    const onPresence = opts.onPresence;
    this.registrar.onPresence = (aor, online, until) => {
      onPresence?.(aor, online, until);
      this.presence.changed(aor);
    };
    this.digest = new DigestAuth({ ...opts.digest, realm: this.domain });
    const log = this.log;
    const host = {
      transport: this.transport,
      tx: this.tx,
      domain: this.domain,
      get hostport(): string {
        return self.hostport;
      },
      hostportFor: (proto: Proto) => self.hostportFor(proto),
      recordRouteFor: (proto: Proto) => self.recordRouteFor(proto),
      proofFor: (flow: Flow) => {
        const prover = opts.nodeProof;
        if (prover === undefined) return null;
        return this.transport.ownProof(flow, (f) => {
          const binding = this.transport.channelBinding(f, NODE_PROOF_LABEL);
          return binding === null ? null : nodeProofValue(prover.nodeId, prover.sign(binding));
        });
      },
      debug: (m: string) => log.debug(m),
    };
    this.proxy = new Proxy(host, { ...opts.proxy, onCallEnd: opts.onCallEnd, sdesOverTlsOnly: opts.requireTls === true });
    this.presence = new PresenceAgent(host, (name) => this.router.presenceOf(name), opts.presence);
    const open = opts.openRegistration;
    this.trunk = opts.trunk === undefined ? undefined : new Trunk(opts.trunk, self, this.tx);
    this.users = opts.users;
    this.onPresence = opts.onPresence;
    const relay = new RelayPolicy(self, this.registrar, this.digest, opts.users, open, this.trunk);
    this.router = new Router({
      self,
      registrar: this.registrar,
      users: opts.users,
      locator: opts.locator,
      relay,
      proxy: this.proxy,
      presence: this.presence,
      transport: this.transport,
      open,
      results: this.results,
      trunk: this.trunk,
    });
    this.registers = new RegisterHandler(self, this.registrar, this.digest, opts.users, open, this.log, this.results);
  }

  /** The chain's view changed (a new tip, or a binding or node announcement pending): for NOTIFYs. */
  routingChanged(name?: string): void {
    this.presence.changed(name);
  }

  async start(): Promise<void> {
    await this.transport.start();
    // the users behind the trunk: checked through it, their presence reported as a phone's
    this.trunk?.start({ users: () => this.users.trunkUsers?.() ?? [] }, (u) => this.self.aorOf(u), (aor, online, until) => {
      this.onPresence?.(aor, online, until);
      this.presence.changed(aor);
    });
  }

  get port(): number {
    return this.transport.port;
  }

  /** host:port to put in URIs (IPv6 in brackets) */
  get hostport(): string {
    return this.self.hostport;
  }

  /** The node's SIP URI, as announced: sip:HOST:PORT */
  get uri(): string {
    return 'sip:' + this.hostport;
  }

  /** the TLS port (0: no TLS) */
  get tlsPort(): number {
    return this.transport.tlsPort;
  }

  /** the WebSocket port (0: none) */
  get wsPort(): number {
    return this.transport.wsPort;
  }

  /** The node's TLS URI, as announced: its TLS host:port and its certificate's key; null without TLS. */
  get tlsUri(): string | null {
    if (this.transport.tlsPort === 0 || this.tlsKey === null) return null;
    return tlsUri(this.self.hostportFor('tls'), this.tlsKey);
  }

  async stop(): Promise<void> {
    this.trunk?.stop();
    this.presence.stop();
    this.proxy.stop();
    this.registrar.stop();
    this.tx.stop();
    await this.transport.stop();
  }

  aorOf(user: string): string {
    return this.self.aorOf(user);
  }

  // -------------------------------------------------------------------------
  // inbound

  private onMessage(msg: SipMessage, flow: Flow): void {
    try {
      if (msg.kind === 'response') {
        this.stats.responses++;
        // RFC 3261 18.1.2: a response that fails the checks, or matches no transaction, is dropped
        if (validateResponse(msg) === null && !this.tx.receiveResponse(msg)) this.proxy.stray(msg);
        return;
      }
      this.stats.requests++;
      // A REGISTER without credentials is answered statelessly: processing it again gives the
      // same answer (the registrar knows a retransmission by the binding's branch), so nothing
      // is kept for it. One with credentials keeps its answer, since its nonce count may not be
      // used twice.
      const stateless = msg.method === 'REGISTER' && getHeader(msg, 'authorization') === undefined;
      // a retransmission (same bytes) is answered from its transaction before anything else
      const quick = stateless ? null : this.tx.quickKey(msg);
      if (quick !== null && this.tx.absorb(quick, msg, flow)) return;
      const parsed = emptyParsed();
      const err = validateRequest(msg, undefined, parsed);
      if (err !== null) {
        this.stateless(msg, flow, err.status, err.reason, err.detail);
        return;
      }
      const inc = this.tx.receiveRequest(msg, flow, parsed.via ?? undefined, quick, stateless);
      if (inc === null) return;
      inc.toTagged = parsed.to !== null && getParam(parsed.to.params, 'tag') !== undefined;
      this.handle(inc, parsed);
    } catch (e) {
      this.stats.errors++;
      this.log.debug(`sip: dropped a message from ${flow.address}:${flow.port}: ${(e as Error).message}`);
    }
  }

  private onMalformed(error: SipParseError, partial: SipMessage | null, flow: Flow): void {
    this.stats.malformed++;
    try {
      if (partial !== null && partial.kind === 'request') this.stateless(partial, flow, error.status, error.reason, error.detail);
    } catch (e) {
      this.log.debug(`sip: cannot answer a malformed request from ${flow.address}: ${(e as Error).message}`);
    }
  }

  /** Answers a request outside any transaction (it failed validation); never an ACK. */
  private stateless(req: SipRequest, flow: Flow, status: number, reason: string, detail: string): void {
    if (req.method === 'ACK') return;
    let hasVia = false;
    for (const h of req.headers) if (h.key === 'via') hasVia = true;
    if (!hasVia) return; // nowhere a response could be routed
    let viaPort: number | null = null;
    try {
      viaPort = topVia(req, flow).port;
    } catch {
      // a Via we cannot read: the response still goes back where the request came from
    }
    const res = buildResponse(req, status, reason, [['Warning', `399 ${this.domain} "${detail.replace(/["\\]/g, '')}"`]], { toTag: newTag() });
    this.tx.sendResponse(flow, serializeMessage(res), viaPort);
  }

  private handle(inc: IncomingRequest, parsed: ParsedRequest): void {
    const { req } = inc;
    const method = req.method;
    // loose routing (16.4): Route entries naming this node are done with
    const routed = this.popOwnRoutes(req);
    // a calling node's proof is for this node only (read below, for a call from another node)
    const proof = getHeader(req, NODE_PROOF_HEADER);
    if (proof !== undefined) removeHeaders(req, NODE_PROOF_HEADER);
    if (inc.tx === null) {
      // an ACK outside any transaction: the ACK of a 2xx, for a dialog we record-routed
      if (this.proxy.knowsDialog(getHeader(req, 'call-id') ?? '')) this.proxy.forwardInDialog(inc);
      return;
    }
    const ruri = parsed.uri ?? parseUri(req.uri);
    const forNode = !routed && this.self.isForNode(ruri);
    const presenceUas = (method === 'SUBSCRIBE' || method === 'PUBLISH') && isPresenceEvent(req);
    // RFC 3261 16.3 step 3: a request this node would forward must have hops left
    if (!forNode && method !== 'REGISTER' && !presenceUas) {
      const mf = getHeader(req, 'max-forwards');
      if (mf !== undefined && parseMaxForwards(mf) === 0) {
        replyTo(inc, 483, 'Too Many Hops');
        return;
      }
    }
    if (!KNOWN_METHODS.has(method)) {
      replyTo(inc, 501, 'Not Implemented', [['Allow', ALLOW]]);
      return;
    }
    if (method === 'CANCEL') {
      // RFC 3261 9.2 and 16.10: answer the CANCEL, then cancel what the INVITE was forwarded to
      const inv = this.tx.findInviteFor(inc);
      if (inv === undefined) replyTo(inc, 481, 'Call/Transaction Does Not Exist');
      else {
        replyTo(inc, 200, 'OK');
        this.proxy.cancel(inv.key);
      }
      return;
    }
    const unknownTags = unsupported(req, !forNode && !presenceUas);
    if (unknownTags.length > 0) {
      replyTo(inc, 420, 'Bad Extension', [['Unsupported', unknownTags.join(', ')]]);
      return;
    }
    if (this.requireTls && !isSecure(inc.flow.proto)) {
      if (method === 'REGISTER') {
        replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.domain} "register over TLS: this node requires it"`]]);
        return;
      }
      if (hasSdesKeys(req)) {
        replyTo(inc, 488, 'Not Acceptable Here', [['Warning', `399 ${this.domain} "SRTP keys (a=crypto) over a plain transport: use TLS"`]]);
        return;
      }
    }
    // RFC 5630: sips: means TLS on every hop, the first one too
    if (ruri.scheme === 'sips' && !isSecure(inc.flow.proto)) {
      replyTo(inc, 416, 'Unsupported URI Scheme', [['Warning', `399 ${this.domain} "a sips: request must come over TLS (RFC 5630)"`]]);
      return;
    }
    if (method === 'REGISTER') {
      this.registers.handle(inc, ruri, parsed);
      return;
    }
    if (inc.toTagged === true && this.inDialog(inc, forNode)) return;
    if (forNode) {
      if (method !== 'OPTIONS') {
        replyTo(inc, 405, 'Method Not Allowed', [['Allow', ALLOW]]);
        return;
      }
      if (!acceptableBody(inc)) return;
      // an OPTIONS to the node changes nothing: its retransmission is answered again, not kept
      inc.tx.keep = false;
      replyTo(inc, 200, 'OK', [
        ['Allow', ALLOW],
        ['Accept', 'application/sdp'],
        ['Supported', SUPPORTED_HEADER],
      ]);
      return;
    }
    if (routed) {
      // a preloaded route to elsewhere: the node forwards to its phones and to the nodes the
      // chain names, not wherever a request asks (no open relay)
      replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.domain} "a preloaded Route is not relayed"`]]);
      return;
    }
    this.router.toUser(inc, ruri, parsed, presenceUas, proof);
  }

  /** Removes the top Route entries that name this node; true when other Route entries remain. */
  private popOwnRoutes(req: SipRequest): boolean {
    const hs = req.headers;
    let i = 0;
    while (i < hs.length && hs[i].key !== 'route') i++;
    while (i < hs.length) {
      const h = hs[i];
      if (h.key !== 'route') {
        i++;
        continue;
      }
      const parts = h.value.indexOf(',') < 0 ? [h.value] : splitHeaderList(h.value);
      let k = 0;
      while (k < parts.length && this.self.isUs(parts[k])) k++;
      if (k === 0) return true;
      if (k === parts.length) hs.splice(i, 1);
      else {
        hs[i] = { name: h.name, key: h.key, value: parts.slice(k).join(', ') };
        return true;
      }
    }
    return false;
  }

  /**
   * In-dialog requests: our own subscriptions' refreshes, and what a call we record-routed
   * carries. False for a dialog this node knows nothing of, addressed to a user: that is routed
   * like any request for the user (Kamailio's default does the same).
   */
  private inDialog(inc: IncomingRequest, forNode: boolean): boolean {
    const req = inc.req;
    if (req.method === 'SUBSCRIBE' && forNode) this.presence.subscribe(inc, '');
    else if (!forNode && this.proxy.knowsDialog(getHeader(req, 'call-id') ?? '')) this.proxy.forwardInDialog(inc);
    else if (forNode) replyTo(inc, 481, 'Call/Transaction Does Not Exist');
    else return false;
    return true;
  }
}

function isPresenceEvent(req: SipRequest): boolean {
  const ev = getHeader(req, 'event');
  return ev !== undefined && ev.split(';')[0].trim().toLowerCase() === 'presence';
}

