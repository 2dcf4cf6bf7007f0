// RFC 3261 SIP message layer: message types, datagram parser, stream framer.
//
// Strings are "binary" latin1 strings: one char per octet, so header values,
// reason phrases and URIs round-trip byte-exactly (UTF-8 display names stay
// as their raw octets; use binaryToUtf8() to display them). Bodies are copies
// of their octets, not views of the input: a view would keep the whole
// datagram batch or stream chunk the message came in alive as long as the
// message (a proxy holds an INVITE through its branch's 32 s Accepted state).

import { isToken } from './chars.ts';

/**
 * `s` as a string of its own. A header value is a slice of its message's whole head (V8 keeps
 * a slice of 13 characters or more as a view of the string it was cut from), so a value kept
 * long (a dialog's Call-ID and tags, 32 s past the call) keeps the whole head alive. Joining
 * makes a new string that the slice is then cut from, and only that string is kept.
 */
export function ownString(s: string): string {
  return (' ' + s).slice(1);
}

// ---------------------------------------------------------------------------
// Errors

const REASONS: Record<number, string> = {
  400: 'Bad Request',
  413: 'Request Entity Too Large',
  414: 'Request-URI Too Long',
  416: 'Unsupported URI Scheme',
  505: 'Version Not Supported',
  513: 'Message Too Large',
};

/**
 * A message that cannot be accepted. `status`/`reason` are what a UAS answers
 * a request with (400, 416, 505, 513...); responses that fail are dropped.
 * `detail` is a fixed ASCII description (never echoes message bytes), safe to
 * append to a reason phrase or put in a Warning.
 */
export class SipParseError extends Error {
  override name = 'SipParseError';
  readonly status: number;
  readonly reason: string;
  readonly detail: string;
  constructor(status: number, detail: string, reason?: string) {
    const r = reason ?? REASONS[status] ?? 'Bad Request';
    super(`${status} ${r}: ${detail}`);
    this.status = status;
    this.reason = r;
    this.detail = detail;
  }
}

export function badRequest(detail: string): SipParseError {
  return new SipParseError(400, detail);
}

// ---------------------------------------------------------------------------
// Types

export interface SipHeader {
  /** header name as it appeared on the wire (may be compact, any case) */
  name: string;
  /** canonical key: lowercase long form ('v' and 'VIA' -> 'via') */
  key: string;
  /** value with folding replaced by one SP, leading/trailing LWS removed */
  value: string;
}

export interface SipRequest {
  kind: 'request';
  method: string;
  /** Request-URI as written (validated by validateRequest) */
  uri: string;
  /** 'SIP/2.0' */
  version: string;
  /** headers in wire order; each line is one entry (comma lists are not split) */
  headers: SipHeader[];
  body: Buffer;
}

export interface SipResponse {
  kind: 'response';
  status: number;
  /** reason phrase, raw octets as a latin1 string, may be '' */
  reason: string;
  version: string;
  headers: SipHeader[];
  body: Buffer;
}

export type SipMessage = SipRequest | SipResponse;

export interface ParseOptions {
  /** true: stream transport (Content-Length mandatory, no trailing octets tolerated beyond it) */
  stream: boolean;
}

export type ParseResult =
  | { ok: true; message: SipMessage; /** octets consumed (start of any ignored trailing data) */ length: number }
  | {
      ok: false;
      error: SipParseError;
      /**
       * Whatever could be read (start line and headers) so a request can be
       * answered with error.status; null if not even the start line was
       * recognisable. partial.kind === 'response' -> drop it.
       */
      partial: SipMessage | null;
    };

// ---------------------------------------------------------------------------
// Header names

const COMPACT: Record<string, string> = {
  a: 'accept-contact',
  b: 'referred-by',
  c: 'content-type',
  d: 'request-disposition',
  e: 'content-encoding',
  f: 'from',
  i: 'call-id',
  j: 'reject-contact',
  k: 'supported',
  l: 'content-length',
  m: 'contact',
  n: 'identity-info',
  o: 'event',
  r: 'refer-to',
  s: 'subject',
  t: 'to',
  u: 'allow-events',
  v: 'via',
  x: 'session-expires',
  y: 'identity',
};

