// What the node checks as a UAS before it acts on a request (RFC 3261 8.2.1 to 8.2.3): the
// methods it knows, the extensions it supports, the bodies it understands.

import { getHeader, getHeaderValues, type SipRequest } from './message.ts';
import { replyTo, type IncomingRequest } from './transaction.ts';

/** Methods recognised at all: others get 501 (RFC 3261 21.5.2). */
export const KNOWN_METHODS = new Set(['INVITE', 'ACK', 'CANCEL', 'BYE', 'OPTIONS', 'REGISTER', 'PRACK', 'SUBSCRIBE', 'NOTIFY', 'PUBLISH', 'INFO', 'REFER', 'MESSAGE', 'UPDATE']);
/** What the node itself serves as a UAS. */
export const ALLOW = 'INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, MESSAGE, SUBSCRIBE, NOTIFY, PUBLISH, PRACK, UPDATE, INFO, REFER';
/** Option tags this node understands (Require / Proxy-Require, RFC 3261 8.2.2.3). */
const SUPPORTED = new Set(['path', 'outbound']);
export const SUPPORTED_HEADER = 'path, outbound';
const ACCEPTED_BODIES = new Set(['application/sdp']);

/** Option tags in Require (and Proxy-Require when the request would be forwarded) that are not supported. */
export function unsupported(req: SipRequest, proxying: boolean): string[] {
  const out: string[] = [];
  if (req.method === 'ACK' || req.method === 'CANCEL') return out;
  for (const t of getHeaderValues(req, 'require')) if (!SUPPORTED.has(t.toLowerCase())) out.push(t);
  if (proxying) for (const t of getHeaderValues(req, 'proxy-require')) if (!SUPPORTED.has(t.toLowerCase())) out.push(t);
  return out;
}

/** RFC 3261 8.2.3: a body of a type the node does not understand gets 415 with Accept. */
export function acceptableBody(inc: IncomingRequest): boolean {
  const req = inc.req;
  if (req.body.length === 0) return true;
  const ct = getHeader(req, 'content-type');
  const type = ct === undefined ? '' : ct.split(';')[0].trim().toLowerCase();
  const disp = getHeader(req, 'content-disposition');
  if (ACCEPTED_BODIES.has(type) || (disp !== undefined && /handling\s*=\s*optional/i.test(disp))) return true;
  replyTo(inc, 415, 'Unsupported Media Type', [['Accept', 'application/sdp']]);
  return false;
}
