// The node's SIP service: transports, transaction layer, registrar, digest authentication,
// OPTIONS keepalives, the proxy and the presence agent, and the request dispatch between them
// (RFC 3261 8.2 for what the node answers itself, 16.3 to 16.5 for where a request for a user
// goes: this node's phones through the registrar, other nodes' users through the node the chain
// names, see docs/routing.md).
//
// Every message is handled in a try/catch: bad input is answered (requests) or dropped
// (responses), never allowed to take the node down.

import { isIP } from 'node:net';
import { randomUUID } from 'node:crypto';
import {
  getHeader,
  getHeaderValues,
  getHeaders,
  headerKey,
  splitHeaderList,
  type SipHeader,
  type SipMessage,
  type SipParseError,
  type SipRequest,
} from './message.ts';
import { emptyParsed, validateRequest, validateResponse, type ParsedRequest } from './validate.ts';
import { buildResponse, newBranch, newTag, serializeMessage } from './serialize.ts';
import { bareHost, getParam, normalizeEscapes, parseMaxForwards, parseNameAddr, parseUri, type SipUri, type Uri } from './uri.ts';
import { SipTransport, viaFor, type Flow } from './transport.ts';
import { TransactionLayer, replyTo, topVia, type IncomingRequest, type Timers } from './transaction.ts';
import { DigestAuth, type DigestCredentials, type DigestOptions } from './digest.ts';
import { ContactState, Registrar, type ContactBinding, type KeepaliveOptions, type PresenceListener, type RegistrarOptions } from './registrar.ts';
import { Proxy, type CallEnd, type CallRole, type Hop, type ProxyOptions } from './proxy.ts';
import { PresenceAgent, type PresenceAgentOptions } from './presence-agent.ts';
import type { Basic } from './pidf.ts';

/** Where the chain (tip plus pending records) says a name is served. */
export type Located =
  | { kind: 'local' }
  | { kind: 'remote'; nodeId: Uint8Array; uris: string[]; online: boolean }
  | { kind: 'unknown' };

/** The chain's view of names, supplied by the node (core/routing.ts). */
export interface Locator {
  locate(name: string): Located;
}

/** Where digest credentials come from (the node's account store). */
export interface UserDirectory {
  /** HA1 values for a user name (lower case), for realm = the domain */
  lookup(user: string): DigestCredentials | undefined;
  /** the user a chain name of theirs reaches (an E.164 number, a sip: name elsewhere), if any */
  userOfAlias?(name: string): string | undefined;
}

export interface SipLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

export interface SipServiceOptions {
  host: string;
  port: number;
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
}

const SILENT: SipLogger = { debug() {}, info() {}, warn() {} };

/** Methods recognised at all: others get 501 (RFC 3261 21.5.2). */
const KNOWN_METHODS = new Set(['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE']);
/** What the node itself serves as a UAS. */
const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH, PRACK, UPDATE, INFO, REFER';
/** Option tags this node understands (Require / Proxy-Require, RFC 3261 8.2.2.3). */
const SUPPORTED = new Set(['path', 'outbound']);
const SUPPORTED_HEADER = 'path, outbound';
const ACCEPTED_BODIES = new Set(['application/sdp']);

export class SipService {
  readonly transport: SipTransport;
  readonly tx: TransactionLayer;
  readonly registrar: Registrar;
  readonly digest: DigestAuth;
  readonly proxy: Proxy;
  readonly presence: PresenceAgent;
  readonly domain: string;
  private readonly log: SipLogger;
  private readonly open: boolean;
  private readonly users: UserDirectory;
  private readonly localCallId = randomUUID();
  private pingSeq = 0;
  /** counters for logs and tests */
  stats = { requests: 0, responses: 0, malformed: 0, errors: 0 };
  /** REGISTER answers and calls answered here without forwarding, by result (for the metrics) */
  results = { registerOk: 0, registerChallenged: 0, registerRefused: 0, registerError: 0, callsNotFound: 0, callsOffline: 0 };