// Allocation-free lookup of well-known names: KNOWN[(len << 7) | lowercased
// first char] lists [lowercase name, key] pairs of that length and initial.
const KNOWN_NAMES = [
  'via', 'to', 'from', 'call-id', 'cseq', 'max-forwards', 'contact', 'content-length', 'content-type',
  'expires', 'min-expires', 'user-agent', 'server', 'allow', 'supported', 'unsupported', 'require',
  'proxy-require', 'route', 'record-route', 'path', 'service-route', 'authorization', 'www-authenticate',
  'proxy-authorization', 'proxy-authenticate', 'authentication-info', 'accept', 'accept-encoding',
  'accept-language', 'event', 'allow-events', 'subscription-state', 'date', 'timestamp', 'subject',
  'content-encoding', 'content-disposition', 'content-language', 'mime-version', 'refer-to', 'referred-by',
  'session-expires', 'min-se', 'identity', 'identity-info', 'accept-contact', 'reject-contact',
  'request-disposition', 'organization', 'priority', 'warning', 'retry-after', 'reply-to', 'in-reply-to',
  'call-info', 'alert-info', 'error-info', 'p-asserted-identity', 'p-preferred-identity', 'privacy',
  'rseq', 'rack', 'sip-etag', 'sip-if-match', 'security-client', 'security-server', 'security-verify',
  'reason', 'replaces', 'join', 'target-dialog', 'history-info', 'geolocation', 'user-to-user',
];
const KNOWN: Array<Array<[string, string]> | undefined> = new Array(32 << 7);
function addKnown(match: string, key: string): void {
  const i = (match.length << 7) | match.charCodeAt(0);
  (KNOWN[i] ??= []).push([match, key]);
}
for (const n of KNOWN_NAMES) addKnown(n, n);
for (const c in COMPACT) addKnown(c, COMPACT[c]);

/** key of a well-known header name in h[s, s+len), case-insensitively, without allocating */
function knownKey(h: string, s: number, len: number): string | undefined {
  const c0 = h.charCodeAt(s);
  if (len > 31 || c0 > 127) return undefined;
  const list = KNOWN[(len << 7) | (c0 | 0x20)];
  if (list === undefined) return undefined;
  outer: for (let k = 0; k < list.length; k++) {
    const m = list[k][0];
    for (let j = 1; j < len; j++) {
      const c = h.charCodeAt(s + j);
      const mc = m.charCodeAt(j);
      // letters case-insensitively, anything else ('-') exactly
      if (c !== mc && (mc < 97 || (c | 0x20) !== mc)) continue outer;
    }
    return list[k][1];
  }
  return undefined;
}

const KEY_CACHE = new Map<string, string>();
const KEY_CACHE_MAX = 4096;

/** Canonical key of a header name: lowercase, compact forms expanded. */
export function headerKey(name: string): string {
  // callers mostly pass a key already ('call-id'): a scan of a few chars beats a map lookup,
  // and the registrar asks for half a dozen headers per REGISTER
  if (name.length > 1) {
    let i = 0;
    while (i < name.length && (name.charCodeAt(i) < 65 || name.charCodeAt(i) > 90)) i++;
    if (i === name.length) return name;
  }
  let k = KEY_CACHE.get(name);
  if (k !== undefined) return k;
  k = name.toLowerCase();
  if (k.length === 1) k = COMPACT[k] ?? k;
  if (KEY_CACHE.size < KEY_CACHE_MAX) KEY_CACHE.set(name, k);
  return k;
}

// ---------------------------------------------------------------------------
// Header access helpers (keys may be given in any case or compact form)

export function getHeader(msg: SipMessage, name: string): string | undefined {
  const key = headerKey(name);
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) if (hs[i].key === key) return hs[i].value;
  return undefined;
}

export function getHeaders(msg: SipMessage, name: string): string[] {
  const key = headerKey(name);
  const out: string[] = [];
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) if (hs[i].key === key) out.push(hs[i].value);
  return out;
}

export function countHeaders(msg: SipMessage, name: string): number {
  const key = headerKey(name);
  let n = 0;
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) if (hs[i].key === key) n++;
  return n;
}

/**
 * All values of a list-valued header (Via, Contact, Route, Require, Supported,
 * Allow, Accept...), across lines, split at top-level commas; empty elements
 * are dropped. Not for headers whose values contain commas by grammar
 * (Authorization, WWW-Authenticate, Date...).
 */
