// SIP/SIPS URIs (RFC 3261 19.1), name-addr / addr-spec, header parameters,
// Via, CSeq, Max-Forwards, Expires, Date. Components are kept exactly as
// written (escapes included) so that serialisation is byte-exact; comparison
// follows RFC 3261 19.1.4. Parsers throw SipParseError (status 400).

import { isIP, isIPv6 } from 'node:net';
import {
  CHARS,
  C_ALNUM,
  C_HNV,
  C_HOST,
  C_MARK,
  C_PARAM,
  C_PASS,
  C_SCHEME,
  C_TOKEN,
  C_URIC,
  C_USER,
  C_WORD,
  allChars,
  hexVal,
  isEscapedPart,
  isToken,
} from './chars.ts';
import { badRequest, parseDigits, splitHeaderList } from './message.ts';


// ---------------------------------------------------------------------------
// Types

export interface UriParam {
  /** as written (may contain escapes) */
  name: string;
  /** null for a parameter without "=" */
  value: string | null;
}

export interface UriHeader {
  name: string;
  value: string;
}

export interface SipUri {
  kind: 'sip';
  scheme: 'sip' | 'sips';
  /** userinfo user part as written (escapes kept), null if absent */
  user: string | null;
  password: string | null;
  /** hostname, IPv4 address, or IPv6 reference including the brackets */
  host: string;
  port: number | null;
  params: UriParam[];
  headers: UriHeader[];
}

/** Any other absolute URI (tel:, http:, isbn:, ...) kept opaque. */
export interface OtherUri {
  kind: 'other';
  /** lowercase */
  scheme: string;
  /** everything after the first ':' */
  value: string;
}

export type Uri = SipUri | OtherUri;

export interface HeaderParam {
  name: string;
  /** null when the parameter has no "="; for quoted values, the unquoted content */
  value: string | null;
  /** the value was a quoted-string */
  quoted: boolean;
}

export interface NameAddr {
  /** display name: token run as written, or quoted-string content with quoted-pairs resolved; null if absent */
  displayName: string | null;
  uri: Uri;
  /** written in name-addr form (<...>) */
  bracketed: boolean;
  /** the URI as written (what formatUri(uri) gives, up to how numbers were written) */
  uriText: string;
  /** header parameters (tag, expires, q, +sip.instance, reg-id, ...) in order */
  params: HeaderParam[];
}

export interface Via {
  /** 'SIP' */
  protocol: string;
  /** '2.0' */
  version: string;
  /** uppercase: 'UDP', 'TCP', 'TLS', 'SCTP', 'WS', ... (unknown ones tolerated) */
  transport: string;
  host: string;
  port: number | null;
  params: HeaderParam[];
  branch: string | null;
  received: string | null;
  /** rport value if given; see hasRport for the valueless request form */
  rport: number | null;
  hasRport: boolean;
  maddr: string | null;
  ttl: number | null;
}

export interface CSeq {
  seq: number;
  method: string;
}

// ---------------------------------------------------------------------------
// URI parsing

const MAX_U32 = 0xffffffff;

function isSchemeAt(s: string, end: number): boolean {
  const c0 = s.charCodeAt(0);
  if (!((c0 >= 65 && c0 <= 90) || (c0 >= 97 && c0 <= 122))) return false;
  return end === 1 || allChars(s, C_SCHEME, 1, end);
}

/** Parses an absolute URI; sip:/sips: fully, other schemes opaquely. */
export function parseUri(s: string): Uri {
  const colon = s.indexOf(':');
  if (colon <= 0 || !isSchemeAt(s, colon)) throw badRequest('Malformed URI scheme');
  let scheme: string;
  if (colon === 3 && (s.charCodeAt(0) | 0x20) === 115 && (s.charCodeAt(1) | 0x20) === 105 && (s.charCodeAt(2) | 0x20) === 112) scheme = 'sip';
  else scheme = s.slice(0, colon).toLowerCase();
  if (scheme === 'sip' || scheme === 'sips') return parseSipParts(s, colon + 1, scheme);
  if (colon + 1 >= s.length || !allChars(s, C_URIC, colon + 1)) throw badRequest('Malformed URI');
  return { kind: 'other', scheme, value: s.slice(colon + 1) };
}

