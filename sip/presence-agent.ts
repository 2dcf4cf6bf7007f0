// The presence agent (RFC 3856 on RFC 6665): a phone SUBSCRIBEs to a user's presence at its own
// node and gets NOTIFY with a PIDF document (RFC 3863) now and whenever the status changes. The
// node answers for every name, its own users' and other nodes', from what it knows: its
// registrar for its own users, the chain (tip plus pending bindings) for the others. So a watcher
// never reaches the watched user's node, and nobody learns who watches whom.
//
// PUBLISH (RFC 3903) lets a phone set its own status (closed while it is registered means
// "do not disturb") and a note; a node keeps it for its own users and puts it in their NOTIFYs.
import { getHeader, getHeaders, headerKey, splitHeaderList, type SipHeader, type SipRequest } from './message.ts';
import { newBranch, newTag } from './serialize.ts';
import { formatUri, getParam, parseExpires, parseNameAddr, parseNameAddrList, type NameAddr } from './uri.ts';
import { buildPidf, overallBasic, parsePidf, PidfError, PIDF_CONTENT_TYPE, type Basic } from './pidf.ts';
import { viaFor, type Flow, type Proto, type SipTransport } from './transport.ts';
import { replyTo, type IncomingRequest, type TransactionLayer } from './transaction.ts';
import { FairShare } from './fair-share.ts';

/** What the node knows of a name's presence; undefined when it knows no such name (404). */
export type PresenceLookup = (aor: string) => Basic | undefined;

export interface PresenceAgentHost {
  readonly transport: SipTransport;
  readonly tx: TransactionLayer;
  readonly hostport: string;
  /** host:port of the node's side reached over `proto` (its TLS port for TLS) */
  hostportFor(proto: Proto): string;
  debug(msg: string): void;
}

export interface PresenceAgentOptions {
  /** shortest subscription or publication accepted, seconds (423 below it); default 60 */
  minExpires?: number;
  /** longest granted, seconds; default 3600 */
  maxExpires?: number;
  /** most subscriptions at once; beyond it 503 (default 10,000) */
  maxSubscriptions?: number;
}

interface Subscription {
  key: string;
  /** the watched name */
  aor: string;
  callId: string;
  /** our tag (To of the SUBSCRIBE), the watcher's (From) */
  localTag: string;
  remoteTag: string;
  /** the watcher's From as written (To of our NOTIFYs, with its tag) */
  watcher: string;
  /** where NOTIFYs go: the watcher's Contact, the route set from its Record-Route */
  target: string;
  routes: string[];
  flow: Flow;
  /** the address that subscribed, whose share of the limit this holds */
  source: string;
  cseq: number;
  expiresAt: number;
  /** what the last NOTIFY said ('' before the first) */
  last: string;
}

interface Publication {
  etag: string;
  basic: Basic;
  note: string | undefined;
  expiresAt: number;
}

export class PresenceAgent {
  private readonly subs = new Map<string, Subscription>();
  private readonly byAor = new Map<string, Set<Subscription>>();
  private readonly pubs = new Map<string, Publication>();
  private readonly minExpires: number;
  private readonly maxExpires: number;
  /** subscriptions by source address: one address may hold no more than are left free */
  private shares: FairShare;
  private readonly timer: NodeJS.Timeout;
  /** counters for logs and tests */
  stats = { subscribes: 0, notifies: 0, notifyFailures: 0, publishes: 0 };

  constructor(
    private readonly host: PresenceAgentHost,
    private readonly lookup: PresenceLookup,
    opts: PresenceAgentOptions = {},
  ) {
    this.minExpires = opts.minExpires ?? 60;
    this.maxExpires = opts.maxExpires ?? 3600;
    this.shares = new FairShare(opts.maxSubscriptions ?? 10_000);
    this.timer = setInterval(() => this.expire(Date.now()), 1000).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.subs.clear();
    this.byAor.clear();
    this.shares = new FairShare(this.shares.max);
  }