export function getHeaderValues(msg: SipMessage, name: string): string[] {
  const key = headerKey(name);
  const out: string[] = [];
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    if (hs[i].key !== key) continue;
    const v = hs[i].value;
    if (!hasListSeparator(v)) {
      if (v.length > 0) out.push(v);
      continue;
    }
    for (const part of splitHeaderList(v)) if (part.length > 0) out.push(part);
  }
  return out;
}

function hasListSeparator(v: string): boolean {
  return v.indexOf(',') !== -1;
}

/**
 * Splits a header value at commas that are outside quoted strings and outside
 * <...>. Elements are trimmed; empty elements are kept (callers decide).
 */
export function splitHeaderList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let inQuote = false;
  let inAngle = false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (inQuote) {
      if (c === 92 /* \ */) i++;
      else if (c === 34) inQuote = false;
    } else if (c === 34) inQuote = true;
    else if (inAngle) {
      if (c === 62 /* > */) inAngle = false;
    } else if (c === 60 /* < */) inAngle = true;
    else if (c === 44 /* , */) {
      out.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(value.slice(start).trim());
  return out;
}

/** Appends a header at the bottom. */
export function addHeader(msg: SipMessage, name: string, value: string): void {
  msg.headers.push({ name, key: headerKey(name), value });
}

/** Inserts a header before the first header of the same kind (top Via, top Record-Route), or at the top. */
export function prependHeader(msg: SipMessage, name: string, value: string): void {
  const key = headerKey(name);
  const hs = msg.headers;
  let i = 0;
  while (i < hs.length && hs[i].key !== key) i++;
  if (i === hs.length) i = 0;
  hs.splice(i, 0, { name, key, value });
}

/** Removes every header of that kind; returns how many were removed. */
export function removeHeaders(msg: SipMessage, name: string): number {
  const key = headerKey(name);
  const hs = msg.headers;
  let w = 0;
  for (let r = 0; r < hs.length; r++) if (hs[r].key !== key) hs[w++] = hs[r];
  const n = hs.length - w;
  hs.length = w;
  return n;
}

/** Replaces all headers of that kind by one (at the place of the first, else at the bottom). */
export function setHeader(msg: SipMessage, name: string, value: string): void {
  const key = headerKey(name);
  const hs = msg.headers;
  let i = 0;
  while (i < hs.length && hs[i].key !== key) i++;
  if (i === hs.length) {
    hs.push({ name, key, value });
    return;
  }
  hs[i] = { name, key, value };
  let w = i + 1;
  for (let r = i + 1; r < hs.length; r++) if (hs[r].key !== key) hs[w++] = hs[r];
  hs.length = w;
}

/** Latin1 "binary" string (as stored in messages) -> JS string decoded as UTF-8. */
export function binaryToUtf8(s: string): string {
  return Buffer.from(s, 'latin1').toString('utf8');
}

/** JS string -> latin1 "binary" string of its UTF-8 octets, for header values. */
export function utf8ToBinary(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

// ---------------------------------------------------------------------------
// Numbers

/** s[from, to) (all of s by default) as 1*DIGIT with no sign/space, value <= max; -1 otherwise. Leading zeros allowed. */
export function parseDigits(s: string, max: number, from = 0, to = s.length): number {
  if (to <= from) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
    if (n > max) return -1;
  }
  return n;
}

/** Largest Content-Length accepted at all (bounded by transports long before). */
export const MAX_CONTENT_LENGTH = 0x7fffffff;

/** Content-Length value: single non-negative integer. Throws SipParseError(400). */
export function parseContentLength(value: string): number {
  const n = parseDigits(value, MAX_CONTENT_LENGTH);
  if (n < 0) throw badRequest('Invalid Content-Length');
  return n;
}

// ---------------------------------------------------------------------------
// Parser

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const EMPTY = Buffer.alloc(0);

interface Head {
  msg: SipMessage | null;
  error: SipParseError | null;
  /** value of the single Content-Length header; -1 absent; -2 invalid or repeated */
  contentLength: number;
  clError: SipParseError | null;
}