/** Parses a sip: or sips: URI (throws for other schemes). */
export function parseSipUri(s: string): SipUri {
  const u = parseUri(s);
  if (u.kind !== 'sip') throw badRequest('Not a SIP URI');
  return u;
}

function parseSipParts(s: string, i0: number, scheme: 'sip' | 'sips'): SipUri {
  const end = s.length;
  let user: string | null = null;
  let password: string | null = null;
  let i = i0;
  const at = s.indexOf('@', i0);
  if (at >= 0) {
    const pc = s.indexOf(':', i0);
    const ue = pc >= 0 && pc < at ? pc : at;
    if (ue === i0 || !isEscapedPart(s, C_USER, i0, ue)) throw badRequest('Malformed URI user part');
    user = s.slice(i0, ue);
    if (ue < at) {
      if (!isEscapedPart(s, C_PASS, ue + 1, at)) throw badRequest('Malformed URI password');
      password = s.slice(ue + 1, at);
    }
    i = at + 1;
  }
  const he = hostEnd(s, i, end);
  if (he < 0) throw badRequest('Malformed URI host');
  const host = s.slice(i, he);
  i = he;
  let port: number | null = null;
  if (i < end && s.charCodeAt(i) === 58 /* : */) {
    port = readPort(s, i + 1, end);
    if (port < 0) throw badRequest('Malformed URI port');
    i = portEnd;
  }
  let params: UriParam[] | null = null; // a literal of the first one, as in parseHeaderParams
  while (i < end && s.charCodeAt(i) === 59 /* ; */) {
    const ns = ++i;
    while (i < end) {
      const c = s.charCodeAt(i);
      if (c === 59 || c === 63 || c === 61) break;
      i++;
    }
    if (i === ns || !isEscapedPart(s, C_PARAM, ns, i)) throw badRequest('Malformed URI parameter');
    const name = s.slice(ns, i);
    let value: string | null = null;
    if (i < end && s.charCodeAt(i) === 61 /* = */) {
      const vs = ++i;
      while (i < end) {
        const c = s.charCodeAt(i);
        if (c === 59 || c === 63) break;
        i++;
      }
      if (i === vs || !isEscapedPart(s, C_PARAM, vs, i)) throw badRequest('Malformed URI parameter');
      value = s.slice(vs, i);
    }
    if (params === null) params = [{ name, value }];
    else params.push({ name, value });
  }
  const headers: UriHeader[] = [];
  if (i < end && s.charCodeAt(i) === 63 /* ? */) {
    i++;
    for (;;) {
      const ns = i;
      while (i < end) {
        const c = s.charCodeAt(i);
        if (c === 61 || c === 38) break;
        i++;
      }
      if (i === ns || i >= end || s.charCodeAt(i) !== 61 || !isEscapedPart(s, C_HNV, ns, i)) throw badRequest('Malformed URI header');
      const name = s.slice(ns, i);
      const vs = ++i;
      while (i < end && s.charCodeAt(i) !== 38) i++;
      if (!isEscapedPart(s, C_HNV, vs, i)) throw badRequest('Malformed URI header');
      headers.push({ name, value: s.slice(vs, i) });
      if (i >= end) break;
      i++; // &
    }
  }
  if (i !== end) throw badRequest('Malformed URI');
  return { kind: 'sip', scheme, user, password, host, port, params: params ?? [], headers };
}

/** A host as an address: an IPv6 reference without its brackets, anything else as it is. */
export function bareHost(host: string): string {
  return host.charCodeAt(0) === 91 ? host.slice(1, -1) : host;
}

/** hostname / IPv4address / IPv6reference (RFC 3261 25.1) */
export function isValidHost(h: string): boolean {
  return hostEnd(h, 0, h.length) === h.length;
}

