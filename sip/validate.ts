// What a UAS/proxy checks on a parsed message before processing it
// (RFC 3261 8.2, 16.3, 18.3 and the RFC 4475 torture cases).

import { SipParseError, badRequest, parseContentLength, splitHeaderList } from './message.ts';
import type { SipMessage, SipRequest, SipResponse } from './message.ts';
import type { CSeq, NameAddr, Uri, Via } from './uri.ts';
import {
  isValidCallId,
  parseCSeq,
  parseContact,
  parseMaxForwards,
  parseNameAddr,
  parseNameAddrList,
  parseSipDate,
  parseUri,
  parseViaList,
} from './uri.ts';

/**
 * What validation parsed on its way, handed back so the request is not parsed twice (the
 * registrar's hot path). Filled only when validation succeeds.
 */
export interface ParsedRequest {
  /** the Request-URI */
  uri: Uri | null;
  to: NameAddr | null;
  from: NameAddr | null;
  cseq: CSeq | null;
  /** the top Via (first value of the first Via header) */
  via: Via | null;
  /** every Contact value but the wildcard, in order */
  contacts: NameAddr[];
  /** a Contact: * was present */
  star: boolean;
}

export function emptyParsed(): ParsedRequest {
  return { uri: null, to: null, from: null, cseq: null, via: null, contacts: [], star: false };
}

export interface ValidateOptions {
  /**
   * Reject requests without Max-Forwards (RFC 3261 8.1.1 makes it mandatory
   * for UACs). Default false: RFC 3261 16.3 lets requests without it pass and
   * RFC 4475 3.4.1 (RFC 2543 syntax) expects them to be accepted.
   */
  requireMaxForwards?: boolean;
  /** Request-URI schemes served; others get 416. Default sip, sips, tel. */
  uriSchemes?: readonly string[];
}

const DEFAULT_SCHEMES: readonly string[] = ['sip', 'sips', 'tel'];

/** headers that may appear at most once (canonical key -> display name) */
const SINGLE: Record<string, string> = {
  to: 'To',
  from: 'From',
  'call-id': 'Call-ID',
  cseq: 'CSeq',
  'max-forwards': 'Max-Forwards',
  'content-length': 'Content-Length',
  'content-type': 'Content-Type',
  'content-disposition': 'Content-Disposition',
  expires: 'Expires',
  'min-expires': 'Min-Expires',
  date: 'Date',
  'mime-version': 'MIME-Version',
  priority: 'Priority',
  'reply-to': 'Reply-To',
  'retry-after': 'Retry-After',
  timestamp: 'Timestamp',
  subject: 'Subject',
  'user-agent': 'User-Agent',
  server: 'Server',
  organization: 'Organization',
};

// Per-message header census in module scratch (validation is synchronous).
const SLOT_KEYS = [...Object.keys(SINGLE), 'via'];
const SLOT = new Map<string, number>(SLOT_KEYS.map((k, i) => [k, i]));
const slot = (k: string): number => SLOT.get(k) as number;
const S_TO = slot('to');
const S_FROM = slot('from');
const S_CALLID = slot('call-id');
const S_CSEQ = slot('cseq');
const S_MAXFWD = slot('max-forwards');
const S_CL = slot('content-length');
const S_DATE = slot('date');
const S_VIA = slot('via');
const REQUIRED = [S_TO, S_FROM, S_CSEQ, S_CALLID, S_VIA];
const counts = new Int32Array(SLOT_KEYS.length);
const firsts: string[] = new Array<string>(SLOT_KEYS.length).fill('');

function scan(msg: SipMessage): void {
  counts.fill(0);
  const hs = msg.headers;
  for (let i = 0; i < hs.length; i++) {
    const s = SLOT.get(hs[i].key);
    if (s !== undefined && counts[s]++ === 0) firsts[s] = hs[i].value;
  }
}

function first(s: number): string | undefined {
  return counts[s] > 0 ? firsts[s] : undefined;
}

function slotName(s: number): string {
  const k = SLOT_KEYS[s];
  return SINGLE[k] ?? 'Via';
}

