// Message serialisation and response construction (RFC 3261 8.2.6).

import { randomFillSync } from 'node:crypto';
import { headerKey } from './message.ts';
import type { SipHeader, SipMessage, SipRequest, SipResponse } from './message.ts';
import { parseNameAddr, getParam, type Via } from './uri.ts';

const EMPTY = Buffer.alloc(0);

export function formatStartLine(msg: SipMessage): string {
  return msg.kind === 'request'
    ? msg.method + ' ' + msg.uri + ' ' + (msg.version || 'SIP/2.0')
    : (msg.version || 'SIP/2.0') + ' ' + msg.status + ' ' + msg.reason;
}

/**
 * Serialises a message: start line, headers in order as "Name: value" (names
 * as stored, values as latin1 binary strings), empty line, body.
 * Content-Length always states the body's real length: the first
 * Content-Length header is rewritten, further ones dropped, one appended if
 * absent. Header values must not contain CR or LF.
 */
export function serializeMessage(msg: SipMessage): Buffer {
  const body = msg.body;
  let s = formatStartLine(msg) + '\r\n';
  let hasCl = false;
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i];
    if (h.key === 'content-length') {
      if (hasCl) continue;
      hasCl = true;
      s += h.name + ': ' + body.length + '\r\n';
    } else s += h.name + ': ' + h.value + '\r\n';
  }
  if (!hasCl) s += 'Content-Length: ' + body.length + '\r\n';
  s += '\r\n';
  const headLen = s.length; // latin1: one octet per char
  const out = Buffer.allocUnsafe(headLen + body.length);
  out.write(s, 0, headLen, 'latin1');
  if (body.length > 0) body.copy(out, headLen);
  return out;
}

export interface BuildResponseOptions {
  /** To tag to add when the request's To has none (RFC 3261 8.2.6.2; not needed for 100) */
  toTag?: string;
  /** response body (give its Content-Type in extraHeaders) */
  body?: Buffer;
}

function h(name: string, value: string): SipHeader {
  return { name, key: headerKey(name), value };
}

/**
 * Builds a response to `request` (RFC 3261 8.2.6): Via headers copied in
 * order, From, To (with `opts.toTag` added if the To has no tag), Call-ID,
 * CSeq, Timestamp for 100, then extraHeaders, then Content-Length.
 * Works on the `partial` of a failed parse too (copies what is there).
 */
export function buildResponse(
  request: SipRequest,
  status: number,
  reason: string,
  extraHeaders?: ReadonlyArray<readonly [string, string]>,
  opts?: BuildResponseOptions,
): SipResponse {
  const headers: SipHeader[] = [];
  let from: SipHeader | null = null;
  let to: SipHeader | null = null;
  let callId: SipHeader | null = null;
  let cseq: SipHeader | null = null;
  let timestamp: SipHeader | null = null;
  for (const x of request.headers) {
    switch (x.key) {
      case 'via':
        headers.push(h(x.name, x.value));
        break;
      case 'from':
        from ??= x;
        break;
      case 'to':
        to ??= x;
        break;
      case 'call-id':
        callId ??= x;
        break;
      case 'cseq':
        cseq ??= x;
        break;
      case 'timestamp':
        timestamp ??= x;
        break;
    }
  }
  if (from !== null) headers.push(h('From', from.value));
  if (to !== null) {
    let v = to.value;
    if (opts?.toTag !== undefined) {
      let hasTag = true;
      try {
        hasTag = getParam(parseNameAddr(v).params, 'tag') !== undefined;
      } catch {
        // malformed To (answering a 400): copy it as it is
      }
      if (!hasTag) v += ';tag=' + opts.toTag;
    }
    headers.push(h('To', v));
  }
  if (callId !== null) headers.push(h('Call-ID', callId.value));
  if (cseq !== null) headers.push(h('CSeq', cseq.value));
  if (status === 100 && timestamp !== null) headers.push(h('Timestamp', timestamp.value));
  if (extraHeaders !== undefined) for (const [n, v] of extraHeaders) headers.push(h(n, v));
  const body = opts?.body ?? EMPTY;
  headers.push(h('Content-Length', String(body.length)));
  return { kind: 'response', status, reason, version: 'SIP/2.0', headers, body };
}