/**
 * Where the host starting at s[i] ends (before `end`), or -1 when no valid host starts there.
 * A hostname's labels are checked in the same pass that finds its end: the host of every URI
 * and Via of every request goes through here, so its characters are read once.
 */
function hostEnd(s: string, i: number, end: number): number {
  if (s.charCodeAt(i) === 91 /* [ */) {
    const close = s.indexOf(']', i);
    if (close < 0 || close - i < 3) return -1;
    const inner = s.slice(i + 1, close);
    return inner.indexOf('%') < 0 && isIPv6(inner) ? close + 1 : -1;
  }
  // hostname labels (IPv4 addresses pass the same rules)
  let ls = i;
  let j = i;
  for (; j < end; j++) {
    const c = s.charCodeAt(j);
    if (c === 46 /* . */) {
      if (j === ls || s.charCodeAt(ls) === 45 || s.charCodeAt(j - 1) === 45) return -1;
      ls = j + 1;
    } else if (c > 255 || (CHARS[c] & C_HOST) === 0) break;
  }
  if (j === ls) return j > i ? j : -1; // an empty label only as a trailing dot
  return s.charCodeAt(ls) === 45 || s.charCodeAt(j - 1) === 45 ? -1 : j;
}

let portEnd = 0; // end offset of the last readPort() (single-threaded scratch, as qEnd)

/** The port at s[i] (1*DIGIT, at most 65535; its end in portEnd), or -1 when there is none or it is larger. */
function readPort(s: string, i: number, end: number): number {
  let n = 0;
  let j = i;
  for (; j < end; j++) {
    const d = s.charCodeAt(j) - 48;
    if (d < 0 || d > 9) break;
    n = n * 10 + d;
    if (n > 65535) return -1;
  }
  portEnd = j;
  return j === i ? -1 : n;
}

// ---------------------------------------------------------------------------
// Escapes and comparison (RFC 3261 19.1.4)

/** Fully decodes %HH escapes (into latin1 chars, one per octet). */
export function unescapeUriPart(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) !== 37) continue;
    const a = hexVal(s.charCodeAt(i + 1));
    const b = hexVal(s.charCodeAt(i + 2));
    if (a < 0 || b < 0) continue;
    out += s.slice(last, i) + String.fromCharCode(a * 16 + b);
    i += 2;
    last = i + 1;
  }
  return out + s.slice(last);
}

/**
 * Canonical escape form for comparison: escapes of unreserved characters are
 * decoded (they are equivalent to the character); every other escape stays an
 * escape with uppercase hex (reserved characters and "%" itself are not
 * equivalent to their literal form; decoding is never recursive).
 */
export function normalizeEscapes(s: string): string {
  if (s.indexOf('%') < 0) return s;
  let out = '';
  let last = 0;
  for (let i = 0; i < s.length; i++) {
    if (s.charCodeAt(i) !== 37) continue;
    const a = hexVal(s.charCodeAt(i + 1));
    const b = hexVal(s.charCodeAt(i + 2));
    if (a < 0 || b < 0) continue;
    const c = a * 16 + b;
    out += s.slice(last, i);
    if ((CHARS[c] & (C_ALNUM | C_MARK)) !== 0) out += String.fromCharCode(c);
    else out += '%' + s.slice(i + 1, i + 3).toUpperCase();
    i += 2;
    last = i + 1;
  }
  return out + s.slice(last);
}

function normCi(s: string): string {
  return normalizeEscapes(s).toLowerCase();
}

function normCs(s: string | null): string | null {
  return s === null ? null : normalizeEscapes(s);
}

// parameters that make URIs unequal when present in only one of them
const STRICT_PARAMS = new Set(['user', 'ttl', 'method', 'maddr', 'transport']);

function findParam(params: readonly UriParam[], normName: string): UriParam | undefined {
  for (const p of params) if (normCi(p.name) === normName) return p;
  return undefined;
}

