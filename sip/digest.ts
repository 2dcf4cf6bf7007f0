// HTTP Digest authentication for SIP (RFC 3261 22, RFC 7616 / RFC 8760): SHA-256 and MD5
// (and their -sess forms), qop=auth (auth-int accepted), with nonces that expire and cannot be
// replayed, and a bound on failed attempts per source address.
//
// Nonces are stateless to verify and cheap to track: a nonce is base64url(issue time, slot
// counter, HMAC of both under a per-process key). Replay protection keeps, for the last 2^20
// nonces issued, the highest nonce-count seen (a ring indexed by the counter, as Kamailio's nid
// does): a nonce whose slot has been reused, or that is older than its lifetime, is stale; a
// nonce-count that does not rise is a replay. Without qop a nonce is good for one request.
// A stale nonce with a correct digest gets a fresh challenge with stale=true (the phone retries
// by itself).
//
// Failures are counted only where the source is proven. A nonce is bound to the address it was
// sent to (its MAC covers the address), so a wrong digest counts against a source only when it
// carries a nonce that source received: a stranger who forges a phone's UDP source never sees
// the phone's challenges, and so cannot lock the phone out. Guessing from many addresses meets a
// limit per account: past it, the account is answered only from the addresses it last
// authenticated from (the real phone keeps working; the guessers get 403).

import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { uriEquals } from './uri.ts';

export type DigestAlgorithm = 'MD5' | 'SHA-256';

/** HA1 = H(username ":" realm ":" password), lowercase hex, per algorithm. */
export interface DigestCredentials {
  md5: string;
  sha256: string;
}

export function ha1(algorithm: DigestAlgorithm, user: string, realm: string, password: string): string {
  return hash(algorithm === 'MD5' ? 'md5' : 'sha256', user + ':' + realm + ':' + password, 'hex');
}

export function credentialsFor(user: string, realm: string, password: string): DigestCredentials {
  return { md5: ha1('MD5', user, realm, password), sha256: ha1('SHA-256', user, realm, password) };
}

/** Auth-params of a Digest credentials or challenge value (names lower-cased, values unquoted). */
export function parseAuthParams(value: string): { scheme: string; params: Map<string, string> } | null {
  let i = 0;
  const s = value;
  const n = s.length;
  while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
  const ss = i;
  while (i < n && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) i++;
  const scheme = s.slice(ss, i);
  if (scheme.length === 0) return null;
  const params = new Map<string, string>();
  for (;;) {
    while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9 || s.charCodeAt(i) === 44)) i++;
    if (i >= n) break;
    const ns = i;
    while (i < n && s.charCodeAt(i) !== 61 && s.charCodeAt(i) !== 44 && s.charCodeAt(i) !== 32) i++;
    const name = s.slice(ns, i).toLowerCase();
    while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
    if (s.charCodeAt(i) !== 61) return null;
    i++;
    while (i < n && (s.charCodeAt(i) === 32 || s.charCodeAt(i) === 9)) i++;
    let v: string;
    if (s.charCodeAt(i) === 34) {
      // a quoted-string: a slice of the value when it has no escapes (every value a phone sends)
      let j = i + 1;
      let escaped = false;
      for (; j < n; j++) {
        const c = s.charCodeAt(j);
        if (c === 34) break;
        if (c === 92 && j + 1 < n) {
          escaped = true;
          j++;
        }
      }
      if (j >= n) return null;
      v = escaped ? s.slice(i + 1, j).replace(/\\(.)/gs, '$1') : s.slice(i + 1, j);
      i = j + 1;
    } else {
      const vs = i;
      while (i < n && s.charCodeAt(i) !== 44 && s.charCodeAt(i) !== 32 && s.charCodeAt(i) !== 9) i++;
      v = s.slice(vs, i);
    }
    if (name.length === 0 || params.has(name)) return null; // a repeated directive is malformed
    params.set(name, v);
  }
  return { scheme, params };
}