function isSipVersionSyntax(v: string): boolean {
  // "SIP" "/" 1*DIGIT "." 1*DIGIT ("SIP" is case-insensitive in ABNF)
  if (v.length < 7) return false;
  const c0 = v.charCodeAt(0) | 0x20;
  const c1 = v.charCodeAt(1) | 0x20;
  const c2 = v.charCodeAt(2) | 0x20;
  if (c0 !== 115 || c1 !== 105 || c2 !== 112 || v.charCodeAt(3) !== 47) return false;
  const dot = v.indexOf('.', 4);
  if (dot < 5 || dot === v.length - 1) return false;
  for (let i = 4; i < v.length; i++) {
    if (i === dot) continue;
    const c = v.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** after isSipVersionSyntax: "SIP/2.0" in any case of "SIP" */
function isSip20(v: string): boolean {
  return v.length === 7 && v.endsWith('/2.0');
}

/** Request-URI: non-empty, no SP/HT/CTL (full validation is validateRequest's job). */
function isUriChars(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 32 || c === 127) return false;
  }
  return true;
}

function parseStartLine(line: string, head: Head): void {
  // Response: SIP-Version SP Status-Code SP Reason-Phrase
  const c0 = line.charCodeAt(0) | 0x20;
  if (c0 === 115 && line.length > 4 && line.charCodeAt(3) === 47 && (line.charCodeAt(1) | 0x20) === 105 && (line.charCodeAt(2) | 0x20) === 112) {
    const res: SipResponse = { kind: 'response', status: 0, reason: '', version: '', headers: [], body: EMPTY };
    head.msg = res;
    const sp1 = line.indexOf(' ');
    const version = sp1 < 0 ? line : line.slice(0, sp1);
    if (!isSipVersionSyntax(version)) {
      head.error = badRequest('Malformed Status-Line');
      return;
    }
    res.version = version;
    if (!isSip20(version)) {
      head.error = new SipParseError(505, 'SIP version not supported');
      return;
    }
    res.version = 'SIP/2.0';
    if (sp1 < 0) {
      head.error = badRequest('Malformed Status-Line');
      return;
    }
    let sp2 = line.indexOf(' ', sp1 + 1);
    if (sp2 < 0) sp2 = line.length; // tolerate a missing SP before an empty reason
    const code = line.slice(sp1 + 1, sp2);
    if (code.length !== 3) {
      head.error = badRequest('Malformed Status-Code');
      return;
    }
    const n = parseDigits(code, 999);
    if (n < 100 || n > 699) {
      head.error = badRequest('Malformed Status-Code');
      return;
    }
    res.status = n;
    res.reason = sp2 < line.length ? line.slice(sp2 + 1) : '';
    return;
  }
  // Request: Method SP Request-URI SP SIP-Version (exactly one SP each)
  const sp1 = line.indexOf(' ');
  if (sp1 <= 0 || !isToken(line, 0, sp1)) {
    head.error = badRequest('Malformed Request-Line');
    return;
  }
  const req: SipRequest = { kind: 'request', method: line.slice(0, sp1), uri: '', version: '', headers: [], body: EMPTY };
  head.msg = req;
  const sp2 = line.lastIndexOf(' ');
  if (sp2 === sp1) {
    head.error = badRequest('Malformed Request-Line');
    return;
  }
  const uri = line.slice(sp1 + 1, sp2);
  const version = line.slice(sp2 + 1);
  req.uri = uri;
  if (!isUriChars(uri)) {
    head.error = badRequest('Malformed Request-Line (Request-URI)');
    return;
  }
  if (!isSipVersionSyntax(version)) {
    head.error = badRequest('Malformed Request-Line (SIP-Version)');
    return;
  }
  if (!isSip20(version)) {
    req.version = version;
    head.error = new SipParseError(505, 'SIP version not supported');
    return;
  }
  req.version = 'SIP/2.0';
}

/**
 * Parses start line and headers from buf[start, end) where end is the offset
 * of the CRLF that ends the last header line (or of the CRLFCRLF).
 * Keeps going after errors so that `msg` holds as much as could be read.
 */