/**
 * RFC 3261 19.1.4 URI equality. Strings are parsed first (an unparseable URI
 * equals nothing). Userinfo is case-sensitive, host/params case-insensitive,
 * escapes of unreserved characters equal the characters, user/ttl/method/
 * maddr/transport must match if present in either, other parameters only if
 * present in both, URI headers must all match.
 */
export function uriEquals(a: Uri | string, b: Uri | string): boolean {
  let ua: Uri;
  let ub: Uri;
  try {
    ua = typeof a === 'string' ? parseUri(a) : a;
    ub = typeof b === 'string' ? parseUri(b) : b;
  } catch {
    return false;
  }
  if (ua.kind !== 'sip' || ub.kind !== 'sip') {
    if (ua.kind !== ub.kind || ua.scheme !== ub.scheme) return false;
    return normalizeEscapes((ua as OtherUri).value) === normalizeEscapes((ub as OtherUri).value);
  }
  if (ua.scheme !== ub.scheme) return false;
  if (normCs(ua.user) !== normCs(ub.user)) return false;
  if (normCs(ua.password) !== normCs(ub.password)) return false;
  if (ua.host.toLowerCase() !== ub.host.toLowerCase()) return false;
  if (ua.port !== ub.port) return false;
  for (const p of ua.params) {
    const n = normCi(p.name);
    const q = findParam(ub.params, n);
    if (q === undefined) {
      if (STRICT_PARAMS.has(n)) return false;
      continue;
    }
    const va = p.value === null ? null : normCi(p.value);
    const vb = q.value === null ? null : normCi(q.value);
    if (va !== vb) return false;
  }
  for (const q of ub.params) {
    const n = normCi(q.name);
    if (STRICT_PARAMS.has(n) && findParam(ua.params, n) === undefined) return false;
  }
  if (ua.headers.length !== ub.headers.length) return false;
  for (const h of ua.headers) {
    const n = normCi(h.name);
    const v = normalizeEscapes(h.value);
    let found = false;
    for (const k of ub.headers) {
      if (normCi(k.name) === n && normalizeEscapes(k.value) === v) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

/** Serialises a URI from its (escaped, as written) components. */
export function formatUri(u: Uri): string {
  if (u.kind === 'other') return u.scheme + ':' + u.value;
  let s = u.scheme + ':';
  if (u.user !== null) {
    s += u.user;
    if (u.password !== null) s += ':' + u.password;
    s += '@';
  }
  s += u.host;
  if (u.port !== null) s += ':' + u.port;
  for (const p of u.params) s += p.value === null ? ';' + p.name : ';' + p.name + '=' + p.value;
  for (let i = 0; i < u.headers.length; i++) s += (i === 0 ? '?' : '&') + u.headers[i].name + '=' + u.headers[i].value;
  return s;
}

/** Value of a URI parameter (name case-insensitive): undefined absent, null valueless. */
export function uriParam(u: SipUri, name: string): string | null | undefined {
  const n = name.toLowerCase();
  for (const p of u.params) if (p.name.toLowerCase() === n) return p.value;
  return undefined;
}

// ---------------------------------------------------------------------------
// Header parameters, quoted strings

function skipWs(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9) break;
    i++;
  }
  return i;
}

let qEnd = 0; // end offset of the last readQuoted() (single-threaded scratch)

/** Reads a quoted-string starting at s[i] === '"'; returns its content with quoted-pairs resolved. */
function readQuoted(s: string, i: number): string {
  let out = '';
  let last = i + 1;
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 34) {
      qEnd = j + 1;
      return out + s.slice(last, j);
    }
    if (c === 92 /* \ */) {
      const n = s.charCodeAt(j + 1);
      if (j + 1 >= s.length || n === 10 || n === 13 || n > 127) throw badRequest('Malformed quoted-string');
      out += s.slice(last, j);
      last = j + 1;
      j++;
      continue;
    }
    if ((c < 32 && c !== 9) || c === 127) throw badRequest('Malformed quoted-string');
  }
  throw badRequest('Unterminated quoted-string');
}