export interface DigestOptions {
  realm: string;
  /**
   * Algorithms offered, one challenge each, most preferred first, whoever asks. Default: chosen
   * per client by `algorithmsFor` (SHA-256 first, as RFC 8760 2.4 prefers, except for clients
   * known to choke on it).
   */
  algorithms?: DigestAlgorithm[];
  /** nonce lifetime in seconds (default 300) */
  nonceLifetime?: number;
  /** failed attempts per source within `failureWindow` before it is refused (default 10) */
  maxFailures?: number;
  /** seconds over which failures are counted, and for which a source is then refused (default 60) */
  failureWindow?: number;
  /** failed attempts on one account, from any sources, within `failureWindow` before it is guarded (default 20) */
  maxAccountFailures?: number;
}

export type AuthResult =
  | { ok: true; user: string }
  /** challenge again; `stale` when the digest was right but the nonce was not */
  | { ok: false; status: 401; stale: boolean; failure: boolean }
  /** malformed credentials (400), or the source or account is refused for too many failures (403) */
  | { ok: false; status: 400 | 403; reason: string };

/** Addresses an account last authenticated from, kept while it is guarded. */
const GOOD_SOURCES = 4;

const SHA256_FIRST: readonly DigestAlgorithm[] = ['SHA-256', 'MD5'];
const MD5_FIRST: readonly DigestAlgorithm[] = ['MD5', 'SHA-256'];
const MD5_ONLY: readonly DigestAlgorithm[] = ['MD5'];
/** baresip before 2.0 (libre 1.x) and SIPp; baresip 2.x and later handle SHA-256 */
const MD5_ONLY_AGENTS = /\bbaresip v?[01]\.|\blibre\b|\bsipp\b/i;

const RING_BITS = 20;
const RING = 1 << RING_BITS;

/** Counts a failure of `key` within the window; past `max`, the key is refused for a window. */
function count(m: Map<string, { count: number; since: number; blockedUntil: number }>, key: string, nowSec: number, window: number, max: number): void {
  let f = m.get(key);
  if (f === undefined || nowSec - f.since > window) {
    if (f === undefined && m.size >= 100_000) {
      for (const [k, g] of m) if (g.blockedUntil <= nowSec && nowSec - g.since > window) m.delete(k);
    }
    f = { count: 0, since: nowSec, blockedUntil: 0 };
    m.set(key, f);
  }
  if (++f.count >= max) f.blockedUntil = nowSec + window;
}

/** Nonce issuing and checking, digest verification, and the failure limits per source and per account. */
export class DigestAuth {
  readonly realm: string;
  private readonly key = randomBytes(32);
  private readonly lifetime: number;
  private counter = 0;
  /**
   * The nonce (its counter, plus one) that last took each slot; 0 for a slot never taken. Held
   * plus one so that a new array, all zeros, needs no filling: the kernel hands it out zeroed and
   * maps its pages only as nonces reach them (filling 4 MB took about 7 ms of each start).
   */
  private readonly owner = new Uint32Array(RING);
  private readonly lastNc = new Uint32Array(RING);
  private readonly failures = new Map<string, { count: number; since: number; blockedUntil: number }>();
  private readonly accountFailures = new Map<string, { count: number; since: number; blockedUntil: number }>();
  /** user -> the addresses it last authenticated from (most recent last) */
  private readonly goodSources = new Map<string, string[]>();
  private readonly maxFailures: number;
  private readonly maxAccountFailures: number;
  private readonly failureWindow: number;
  /** fixed algorithms, or null to choose per client */
  readonly algorithms: readonly DigestAlgorithm[] | null;

  constructor(opts: DigestOptions) {
    this.realm = opts.realm;
    this.algorithms = opts.algorithms !== undefined && opts.algorithms.length > 0 ? [...opts.algorithms] : null;
    this.lifetime = opts.nonceLifetime ?? 300;
    this.maxFailures = opts.maxFailures ?? 10;
    this.maxAccountFailures = opts.maxAccountFailures ?? 20;
    this.failureWindow = opts.failureWindow ?? 60;
    for (let i = 0; i < 64; i++) {
      const k = i < this.key.length ? this.key[i] : 0;
      this.inner[i] = k ^ 0x36;
      this.outer[i] = k ^ 0x5c;
    }
  }