function parseHead(buf: Buffer, start: number, end: number): Head {
  const head: Head = { msg: null, error: null, contentLength: -1, clError: null };
  const h = buf.toString('latin1', start, end);
  const len = h.length;
  // start line
  let lf = h.indexOf('\n');
  let le = lf < 0 ? len : lf - 1;
  if (lf >= 0 && h.charCodeAt(le) !== 13) {
    head.error = badRequest('Bare LF in message');
    return head;
  }
  const first = h.slice(0, le);
  if (first.indexOf('\r') !== -1) {
    head.error = badRequest('Bare CR in message');
    return head;
  }
  parseStartLine(first, head);
  const msg = head.msg;
  if (msg === null) return head;
  const headers = msg.headers;
  let cur: SipHeader | null = null;
  let clCount = 0;
  let clValue = '';
  let ls = lf < 0 ? len : lf + 1;
  while (ls < len) {
    lf = h.indexOf('\n', ls);
    if (lf < 0) {
      le = len;
    } else {
      le = lf - 1;
      if (h.charCodeAt(le) !== 13) {
        head.error ??= badRequest('Bare LF in message');
        le = lf;
      }
    }
    const cr = h.indexOf('\r', ls);
    if (cr !== -1 && cr < le) head.error ??= badRequest('Bare CR in message');
    const next = lf < 0 ? len : lf + 1;
    const c0 = h.charCodeAt(ls);
    if (c0 === 32 || c0 === 9) {
      // folded continuation line
      let s = ls + 1;
      while (s < le && (h.charCodeAt(s) === 32 || h.charCodeAt(s) === 9)) s++;
      let e = le;
      while (e > s && (h.charCodeAt(e - 1) === 32 || h.charCodeAt(e - 1) === 9)) e--;
      if (cur === null) {
        head.error ??= badRequest('Continuation line before first header');
      } else if (e > s) {
        cur.value = cur.value.length === 0 ? h.slice(s, e) : cur.value + ' ' + h.slice(s, e);
        if (cur.key === 'content-length') clValue = cur.value;
      }
      ls = next;
      continue;
    }
    const colon = h.indexOf(':', ls);
    if (colon < 0 || colon >= le) {
      head.error ??= badRequest('Malformed header line');
      cur = null;
      ls = next;
      continue;
    }
    let ne = colon;
    while (ne > ls && (h.charCodeAt(ne - 1) === 32 || h.charCodeAt(ne - 1) === 9)) ne--;
    const name = h.slice(ls, ne);
    let key = knownKey(h, ls, ne - ls);
    if (key === undefined) key = KEY_CACHE.get(name);
    if (key === undefined) {
      if (!isToken(name)) {
        head.error ??= badRequest('Malformed header name');
        cur = null;
        ls = next;
        continue;
      }
      key = headerKey(name);
    }
    let vs = colon + 1;
    while (vs < le && (h.charCodeAt(vs) === 32 || h.charCodeAt(vs) === 9)) vs++;
    let ve = le;
    while (ve > vs && (h.charCodeAt(ve - 1) === 32 || h.charCodeAt(ve - 1) === 9)) ve--;
    cur = { name, key, value: h.slice(vs, ve) };
    headers.push(cur);
    if (key === 'content-length') {
      clCount++;
      clValue = cur.value;
    }
    ls = next;
  }
  if (clCount === 1) {
    const n = parseDigits(clValue, MAX_CONTENT_LENGTH);
    if (n < 0) {
      head.contentLength = -2;
      head.clError = badRequest('Invalid Content-Length');
    } else head.contentLength = n;
  } else if (clCount > 1) {
    head.contentLength = -2;
    head.clError = badRequest('Multiple Content-Length headers');
  }
  return head;
}

function skipCrlf(buf: Buffer, i: number): number {
  const len = buf.length;
  while (i < len) {
    const c = buf[i];
    if (c !== 13 && c !== 10) break;
    i++;
  }
  return i;
}

/** Cheap early check on a stream's first line (b[0, lf) ends at the first LF): "SIP/" or token SP. */
function looksLikeStartLine(b: Buffer, lf: number): boolean {
  let i = 0;
  while (i < lf && b[i] !== 32) i++;
  if (i === 0 || i >= lf) return false;
  if (i >= 4 && (b[0] | 0x20) === 115 && (b[1] | 0x20) === 105 && (b[2] | 0x20) === 112 && b[3] === 47) return true;
  return isToken(b.toString('latin1', 0, i));
}