  constructor(private readonly opts: SipServiceOptions) {
    this.domain = opts.domain.toLowerCase();
    this.log = opts.log ?? SILENT;
    this.open = opts.openRegistration;
    this.users = opts.users;
    this.transport = new SipTransport({ host: opts.host, port: opts.port }, { message: (m, f) => this.onMessage(m, f), malformed: (e, p, f) => this.onMalformed(e, p, f) });
    this.tx = new TransactionLayer(this.transport, { timers: opts.timers });
    this.registrar = new Registrar({ ...opts.registrar, domain: this.domain }, opts.keepalive);
    this.registrar.pinger = (b) => this.ping(b);
    const onPresence = opts.onPresence;
    this.registrar.onPresence = (aor, online, until) => {
      onPresence?.(aor, online, until);
      this.presence.changed(aor);
    };
    this.digest = new DigestAuth({ ...opts.digest, realm: this.domain });
    const log = this.log;
    const self = this;
    const host = {
      transport: this.transport,
      tx: this.tx,
      domain: this.domain,
      get hostport(): string {
        return self.hostport;
      },
      debug: (m: string) => log.debug(m),
    };
    this.proxy = new Proxy(host, { ...opts.proxy, onCallEnd: opts.onCallEnd });
    this.presence = new PresenceAgent(host, (name) => this.presenceOf(name), opts.presence);
  }

  /** The chain's view changed (a new tip, or a binding or node announcement pending): for NOTIFYs. */
  routingChanged(name?: string): void {
    this.presence.changed(name);
  }

  async start(): Promise<void> {
    await this.transport.start();
  }

  get port(): number {
    return this.transport.port;
  }

  /** host:port to put in URIs (IPv6 in brackets) */
  get hostport(): string {
    const h = this.opts.host;
    return (isIP(h) === 6 ? `[${h}]` : h) + ':' + this.port;
  }

  /** The node's SIP URI, as announced: sip:HOST:PORT */
  get uri(): string {
    return 'sip:' + this.hostport;
  }

  async stop(): Promise<void> {
    this.presence.stop();
    this.proxy.stop();
    this.registrar.stop();
    this.tx.stop();
    await this.transport.stop();
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
    if (inc.tx === null) {
      // an ACK outside any transaction: the ACK of a 2xx, for a dialog we record-routed
      if (this.proxy.knowsDialog(getHeader(req, 'call-id') ?? '')) this.proxy.forwardInDialog(inc);
      return;
    }
    const ruri = parsed.uri ?? parseUri(req.uri);
    const forNode = !routed && this.isForNode(ruri);
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
    const unsupported = this.unsupported(req, !forNode && !presenceUas);
    if (unsupported.length > 0) {
      replyTo(inc, 420, 'Bad Extension', [['Unsupported', unsupported.join(', ')]]);
      return;
    }
    if (method === 'REGISTER') {
      this.register(inc, ruri, parsed);
      const st = inc.tx.lastStatus;
      const r = this.results;
      if (st === 200) r.registerOk++;
      else if (st === 401) r.registerChallenged++;
      else if (st === 403 || st === 404) r.registerRefused++;
      else r.registerError++;
      return;
    }
    if (inc.toTagged === true && this.inDialog(inc, forNode)) return;
    if (forNode) {
      if (method !== 'OPTIONS') {
        replyTo(inc, 405, 'Method Not Allowed', [['Allow', ALLOW]]);
        return;
      }
      if (!this.acceptableBody(inc)) return;
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
    this.toUser(inc, ruri, parsed, presenceUas);
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
      while (k < parts.length && this.isUs(parts[k])) k++;
      if (k === 0) return true;
      if (k === parts.length) hs.splice(i, 1);
      else {
        hs[i] = { name: h.name, key: h.key, value: parts.slice(k).join(', ') };
        return true;
      }
    }
    return false;
  }

  /** Whether a URI (a Route entry, a name-addr or a bare URI) names this node: its domain, or its address and port. */
  private isUs(value: string): boolean {
    let u: Uri;
    try {
      u = value.indexOf('<') >= 0 ? parseNameAddr(value).uri : parseUri(value);
    } catch {
      return false;
    }
    return u.kind === 'sip' && u.user === null && this.namesUs(u);
  }

