// Which names mean this node: its domain, and its address with its port (RFC 3261 16.4 for the
// Route entries it removes, 10.3 step 1 for the registrar's domain); and the address-of-record
// keys of its users.

import { isIP } from 'node:net';
import { bareHost, normalizeEscapes, parseNameAddr, parseUri, type SipUri, type Uri } from './uri.ts';
import type { Proto } from './transport.ts';

export class NodeIdentity {
  readonly domain: string;

  /**
   * `host` is the address the node listens on; the port is the transport's, known once it
   * listens. `announce`: where others reach it instead (a public address or DNS name in front of
   * a NAT or load balancer), which goes in its URI, Via and Record-Route.
   */
  constructor(
    domain: string,
    private readonly host: string,
    private readonly transport: { readonly port: number; readonly tlsPort?: number; readonly wsPort?: number },
    private readonly announce?: { host: string; port?: number },
  ) {
    this.domain = domain;
  }

  get port(): number {
    return this.transport.port;
  }

  /**
   * Whether a UDP request came from this node's own socket: a request it forwarded to an address
   * that is its own (a spiral, RFC 3261 16.3), already authorized on its way in.
   */
  sentByUs(flow: { proto: string; address: string; port: number }): boolean {
    return flow.proto === 'udp' && flow.port === this.port && flow.address === this.host;
  }

  /** the port others reach the node at */
  get publicPort(): number {
    return this.announce?.port ?? this.port;
  }

  /** host:port to put in URIs, as others reach the node (IPv6 in brackets) */
  get hostport(): string {
    const h = this.announce?.host ?? this.host;
    return (isIP(h) === 6 ? `[${h}]` : h) + ':' + this.publicPort;
  }

  /** the TLS port (0: no TLS) */
  get tlsPort(): number {
    return this.transport.tlsPort ?? 0;
  }

  /** the WebSocket port (0: none) */
  get wsPort(): number {
    return this.transport.wsPort ?? 0;
  }

  /** The port of the node's side reached over `proto` when it is not the UDP/TCP one (TLS, WebSocket); 0 otherwise. */
  private portFor(proto: Proto): number {
    if (proto === 'tls') return this.tlsPort;
    if (proto === 'ws' || proto === 'wss') return this.wsPort;
    return 0;
  }

  /** host:port of the node's side reached over `proto`: its TLS port for TLS, its WebSocket port for WS */
  hostportFor(proto: Proto): string {
    const port = this.portFor(proto);
    if (port === 0) return this.hostport;
    const h = this.announce?.host ?? this.host;
    return (isIP(h) === 6 ? `[${h}]` : h) + ':' + port;
  }

  /** The Record-Route value for the node's side reached over `proto` (TLS or WebSocket: that port, and the transport). */
  recordRouteFor(proto: Proto): string {
    return this.portFor(proto) !== 0 ? `<sip:${this.hostportFor(proto)};transport=${proto};lr>` : `<sip:${this.hostport};lr>`;
  }

  /** The address of record of this node's user (`user` as canonicalUser gives it). */
  aorOf(user: string): string {
    return 'sip:' + user + '@' + this.domain;
  }

  /** The Request-URI names this node (its domain or its address) rather than a user. */
  isForNode(u: Uri): boolean {
    return u.kind === 'sip' && u.user === null && this.isOurHost(u.host);
  }

  isOurHost(host: string): boolean {
    const h = host.toLowerCase();
    if (h === this.domain || h === 'localhost') return true;
    const bare = bareHost(h);
    const mine = this.host;
    if (bare === mine || bare === this.announce?.host) return true;
    // bound to every address: any IP literal that reached us is ours
    return isIP(bare) !== 0 && (mine === '0.0.0.0' || mine === '::');
  }

  /** The URI's host is this node's domain, or its address with its port. */
  namesUs(u: SipUri): boolean {
    const h = u.host.toLowerCase();
    if (h === this.domain) return true;
    const port = u.port ?? 5060;
    return this.isOurHost(h) && (port === this.port || port === this.publicPort || (port !== 0 && (port === this.tlsPort || port === this.wsPort)));
  }

  /** Whether a URI (a Route entry, a name-addr or a bare URI) names this node: its domain, or its address and port. */
  isUs(value: string): boolean {
    let u: Uri;
    try {
      u = value.indexOf('<') >= 0 ? parseNameAddr(value).uri : parseUri(value);
    } catch {
      return false;
    }
    return u.kind === 'sip' && u.user === null && this.namesUs(u);
  }
}

/** A user part as an address-of-record key: escapes of unreserved characters decoded, lower case. */
export function canonicalUser(user: string): string {
  return normalizeEscapes(user).toLowerCase();
}