/** A datagram or chunk holding only CR/LF (RFC 5626 keepalive ping/pong). */
export function isKeepalive(buf: Buffer): boolean {
  return buf.length > 0 && skipCrlf(buf, 0) === buf.length;
}

function fail(error: SipParseError, partial: SipMessage | null): ParseResult {
  return { ok: false, error, partial };
}

/**
 * Parses one message. Datagram mode (stream: false, RFC 3261 18.3): the body
 * is Content-Length octets (the rest of the datagram if absent); octets after
 * it are ignored; a Content-Length larger than what is left is a 400.
 * Stream mode: Content-Length is mandatory. Leading CRLFs are skipped.
 */
export function parseMessage(buf: Buffer, opts: ParseOptions = { stream: false }): ParseResult {
  const len = buf.length;
  const start = skipCrlf(buf, 0);
  if (start >= len) return fail(badRequest('Empty message'), null);
  let hend = buf.indexOf(CRLFCRLF, start);
  let bodyStart: number;
  if (hend < 0) {
    // A datagram whose header section ends with the datagram (no empty line)
    if (!opts.stream && len - start >= 2 && buf[len - 2] === 13 && buf[len - 1] === 10) {
      hend = len - 2;
      bodyStart = len;
    } else return fail(badRequest('Incomplete message header'), null);
  } else bodyStart = hend + 4;
  const head = parseHead(buf, start, hend);
  const msg = head.msg;
  if (head.error !== null) return fail(head.error, msg);
  if (msg === null) return fail(badRequest('Malformed start line'), null);
  if (head.clError !== null) return fail(head.clError, msg);
  const avail = len - bodyStart;
  let cl = head.contentLength;
  if (cl < 0) {
    if (opts.stream) return fail(badRequest('Missing Content-Length on stream transport'), msg);
    cl = avail;
  } else if (cl > avail) {
    return fail(badRequest('Content-Length larger than message'), msg);
  }
  msg.body = cl === 0 ? EMPTY : Buffer.from(buf.subarray(bodyStart, bodyStart + cl));
  return { ok: true, message: msg, length: bodyStart + cl };
}

// ---------------------------------------------------------------------------
// Stream framer (TCP/TLS/WS-less streams)

export interface FramerOptions {
  /** upper bound for one message (head + body) and for buffered octets; default 65535 */
  maxMessageSize?: number;
}

export type FramerEvent =
  | { type: 'message'; message: SipMessage }
  /** a CRLFCRLF ping (RFC 5626 4.4.1): answer with a CRLF pong */
  | { type: 'keepalive' }
  /**
   * fatal: framing is lost (no/invalid Content-Length, oversize): the
   * connection must be closed; the framer ignores further input.
   * non-fatal: one message was skipped; partial may be answered (requests).
   */
  | { type: 'error'; error: SipParseError; partial: SipMessage | null; fatal: boolean };

interface Pending {
  head: Head;
  bodyStart: number;
  total: number;
}

/**
 * Accumulates stream chunks and cuts them into messages by Content-Length
 * (mandatory on streams, RFC 3261 18.3). CRLFs between messages are skipped;
 * a CRLFCRLF is reported as a keepalive ping.
 */
export class SipStreamFramer {
  readonly maxMessageSize: number;
  private buf: Buffer = EMPTY;
  private scanFrom = 0;
  private pending: Pending | null = null;
  private crlfs = 0;
  private dead = false;
  // first-line sanity check of the message being accumulated, done once
  private lineChecked = false;
  private lfFrom = 0;
  // growable accumulation buffer (see append); this.buf is a view ending at storeUsed
  private store: Buffer | null = null;
  private storeUsed = 0;

  constructor(opts: FramerOptions = {}) {
    this.maxMessageSize = opts.maxMessageSize ?? 65535;
  }

  /** octets buffered, waiting for the rest of a message */
  get bufferedBytes(): number {
    return this.buf.length;
  }

  /** true after a fatal error */
  get closed(): boolean {
    return this.dead;
  }