function readTokenEnd(s: string, i: number): number {
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c > 255 || (CHARS[c] & C_TOKEN) === 0) break;
    i++;
  }
  return i;
}

function isGenValueChar(c: number): boolean {
  // token / host (IPv6 reference adds ":" "[" "]")
  return (c <= 255 && (CHARS[c] & C_TOKEN) !== 0) || c === 58 || c === 91 || c === 93;
}

/**
 * Parses *( SWS ";" SWS generic-param ) from s[i] to the end of s.
 * generic-param = token [ SWS "=" SWS ( token / host / quoted-string ) ]
 */
export function parseHeaderParams(s: string, i = 0): HeaderParam[] {
  const end = s.length;
  // most values carry one or two parameters: the array starts as a literal of the first one,
  // where pushing onto [] would allocate room for 17
  let out: HeaderParam[] | null = null;
  for (;;) {
    i = skipWs(s, i);
    if (i >= end) return out ?? [];
    if (s.charCodeAt(i) !== 59) throw badRequest('Malformed header parameters');
    i = skipWs(s, i + 1);
    const ns = i;
    i = readTokenEnd(s, i);
    if (i === ns) throw badRequest('Malformed header parameter');
    const name = s.slice(ns, i);
    let p: HeaderParam;
    let j = skipWs(s, i);
    if (j < end && s.charCodeAt(j) === 61 /* = */) {
      j = skipWs(s, j + 1);
      if (j < end && s.charCodeAt(j) === 34) {
        p = { name, value: readQuoted(s, j), quoted: true };
        i = qEnd;
      } else {
        const vs = j;
        while (j < end && isGenValueChar(s.charCodeAt(j))) j++;
        if (j === vs) throw badRequest('Malformed header parameter value');
        p = { name, value: s.slice(vs, j), quoted: false };
        i = j;
      }
    } else {
      p = { name, value: null, quoted: false };
    }
    if (out === null) out = [p];
    else out.push(p);
  }
}

/** Header parameter lookup (name case-insensitive): undefined absent, null valueless. */
export function getParam(params: readonly HeaderParam[], name: string): string | null | undefined {
  const n = name.toLowerCase();
  for (const p of params) if (p.name.length === n.length && p.name.toLowerCase() === n) return p.value;
  return undefined;
}

/** Adds or replaces a header parameter. */
export function setParam(params: HeaderParam[], name: string, value: string | null, quoted = false): void {
  const n = name.toLowerCase();
  for (const p of params) {
    if (p.name.toLowerCase() === n) {
      p.value = value;
      p.quoted = quoted;
      return;
    }
  }
  params.push({ name, value, quoted });
}

function quoteString(v: string): string {
  let out = '"';
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 10 || c === 13) continue; // cannot be carried in a quoted-string
    if (c === 34 || c === 92 || (c < 32 && c !== 9) || c === 127) out += '\\';
    out += v[i];
  }
  return out + '"';
}

export function formatHeaderParams(params: readonly HeaderParam[]): string {
  let s = '';
  for (const p of params) {
    s += ';' + p.name;
    if (p.value !== null) s += '=' + (p.quoted ? quoteString(p.value) : p.value);
  }
  return s;
}

// ---------------------------------------------------------------------------
// name-addr / addr-spec

export interface NameAddrOptions {
  /** require the <...> form (Route, Record-Route) */
  requireNameAddr?: boolean;
}

/**
 * Parses one To/From/Contact/Route/Record-Route value:
 * ( name-addr / addr-spec ) *( SEMI generic-param ).
 * An addr-spec (no <>) ends at the first ";" (what follows are header
 * parameters) and must not contain "," or "?" (RFC 3261 20).
 */