// Cryptographically random octets drawn from a pool refilled 4 KiB at a time: a tag per
// response on the hot path would otherwise cost a system call each.
const POOL = Buffer.allocUnsafe(4096);
let poolAt = POOL.length;
function randomOctets(n: number): string {
  if (poolAt + n > POOL.length) {
    randomFillSync(POOL);
    poolAt = 0;
  }
  const s = POOL.toString('base64url', poolAt, poolAt + n);
  poolAt += n;
  return s;
}

/** Random tag for To/From (RFC 3261 19.3: at least 32 bits of randomness; this has 72). */
export function newTag(): string {
  return randomOctets(9);
}

// this node's part of every stateless tag: tags of two nodes never collide by construction
const TAG_PREFIX = randomOctets(6);

/**
 * The To tag of a stateless answer (RFC 3261 8.2.7): the same for every retransmission of the
 * request, so it is derived from what identifies the request, its top Via branch (or the whole
 * top Via without one), Call-ID and CSeq, by two 32-bit FNV-1a hashes with different seeds
 * behind a random per-node prefix. A REGISTER makes no dialog, so 60 bits are plenty.
 */
export function statelessTag(req: SipRequest, via: Pick<Via, 'branch' | 'host' | 'port'>): string {
  ha = 0x811c9dc5;
  hb = 0x2f1c9dc5;
  mix(via.branch ?? via.host + ':' + (via.port ?? ''));
  const hs = req.headers;
  for (let i = 0; i < hs.length; i++) {
    const k = hs[i].key;
    if (k === 'call-id' || k === 'cseq') mix(hs[i].value);
  }
  // 30-bit halves are small integers, which V8 turns into decimal fast (other radixes, and
  // numbers past 2^31, go through its slow double formatting)
  return TAG_PREFIX + (ha & 0x3fffffff) + '.' + (hb & 0x3fffffff);
}

let ha = 0;
let hb = 0;
function mix(s: string): void {
  let a = ha;
  let b = hb;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = (Math.imul(b ^ c, 0x01000193) + 0x9e3779b9) | 0;
  }
  ha = Math.imul(a ^ 10, 0x01000193); // a separator, so "ab"+"c" and "a"+"bc" differ
  hb = b;
}

/** New RFC 3261 branch: magic cookie + 128 random bits. */
export function newBranch(): string {
  return 'z9hG4bK' + randomOctets(16);
}

/**
 * The bytes of a body-less response to `request`, the same as
 * serializeMessage(buildResponse(...)) but built straight into one string: the registrar answers
 * tens of thousands of REGISTERs a second through here. `toTag` is added to the To (give null
 * when the To has a tag already).
 */
export function responseBytes(request: SipRequest, status: number, reason: string, extraHeaders: ReadonlyArray<readonly [string, string]> | undefined, toTag: string | null): Buffer {
  let vias = '';
  let from: string | undefined;
  let to: string | undefined;
  let callId: string | undefined;
  let cseq: string | undefined;
  let timestamp: string | undefined;
  const hs = request.headers;
  for (let i = 0; i < hs.length; i++) {
    const x = hs[i];
    switch (x.key) {
      case 'via':
        vias += x.name + ': ' + x.value + '\r\n';
        break;
      case 'from':
        from ??= x.value;
        break;
      case 'to':
        to ??= x.value;
        break;
      case 'call-id':
        callId ??= x.value;
        break;
      case 'cseq':
        cseq ??= x.value;
        break;
      case 'timestamp':
        timestamp ??= x.value;
        break;
    }
  }
  let s = 'SIP/2.0 ' + status + ' ' + reason + '\r\n' + vias;
  if (from !== undefined) s += 'From: ' + from + '\r\n';
  if (to !== undefined) s += 'To: ' + (toTag === null ? to : to + ';tag=' + toTag) + '\r\n';
  if (callId !== undefined) s += 'Call-ID: ' + callId + '\r\n';
  if (cseq !== undefined) s += 'CSeq: ' + cseq + '\r\n';
  if (status === 100 && timestamp !== undefined) s += 'Timestamp: ' + timestamp + '\r\n';
  if (extraHeaders !== undefined) for (let i = 0; i < extraHeaders.length; i++) s += extraHeaders[i][0] + ': ' + extraHeaders[i][1] + '\r\n';
  s += 'Content-Length: 0\r\n\r\n';
  const out = Buffer.allocUnsafe(s.length);
  out.write(s, 0, s.length, 'latin1');
  return out;
}