  /** The URI's host is this node's domain, or its address with its port. */
  private namesUs(u: SipUri): boolean {
    const h = u.host.toLowerCase();
    return h === this.domain || (this.isOurHost(h) && (u.port ?? 5060) === this.port);
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

  /** A request for a user: this node's phones, another node's user, or the presence agent. */
  private toUser(inc: IncomingRequest, ruri: Uri, parsed: ParsedRequest, presenceUas: boolean): void {
    const req = inc.req;
    const phone = e164Of(ruri);
    if (phone === null && (ruri.kind !== 'sip' || ruri.user === null)) {
      replyTo(inc, 416, 'Unsupported URI Scheme');
      return;
    }
    let name: string;
    let ours = false;
    let user = '';
    if (phone !== null) name = phone;
    else {
      const u = ruri as SipUri;
      user = canonicalUser(u.user as string);
      const host = u.host.toLowerCase();
      ours = this.namesUs(u);
      if (!ours && isIP(bareHost(host)) !== 0) {
        // a phone's address (outside a dialog): only this node's own phones may send there
        if (this.mayRelay(inc, parsed)) this.proxy.forward(inc, { groups: [[{ ruri: null, route: [], flow: null, label: 'the addressed phone' }]], recordRoute: req.method === 'INVITE' });
        return;
      }
      name = ours ? this.aorOf(user) : `sip:${user}@${host}`;
    }
    // a name a user of this node claimed and delegated here (a number, another domain's address)
    const aliasOf = ours ? undefined : this.users.userOfAlias?.(name);
    const aor = aliasOf !== undefined ? this.aorOf(aliasOf) : name;
    if (presenceUas) {
      if (req.method === 'SUBSCRIBE') this.presence.subscribe(inc, name);
      else if (!ours) replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.domain} "publish at the node that serves you"`]]);
      else if (this.callerIs(inc, parsed, user)) this.presence.publish(inc, name);
      return;
    }
    const contacts = this.registrar.lookup(aor).filter((b) => b.state !== ContactState.Dead);
    if (contacts.length > 0) {
      const role: CallRole['role'] = this.fromLocalPhone(inc, parsed) ? 'local' : 'term';
      void this.contactGroups(contacts).then((groups) => this.proxy.forward(inc, { groups, recordRoute: req.method === 'INVITE', call: req.method === 'INVITE' ? { role, peer: null } : undefined }));
      return;
    }
    const at = this.opts.locator?.locate(name) ?? ({ kind: 'unknown' } as const);
    if (at.kind === 'remote') {
      if (!at.online) {
        if (req.method === 'INVITE') this.results.callsOffline++;
        replyTo(inc, 480, 'Temporarily Unavailable', [['Warning', `399 ${this.domain} "offline"`]]);
        return;
      }
      // a request from another node for a name this node does not serve is no one's to relay
      if (this.localUserOf(parsed) === null) {
        replyTo(inc, 480, 'Temporarily Unavailable', [['Warning', `399 ${this.domain} "not served by this node"`]]);
        return;
      }
      if (!this.mayRelay(inc, parsed)) return;
      const label = 'node ' + Buffer.from(at.nodeId).toString('hex').slice(0, 12);
      const groups: Hop[][] = at.uris.map((u) => [{ ruri: null, route: [`<${u};lr>`], flow: null, label }]);
      this.proxy.forward(inc, { groups, recordRoute: req.method === 'INVITE', call: req.method === 'INVITE' ? { role: 'orig', peer: at.nodeId } : undefined });
      return;
    }
    const known = at.kind === 'local' || aliasOf !== undefined || (ours && (this.registrar.has(name) || this.users.lookup(user) !== undefined));
    if (req.method === 'INVITE') {
      if (known) this.results.callsOffline++;
      else this.results.callsNotFound++;
    }
    if (known) replyTo(inc, 480, 'Temporarily Unavailable');
    else replyTo(inc, 404, 'Not Found');
  }

  /** A user's contacts as forking groups: the highest q first, equal q in parallel (RFC 3261 16.6). */
  private async contactGroups(contacts: ContactBinding[]): Promise<Hop[][]> {
    const sorted = [...contacts].sort((a, b) => qOf(b) - qOf(a));
    const groups: Hop[][] = [];
    let q = NaN;
    for (let i = 0; i < sorted.length; i++) {
      const b = sorted[i];
      const hop: Hop = { ruri: b.uriText, route: b.path, flow: b.path.length > 0 ? null : await this.contactFlow(b), label: `contact ${i + 1} of ${b.aor}` };
      if (qOf(b) !== q) groups.push([hop]);
      else groups[groups.length - 1].push(hop);
      q = qOf(b);
    }
    return groups;
  }

  /** What the presence agent tells watchers of `name`. */
  private presenceOf(name: string): Basic | undefined {
    const alias = this.users.userOfAlias?.(name);
    if (alias !== undefined && this.registrar.presence(this.aorOf(alias)).online) return 'open';
    if (this.registrar.presence(name).online) return 'open';
    const at = this.opts.locator?.locate(name);
    if (at !== undefined && at.kind === 'remote') return at.online ? 'open' : 'closed';
    if (at !== undefined && at.kind === 'local') return 'closed';
    const domain = '@' + this.domain;
    if (name.endsWith(domain)) {
      const user = name.slice(4, -domain.length);
      if (this.registrar.has(name) || this.users.lookup(user) !== undefined || this.open) return 'closed';
    }
    return undefined;
  }

  /** The user of this node's domain the request's From names (escapes decoded, lower case), or null. */
  private localUserOf(parsed: ParsedRequest): string | null {
    const f = parsed.from?.uri;
    return f !== undefined && f.kind === 'sip' && f.user !== null && f.host.toLowerCase() === this.domain ? canonicalUser(f.user) : null;
  }

  /** The request came from a phone registered here as its From user (the flow it registered on). */
  private fromLocalPhone(inc: IncomingRequest, parsed: ParsedRequest): boolean {
    const user = this.localUserOf(parsed);
    if (user === null) return false;
    const flow = inc.flow;
    for (const b of this.registrar.lookup(this.aorOf(user))) {
      const bf = b.flow;
      if (bf.proto === flow.proto && (flow.proto === 'udp' ? bf.address === flow.address && bf.port === flow.port : bf.conn === flow.conn)) return true;
    }
    return false;
  }

  /**
   * Whether the request may be relayed: it comes from this node's phone (the flow it registered
   * on), carries valid Proxy-Authorization for its From user (407 asks for it), or registration
   * is open (devnet). Answers 403 or 407 itself when not.
   */
  private mayRelay(inc: IncomingRequest, parsed: ParsedRequest): boolean {
    const user = this.localUserOf(parsed);
    if (user === null) {
      replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.domain} "relaying denied"`]]);
      return false;
    }
    return this.callerIs(inc, parsed, user);
  }

  /** The request is from `user` of this node (see mayRelay); answers 407 or 403 when it cannot tell. */
  private callerIs(inc: IncomingRequest, parsed: ParsedRequest, user: string): boolean {
    if (this.localUserOf(parsed) !== user) {
      replyTo(inc, 403, 'Forbidden');
      return false;
    }
    if (this.fromLocalPhone(inc, parsed)) return true;
    const req = inc.req;
    const authz = getHeaders(req, 'proxy-authorization');
    if (authz.length === 0 && this.open) return true;
    if (this.users.lookup(user) === undefined) {
      replyTo(inc, 403, 'Forbidden', [['Warning', `399 ${this.domain} "no such account"`]]);
      return false;
    }
    const r = this.digest.verify(authz, req.method, req.uri, req.body, inc.flow.address, (u) => this.users.lookup(u.toLowerCase()));
    if (r.ok && r.user.toLowerCase() === user) return true;
    if (r.ok) {
      replyTo(inc, 403, 'Forbidden');
      return false;
    }
    if (r.status === 401) {
      const ch = this.digest.challenges(r.stale, this.digest.algorithmsFor(getHeader(req, 'user-agent')));
      replyTo(inc, 407, 'Proxy Authentication Required', ch.map((c) => ['Proxy-Authenticate', c] as [string, string]));
    } else replyTo(inc, r.status, r.reason);
    return false;
  }

  /** Option tags in Require (and Proxy-Require when the request would be forwarded) that are not supported. */
  private unsupported(req: SipRequest, proxying: boolean): string[] {
    const out: string[] = [];
    if (req.method === 'ACK' || req.method === 'CANCEL') return out;
    for (const t of getHeaderValues(req, 'require')) if (!SUPPORTED.has(t.toLowerCase())) out.push(t);
    if (proxying) for (const t of getHeaderValues(req, 'proxy-require')) if (!SUPPORTED.has(t.toLowerCase())) out.push(t);
    return out;
  }

  /** RFC 3261 8.2.3: a body of a type the node does not understand gets 415 with Accept. */
  private acceptableBody(inc: IncomingRequest): boolean {
    const req = inc.req;
    if (req.body.length === 0) return true;
    const ct = getHeader(req, 'content-type');
    const type = ct === undefined ? '' : ct.split(';')[0].trim().toLowerCase();
    const disp = getHeader(req, 'content-disposition');
    if (ACCEPTED_BODIES.has(type) || (disp !== undefined && /handling\s*=\s*optional/i.test(disp))) return true;
    replyTo(inc, 415, 'Unsupported Media Type', [['Accept', 'application/sdp']]);
    return false;
  }

  /** The Request-URI names this node (its domain or its address) rather than a user. */
  private isForNode(u: Uri): boolean {
    return u.kind === 'sip' && u.user === null && this.isOurHost(u.host);
  }

  private isOurHost(host: string): boolean {
    const h = host.toLowerCase();
    if (h === this.domain || h === 'localhost') return true;
    const bare = bareHost(h);
    const mine = this.opts.host;
    if (bare === mine) return true;
    // bound to every address: any IP literal that reached us is ours
    return isIP(bare) !== 0 && (mine === '0.0.0.0' || mine === '::');
  }

  aorOf(user: string): string {
    return 'sip:' + user + '@' + this.domain;
  }

  // -------------------------------------------------------------------------
  // REGISTER (RFC 3261 10.3)

  private register(inc: IncomingRequest, ruri: Uri, parsed: ParsedRequest): void {
    const { req, flow, via } = inc;
    // step 1: the Request-URI names this registrar's domain
    if (ruri.kind !== 'sip' || !this.isOurHost(ruri.host)) {
      replyTo(inc, 404, 'Not Found');
      return;
    }
    if (!this.acceptableBody(inc)) return;
    // step 3: who is asking
    // (a stateless REGISTER carries none: see onMessage)
    const authz = inc.tx?.stateless === true ? NO_CREDENTIALS : getHeaders(req, 'authorization');
    let authUser: string | null = null;
    if (!this.open || authz.length > 0) {
      const r = this.digest.verify(authz, 'REGISTER', req.uri, req.body, flow.address, (u) => this.users.lookup(u.toLowerCase()), undefined, (u) => {
        try {
          return this.isForNode(parseUri(u));
        } catch {
          return false;
        }
      });
      if (!r.ok) {
        if (r.status === 401) {
          if (r.failure) this.log.debug(`sip: failed authentication from ${flow.address}`);
          const ch = this.digest.challenges(r.stale, this.digest.algorithmsFor(getHeader(req, 'user-agent')));
          replyTo(inc, 401, 'Unauthorized', ch.map((c) => ['WWW-Authenticate', c] as [string, string]));
        } else replyTo(inc, r.status, r.reason);
        return;
      }
      authUser = r.user.toLowerCase();
    }
    // step 5: the address of record, in this domain
    let to: Uri;
    try {
      to = (parsed.to ?? parseNameAddr(getHeader(req, 'to') as string)).uri;
    } catch {
      replyTo(inc, 400, 'Bad Request');
      return;
    }
    if (to.kind !== 'sip' || to.user === null || to.host.toLowerCase() !== this.domain) {
      replyTo(inc, 404, 'Not Found');
      return;
    }
    const user = canonicalUser((to as SipUri).user as string);
    // step 4: an authenticated user registers its own address of record only
    if (authUser !== null && authUser !== user) {
      replyTo(inc, 403, 'Forbidden');
      return;
    }
    const r = this.registrar.register(req, flow, via, this.aorOf(user), parsed);
    replyTo(inc, r.status, r.reason, r.headers);
  }

  // -------------------------------------------------------------------------
  // keepalive pings (client transactions)

  /**
   * How to reach a registered contact: the flow it registered on when that is all that works
   * (a TCP connection, RFC 5626 outbound, a contact that is a name or a private address seen
   * from another address: a phone behind NAT, like Kamailio's fix_nated_register), else the
   * address in the contact itself (a phone registering for another device, as SIPp tests do).
   */
  private async contactFlow(b: ContactBinding): Promise<Flow | null> {
    const u = b.uri;
    const host = u.kind === 'sip' ? bareHost(u.host) : '';
    if (b.flow.proto === 'udp') {
      if (b.outbound || isIP(host) === 0 || (isPrivate(host) && host !== b.flow.address) || u.kind !== 'sip') return b.flow;
      return { proto: 'udp', address: host, port: u.port ?? 5060, conn: 0 };
    }
    if (this.transport.isOpen(b.flow)) return b.flow;
    // the phone's TCP connection is gone: reach the contact itself if it is an address
    if (isIP(host) === 0 || u.kind !== 'sip') return null;
    try {
      b.flow = await this.transport.connect(host, u.port ?? 5060, this.registrar.keepalive.timeoutMs); // later pings reuse it
      return b.flow;
    } catch {
      return null;
    }
  }

  private async ping(b: ContactBinding): Promise<boolean> {
    const flow = b.path.length > 0 ? b.flow : await this.contactFlow(b);
    if (flow === null) return false;
    const branch = newBranch();
    const headers: SipHeader[] = [
      hdr('Via', viaFor(flow, this.hostport, branch, true)),
      hdr('Max-Forwards', '70'),
    ];
    for (const p of b.path) headers.push(hdr('Route', p));
    headers.push(
      hdr('From', `<sip:keepalive@${this.domain}>;tag=${newTag()}`),
      hdr('To', `<${b.uriText}>`),
      hdr('Call-ID', `${this.localCallId}-${(this.pingSeq = (this.pingSeq + 1) >>> 0)}`),
      hdr('CSeq', '1 OPTIONS'),
      hdr('Content-Length', '0'),
    );
    const req: SipRequest = { kind: 'request', method: 'OPTIONS', uri: b.uriText, version: 'SIP/2.0', headers, body: Buffer.alloc(0) };
    const res = await this.tx.request(req, flow, branch, this.registrar.keepalive.timeoutMs);
    // any answer from the phone proves it is there, even a 4xx
    return res !== null;
  }
}

