// The node's SIP service: transports, transaction layer, registrar, digest authentication and
// OPTIONS keepalives, and the request dispatch between them (RFC 3261 8.2 for what the node
// answers itself, 16.3 for what it would forward: calls and messages to users are the proxy's,
// which is not part of this version, so they get 404 or 480 here).
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
  type SipHeader,
  type SipMessage,
  type SipParseError,
  type SipRequest,
} from './message.ts';
import { emptyParsed, validateRequest, validateResponse, type ParsedRequest } from './validate.ts';
import { buildResponse, newBranch, newTag, responseBytes, serializeMessage } from './serialize.ts';
import { getParam, normalizeEscapes, parseMaxForwards, parseNameAddr, parseUri, type SipUri, type Uri } from './uri.ts';
import { SipTransport, type Flow } from './transport.ts';
import { TransactionLayer, topVia, type IncomingRequest, type Timers } from './transaction.ts';
import { DigestAuth, type DigestCredentials, type DigestOptions } from './digest.ts';
import { Registrar, type ContactBinding, type KeepaliveOptions, type PresenceListener, type RegistrarOptions } from './registrar.ts';

/** Where digest credentials come from (the node's account store). */
export interface UserDirectory {
  /** HA1 values for a user name (lower case), for realm = the domain */
  lookup(user: string): DigestCredentials | undefined;
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
}

const SILENT: SipLogger = { debug() {}, info() {}, warn() {} };

/** Methods recognised at all: others get 501 (RFC 3261 21.5.2). */
const KNOWN_METHODS = new Set(['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE']);
/** What the node itself serves as a UAS. */
const ALLOW = 'REGISTER, OPTIONS, ACK, CANCEL';
/** Option tags this node understands (Require / Proxy-Require, RFC 3261 8.2.2.3). */
const SUPPORTED = new Set(['path', 'outbound']);
const SUPPORTED_HEADER = 'path, outbound';
const ACCEPTED_BODIES = new Set(['application/sdp']);

export class SipService {
  readonly transport: SipTransport;
  readonly tx: TransactionLayer;
  readonly registrar: Registrar;
  readonly digest: DigestAuth;
  readonly domain: string;
  private readonly log: SipLogger;
  private readonly open: boolean;
  private readonly users: UserDirectory;
  private readonly localCallId = randomUUID();
  private pingSeq = 0;
  /** counters for logs and tests */
  stats = { requests: 0, responses: 0, malformed: 0, errors: 0 };

  constructor(private readonly opts: SipServiceOptions) {
    this.domain = opts.domain.toLowerCase();
    this.log = opts.log ?? SILENT;
    this.open = opts.openRegistration;
    this.users = opts.users;
    this.transport = new SipTransport({ host: opts.host, port: opts.port }, { message: (m, f) => this.onMessage(m, f), malformed: (e, p, f) => this.onMalformed(e, p, f) });
    this.tx = new TransactionLayer(this.transport, { timers: opts.timers });
    this.registrar = new Registrar({ ...opts.registrar, domain: this.domain }, opts.keepalive);
    this.registrar.pinger = (b) => this.ping(b);
    if (opts.onPresence !== undefined) this.registrar.onPresence = opts.onPresence;
    this.digest = new DigestAuth({ ...opts.digest, realm: this.domain });
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
        if (validateResponse(msg) === null) this.tx.receiveResponse(msg);
        return;
      }
      this.stats.requests++;
      // a retransmission (same bytes) is answered from its transaction before anything else
      const quick = this.tx.quickKey(msg);
      if (quick !== null && this.tx.absorb(quick, msg, flow)) return;
      const parsed = emptyParsed();
      const err = validateRequest(msg, undefined, parsed);
      if (err !== null) {
        this.stateless(msg, flow, err.status, err.reason, err.detail);
        return;
      }
      const inc = this.tx.receiveRequest(msg, flow, parsed.via ?? undefined, quick);
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

  private reply(inc: IncomingRequest, status: number, reason: string, headers?: Array<[string, string]>): void {
    const tx = inc.tx;
    if (tx === null) return;
    tx.respondBytes(responseBytes(inc.req, status, reason, headers, status === 100 || inc.toTagged === true ? null : newTag()), status);
  }