  get subscriptionCount(): number {
    return this.subs.size;
  }

  /** The status and note a NOTIFY for `aor` carries now; undefined for a name nobody knows. */
  statusOf(aor: string, now = Date.now()): { basic: Basic; note: string | undefined } | undefined {
    const base = this.lookup(aor);
    if (base === undefined) return undefined;
    const pub = this.pubs.get(aor);
    if (pub === undefined || pub.expiresAt <= now) return { basic: base, note: undefined };
    // a published "closed" means busy even while registered; "open" cannot make an offline phone reachable
    return { basic: base === 'open' ? pub.basic : 'closed', note: pub.note };
  }

  /** The status of `aor` (or of every watched name) may have changed: NOTIFY those whose document changed. */
  changed(aor?: string): void {
    if (aor === undefined) {
      for (const s of this.subs.values()) this.notify(s, false);
      return;
    }
    const set = this.byAor.get(aor);
    if (set !== undefined) for (const s of set) this.notify(s, false);
  }

  /** Event: presence (parameters aside); 489 otherwise. */
  private presenceEvent(inc: IncomingRequest): boolean {
    const ev = getHeader(inc.req, 'event');
    if (ev !== undefined && ev.split(';')[0].trim().toLowerCase() === 'presence') return true;
    replyTo(inc, 489, 'Bad Event', [['Allow-Events', 'presence']]);
    return false;
  }

  /** The Expires asked for, bounded; null after answering 423 or 400. */
  private expires(inc: IncomingRequest): number | null {
    const h = getHeader(inc.req, 'expires');
    let v = this.maxExpires;
    if (h !== undefined) {
      const e = parseExpires(h);
      if (e === null) {
        replyTo(inc, 400, 'Bad Request');
        return null;
      }
      v = e;
    }
    if (v !== 0 && v < this.minExpires) {
      replyTo(inc, 423, 'Interval Too Brief', [['Min-Expires', String(this.minExpires)]]);
      return null;
    }
    return Math.min(v, this.maxExpires);
  }

  /** SUBSCRIBE for `aor` (the Request-URI's name); in-dialog refreshes find their subscription by tags. */
  subscribe(inc: IncomingRequest, aor: string): void {
    if (!this.presenceEvent(inc)) return;
    const req = inc.req;
    const accept = getHeaders(req, 'accept');
    if (accept.length > 0 && !accept.some((a) => splitHeaderList(a).some((t) => /^(application\/pidf\+xml|application\/\*|\*\/\*)\s*(;|$)/i.test(t)))) {
      replyTo(inc, 406, 'Not Acceptable', [['Accept', PIDF_CONTENT_TYPE]]);
      return;
    }
    const exp = this.expires(inc);
    if (exp === null) return;
    this.stats.subscribes++;
    const callId = getHeader(req, 'call-id') ?? '';
    let from: NameAddr;
    let to: NameAddr;
    try {
      from = parseNameAddr(getHeader(req, 'from') ?? '');
      to = parseNameAddr(getHeader(req, 'to') ?? '');
    } catch {
      replyTo(inc, 400, 'Bad Request');
      return;
    }
    const remoteTag = getParam(from.params, 'tag') ?? '';
    const toTag = getParam(to.params, 'tag');
    const now = Date.now();
    if (typeof toTag === 'string') {
      const s = this.subs.get(subKey(callId, remoteTag, toTag));
      if (s === undefined) {
        replyTo(inc, 481, 'Subscription Does Not Exist');
        return;
      }
      s.expiresAt = now + exp * 1000;
      replyTo(inc, 200, 'OK', [['Expires', String(exp)], ['Contact', `<sip:${this.host.hostport}>`]]);
      if (exp === 0) this.end(s, 'timeout');
      else this.notify(s, true);
      return;
    }
    const status = this.statusOf(aor, now);
    if (status === undefined) {
      replyTo(inc, 404, 'Not Found');
      return;
    }
    let contact: NameAddr | undefined;
    let routes: string[];
    try {
      const c = getHeader(req, 'contact');
      contact = c === undefined ? undefined : parseNameAddrList(c)[0];
      routes = getHeaders(req, 'record-route').flatMap((r) => splitHeaderList(r));
    } catch {
      replyTo(inc, 400, 'Bad Request');
      return;
    }
    if (contact === undefined || contact.uri.kind !== 'sip') {
      replyTo(inc, 400, 'Bad Request', [['Warning', '399 - "a SUBSCRIBE needs a SIP Contact"']]);
      return;
    }
    // past the limit, or past this address's fair share of it: refused to this address only
    if (!this.shares.take(inc.flow.address)) {
      replyTo(inc, 503, 'Service Unavailable', [['Retry-After', '60']]);
      return;
    }
    const localTag = newTag();
    replyTo(inc, 200, 'OK', [['Expires', String(exp)], ['Contact', `<sip:${this.host.hostport}>`]], localTag);
    const s: Subscription = {
      key: subKey(callId, remoteTag, localTag),
      aor,
      callId,
      localTag,
      remoteTag,
      watcher: getHeader(req, 'from') as string,
      target: formatUri(contact.uri),
      routes,
      flow: inc.flow,
      source: inc.flow.address,
      cseq: 0,
      expiresAt: now + exp * 1000,
      last: '',
    };
    if (exp === 0) {
      // a fetch (RFC 6665 4.4.3): one NOTIFY with the state, then done
      this.send(s, 'terminated;reason=timeout', this.document(s, now));
      return;
    }
    this.subs.set(s.key, s);
    let set = this.byAor.get(aor);
    if (set === undefined) this.byAor.set(aor, (set = new Set()));
    set.add(s);
    this.notify(s, true);
  }