export function parseNameAddr(value: string, opts?: NameAddrOptions): NameAddr {
  const s = value;
  const end = s.length;
  let i = skipWs(s, 0);
  if (i >= end) throw badRequest('Empty address');
  let displayName: string | null = null;
  let c = s.charCodeAt(i);
  if (c === 34 /* " */) {
    displayName = readQuoted(s, i);
    i = skipWs(s, qEnd);
    if (i >= end || s.charCodeAt(i) !== 60) throw badRequest('Malformed name-addr');
  } else if (c !== 60 /* < */) {
    const t = readTokenEnd(s, i);
    if (t === i || t >= end || s.charCodeAt(t) !== 58 /* : */) {
      // display name as *(token LWS) followed by "<"
      const ds = i;
      let de = i;
      for (;;) {
        const te = readTokenEnd(s, i);
        if (te === i) throw badRequest('Malformed display name');
        de = te;
        i = skipWs(s, te);
        if (i >= end) throw badRequest('Malformed display name');
        if (s.charCodeAt(i) === 60) break;
        if (i === te) throw badRequest('Malformed display name');
      }
      displayName = s.slice(ds, de);
    }
  }
  let uri: Uri;
  let uriText: string;
  let bracketed: boolean;
  c = s.charCodeAt(i);
  if (c === 60) {
    const close = s.indexOf('>', i + 1);
    if (close < 0) throw badRequest('Unterminated <');
    const u = s.slice(i + 1, close);
    for (let k = 0; k < u.length; k++) {
      const ch = u.charCodeAt(k);
      if (ch <= 32 || ch === 127) throw badRequest('Whitespace in addr-spec');
    }
    uri = parseUri(u);
    uriText = u;
    bracketed = true;
    i = close + 1;
  } else {
    if (opts?.requireNameAddr) throw badRequest('name-addr form required');
    let e = s.indexOf(';', i);
    if (e < 0) e = end;
    let ue = e;
    while (ue > i && (s.charCodeAt(ue - 1) === 32 || s.charCodeAt(ue - 1) === 9)) ue--;
    for (let k = i; k < ue; k++) {
      const ch = s.charCodeAt(k);
      if (ch <= 32 || ch === 127) throw badRequest('Whitespace in addr-spec');
      if (ch === 44 || ch === 63) throw badRequest('addr-spec with "," or "?" must be enclosed in <>');
    }
    uriText = s.slice(i, ue);
    uri = parseUri(uriText);
    bracketed = false;
    i = e;
  }
  const params = parseHeaderParams(s, i);
  return { displayName, uri, bracketed, uriText, params };
}

/** Comma-separated list of name-addr/addr-spec (Route, Record-Route, Contact...). */
export function parseNameAddrList(value: string, opts?: NameAddrOptions): NameAddr[] {
  if (value.indexOf(',') < 0) {
    // the usual single value: no list of parts built
    if (value.length === 0) throw badRequest('Empty list element');
    return [parseNameAddr(value, opts)];
  }
  const out: NameAddr[] = [];
  for (const p of splitHeaderList(value)) {
    if (p.length === 0) throw badRequest('Empty list element');
    out.push(parseNameAddr(p, opts));
  }
  return out;
}

/**
 * One header parameter of a To or From value that has been validated (the tag a proxy matches
 * its dialogs by), read without parsing the URI: undefined when absent, null when valueless.
 * The parameters start after the <...> (outside a quoted display name) or, for an addr-spec,
 * at its first ";", as in parseNameAddr.
 */
export function nameAddrParam(value: string, name: string): string | null | undefined {
  const s = value;
  let i = skipWs(s, 0);
  if (s.charCodeAt(i) === 34 /* " */) {
    readQuoted(s, i);
    i = qEnd;
  }
  let ps = s.indexOf('<', i);
  if (ps >= 0) {
    ps = s.indexOf('>', ps + 1);
    if (ps < 0) throw badRequest('Unterminated <');
    ps++;
  } else {
    ps = s.indexOf(';', i);
    if (ps < 0) return undefined;
  }
  return getParam(parseHeaderParams(s, ps), name);
}