  private handle(inc: IncomingRequest, parsed: ParsedRequest): void {
    const { req } = inc;
    const method = req.method;
    if (inc.tx === null) return; // an ACK outside a transaction: there is no dialog here to hand it to
    const ruri = parsed.uri ?? parseUri(req.uri);
    const forNode = this.isForNode(ruri);
    // RFC 3261 16.3 step 3: a request this node would forward must have hops left
    if (!forNode && method !== 'REGISTER') {
      const mf = getHeader(req, 'max-forwards');
      if (mf !== undefined && parseMaxForwards(mf) === 0) {
        this.reply(inc, 483, 'Too Many Hops');
        return;
      }
    }
    if (!KNOWN_METHODS.has(method)) {
      this.reply(inc, 501, 'Not Implemented', [['Allow', ALLOW]]);
      return;
    }
    if (method === 'CANCEL') {
      // RFC 3261 9.2: the INVITE was answered at once, so a CANCEL either finds it done or nothing
      if (this.tx.findInviteFor(inc) === undefined) this.reply(inc, 481, 'Call/Transaction Does Not Exist');
      else this.reply(inc, 200, 'OK');
      return;
    }
    const unsupported = this.unsupported(req, !forNode);
    if (unsupported.length > 0) {
      this.reply(inc, 420, 'Bad Extension', [['Unsupported', unsupported.join(', ')]]);
      return;
    }
    if (method === 'REGISTER') {
      this.register(inc, ruri, parsed);
      return;
    }
    if (forNode) {
      if (method !== 'OPTIONS') {
        this.reply(inc, 405, 'Method Not Allowed', [['Allow', ALLOW]]);
        return;
      }
      if (!this.acceptableBody(inc)) return;
      this.reply(inc, 200, 'OK', [
        ['Allow', ALLOW],
        ['Accept', 'application/sdp'],
        ['Supported', SUPPORTED_HEADER],
      ]);
      return;
    }
    // addressed to a user: the proxy's job, which this version does not do
    if (ruri.kind !== 'sip' || ruri.user === null || !this.isOurHost(ruri.host)) {
      this.reply(inc, 404, 'Not Found');
      return;
    }
    const user = canonicalUser(ruri.user);
    const known = this.registrar.has(this.aorOf(user)) || this.users.lookup(user) !== undefined;
    if (!known) this.reply(inc, 404, 'Not Found');
    else this.reply(inc, 480, 'Temporarily Unavailable');
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
    this.reply(inc, 415, 'Unsupported Media Type', [['Accept', 'application/sdp']]);
    return false;
  }

  /** The Request-URI names this node (its domain or its address) rather than a user. */
  private isForNode(u: Uri): boolean {
    return u.kind === 'sip' && u.user === null && this.isOurHost(u.host);
  }

  private isOurHost(host: string): boolean {
    const h = host.toLowerCase();
    if (h === this.domain || h === 'localhost') return true;
    const bare = h.charCodeAt(0) === 91 ? h.slice(1, -1) : h;
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
      this.reply(inc, 404, 'Not Found');
      return;
    }
    if (!this.acceptableBody(inc)) return;
    // step 3: who is asking
    const authz = getHeaders(req, 'authorization');
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
          this.reply(inc, 401, 'Unauthorized', ch.map((c) => ['WWW-Authenticate', c] as [string, string]));
        } else this.reply(inc, r.status, r.reason);
        return;
      }
      authUser = r.user.toLowerCase();
    }
    // step 5: the address of record, in this domain
    let to: Uri;
    try {
      to = (parsed.to ?? parseNameAddr(getHeader(req, 'to') as string)).uri;
    } catch {
      this.reply(inc, 400, 'Bad Request');
      return;
    }
    if (to.kind !== 'sip' || to.user === null || to.host.toLowerCase() !== this.domain) {
      this.reply(inc, 404, 'Not Found');
      return;
    }
    const user = canonicalUser((to as SipUri).user as string);
    // step 4: an authenticated user registers its own address of record only
    if (authUser !== null && authUser !== user) {
      this.reply(inc, 403, 'Forbidden');
      return;
    }
    const r = this.registrar.register(req, flow, via, this.aorOf(user), parsed);
    this.reply(inc, r.status, r.reason, r.headers);
  }

  // -------------------------------------------------------------------------
  // keepalive pings (client transactions)

  private async ping(b: ContactBinding): Promise<boolean> {
    let flow = b.flow;
    if (!this.transport.isOpen(flow)) {
      // the phone's TCP connection is gone: reach the contact itself if it is an address
      const u = b.uri;
      if (u.kind !== 'sip') return false;
      const host = u.host.charCodeAt(0) === 91 ? u.host.slice(1, -1) : u.host;
      if (isIP(host) === 0) return false;
      try {
        flow = await this.transport.connect(host, u.port ?? 5060, this.registrar.keepalive.timeoutMs);
      } catch {
        return false;
      }
      b.flow = flow; // later pings reuse this connection
    }
    const branch = newBranch();
    const proto = flow.proto === 'udp' ? 'UDP' : 'TCP';
    const headers: SipHeader[] = [
      hdr('Via', `SIP/2.0/${proto} ${this.hostport};branch=${branch};rport`),
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

function hdr(name: string, value: string): SipHeader {
  return { name, key: headerKey(name), value };
}

/** A user part as an address-of-record key: escapes of unreserved characters decoded, lower case. */
export function canonicalUser(user: string): string {
  return normalizeEscapes(user).toLowerCase();
}