  // HMAC-SHA256 by hand over node:crypto's one-shot hash: the key's padded blocks are made once,
  // and a nonce costs two hash() calls instead of a new Hmac object (the same bytes in about half
  // the time; two nonce MACs per digest registration). A source too long for the buffer (no IP
  // address is) takes createHmac.
  private readonly inner = Buffer.alloc(64 + 8 + 128);
  private readonly outer = Buffer.alloc(64 + 32);

  /** The nonce's MAC, written to `out` at 8..20: the nonce's time and counter (`out` at 0..8), and the address it is sent to. */
  private mac(out: Buffer, source: string): void {
    if (Buffer.byteLength(source) > this.inner.length - 72) {
      createHmac('sha256', this.key).update(out.subarray(0, 8)).update(source).digest().copy(out, 8, 0, 12);
      return;
    }
    out.copy(this.inner, 64, 0, 8);
    const end = 72 + this.inner.write(source, 72);
    this.outer.write(hash('sha256', this.inner.subarray(0, end), 'hex'), 64, 'hex');
    out.write(hash('sha256', this.outer, 'hex').slice(0, 24), 8, 'hex');
  }

  /** A nonce for a challenge sent to `source` (the client's address). */
  newNonce(nowSec = Math.floor(Date.now() / 1000), source = ''): string {
    const n = this.counter;
    this.counter = (this.counter + 1) >>> 0;
    const slot = n & (RING - 1);
    this.owner[slot] = n + 1;
    this.lastNc[slot] = 0;
    const b = Buffer.allocUnsafe(20);
    b.writeUInt32BE(nowSec >>> 0, 0);
    b.writeUInt32BE(n, 4);
    this.mac(b, source);
    return b.toString('base64url');
  }

  /** The nonce's bytes when this node issued it to `source` (however old): a client there saw the challenge. */
  private issuedTo(nonce: string, source: string): Buffer | null {
    if (nonce.length !== 27) return null;
    const b = Buffer.from(nonce, 'base64url');
    if (b.length !== 20) return null;
    const want = this.want;
    b.copy(want, 0, 0, 8);
    this.mac(want, source);
    return timingSafeEqual(want.subarray(8, 20), b.subarray(8, 20)) ? b : null;
  }

  /** A nonce's expected bytes, reused: checked at once */
  private readonly want = Buffer.alloc(20);

  /**
   * What to offer a client, given its User-Agent. RFC 8760 lets a client skip a challenge it
   * cannot do, but some widely deployed stacks fail instead: libre 1.x (baresip 1.0, as in
   * Debian 12) rejects the whole 401 if any challenge is not MD5, and SIPp 3.6 takes the first
   * challenge and only does MD5. Those get MD5 alone; a client that does not say what it is
   * gets MD5 first; everyone else SHA-256 first.
   */
  algorithmsFor(userAgent: string | undefined): readonly DigestAlgorithm[] {
    if (this.algorithms !== null) return this.algorithms;
    if (userAgent === undefined || userAgent === '') return MD5_FIRST;
    if (MD5_ONLY_AGENTS.test(userAgent)) return MD5_ONLY;
    return SHA256_FIRST;
  }

  /** WWW-Authenticate values, one per algorithm in order of preference (RFC 8760 2.4), sharing one nonce. */
  challenges(stale = false, algorithms: readonly DigestAlgorithm[] = this.algorithms ?? SHA256_FIRST, source = ''): string[] {
    const nonce = this.newNonce(undefined, source);
    const tail = `, qop="auth"${stale ? ', stale=true' : ''}`;
    return algorithms.map((a) => `Digest realm="${this.realm}", nonce="${nonce}", algorithm=${a}${tail}`);
  }

  /** Whether `source` is refused for now because of failed attempts. */
  isBlocked(source: string, nowSec = Date.now() / 1000): boolean {
    const f = this.failures.get(source);
    return f !== undefined && f.blockedUntil > nowSec;
  }

  /** Whether `user` is guarded for now (too many failures) and `source` is not one it authenticated from. */
  isGuarded(user: string, source: string, nowSec = Date.now() / 1000): boolean {
    const f = this.accountFailures.get(user);
    return f !== undefined && f.blockedUntil > nowSec && !(this.goodSources.get(user)?.includes(source) ?? false);
  }