  push(chunk: Buffer): FramerEvent[] {
    const out: FramerEvent[] = [];
    if (this.dead || chunk.length === 0) return out;
    this.append(chunk);
    for (;;) {
      const b = this.buf;
      const p = this.pending;
      if (p !== null) {
        if (b.length < p.total) break;
        const msg = p.head.msg as SipMessage;
        const cl = p.total - p.bodyStart;
        msg.body = cl === 0 ? EMPTY : Buffer.from(b.subarray(p.bodyStart, p.total));
        if (p.head.error !== null) out.push({ type: 'error', error: p.head.error, partial: msg, fatal: false });
        else out.push({ type: 'message', message: msg });
        this.pending = null;
        this.scanFrom = 0;
        this.lineChecked = false;
        this.lfFrom = 0;
        this.buf = p.total === b.length ? EMPTY : b.subarray(p.total);
        continue;
      }
      if (b.length === 0) break;
      // CRLFs between messages; CRLFCRLF = ping
      let i = 0;
      let waitCr = false;
      while (i < b.length) {
        const c = b[i];
        if (c === 13) {
          if (i + 1 >= b.length) {
            waitCr = true;
            break;
          }
          if (b[i + 1] !== 10) break;
          i += 2;
        } else if (c === 10) {
          i++;
        } else break;
        if (++this.crlfs === 2) {
          this.crlfs = 0;
          out.push({ type: 'keepalive' });
        }
      }
      if (i > 0) {
        this.buf = i === b.length ? EMPTY : b.subarray(i);
        this.scanFrom = 0;
        this.lineChecked = false;
        this.lfFrom = 0;
        if (waitCr || this.buf.length === 0) break;
        continue;
      }
      if (waitCr) break;
      this.crlfs = 0;
      const hend = b.indexOf(CRLFCRLF, this.scanFrom);
      if (hend < 0) {
        if (!this.lineChecked) {
          const lf = b.indexOf(10, this.lfFrom);
          if (lf < 0) this.lfFrom = b.length;
          else {
            this.lineChecked = true;
            if (!looksLikeStartLine(b, lf)) {
              this.fatal(out, badRequest('Malformed start line'), null);
              break;
            }
          }
        }
        if (b.length > this.maxMessageSize) {
          this.fatal(out, new SipParseError(513, 'Message header too large'), null);
          break;
        }
        this.scanFrom = b.length > 3 ? b.length - 3 : 0;
        break;
      }
      const head = parseHead(b, 0, hend);
      const bodyStart = hend + 4;
      if (head.msg === null) {
        this.fatal(out, head.error ?? badRequest('Malformed start line'), null);
        break;
      }
      if (head.clError !== null) {
        this.fatal(out, head.clError, head.msg);
        break;
      }
      if (head.contentLength < 0) {
        this.fatal(out, badRequest('Missing Content-Length on stream transport'), head.msg);
        break;
      }
      const total = bodyStart + head.contentLength;
      if (total > this.maxMessageSize) {
        this.fatal(out, new SipParseError(513, 'Message too large'), head.msg);
        break;
      }
      this.pending = { head, bodyStart, total };
    }
    return out;
  }

  /**
   * this.buf += chunk. A lone chunk is used as is (no copy); a message arriving
   * in pieces is gathered in a growable store (amortised O(1) per octet, so a
   * peer sending one octet at a time costs linear, not quadratic, copying).
   */
  private append(chunk: Buffer): void {
    const cur = this.buf;
    if (cur.length === 0) {
      this.buf = chunk;
      this.store = null;
      return;
    }
    const st = this.store;
    const need = cur.length + chunk.length;
    if (st !== null && cur.buffer === st.buffer && cur.byteOffset + cur.length === st.byteOffset + this.storeUsed) {
      if (this.storeUsed + chunk.length <= st.length) {
        chunk.copy(st, this.storeUsed);
        const startRel = cur.byteOffset - st.byteOffset;
        this.storeUsed += chunk.length;
        this.buf = st.subarray(startRel, this.storeUsed);
        return;
      }
    }
    const ns = Buffer.allocUnsafeSlow(Math.max(need * 2, 4096));
    cur.copy(ns, 0);
    chunk.copy(ns, cur.length);
    this.store = ns;
    this.storeUsed = need;
    this.buf = ns.subarray(0, need);
  }

  private fatal(out: FramerEvent[], error: SipParseError, partial: SipMessage | null): void {
    this.dead = true;
    this.store = null;
    this.buf = EMPTY;
    this.pending = null;
    out.push({ type: 'error', error, partial, fatal: true });
  }
}