/** RFC 1918, CGNAT, link-local and unique-local addresses: a contact there is behind NAT if seen from elsewhere. */
function isPrivate(ip: string): boolean {
  return /^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.|169\.254\.|f[cd]|fe80:)/i.test(ip);
}

/** q in thousandths; a contact without one counts as 1.0 */
function qOf(b: ContactBinding): number {
  return b.q < 0 ? 1000 : b.q;
}

/**
 * The E.164 number a Request-URI dials, as a chain name: `tel:+15551234567` (RFC 3966, visual
 * separators dropped) or `sip:+15551234567@host;user=phone`; null for anything else.
 */
function e164Of(u: Uri): string | null {
  let digits: string | null = null;
  if (u.kind === 'other' && u.scheme === 'tel') digits = u.value.split(';')[0];
  else if (u.kind === 'sip' && u.user !== null && u.user.charCodeAt(0) === 43 && u.params.some((p) => p.name.toLowerCase() === 'user' && p.value?.toLowerCase() === 'phone')) digits = u.user;
  if (digits === null) return null;
  const n = digits.replace(/[-.()]/g, '');
  return /^\+[1-9][0-9]{1,14}$/.test(n) ? n : null;
}

function isPresenceEvent(req: SipRequest): boolean {
  const ev = getHeader(req, 'event');
  return ev !== undefined && ev.split(';')[0].trim().toLowerCase() === 'presence';
}

function hdr(name: string, value: string): SipHeader {
  return { name, key: headerKey(name), value };
}

/** A user part as an address-of-record key: escapes of unreserved characters decoded, lower case. */
const NO_CREDENTIALS: string[] = [];

export function canonicalUser(user: string): string {
  return normalizeEscapes(user).toLowerCase();
}