  /** A failure proven to come from `source` (it answered a challenge sent there), for `user` when it exists. */
  private fail(source: string, user: string | null, nowSec: number): void {
    count(this.failures, source, nowSec, this.failureWindow, this.maxFailures);
    if (user !== null) count(this.accountFailures, user, nowSec, this.failureWindow, this.maxAccountFailures);
  }

  private succeeded(user: string, source: string): void {
    const good = this.goodSources.get(user);
    if (good === undefined) {
      if (this.goodSources.size >= 100_000) this.goodSources.delete(this.goodSources.keys().next().value as string);
      this.goodSources.set(user, [source]);
      return;
    }
    if (good[good.length - 1] === source) return;
    const at = good.indexOf(source);
    if (at >= 0) good.splice(at, 1);
    good.push(source);
    if (good.length > GOOD_SOURCES) good.shift();
  }

  /**
   * Verifies the Authorization values of a request against `lookup`. `values` are every
   * Authorization header value; the ones for other realms or schemes are ignored (an unknown
   * scheme is never taken as authenticated, RFC 4475 3.3.7: it gets a challenge).
   */
  verify(
    values: readonly string[],
    method: string,
    requestUri: string,
    body: Buffer,
    source: string,
    lookup: (user: string) => DigestCredentials | undefined,
    nowSec = Date.now() / 1000,
    /** whether a digest-uri other than the Request-URI still designates this server */
    sameResource: (uri: string) => boolean = () => false,
  ): AuthResult {
    if (this.isBlocked(source, nowSec)) return { ok: false, status: 403, reason: 'Too many failed authentications' };
    let p: Map<string, string> | null = null;
    for (const v of values) {
      const a = parseAuthParams(v);
      if (a === null) return { ok: false, status: 400, reason: 'Malformed Authorization' };
      if (a.scheme.toLowerCase() !== 'digest') continue;
      if (a.params.get('realm') !== this.realm) continue;
      p = a.params;
      break;
    }
    if (p === null) return { ok: false, status: 401, stale: false, failure: false };
    const user = p.get('username');
    const nonce = p.get('nonce');
    const uri = p.get('uri');
    const response = p.get('response');
    if (user === undefined || nonce === undefined || uri === undefined || response === undefined) {
      return { ok: false, status: 400, reason: 'Incomplete Digest credentials' };
    }
    // RFC 7616 3.4.6: the digest-uri must designate the resource of the Request-URI (SIPp, for
    // one, puts the registrar's address there rather than the Request-URI's domain)
    if (uri !== requestUri && !uriEquals(uri, requestUri) && !sameResource(uri)) return { ok: false, status: 400, reason: 'Digest uri does not match Request-URI' };
    const alg = (p.get('algorithm') ?? 'MD5').toUpperCase();
    let h: 'md5' | 'sha256';
    let sess = false;
    switch (alg) {
      case 'MD5':
        h = 'md5';
        break;
      case 'MD5-SESS':
        h = 'md5';
        sess = true;
        break;
      case 'SHA-256':
        h = 'sha256';
        break;
      case 'SHA-256-SESS':
        h = 'sha256';
        sess = true;
        break;
      default:
        return { ok: false, status: 401, stale: false, failure: false };
    }
    if (this.algorithms !== null && !this.algorithms.includes(h === 'md5' ? 'MD5' : 'SHA-256')) return { ok: false, status: 401, stale: false, failure: false };
    const qop = p.get('qop');
    const nc = p.get('nc');
    const cnonce = p.get('cnonce');
    if (qop !== undefined && qop !== 'auth' && qop !== 'auth-int') return { ok: false, status: 400, reason: 'Unsupported qop' };
    if (qop !== undefined && (nc === undefined || cnonce === undefined || !/^[0-9a-fA-F]{8}$/.test(nc))) return { ok: false, status: 400, reason: 'qop without nc or cnonce' };
    if (sess && cnonce === undefined) return { ok: false, status: 400, reason: '-sess without cnonce' };
    const account = user.toLowerCase();
    if (this.isGuarded(account, source, nowSec)) return { ok: false, status: 403, reason: 'Too many failed authentications' };
    // Only a client that received the challenge counts as this source; anything else is just
    // challenged again (a forged source must not cost the real one anything).
    const issued = this.issuedTo(nonce, source);
    const proven = issued !== null;
    const cred = lookup(user);
    if (cred === undefined) {
      if (proven) this.fail(source, null, nowSec);
      return { ok: false, status: 401, stale: false, failure: proven };
    }
    let a1 = h === 'md5' ? cred.md5 : cred.sha256;
    if (sess) a1 = hash(h, a1 + ':' + nonce + ':' + cnonce, 'hex');
    const a2 = qop === 'auth-int' ? method + ':' + uri + ':' + hash(h, body, 'hex') : method + ':' + uri;
    const ha2 = hash(h, a2, 'hex');
    const expected = qop === undefined ? hash(h, a1 + ':' + nonce + ':' + ha2, 'hex') : hash(h, a1 + ':' + nonce + ':' + nc + ':' + cnonce + ':' + qop + ':' + ha2, 'hex');
    const given = response.toLowerCase();
    if (given.length !== expected.length || !timingSafeEqual(Buffer.from(given, 'latin1'), Buffer.from(expected, 'latin1'))) {
      if (proven) this.fail(source, account, nowSec);
      return { ok: false, status: 401, stale: false, failure: proven };
    }
    // the digest is right: now whether the nonce is ours, sent here, fresh and not replayed
    if (issued === null || !this.acceptNonce(issued, qop === undefined ? -1 : parseInt(nc as string, 16), nowSec)) {
      return { ok: false, status: 401, stale: true, failure: false };
    }
    this.succeeded(account, source);
    return { ok: true, user };
  }

