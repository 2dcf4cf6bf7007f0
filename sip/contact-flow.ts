// How a registered contact is reached, by the keepalive pings and by the requests forwarded to it
// alike: both must take the same way, or a contact that answers its pings could still be
// unreachable for calls (RFC 5626 flows, NAT as Kamailio's fix_nated_register sees it).

import { isIP } from 'node:net';
import { bareHost } from './uri.ts';
import type { Flow, SipTransport } from './transport.ts';
import type { ContactBinding } from './registrar.ts';

/**
 * How to reach a registered contact: the flow it registered on when that is all that works
 * (a TCP connection, RFC 5626 outbound, a contact that is a name or a private address seen
 * from another address: a phone behind NAT, like Kamailio's fix_nated_register), else the
 * address in the contact itself (a phone registering for another device, as SIPp tests do).
 * A TCP connection opened here is kept in the binding: later pings and requests reuse it.
 */
export async function contactFlow(b: ContactBinding, transport: SipTransport, connectTimeoutMs: number): Promise<Flow | null> {
  const u = b.uri;
  const host = u.kind === 'sip' ? bareHost(u.host) : '';
  if (b.flow.proto === 'udp') {
    if (b.outbound || isIP(host) === 0 || (isPrivate(host) && host !== b.flow.address) || u.kind !== 'sip') return b.flow;
    return { proto: 'udp', address: host, port: u.port ?? 5060, conn: 0 };
  }
  if (transport.isOpen(b.flow)) return b.flow;
  // the phone's TCP or TLS connection is gone: reach the contact itself if it is an address (a
  // browser's WebSocket cannot be opened from here)
  if (isIP(host) === 0 || u.kind !== 'sip' || (b.flow.proto !== 'tcp' && b.flow.proto !== 'tls')) return null;
  try {
    b.flow = await transport.connect(host, u.port ?? (b.flow.proto === 'tls' ? 5061 : 5060), connectTimeoutMs, b.flow.proto);
    return b.flow;
  } catch {
    return null;
  }
}

/** RFC 1918, CGNAT, link-local and unique-local addresses: a contact there is behind NAT if seen from elsewhere. */
function isPrivate(ip: string): boolean {
  return /^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.|169\.254\.|f[cd]|fe80:)/i.test(ip);
}
