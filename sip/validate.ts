// What a UAS/proxy checks on a parsed message before processing it
// (RFC 3261 8.2, 16.3, 18.3 and the RFC 4475 torture cases).

import { SipParseError, badRequest, parseContentLength, splitHeaderList } from './message.ts';
import type { SipMessage, SipRequest, SipResponse } from './message.ts';
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

const REQUIRED_REQUEST = ['to', 'from', 'cseq', 'call-id', 'via'];
const REQUIRED_RESPONSE = ['to', 'from', 'cseq', 'call-id', 'via'];

interface Seen {
  counts: Map<string, number>;
  first: Map<string, string>;
}

function scan(msg: SipMessage): Seen {
  const counts = new Map<string, number>();
  const first = new Map<string, string>();
  for (const h of msg.headers) {
    const n = counts.get(h.key);
    if (n === undefined) {
      counts.set(h.key, 1);
      first.set(h.key, h.value);
    } else counts.set(h.key, n + 1);
  }
  return { counts, first };
}

function displayName(key: string): string {
  return SINGLE[key] ?? (key === 'via' ? 'Via' : key);
}

/** Checks shared by requests and responses; throws SipParseError. */
function checkCommon(msg: SipMessage, seen: Seen, required: readonly string[]): void {
  for (const k of required) if (!seen.counts.has(k)) throw badRequest(`Missing ${displayName(k)} header`);
  for (const [k, n] of seen.counts) if (n > 1 && SINGLE[k] !== undefined) throw badRequest(`Multiple ${SINGLE[k]} headers`);
  const cseq = seen.first.get('cseq');
  if (cseq !== undefined) parseCSeq(cseq);
  const callId = seen.first.get('call-id');
  if (callId !== undefined && !isValidCallId(callId)) throw badRequest('Malformed Call-ID');
  const to = seen.first.get('to');
  if (to !== undefined) parseNameAddr(to);
  const from = seen.first.get('from');
  if (from !== undefined) parseNameAddr(from);
  const cl = seen.first.get('content-length');
  if (cl !== undefined) parseContentLength(cl);
  const date = seen.first.get('date');
  if (date !== undefined) parseSipDate(date);
  for (const h of msg.headers) {
    switch (h.key) {
      case 'via':
        parseViaList(h.value);
        break;
      case 'route':
      case 'record-route':
        parseNameAddrList(h.value, { requireNameAddr: true });
        break;
      case 'contact':
        if (parseContact(h.value) === '*' && !(msg.kind === 'request' && msg.method === 'REGISTER')) {
          throw badRequest('Contact * outside REGISTER');
        }
        break;
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
export function validateRequest(req: SipRequest, opts?: ValidateOptions): SipParseError | null {
  if (req.version !== 'SIP/2.0') return new SipParseError(505, 'SIP version not supported');
  try {
    const seen = scan(req);
    checkCommon(req, seen, REQUIRED_REQUEST);
    if (opts?.requireMaxForwards && !seen.counts.has('max-forwards')) throw badRequest('Missing Max-Forwards header');
    const mf = seen.first.get('max-forwards');
    if (mf !== undefined) parseMaxForwards(mf);
    const cseq = parseCSeq(seen.first.get('cseq') as string);
    if (cseq.method !== req.method) throw badRequest('CSeq method does not match Request-Line');
    const uri = parseUri(req.uri); // 400 for "<...>", bad scheme syntax, bad sip URI
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
    const seen = scan(res);
    checkCommon(res, seen, REQUIRED_RESPONSE);
    const mf = seen.first.get('max-forwards');
    if (mf !== undefined) parseMaxForwards(mf);
    return null;
  } catch (e) {
    return asError(e);
  }
}