/** Checks shared by requests and responses (call scan() first); throws SipParseError. */
function checkCommon(msg: SipMessage, out?: ParsedRequest): CSeq | null {
  for (const s of REQUIRED) if (counts[s] === 0) throw badRequest(`Missing ${slotName(s)} header`);
  for (let s = 0; s < S_VIA; s++) if (counts[s] > 1) throw badRequest(`Multiple ${slotName(s)} headers`);
  const cseqValue = first(S_CSEQ);
  let cseq: CSeq | null = null;
  if (cseqValue !== undefined) {
    cseq = parseCSeq(cseqValue);
    if (out !== undefined) out.cseq = cseq;
  }
  const callId = first(S_CALLID);
  if (callId !== undefined && !isValidCallId(callId)) throw badRequest('Malformed Call-ID');
  const to = first(S_TO);
  if (to !== undefined) {
    const n = parseNameAddr(to);
    if (out !== undefined) out.to = n;
  }
  const from = first(S_FROM);
  if (from !== undefined) {
    const n = parseNameAddr(from);
    if (out !== undefined) out.from = n;
  }
  const cl = first(S_CL);
  if (cl !== undefined) parseContentLength(cl);
  const date = first(S_DATE);
  if (date !== undefined) parseSipDate(date);
  const mf = first(S_MAXFWD);
  if (mf !== undefined) parseMaxForwards(mf);
  for (const h of msg.headers) {
    switch (h.key) {
      case 'via': {
        const vs = parseViaList(h.value);
        if (out !== undefined && out.via === null) out.via = vs[0];
        break;
      }
      case 'route':
      case 'record-route':
        parseNameAddrList(h.value, { requireNameAddr: true });
        break;
      case 'contact': {
        const c = parseContact(h.value);
        if (c === '*') {
          if (!(msg.kind === 'request' && msg.method === 'REGISTER')) throw badRequest('Contact * outside REGISTER');
          if (out !== undefined) out.star = true;
        } else if (out !== undefined) for (const x of c) out.contacts.push(x);
        break;
      }
      case 'warning':
        for (const w of splitHeaderList(h.value)) if (!/^\d{3} \S/.test(w)) throw badRequest('Malformed Warning');
        break;
      case 'retry-after': {
        const m = /^\d+/.exec(h.value);
        if (m === null || m[0].length > 10 || +m[0] > 0xffffffff) throw badRequest('Malformed Retry-After');
        break;
      }
    }
  }
  return cseq;
}

function asError(e: unknown): SipParseError {
  if (e instanceof SipParseError) return e;
  throw e;
}

/**
 * What a UAS/registrar/proxy checks before processing a parsed request.
 * Returns the error to answer with (400, 416, 505) or null.
 *  - SIP version SIP/2.0 (505)
 *  - To, From, CSeq, Call-ID, Via present (and Max-Forwards if required) (400)
 *  - single-valued headers at most once (400)
 *  - syntax of Call-ID, To, From, CSeq, Max-Forwards, Via, Contact, Route,
 *    Record-Route, Content-Length, Date (RFC 1123 GMT), Warning, Retry-After (400)
 *  - CSeq method equals the request method (400)
 *  - Request-URI: a URI, no <>, no whitespace (400); sip/sips: valid and
 *    without escaped headers (400); scheme served (416)
 * Not checked (left to the caller): Expires values (RFC 3261 20.19: malformed
 * means 3600), Require/Proxy-Require (420), Content-Type (415), Accept (406),
 * Max-Forwards 0 (483), authorization (401/407).
 */
export function validateRequest(req: SipRequest, opts?: ValidateOptions, parsed?: ParsedRequest): SipParseError | null {
  if (req.version !== 'SIP/2.0') return new SipParseError(505, 'SIP version not supported');
  try {
    scan(req);
    const cseq = checkCommon(req, parsed) as CSeq; // present: checkCommon throws without it
    if (opts?.requireMaxForwards && counts[S_MAXFWD] === 0) throw badRequest('Missing Max-Forwards header');
    if (cseq.method !== req.method) throw badRequest('CSeq method does not match Request-Line');
    const uri = parseUri(req.uri); // 400 for "<...>", bad scheme syntax, bad sip URI
    if (parsed !== undefined) parsed.uri = uri;
    if (uri.kind === 'sip') {
      if (uri.headers.length > 0) throw badRequest('Headers in Request-URI');
    }
    const schemes = opts?.uriSchemes ?? DEFAULT_SCHEMES;
    if (!schemes.includes(uri.scheme)) return new SipParseError(416, 'Unsupported URI scheme');
    return null;
  } catch (e) {
    return asError(e);
  }
}

/**
 * Checks on a parsed response before it is matched to a transaction; a
 * response that fails is discarded (RFC 3261 18.1.2 / RFC 4475 3.1.2.5).
 */
export function validateResponse(res: SipResponse): SipParseError | null {
  if (res.version !== 'SIP/2.0') return new SipParseError(505, 'SIP version not supported');
  if (res.status < 100 || res.status > 699) return badRequest('Malformed Status-Code');
  try {
    scan(res);
    checkCommon(res);
    return null;
  } catch (e) {
    return asError(e);
  }
}
