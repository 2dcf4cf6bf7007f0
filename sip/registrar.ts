// The registrar of RFC 3261 section 10.3 and the location service behind it, with Path
// (RFC 3327) and outbound's instance-id/reg-id (RFC 5626) kept with each binding, and the
// keepalive state of every contact (like Kamailio's usrloc with nathelper pings).
//
// A contact starts unverified; the service pings it with OPTIONS at once and on a schedule
// afterwards. An answer makes it alive; `maxFailures` pings in a row without one make it dead
// (it is still pinged, with backoff, until its registration ends, and comes back if it answers).
// An address of record is online while one of its contacts is alive; every change of that is
// reported through `onPresence`, which is how the chain learns about it.

import { getHeader, getHeaderValues, getHeaders, type SipRequest } from './message.ts';
import {
  formatHeaderParams,
  parseContact,
  parseCSeq,
  parseExpires,
  parseUri,
  uriEquals,
  type NameAddr,
  type Uri,
  type Via,
} from './uri.ts';
import type { ParsedRequest } from './validate.ts';
import type { Flow } from './transport.ts';
import { Wheel } from './wheel.ts';

export const enum ContactState {
  Unverified = 0,
  Alive = 1,
  Dead = 2,
}

export interface ContactBinding {
  aor: string;
  uri: Uri;
  /** the contact URI as the phone wrote it */
  uriText: string;
  /** header parameters other than expires, formatted (";q=0.5;+sip.instance=...") */
  params: string;
  /** q-value in thousandths, -1 when absent */
  q: number;
  /** ms since epoch */
  expiresAt: number;
  callId: string;
  cseq: number;
  /** branch of the REGISTER that last updated it (recognises a late retransmission) */
  branch: string;
  instance: string | null;
  regId: number | null;
  /** Path header values, first hop first (RFC 3327) */
  path: string[];
  /** how the REGISTER came in: pings go back along it */
  flow: Flow;
  /** registered through RFC 5626 outbound (instance and reg-id, first hop supports it) */
  outbound: boolean;
  userAgent: string;
  state: ContactState;
  failures: number;
  /** a ping is in flight */
  pinging: boolean;
  /** ms since epoch of the next scheduled ping (stale wheel entries compare against it) */
  nextPingAt: number;
  /** false once removed from the location service */
  live: boolean;
  /** ms since epoch when it was last verified alive */
  verifiedAt: number;
  /** when its entry in the expiry wheel fires (one entry per contact, not one per refresh) */
  expiryAt: number;
  /** ms since epoch when it last turned dead (0 while not dead) */
  deadSince: number;
}

/** A registration as kept across restarts (DATADIR/registrations.json): what the phone asked for, not the keepalive state. */
export type SavedContact = Pick<ContactBinding, 'aor' | 'params' | 'q' | 'expiresAt' | 'callId' | 'cseq' | 'instance' | 'regId' | 'path' | 'flow' | 'outbound' | 'userAgent'> & {
  /** the contact URI as the phone wrote it */
  uri: string;
};

export interface RegistrarOptions {
  domain: string;
  /** shortest registration accepted, seconds (423 below it); default 60 */
  minExpires?: number;
  /** longest registration granted, seconds; default 7200 */
  maxExpires?: number;
  /** registration length when the request names none, seconds; default 3600 */
  defaultExpires?: number;
  /** most contacts per address of record; default 10 */
  maxContacts?: number;
  /** most addresses of record in all; default 1,000,000 */
  maxAors?: number;
}

export interface KeepaliveOptions {
  /** between pings of a live contact, ms; default 30,000 */
  intervalMs?: number;
  /** a ping without an answer for this long failed, ms; default 8,000 */
  timeoutMs?: number;
  /** failures in a row that make a contact dead; default 3 */
  maxFailures?: number;
  /** a contact dead this long is removed, ms; default 30 intervals */
  removeDeadAfterMs?: number;
}

export interface RegisterResult {
  status: number;
  reason: string;
  headers: Array<[string, string]>;
}

/** Reports whether an address of record has a live contact, and until when (unix seconds). */
export type PresenceListener = (aor: string, online: boolean, untilSec: number) => void;