  /** PUBLISH of the phone's own status (the service checked that it is this node's user). */
  publish(inc: IncomingRequest, aor: string): void {
    if (!this.presenceEvent(inc)) return;
    const exp = this.expires(inc);
    if (exp === null) return;
    this.stats.publishes++;
    const req = inc.req;
    const match = getHeader(req, 'sip-if-match');
    const now = Date.now();
    const cur = this.pubs.get(aor);
    if (match !== undefined && (cur === undefined || cur.etag !== match.trim() || cur.expiresAt <= now)) {
      replyTo(inc, 412, 'Conditional Request Failed');
      return;
    }
    if (exp === 0) {
      if (cur !== undefined) this.pubs.delete(aor);
      replyTo(inc, 200, 'OK', [['Expires', '0']]);
      this.changed(aor);
      return;
    }
    let basic = cur?.basic ?? 'open';
    let note = cur?.note;
    if (req.body.length > 0) {
      const ct = (getHeader(req, 'content-type') ?? '').split(';')[0].trim().toLowerCase();
      if (ct !== PIDF_CONTENT_TYPE) {
        replyTo(inc, 415, 'Unsupported Media Type', [['Accept', PIDF_CONTENT_TYPE]]);
        return;
      }
      try {
        const doc = parsePidf(req.body);
        basic = overallBasic(doc);
        note = doc.notes[0] ?? doc.tuples.find((t) => t.notes.length > 0)?.notes[0];
      } catch (e) {
        if (!(e instanceof PidfError)) throw e;
        replyTo(inc, 400, 'Bad Request', [['Warning', `399 - "${e.message.replace(/["\\]/g, '')}"`]]);
        return;
      }
    } else if (match === undefined) {
      replyTo(inc, 400, 'Bad Request', [['Warning', '399 - "an initial PUBLISH needs a PIDF body"']]);
      return;
    }
    const etag = newTag();
    this.pubs.set(aor, { etag, basic, note, expiresAt: now + exp * 1000 });
    replyTo(inc, 200, 'OK', [['SIP-ETag', etag], ['Expires', String(exp)]]);
    this.changed(aor);
  }