  /** Whether a nonce issued to the request's source (checked by the caller) is fresh and not replayed. */
  private acceptNonce(b: Buffer, nc: number, nowSec: number): boolean {
    const issued = b.readUInt32BE(0);
    if (nowSec - issued > this.lifetime || issued > nowSec + 5) return false;
    const n = b.readUInt32BE(4);
    const slot = n & (RING - 1);
    // its slot was reused (too old), or never taken (0 matches no counter plus one; the 2^32nd
    // nonce, whose counter plus one the array holds as 0, is refused as stale and the phone asks again)
    if (this.owner[slot] !== n + 1) return false;
    if (nc < 0) {
      // no qop: one request per nonce
      if (this.lastNc[slot] !== 0) return false;
      this.lastNc[slot] = 0xffffffff;
      return true;
    }
    if (nc <= this.lastNc[slot] || nc === 0) return false;
    this.lastNc[slot] = nc;
    return true;
  }
}

/** Computes a client's Authorization value for a challenge (used by tests and the bench). */
export function authorize(
  challenge: string,
  opts: { user: string; password: string; method: string; uri: string; nc?: number; cnonce?: string },
): string {
  const a = parseAuthParams(challenge);
  if (a === null) throw new Error('malformed challenge');
  const realm = a.params.get('realm') ?? '';
  const nonce = a.params.get('nonce') ?? '';
  const algorithm = (a.params.get('algorithm') ?? 'MD5').toUpperCase() === 'SHA-256' ? 'SHA-256' : 'MD5';
  const h = algorithm === 'MD5' ? 'md5' : 'sha256';
  const nc = (opts.nc ?? 1).toString(16).padStart(8, '0');
  const cnonce = opts.cnonce ?? randomBytes(8).toString('hex');
  const a1 = hash(h, `${opts.user}:${realm}:${opts.password}`, 'hex');
  const a2 = hash(h, `${opts.method}:${opts.uri}`, 'hex');
  const qop = a.params.has('qop') ? 'auth' : undefined;
  const response = qop === undefined ? hash(h, `${a1}:${nonce}:${a2}`, 'hex') : hash(h, `${a1}:${nonce}:${nc}:${cnonce}:${qop}:${a2}`, 'hex');
  let v = `Digest username="${opts.user}", realm="${realm}", nonce="${nonce}", uri="${opts.uri}", response="${response}", algorithm=${algorithm}`;
  if (qop !== undefined) v += `, qop=${qop}, nc=${nc}, cnonce="${cnonce}"`;
  return v;
}