/** Contact header value: '*' or a list of contacts. */
export function parseContact(value: string): NameAddr[] | '*' {
  if (value.trim() === '*') return '*';
  return parseNameAddrList(value);
}

function isTokenRun(s: string): boolean {
  // token *(SP token)
  if (s.length === 0) return false;
  let i = 0;
  for (;;) {
    const e = readTokenEnd(s, i);
    if (e === i) return false;
    if (e === s.length) return true;
    if (s.charCodeAt(e) !== 32) return false;
    i = e + 1;
  }
}

/** Serialises a name-addr (always in the <...> form). */
export function formatNameAddr(na: NameAddr): string {
  let s = '';
  if (na.displayName !== null) {
    s += isTokenRun(na.displayName) ? na.displayName : quoteString(na.displayName);
    s += ' ';
  }
  return s + '<' + formatUri(na.uri) + '>' + formatHeaderParams(na.params);
}

// ---------------------------------------------------------------------------
// Via

/** s[from, to), as the constant `usual` when it is that (every Via says SIP/2.0: no copy each time). */
function token(s: string, from: number, to: number, usual: string): string {
  return to - from === usual.length && s.startsWith(usual, from) ? usual : s.slice(from, to);
}

/** One via-parm: sent-protocol LWS sent-by *( SEMI via-params ). */
export function parseVia(value: string): Via {
  const s = value;
  const end = s.length;
  let i = skipWs(s, 0);
  let e = readTokenEnd(s, i);
  if (e === i) throw badRequest('Malformed Via protocol');
  const protocol = token(s, i, e, 'SIP');
  i = skipWs(s, e);
  if (s.charCodeAt(i) !== 47) throw badRequest('Malformed Via protocol');
  i = skipWs(s, i + 1);
  e = readTokenEnd(s, i);
  if (e === i) throw badRequest('Malformed Via protocol');
  const version = token(s, i, e, '2.0');
  i = skipWs(s, e);
  if (s.charCodeAt(i) !== 47) throw badRequest('Malformed Via protocol');
  i = skipWs(s, i + 1);
  e = readTokenEnd(s, i);
  if (e === i) throw badRequest('Malformed Via transport');
  const transport = e - i === 3 && s.startsWith('UDP', i) ? 'UDP' : e - i === 3 && s.startsWith('TCP', i) ? 'TCP' : s.slice(i, e).toUpperCase();
  i = skipWs(s, e);
  if (i === e || i >= end) throw badRequest('Malformed Via sent-by');
  const he = hostEnd(s, i, end);
  if (he < 0) throw badRequest('Malformed Via host');
  const host = s.slice(i, he);
  i = he;
  let port: number | null = null;
  const colon = skipWs(s, i);
  if (colon < end && s.charCodeAt(colon) === 58) {
    port = readPort(s, skipWs(s, colon + 1), end);
    if (port < 0) throw badRequest('Malformed Via port');
    i = portEnd;
  }
  const params = parseHeaderParams(s, i);
  const via: Via = {
    protocol,
    version,
    transport,
    host,
    port,
    params,
    branch: null,
    received: null,
    rport: null,
    hasRport: false,
    maddr: null,
    ttl: null,
  };
  for (const p of params) {
    const n = p.name.length <= 8 ? p.name.toLowerCase() : '';
    const v = p.value;
    switch (n) {
      case 'branch':
        if (v === null || p.quoted || !isToken(v)) throw badRequest('Malformed Via branch');
        via.branch = v;
        break;
      case 'received': {
        if (v === null) throw badRequest('Malformed Via received');
        const ip = v.charCodeAt(0) === 91 && v.charCodeAt(v.length - 1) === 93 ? v.slice(1, -1) : v;
        if (isIP(ip) === 0) throw badRequest('Malformed Via received');
        via.received = v;
        break;
      }
      case 'rport':
        via.hasRport = true;
        if (v !== null) {
          const r = parseDigits(v, 65535);
          if (r < 0) throw badRequest('Malformed Via rport');
          via.rport = r;
        }
        break;
      case 'maddr':
        if (v === null || !isValidHost(v)) throw badRequest('Malformed Via maddr');
        via.maddr = v;
        break;
      case 'ttl': {
        const t = v === null ? -1 : parseDigits(v, 255);
        if (t < 0) throw badRequest('Malformed Via ttl');
        via.ttl = t;
        break;
      }
    }
  }
  return via;
}