  private document(s: Subscription, now: number): string {
    const st = this.statusOf(s.aor, now) ?? { basic: 'closed' as Basic, note: undefined };
    return buildPidf({ entity: s.aor, basic: st.basic, note: st.note });
  }

  /** NOTIFYs the current state when it differs from the last one sent (or always, when `force`). */
  private notify(s: Subscription, force: boolean): void {
    const now = Date.now();
    const doc = this.document(s, now);
    if (!force && doc === s.last) return;
    s.last = doc;
    this.send(s, `active;expires=${Math.max(0, Math.ceil((s.expiresAt - now) / 1000))}`, doc);
  }

  private end(s: Subscription, reason: string): void {
    this.forget(s);
    this.send(s, `terminated;reason=${reason}`, this.document(s, Date.now()));
  }

  private forget(s: Subscription): void {
    if (this.subs.get(s.key) !== s) return;
    this.subs.delete(s.key);
    this.shares.release(s.source);
    const set = this.byAor.get(s.aor);
    if (set !== undefined) {
      set.delete(s);
      if (set.size === 0) this.byAor.delete(s.aor);
    }
  }

  private send(s: Subscription, state: string, body: string): void {
    s.cseq++; // numbered now: NOTIFYs keep their order even when a flow takes a moment to open
    void this.flowFor(s).then(
      (flow) => {
        if (flow === null) this.forget(s);
        else this.sendOn(flow, s, state, body, s.cseq);
      },
      () => this.forget(s),
    );
  }

  private sendOn(flow: Flow, s: Subscription, state: string, body: string, cseq: number): void {
    const branch = newBranch();
    const h = (name: string, value: string): SipHeader => ({ name, key: headerKey(name), value });
    const headers: SipHeader[] = [h('Via', viaFor(flow, this.host.hostportFor(flow.proto), branch, true)), h('Max-Forwards', '70')];
    for (const r of s.routes) headers.push(h('Route', r));
    const bytes = Buffer.from(body, 'utf8');
    headers.push(
      h('From', `<${s.aor}>;tag=${s.localTag}`),
      h('To', s.watcher),
      h('Call-ID', s.callId),
      h('CSeq', `${cseq} NOTIFY`),
      h('Contact', `<sip:${this.host.hostport}>`),
      h('Event', 'presence'),
      h('Subscription-State', state),
      h('Content-Type', PIDF_CONTENT_TYPE),
      h('Content-Length', String(bytes.length)),
    );
    const req: SipRequest = { kind: 'request', method: 'NOTIFY', uri: s.target, version: 'SIP/2.0', headers, body: bytes };
    this.stats.notifies++;
    void this.host.tx.request(req, flow, branch).then((res) => {
      // the watcher is gone or has forgotten the subscription (RFC 6665 4.1.2.3)
      if (res === null || (res.status >= 300 && res.status !== 401 && res.status !== 407)) {
        this.stats.notifyFailures++;
        if (this.subs.get(s.key) === s) {
          this.host.debug(`sip presence: subscription to ${s.aor} ended: NOTIFY ${res === null ? 'timed out' : `got ${res.status}`}`);
          this.forget(s);
        }
      }
    });
  }

  /** The first Route of the route set, else the flow the SUBSCRIBE came on (works behind NAT). */
  private async flowFor(s: Subscription): Promise<Flow | null> {
    if (s.routes.length === 0) return this.host.transport.isOpen(s.flow) ? s.flow : null;
    const u = parseNameAddr(s.routes[0]).uri;
    return u.kind === 'sip' ? this.host.transport.flowTo(u) : null;
  }

  private expire(now: number): void {
    for (const s of this.subs.values()) if (s.expiresAt <= now) this.end(s, 'timeout');
    for (const [aor, p] of this.pubs) {
      if (p.expiresAt <= now) {
        this.pubs.delete(aor);
        this.changed(aor);
      }
    }
  }
}

function subKey(callId: string, remoteTag: string, localTag: string): string {
  return callId + '\n' + remoteTag + '\n' + localTag;
}