/** Sends one OPTIONS to the contact; resolves true when anything answered. */
export type Pinger = (b: ContactBinding) => Promise<boolean>;

/** The keepalive state of a contact just registered or restored: not yet pinged. */
function unverified(): Pick<ContactBinding, 'state' | 'failures' | 'pinging' | 'nextPingAt' | 'live' | 'verifiedAt' | 'expiryAt' | 'deadSince'> {
  return { state: ContactState.Unverified, failures: 0, pinging: false, nextPingAt: 0, live: true, verifiedAt: 0, expiryAt: 0, deadSince: 0 };
}

/** keepalive intervals a contact may stay dead before it is removed */
const DEAD_LIMIT = 30;

const Q_RE = /^(0(\.[0-9]{0,3})?|1(\.0{0,3})?)$/;

let dateSec = 0;
let dateStr = '';
/** RFC 1123 date of now, cached per second (REGISTER 200s carry it, RFC 3261 10.3 step 8). */
export function httpDate(nowMs = Date.now()): string {
  const s = Math.floor(nowMs / 1000);
  if (s !== dateSec) {
    dateSec = s;
    dateStr = new Date(s * 1000).toUTCString();
  }
  return dateStr;
}

/**
 * A copy of `s` that shares no memory with the message it was cut from. V8 represents a
 * substring as a slice of its parent, so a Call-ID kept in a binding would keep the whole
 * datagram's text alive (and promoted) until the next refresh; concatenating and slicing again
 * flattens a private copy.
 */