/** All via-parms of one Via header value (comma-separated). */
export function parseViaList(value: string): Via[] {
  if (value.indexOf(',') < 0) return [parseVia(value)];
  const out: Via[] = [];
  for (const p of splitHeaderList(value)) {
    if (p.length === 0) throw badRequest('Empty Via element');
    out.push(parseVia(p));
  }
  return out;
}

export function formatVia(v: Via): string {
  let s = v.protocol + '/' + v.version + '/' + v.transport + ' ' + v.host;
  if (v.port !== null) s += ':' + v.port;
  return s + formatHeaderParams(v.params);
}

/** RFC 3261 branch (magic cookie and something after it); otherwise an RFC 2543 transaction. */
export function isRfc3261Branch(branch: string | null): boolean {
  return branch !== null && branch.length > 7 && branch.startsWith('z9hG4bK');
}

// ---------------------------------------------------------------------------
// Scalars

/** CSeq: 1*DIGIT LWS Method; sequence number must fit 32 bits unsigned. */
export function parseCSeq(value: string): CSeq {
  const s = value;
  let i = skipWs(s, 0);
  const ds = i;
  while (i < s.length && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) i++;
  const seq = parseDigits(s, MAX_U32, ds, i);
  if (seq < 0) throw badRequest('Malformed CSeq number');
  const ms = skipWs(s, i);
  if (ms === i) throw badRequest('Malformed CSeq');
  const me = readTokenEnd(s, ms);
  if (me === ms || skipWs(s, me) !== s.length) throw badRequest('Malformed CSeq method');
  return { seq, method: s.slice(ms, me) };
}

/** Max-Forwards: 1*DIGIT, 0..255. */
export function parseMaxForwards(value: string): number {
  const n = parseDigits(value, 255);
  if (n < 0) throw badRequest('Malformed Max-Forwards');
  return n;
}

/**
 * delta-seconds (Expires header, Contact expires param, 0..2^32-1). Returns
 * null when malformed or out of range: RFC 3261 20.19 says such values are
 * treated as 3600 rather than rejected, so the caller decides.
 */
export function parseExpires(value: string): number | null {
  const n = parseDigits(value, MAX_U32);
  return n < 0 ? null : n;
}

/** Call-ID: word [ "@" word ] */
export function isValidCallId(value: string): boolean {
  const at = value.indexOf('@');
  if (at < 0) return allChars(value, C_WORD);
  return allChars(value, C_WORD, 0, at) && allChars(value, C_WORD, at + 1);
}

const WKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DATE_RE = /^([A-Za-z]{3}), (\d{2}) ([A-Za-z]{3}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) GMT$/;

/** SIP-date = rfc1123-date, GMT only: "Sat, 13 Nov 2010 23:29:00 GMT". */
export function parseSipDate(value: string): Date {
  const m = DATE_RE.exec(value);
  if (m === null) throw badRequest('Malformed Date');
  const wd = WKDAYS.indexOf(m[1].toLowerCase());
  const mon = MONTHS.indexOf(m[3].toLowerCase());
  const day = +m[2];
  const year = +m[4];
  const hh = +m[5];
  const mm = +m[6];
  const ss = +m[7];
  if (wd < 0 || mon < 0 || day < 1 || hh > 23 || mm > 59 || ss > 60) throw badRequest('Malformed Date');
  const d = new Date(Date.UTC(year, mon, day, hh, mm, ss > 59 ? 59 : ss));
  if (d.getUTCDate() !== day) throw badRequest('Malformed Date');
  return d;
}