function detached(s: string): string {
  return s.length < 13 ? s : (' ' + s).slice(1); // V8 copies strings shorter than 13 anyway
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function fail(status: number, reason: string, headers: Array<[string, string]> = []): RegisterResult {
  return { status, reason, headers };
}

/** What one Contact of a REGISTER asks for, and the binding it changes (null: a new one). */
interface Planned {
  existing: ContactBinding | null;
  uri: Uri;
  uriText: string;
  params: string;
  q: number;
  expires: number;
  instance: string | null;
  regId: number | null;
}

/** The Contact values of a REGISTER the validator has not parsed. */
function contactsOf(req: SipRequest): Pick<ParsedRequest, 'star' | 'contacts'> {
  let star = false;
  const contacts: NameAddr[] = [];
  for (const v of getHeaders(req, 'contact')) {
    const c = parseContact(v);
    if (c === '*') star = true;
    else for (const na of c) contacts.push(na);
  }
  return { star, contacts };
}

/** The Expires header in seconds, -1 when absent; RFC 3261 20.19: a malformed one means 3600. */
function expiresHeaderOf(req: SipRequest): number {
  const eh = getHeader(req, 'expires');
  return eh === undefined ? -1 : (parseExpires(eh) ?? 3600);
}

/**
 * The binding a contact refreshes or removes: the same outbound flow (instance and reg-id,
 * RFC 5626), else the same URI as written or, without an instance on either, an equal URI.
 */
function bindingOf(list: readonly ContactBinding[], p: Planned): ContactBinding | null {
  const inst = p.instance;
  for (const b of list) {
    if (inst !== null && b.instance === inst && b.regId === p.regId) return b;
    if (b.uriText === p.uriText || (inst === null && b.instance === null && uriEquals(b.uri, p.uri))) return b;
  }
  return null;
}

export class Registrar {
  readonly domain: string;
  readonly minExpires: number;
  readonly maxExpires: number;
  readonly defaultExpires: number;
  readonly maxContacts: number;
  readonly maxAors: number;
  private readonly aors = new Map<string, ContactBinding[]>();
  private readonly expiry = new Wheel<ContactBinding>();
  private readonly pings = new Wheel<ContactBinding>();
  private readonly ka: Required<KeepaliveOptions>;
  private readonly timer: NodeJS.Timeout;
  private contacts = 0;
  onPresence: PresenceListener | null = null;
  pinger: Pinger | null = null;
  /** counters for logs and tests; `changes` counts contacts added and removed (what a snapshot must catch) */
  stats = { registers: 0, pings: 0, pingFailures: 0, changes: 0 };

  constructor(opts: RegistrarOptions, keepalive: KeepaliveOptions = {}) {
    this.domain = opts.domain.toLowerCase();
    this.minExpires = opts.minExpires ?? 60;
    this.maxExpires = opts.maxExpires ?? 7200;
    this.defaultExpires = opts.defaultExpires ?? 3600;
    this.maxContacts = opts.maxContacts ?? 10;
    this.maxAors = opts.maxAors ?? 1_000_000;
    const intervalMs = keepalive.intervalMs ?? 30_000;
    this.ka = { intervalMs, timeoutMs: keepalive.timeoutMs ?? 8000, maxFailures: keepalive.maxFailures ?? 3, removeDeadAfterMs: keepalive.removeDeadAfterMs ?? intervalMs * DEAD_LIMIT };
    this.timer = setInterval(() => this.tick(Date.now()), 250).unref();
  }

  get keepalive(): Readonly<Required<KeepaliveOptions>> {
    return this.ka;
  }

  /** Number of addresses of record with at least one contact. */
  get size(): number {
    return this.aors.size;
  }

  get contactCount(): number {
    return this.contacts;
  }

  /** The current contacts of an address of record (a copy). */
  lookup(aor: string): ContactBinding[] {
    return [...(this.aors.get(aor) ?? [])];
  }

  has(aor: string): boolean {
    return this.aors.has(aor);
  }

  /** Whether the address of record has a contact that answered its pings. */
  presence(aor: string): { online: boolean; untilSec: number } {
    let until = 0;
    for (const b of this.aors.get(aor) ?? []) if (b.state === ContactState.Alive && b.expiresAt > until) until = b.expiresAt;
    return { online: until > 0, untilSec: Math.floor(until / 1000) };
  }

  private report(aor: string, list?: readonly ContactBinding[]): void {
    const l = this.onPresence;
    if (l === null) return;
    let until = 0;
    for (const b of list ?? this.aors.get(aor) ?? []) if (b.state === ContactState.Alive && b.expiresAt > until) until = b.expiresAt;
    l(aor, until > 0, Math.floor(until / 1000));
  }

  /**
   * Processes a REGISTER for `aor` (RFC 3261 10.3 steps 5 to 8; the caller has done the
   * Request-URI, Require, authentication and To checks). All binding changes apply together or
   * none does.
   */
  register(req: SipRequest, flow: Flow, via: Via, aor: string, parsed?: ParsedRequest, now = Date.now()): RegisterResult {
    this.stats.registers++;
    const callId = getHeader(req, 'call-id') as string;
    const cseq = (parsed?.cseq ?? parseCSeq(getHeader(req, 'cseq') as string)).seq;
    const branch = via.branch ?? '';
    const { star, contacts } = parsed ?? contactsOf(req);
    const current = this.aors.get(aor);
    const list = current ?? [];
    // no Contact: a query
    if (!star && contacts.length === 0) return this.ok(req, list, false, now);
    const headerExpires = expiresHeaderOf(req);
    // the wildcard: alone, with Expires: 0 (RFC 3261 10.2.2)
    if (star) {
      if (contacts.length > 0 || headerExpires !== 0) return fail(400, 'Invalid Wildcard Contact');
      return this.removeAll(req, aor, list, callId, cseq, branch, now);
    }
    const paths = getHeaderValues(req, 'path');
    const plan: Planned[] = [];
    const planned = this.planChanges(contacts, list, headerExpires, paths, callId, cseq, branch, plan);
    // a late retransmission of the REGISTER that made these bindings: answer as then
    if (planned === true) return this.ok(req, list, list.some((b) => b.outbound), now);
    if (planned !== false) return planned;
    const refused = this.checkLimits(list, current, plan);
    if (refused !== null) return refused;
    return this.commit(req, aor, list, current, plan, flow, paths, callId, cseq, branch, now);
  }

  // The steps of a REGISTER take its Call-ID, CSeq, branch and the rest as arguments: an object
  // to carry them would be one more allocation per REGISTER, on the benchmarked path.

  /** `Contact: *` with `Expires: 0`: every binding of the address of record goes. */
  private removeAll(req: SipRequest, aor: string, list: ContactBinding[], callId: string, cseq: number, branch: string, now: number): RegisterResult {
    for (const b of list) {
      if (b.callId === callId && cseq <= b.cseq) {
        if (cseq === b.cseq && b.branch === branch) return this.ok(req, list, false, now);
        return fail(400, 'CSeq Out Of Order');
      }
    }
    for (const b of list) this.unlink(b);
    this.aors.delete(aor);
    if (list.length > 0) this.report(aor);
    return this.ok(req, [], false, now);
  }

  /**
   * Puts in `plan` what each contact asks for and which binding it changes. Returns the refusal
   * of the first contact refused (in the order the checks come for each contact), else whether
   * every contact repeats the REGISTER that last updated its binding (a late retransmission).
   */
  private planChanges(
    contacts: readonly NameAddr[],
    list: readonly ContactBinding[],
    headerExpires: number,
    paths: readonly string[],
    callId: string,
    cseq: number,
    branch: string,
    plan: Planned[],
  ): RegisterResult | boolean {
    // RFC 5626 5.2/6: outbound applies when the UA is directly connected or the edge proxy marked the flow with ;ob
    const obCapable = paths.length === 0 || /;\s*ob\b/i.test(paths[0]);
    let retransmission = true;
    for (const contact of contacts) {
      const p = this.readContact(contact, headerExpires, obCapable);
      if (!('existing' in p)) return p;
      const existing = bindingOf(list, p);
      for (const q of plan) if (q.existing !== null && q.existing === existing) return fail(400, 'Duplicate Contact');
      if (existing !== null && existing.callId === callId && cseq <= existing.cseq) {
        if (!(cseq === existing.cseq && existing.branch === branch)) return fail(400, 'CSeq Out Of Order');
      } else retransmission = false;
      p.existing = existing;
      plan.push(p);
    }
    return retransmission;
  }

  /** What one contact asks for (expiry, q, outbound's instance and reg-id), or why it is refused (423, 400). */
  private readContact({ uri, uriText, params }: NameAddr, headerExpires: number, obCapable: boolean): Planned | RegisterResult {
    // one pass over the header parameters: the ones the registrar reads, and the rest kept
    let ep: string | null | undefined;
    let qv: string | null | undefined;
    let inst: string | null = null;
    let rid: string | null | undefined;
    let keptText = '';
    for (let k = 0; k < params.length; k++) {
      const p = params[k];
      const n = p.name.length <= 13 ? p.name.toLowerCase() : '';
      if (n === 'expires') {
        if (ep === undefined) ep = p.value;
        continue;
      }
      if (n === 'q' && qv === undefined) qv = p.value;
      else if (n === '+sip.instance' && inst === null) inst = p.value;
      else if (n === 'reg-id' && rid === undefined) rid = p.value;
      keptText += formatHeaderParams([p]);
    }
    let expires: number;
    if (ep !== undefined) expires = ep === null ? 3600 : (parseExpires(ep) ?? 3600);
    else expires = headerExpires >= 0 ? headerExpires : this.defaultExpires;
    if (expires > 0 && expires < this.minExpires) return fail(423, 'Interval Too Brief', [['Min-Expires', String(this.minExpires)]]);
    if (expires > this.maxExpires) expires = this.maxExpires;
    let q = -1;
    if (qv !== undefined) {
      if (qv === null || !Q_RE.test(qv)) return fail(400, 'Invalid q-value');
      q = Math.round(Number(qv) * 1000);
    }
    let regId: number | null = null;
    if (rid !== undefined && rid !== null) {
      if (!/^[0-9]{1,10}$/.test(rid) || Number(rid) < 1 || Number(rid) > 0xffffffff) return fail(400, 'Invalid reg-id');
      if (inst !== null && obCapable) regId = Number(rid);
    }
    return { existing: null, uri, uriText, params: keptText, q, expires, instance: inst, regId };
  }

  /** The contact limits: per address of record (403), and addresses of record in all (503). */
  private checkLimits(list: readonly ContactBinding[], current: ContactBinding[] | undefined, plan: readonly Planned[]): RegisterResult | null {
    let adds = 0;
    let removes = 0;
    for (const p of plan) {
      if (p.existing === null && p.expires > 0) adds++;
      if (p.existing !== null && p.expires === 0) removes++;
    }
    if (list.length + adds - removes > this.maxContacts) return fail(403, 'Too Many Contacts');
    if (current === undefined && adds > 0 && this.aors.size >= this.maxAors) return fail(503, 'Service Unavailable', [['Retry-After', '60']]);
    return null;
  }

  /** Applies the plan (removals, refreshes, new bindings), reports a change of presence, and answers 200. */
  private commit(
    req: SipRequest,
    aor: string,
    list: ContactBinding[],
    current: ContactBinding[] | undefined,
    plan: readonly Planned[],
    flow: Flow,
    paths: string[],
    callId: string,
    cseq: number,
    branch: string,
    now: number,
  ): RegisterResult {
    const ua = getHeader(req, 'user-agent') ?? '';
    let outbound = false;
    let changed = false;
    let next = list;
    for (const p of plan) {
      const b = p.existing;
      const expiresAt = now + p.expires * 1000;
      if (p.expires > 0 && p.regId !== null) outbound = true;
      if (b !== null && p.expires > 0) {
        if (this.refresh(b, p, expiresAt, callId, cseq, branch, paths, flow, ua)) changed = true;
        continue;
      }
      if (b === null && p.expires === 0) continue; // removes what is not there
      // A binding comes or goes: that is done on a copy of the list (a new address of record's
      // list is new anyway), while a refresh, the common case, changes the list in place.
      if (next === current) next = list.slice();
      if (b === null) next.push(this.bind(aor, p, expiresAt, callId, cseq, branch, paths, flow, ua));
      else {
        this.unlink(b);
        next.splice(next.indexOf(b), 1);
        changed = true;
      }
    }
    if (next.length === 0) this.aors.delete(aor);
    else if (next !== current) this.aors.set(aor, next);
    if (changed) this.report(aor, next);
    return this.ok(req, next, outbound, now);
  }

  /**
   * Refreshes a binding in place; true when the address of record's presence may have changed
   * (an alive contact's expiry moved, or it must be verified again).
   */
  private refresh(b: ContactBinding, p: Planned, expiresAt: number, callId: string, cseq: number, branch: string, paths: string[], flow: Flow, ua: string): boolean {
    // Only what changed is replaced. A binding is long-lived (old generation), so every new
    // object stored in it survives the next young collection and is copied and promoted; a
    // phone refreshing keeps its contact, parameters, Call-ID, path, address and User-Agent, so
    // usually only the CSeq, branch and expiry change.
    let changed = false;
    if (b.uriText !== p.uriText) {
      b.uri = p.uri;
      b.uriText = detached(p.uriText);
    }
    if (b.params !== p.params) b.params = p.params;
    b.q = p.q;
    if (b.callId !== callId) b.callId = detached(callId);
    b.cseq = cseq;
    b.branch = detached(branch);
    if (!sameStrings(b.path, paths)) b.path = paths;
    b.outbound = p.regId !== null;
    if (b.userAgent !== ua) b.userAgent = detached(ua);
    const moved = b.flow.proto !== flow.proto || b.flow.address !== flow.address || b.flow.port !== flow.port || b.flow.conn !== flow.conn;
    if (moved) b.flow = flow;
    if (expiresAt !== b.expiresAt) {
      b.expiresAt = expiresAt;
      if (expiresAt < b.expiryAt) this.scheduleExpiry(b);
      if (b.state === ContactState.Alive) changed = true;
    }
    if (b.state === ContactState.Dead || (moved && b.state !== ContactState.Unverified)) {
      // it speaks again, or from elsewhere: verify before trusting it again
      const wasAlive = b.state === ContactState.Alive;
      b.state = ContactState.Unverified;
      b.failures = 0;
      if (wasAlive) changed = true;
      this.pingNow(b);
    }
    return changed;
  }

  /** A new binding, unverified: pinged at once, counted, and put on the expiry wheel. */
  private bind(aor: string, p: Planned, expiresAt: number, callId: string, cseq: number, branch: string, paths: string[], flow: Flow, ua: string): ContactBinding {
    const nb: ContactBinding = {
      aor,
      uri: p.uri,
      uriText: detached(p.uriText),
      params: p.params,
      q: p.q,
      expiresAt,
      callId: detached(callId),
      cseq,
      branch: detached(branch),
      instance: p.instance,
      regId: p.regId,
      path: paths,
      flow,
      outbound: p.regId !== null,
      userAgent: detached(ua),
      ...unverified(),
    };
    this.contacts++;
    this.stats.changes++;
    this.scheduleExpiry(nb);
    this.pingNow(nb);
    return nb;
  }

  /** The 200 of RFC 3261 10.3 step 8: every binding with the seconds it has left, and the Date. */
  private ok(req: SipRequest, list: ContactBinding[], outbound: boolean, now: number): RegisterResult {
    const headers: Array<[string, string]> = [];
    // highest preference first; a contact without q counts as 1.0
    const sorted = list.length > 1 ? [...list].sort((a, b) => (b.q < 0 ? 1000 : b.q) - (a.q < 0 ? 1000 : a.q)) : list;
    for (const b of sorted) {
      const left = Math.max(0, Math.round((b.expiresAt - now) / 1000));
      headers.push(['Contact', '<' + b.uriText + '>' + b.params + ';expires=' + left]);
    }
    // RFC 3327 5.3: Path is echoed only to a UA that said it supports it
    if (list.length > 0 && list[0].path.length > 0 && supports(req, 'path')) for (const p of list[0].path) headers.push(['Path', p]);
    if (outbound) headers.push(['Require', 'outbound']);
    headers.push(['Date', httpDate(now)]);
    return { status: 200, reason: 'OK', headers };
  }

  private unlink(b: ContactBinding): void {
    if (!b.live) return;
    b.live = false;
    this.contacts--;
    this.stats.changes++;
  }

  private remove(b: ContactBinding): void {
    const list = this.aors.get(b.aor);
    this.unlink(b);
    if (list === undefined) return;
    const i = list.indexOf(b);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.aors.delete(b.aor);
  }

  private scheduleExpiry(b: ContactBinding): void {
    b.expiryAt = b.expiresAt;
    this.expiry.add(b.expiresAt, b);
  }

  private pingNow(b: ContactBinding): void {
    b.nextPingAt = 0;
    // after the current message is answered: the 200 goes out before the first ping
    queueMicrotask(() => void this.ping(b));
  }

  private schedule(b: ContactBinding, delayMs: number, now: number): void {
    b.nextPingAt = now + delayMs;
    this.pings.add(b.nextPingAt, b);
  }

  private async ping(b: ContactBinding): Promise<void> {
    const pinger = this.pinger;
    if (pinger === null || b.pinging || !b.live) return;
    b.pinging = true;
    this.stats.pings++;
    let ok = false;
    try {
      ok = await pinger(b);
    } catch {
      ok = false;
    }
    b.pinging = false;
    if (!b.live) return;
    const now = Date.now();
    const before = b.state;
    if (ok) {
      b.failures = 0;
      b.state = ContactState.Alive;
      b.deadSince = 0;
      b.verifiedAt = now;
      // somewhere in the last quarter of the interval: contacts registered in one burst (a node
      // restart, a bench warm-up) drift apart instead of being pinged in a burst every interval
      this.schedule(b, this.ka.intervalMs - Math.floor(Math.random() * (this.ka.intervalMs / 4)), now);
    } else {
      this.stats.pingFailures++;
      b.failures++;
      if (b.failures >= this.ka.maxFailures && b.state !== ContactState.Dead) {
        b.state = ContactState.Dead;
        b.deadSince = now;
      }
      if (b.state === ContactState.Dead && now - b.deadSince > this.ka.removeDeadAfterMs) {
        // dead for long (thirty intervals by default): gone, as usrloc's keepalive_timeout does
        this.remove(b);
        if (before === ContactState.Alive) this.report(b.aor);
        return;
      }
      // retry sooner while deciding, then back off once it is dead (up to ten intervals)
      const delay =
        b.state === ContactState.Dead
          ? Math.min(this.ka.intervalMs * 2 ** Math.min(b.failures - this.ka.maxFailures, 10), this.ka.intervalMs * 10)
          : Math.min(this.ka.intervalMs, 1000 * 2 ** (b.failures - 1));
      this.schedule(b, delay, now);
    }
    if ((before === ContactState.Alive) !== (b.state === ContactState.Alive)) this.report(b.aor);
  }

  private tick(now: number): void {
    const touched = new Set<string>();
    this.expiry.advance(now, (b) => {
      if (!b.live) return;
      if (b.expiresAt > now + 999) {
        // refreshed since: this was its one wheel entry, so put it back at the new time
        if (b.expiryAt <= now + 999) this.scheduleExpiry(b);
        return;
      }
      const wasAlive = b.state === ContactState.Alive;
      this.remove(b);
      if (wasAlive) touched.add(b.aor);
    });
    for (const aor of touched) this.report(aor);
    this.pings.advance(now, (b) => {
      if (!b.live || b.nextPingAt === 0 || b.nextPingAt > now + 999) return;
      b.nextPingAt = 0;
      void this.ping(b);
    });
  }

  /** The registrations as plain data, for keeping them across a restart. */
  snapshot(): SavedContact[] {
    return this.snapshotSlices(Infinity).next().value ?? [];
  }

  /**
   * The same, about `max` contacts at a time (whole addresses of record), so a save can be
   * spread over turns of the event loop: at 100,000 contacts one snapshot and its JSON hold the
   * loop for a third of a second. The walk follows the live map: an address of record removed
   * before it is reached is left out, one added meanwhile comes at the end.
   */
  *snapshotSlices(max: number): Generator<SavedContact[], void, undefined> {
    let out: SavedContact[] = [];
    for (const list of this.aors.values()) {
      for (const b of list) {
        out.push({
          aor: b.aor,
          uri: b.uriText,
          params: b.params,
          q: b.q,
          expiresAt: b.expiresAt,
          callId: b.callId,
          cseq: b.cseq,
          instance: b.instance,
          regId: b.regId,
          path: b.path,
          flow: b.flow,
          outbound: b.outbound,
          userAgent: b.userAgent,
        });
      }
      if (out.length >= max) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  }

  /**
   * Brings back registrations from a snapshot. They come back unverified and are pinged at once:
   * only the phones that still answer count as online. Returns how many were restored.
   */
  restore(saved: readonly SavedContact[], now = Date.now()): number {
    let n = 0;
    for (const c of saved) {
      if (c.expiresAt <= now + 1000 || this.contacts >= this.maxAors * this.maxContacts) continue;
      let uri: Uri;
      try {
        uri = parseUri(c.uri);
      } catch {
        continue;
      }
      const list = this.aors.get(c.aor) ?? [];
      if (list.length >= this.maxContacts || list.some((b) => b.uriText === c.uri)) continue;
      const b: ContactBinding = {
        ...c,
        // a connection id means nothing to the new process: pings reconnect to the contact
        flow: c.flow.proto !== 'udp' ? { ...c.flow, conn: -1 } : c.flow,
        uri,
        uriText: c.uri,
        branch: '',
        ...unverified(),
      };
      list.push(b);
      this.aors.set(c.aor, list);
      this.contacts++;
      this.stats.changes++;
      this.scheduleExpiry(b);
      this.pingNow(b);
      n++;
    }
    return n;
  }

  /** Removes every contact (shutdown). */
  clear(): void {
    for (const list of this.aors.values()) for (const b of list) this.unlink(b);
    this.aors.clear();
    this.expiry.clear();
    this.pings.clear();
  }

  stop(): void {
    clearInterval(this.timer);
    this.clear();
  }
}

/** Whether the request's Supported (or Require) lists an option tag. */
export function supports(req: SipRequest, tag: string): boolean {
  for (const v of getHeaderValues(req, 'supported')) if (v.toLowerCase() === tag) return true;
  for (const v of getHeaderValues(req, 'require')) if (v.toLowerCase() === tag) return true;
  return false;
}
