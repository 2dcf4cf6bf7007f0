// SIP transports (RFC 3261 18): one UDP socket and one TCP listener on the same port, and a TLS
// listener on a port of its own (RFC 3261 26.2; 5061 by default) when given a certificate. The
// transport parses what arrives (datagrams by Content-Length, streams through the framer) and
// hands messages up with the flow they came on; it knows nothing of transactions.
//
// A flow is how to reach the other side again: the source address and port of a datagram (we
// answer the port a message came from, which is what works behind NATs, RFC 3581), or the TCP
// connection itself (RFC 5626 flows). Sending to a broadcast, multicast or unspecified address
// is refused here, whatever a Via or Contact asked for.

import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, createServer, connect as tcpConnect, isIP, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { WebSocketServer, type WebSocket } from 'ws';
import { SipStreamFramer, isKeepalive, type FramerEvent, parseMessage, type SipMessage, type SipParseError } from './message.ts';
import { FairQueue, Pushed, type FairQueueOptions } from './fair-queue.ts';
import { isStunRequest, stunBindingResponse } from './stun.ts';
import { bareHost, uriParam, type SipUri } from './uri.ts';
import { KEY_PARAM, spkiFingerprint } from './tls.ts';
import { openUdp, type UdpPath, type UdpSocket } from './udp.ts';

export type Proto = 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';

export interface Flow {
  proto: Proto;
  /** remote IP address */
  address: string;
  port: number;
  /** TCP or TLS connection id; 0 for UDP */
  conn: number;
}

export interface TlsOptions {
  /** 0 picks a free port */
  port: number;
  /** PEM: the certificate (chain) and its key */
  cert: string;
  key: string;
}

export interface TransportHandler {
  /** a parsed message */
  message(msg: SipMessage, flow: Flow): void;
  /** a message that did not parse; `partial` is what could be read (answer requests, drop responses) */
  malformed(error: SipParseError, partial: SipMessage | null, flow: Flow): void;
}

export interface TransportOptions {
  host: string;
  /** 0 picks a free port (the same one for UDP and TCP) */
  port: number;
  /** most simultaneous TCP connections; further ones are refused */
  maxConnections?: number;
  /** most simultaneous TCP connections from one address, so one source cannot take them all (default 64) */
  maxConnectionsPerAddress?: number;
  /** a TCP connection with no traffic for this long is closed (ms) */
  idleTimeoutMs?: number;
  /**
   * a message begun on a TCP connection must be complete within this, however slowly its bytes
   * trickle in (ms, default 10 s): a slowloris cannot keep a connection by sending a byte a minute
   */
  messageTimeoutMs?: number;
  /** a new TCP connection must send a message (or a keepalive) within this (ms, default 30 s) */
  firstMessageTimeoutMs?: number;
  /** largest message accepted on TCP */
  maxMessageSize?: number;
  /**
   * bytes all TCP connections together may hold of messages not yet complete (default 32 MB);
   * past it the connection holding the most is closed
   */
  maxBufferedBytes?: number;
  /**
   * bytes of responses and requests a TCP connection may leave unread (default 256 KB): a client
   * that sends and never reads would otherwise grow the node's memory by every answer
   */
  maxUnreadBytes?: number;
  /** the per-source queue of what arrived (messages per source, bytes in all) */
  queue?: FairQueueOptions;
  /** addresses whose datagrams are dropped unread and whose connections are refused: IPs or CIDR blocks */
  banned?: readonly string[];
  /** listen for SIP over TLS too */
  tls?: TlsOptions;
  /**
   * listen for SIP over WebSocket (RFC 7118) on this port too: `ws`, or `wss` with the TLS
   * certificate (browsers on an https page can open only wss); 0 picks a free port
   */
  ws?: WsOptions;
}

/** SIP over WebSocket: its port, whether it is wss, and what answers plain HTTP requests there. */
export interface WsOptions {
  port: number;
  secure: boolean;
  /**
   * answers the HTTP requests that are not a WebSocket upgrade (the node serves its browser
   * phone there, so an https page and its wss are one origin); without it they get 426
   */
  http?: (req: IncomingMessage, res: ServerResponse) => void;
}

/** A message read and waiting its turn: a datagram (parsed when its turn comes) or a stream's framed event. */
type Arrived = { buf: Buffer; flow: Flow } | { event: FramerEvent; conn: Conn };

export class BanListError extends Error {
  override name = 'BanListError';
}

/** The ban list as a BlockList; throws BanListError naming an entry that is no IP or CIDR block. */
export function banList(entries: readonly string[]): BlockList {
  const bl = new BlockList();
  for (const e of entries) {
    const [addr, bits, extra] = e.trim().split('/');
    const v = isIP(addr);
    const n = bits === undefined ? (v === 6 ? 128 : 32) : /^[0-9]{1,3}$/.test(bits) ? Number(bits) : -1;
    if (v === 0 || extra !== undefined || n < 0 || n > (v === 6 ? 128 : 32)) throw new BanListError(`"${e}" is not an IP address or CIDR block (like 192.0.2.7 or 198.51.100.0/24)`);
    bl.addSubnet(addr, n, v === 6 ? 'ipv6' : 'ipv4');
  }
  return bl;
}

/** The value of a Via this node puts on a request it sends on `flow`. */
export function viaFor(flow: Flow, hostport: string, branch: string, rport = false): string {
  return `SIP/2.0/${flow.proto.toUpperCase()} ${hostport};branch=${branch}${rport ? ';rport' : ''}`;
}

/** Whether a transport is encrypted: TLS, or a WebSocket over TLS. */
export function isSecure(proto: Proto): boolean {
  return proto === 'tls' || proto === 'wss';
}

/** The transport a URI asks for: TLS for sips: or ;transport=tls, TCP for ;transport=tcp, else UDP. */
export function protoOf(uri: SipUri): Proto {
  if (uri.scheme === 'sips') return 'tls';
  const t = uriParam(uri, 'transport');
  const v = typeof t === 'string' ? t.toLowerCase() : '';
  return v === 'tls' || v === 'tcp' || v === 'ws' || v === 'wss' ? v : 'udp';
}

/** Where flowTo goes for `uri` once its host is the address `host`: transport, port, expected key, and its name among the connections it opened. */
function target(uri: SipUri, host: string): { proto: Proto; port: number; key: string | undefined; name: string } {
  const proto = protoOf(uri);
  const port = uri.port ?? (proto === 'tls' ? 5061 : 5060);
  const p = uriParam(uri, KEY_PARAM);
  const key = typeof p === 'string' ? p.toLowerCase() : undefined;
  return { proto, port, key, name: `${proto} ${host} ${port} ${key ?? ''}` };
}

export class TransportError extends Error {
  override name = 'TransportError';
}

interface Conn {
  id: number;
  socket: Socket;
  framer: SipStreamFramer;
  flow: Flow;
  /** ms it was opened; 0 once it sent a whole message or a keepalive */
  silentSince: number;
  /** ms the message now being received began; 0 when none is partly received */
  partialSince: number;
  /** bytes of an incomplete message counted in the transport's `buffered` */
  held: number;
  /** TLS, a connection this node opened: the server key it checked (a node's announced key), else null */
  peerKey: string | null;
  /** TLS: the node the other side proved to be (sip/tls.ts, node proofs), once it has */
  node: Uint8Array | null;
  /** TLS: this node's proof for this connection, made once */
  proof: string | null;
  /** a WebSocket (RFC 7118): messages go in its frames, one each, not on `socket` */
  ws?: WebSocket;
  /** the socket is corked until the transport's next flush (what this turn sends it goes in one write) */
  corked: boolean;
}

/** How often TCP connections are looked at for the message and first-message timeouts. */
const SWEEP_MS = 500;

const CRLF = Buffer.from('\r\n');

/** true for addresses nothing may be sent to: broadcast, multicast, unspecified */
export function isForbiddenDestination(address: string): boolean {
  // answers mostly go back to the address the last one went to: skip the IP parse then
  if (address === lastChecked) return lastForbidden;
  lastForbidden = forbidden(address);
  lastChecked = address;
  return lastForbidden;
}

let lastChecked = '';
let lastForbidden = true;

function forbidden(address: string): boolean {
  if (address === '255.255.255.255' || address === '0.0.0.0' || address === '::' || address === '') return true;
  const v = isIP(address);
  if (v === 4) {
    const first = Number(address.slice(0, address.indexOf('.')));
    return first >= 224 || first === 0; // 224/4 multicast, 240/4 reserved incl. broadcast, 0/8
  }
  if (v === 6) return address.toLowerCase().startsWith('ff');
  return true; // only IP literals are ever sent to
}

/** A stream's remote address as flows and the per-address counts name it (IPv4 without its ::ffff: prefix). */
function remoteAddress(s: Socket): string {
  return (s.remoteAddress ?? '').replace(/^::ffff:/, '');
}

/** One more of an address's count. */
function countUp(m: Map<string, number>, key: string): void {
  m.set(key, (m.get(key) ?? 0) + 1);
}

/** One less of an address's count; the address is forgotten at zero. */
function countDown(m: Map<string, number>, key: string): void {
  const left = (m.get(key) ?? 1) - 1;
  if (left <= 0) m.delete(key);
  else m.set(key, left);
}

export class SipTransport {
  private udp?: UdpSocket;
  private tcp?: Server;
  private tlsServer?: TlsServer;
  /** TLS handshakes in progress by remote address */
  private readonly handshaking = new Map<string, number>();
  /** the TLS port once listening (0: no TLS) */
  tlsPort = 0;
  /** the WebSocket port once listening (0: none) */
  wsPort = 0;
  private wsServer?: WebSocketServer;
  private wsHttp?: HttpServer;
  private readonly conns = new Map<number, Conn>();
  private nextConn = 1;
  private closed = false;
  port = 0;
  readonly host: string;
  private readonly maxConnections: number;
  private readonly maxPerAddress: number;
  private readonly idleTimeoutMs: number;
  private readonly messageTimeoutMs: number;
  private readonly firstMessageTimeoutMs: number;
  /** TCP connections by remote address */
  private readonly perAddress = new Map<string, number>();
  private sweeper?: NodeJS.Timeout;
  private readonly maxMessageSize: number;
  private readonly maxBuffered: number;
  private readonly maxUnread: number;
  /** bytes of incomplete messages all TCP connections hold */
  private buffered = 0;
  /** what arrived, waiting its source's turn */
  readonly queue: FairQueue<Arrived>;
  private readonly banned: BlockList | null;
  /** datagrams and stream messages refused before parsing (counters for logs and tests) */
  stats = { udpIn: 0, udpOut: 0, tcpIn: 0, tcpOut: 0, tcpWrites: 0, dropped: 0, stun: 0, banned: 0, overBudget: 0, unread: 0, wrongKey: 0 };

  constructor(
    private readonly opts: TransportOptions,
    private readonly handler: TransportHandler,
  ) {
    this.host = opts.host;
    this.maxConnections = opts.maxConnections ?? 10_000;
    this.maxPerAddress = opts.maxConnectionsPerAddress ?? 64;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 15 * 60_000;
    this.messageTimeoutMs = opts.messageTimeoutMs ?? 10_000;
    this.firstMessageTimeoutMs = opts.firstMessageTimeoutMs ?? 30_000;
    this.maxMessageSize = opts.maxMessageSize ?? 65_535;
    this.maxBuffered = opts.maxBufferedBytes ?? 32 << 20;
    this.maxUnread = opts.maxUnreadBytes ?? 256 << 10;
    this.banned = opts.banned === undefined || opts.banned.length === 0 ? null : banList(opts.banned);
    this.queue = new FairQueue<Arrived>((a) => this.arrived(a), opts.queue, this.flush);
  }

  /** True when `address` is on the ban list. */
  isBanned(address: string): boolean {
    return this.banned !== null && this.banned.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  }

  /** Binds UDP then TCP on the same port; with port 0 retries until both get the same free port. */
  async start(): Promise<void> {
    const onDatagram = (buf: Buffer, address: string, port: number): void => {
      try {
        this.onDatagram(buf, address, port);
      } catch {
        this.stats.dropped++; // whatever a datagram holds, it never takes the node down
      }
    };
    for (let attempt = 0; ; attempt++) {
      let udp: UdpSocket;
      try {
        udp = await openUdp({ host: this.host, port: this.opts.port, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 }, onDatagram);
      } catch (e) {
        throw new TransportError(`cannot bind UDP ${this.host}:${this.opts.port}: ${(e as Error).message}`);
      }
      const port = udp.port;
      const tcp = createServer({ noDelay: true });
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ host: this.host, port, exclusive: true }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        await udp.close();
        tcp.close();
        if (this.opts.port === 0 && attempt < 10) continue; // the free UDP port is taken for TCP: try another
        throw new TransportError(`cannot listen on TCP ${this.host}:${port}: ${(e as Error).message}`);
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = port;
      break;
    }
    (this.tcp as Server).on('connection', (s) => this.onConnection(s, 'tcp'));
    (this.tcp as Server).on('error', () => undefined);
    if (this.opts.tls !== undefined) await this.listenTls(this.opts.tls);
    if (this.opts.ws !== undefined) await this.listenWs(this.opts.ws);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  private async listenTls(o: TlsOptions): Promise<void> {
    // no client certificate is asked for: phones have none (Linphone stops to ask its user for
    // one); a node proves who it is inside the connection instead (sip/tls.ts, node proofs)
    const server = createTlsServer({ cert: o.cert, key: o.key, minVersion: 'TLSv1.2', handshakeTimeout: this.firstMessageTimeoutMs });
    // limits apply before the handshake, which is what costs the node
    const adopted = this.holdUntilAdopted(server);
    server.on('secureConnection', (s: TLSSocket) => {
      adopted(s);
      this.onConnection(s, 'tls');
    });
    server.on('tlsClientError', () => undefined);
    server.on('error', () => undefined);
    await this.listenOn(server, o.port, 'TLS');
    this.tlsServer = server;
    this.tlsPort = (server.address() as { port: number }).port;
  }

  private async listenWs(o: WsOptions): Promise<void> {
    const tls = this.opts.tls;
    if (o.secure && tls === undefined) throw new TransportError('wss needs a TLS certificate');
    const http = o.secure && tls !== undefined ? createHttpsServer({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' }) : createHttpServer();
    // the page's requests are small: headers and body within 10 s, an idle keep-alive 5 s
    http.headersTimeout = http.requestTimeout = 10_000;
    http.keepAliveTimeout = 5_000;
    const adopted = this.holdUntilAdopted(http);
    // RFC 7118 4.1: the client asks for the "sip" subprotocol; a connection without it is refused
    const wss = new WebSocketServer({
      server: http,
      maxPayload: this.maxMessageSize,
      handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
      verifyClient: (info: { req: IncomingMessage }, done: (ok: boolean, code?: number, message?: string) => void) => {
        if (!this.mayConnect(info.req.socket)) done(false, 503, 'Too many connections');
        else if (!/(^|,)\s*sip\s*(,|$)/i.test(String(info.req.headers['sec-websocket-protocol'] ?? ''))) done(false, 400, 'Sec-WebSocket-Protocol: sip is required (RFC 7118)');
        else done(true);
      },
    });
    wss.on('connection', (ws, req) => {
      adopted(req.socket);
      this.adoptWs(ws, req, o.secure ? 'wss' : 'ws');
    });
    wss.on('error', () => undefined);
    http.on('error', () => undefined);
    http.on('request', o.http ?? ((_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket', connection: 'Upgrade' }).end('SIP over WebSocket (RFC 7118) only\n');
    }));
    await this.listenOn(http, o.port, 'WebSocket');
    this.wsHttp = http;
    this.wsServer = wss;
    this.wsPort = (http.address() as { port: number }).port;
  }

  /**
   * Connections `server` accepted count against their address's share until they become SIP
   * flows (the returned function, called with the socket then: a finished TLS handshake, a
   * WebSocket upgrade) or close: a stranger cannot hold the port with handshakes or HTTP
   * connections that never get there.
   */
  private holdUntilAdopted(server: TlsServer | HttpServer): (s: Socket) => void {
    // by remote address and port: a TLS socket wraps the TCP one accepted here
    const pending = new Map<string, () => void>();
    const at = (s: Socket): string => `${remoteAddress(s)} ${s.remotePort ?? 0}`;
    server.on('connection', (s: Socket) => {
      const addr = remoteAddress(s);
      if (!this.mayConnect(s, this.handshaking.get(addr) ?? 0)) {
        s.destroy();
        return;
      }
      countUp(this.handshaking, addr);
      const key = at(s);
      pending.set(key, () => {
        pending.delete(key);
        countDown(this.handshaking, addr);
      });
      s.once('close', () => pending.get(key)?.());
    });
    return (s) => pending.get(at(s))?.();
  }

  /** Listens with a stream server of an extra transport; when it cannot, closes what listens already and says why. */
  private async listenOn(server: Server | TlsServer | HttpServer, port: number, what: string): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.host, port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((e: unknown) => {
      void this.udp?.close();
      this.tcp?.close();
      this.tlsServer?.close();
      throw new TransportError(`cannot listen for ${what} on ${this.host}:${port}: ${(e as Error).message}`);
    });
  }

  /** A WebSocket a phone (a browser) opened: one SIP message per frame, handled like a datagram. */
  private adoptWs(ws: WebSocket, req: IncomingMessage, proto: 'ws' | 'wss'): void {
    const socket = req.socket;
    if (ws.protocol !== 'sip' || !this.mayConnect(socket)) {
      ws.terminate();
      return;
    }
    const { conn, release } = this.register(socket, proto, null, ws);
    conn.silentSince = Date.now();
    const { flow } = conn;
    socket.setTimeout(this.idleTimeoutMs, () => ws.terminate());
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      this.stats.tcpIn++;
      conn.silentSince = 0;
      if (buf.length < 4) return; // a keepalive, or nothing SIP
      this.queue.push(flow.address, { buf, flow }, buf.length, false);
    });
    ws.on('error', () => undefined);
    ws.on('close', release);
  }

  /** Closes connections that never sent a message in time, or whose message does not finish in time. */
  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns.values()) {
      if ((c.silentSince !== 0 && now - c.silentSince > this.firstMessageTimeoutMs) || (c.partialSince !== 0 && now - c.partialSince > this.messageTimeoutMs)) c.socket.destroy();
    }
  }

  private onDatagram(buf: Buffer, address: string, port: number): void {
    this.stats.udpIn++;
    if (this.banned !== null && this.isBanned(address)) {
      this.stats.banned++;
      return;
    }
    const flow: Flow = { proto: 'udp', address, port, conn: 0 };
    if (buf.length < 4) return; // nothing SIP is that short; a lone CRLF keepalive lands here too
    const c0 = buf[0];
    if (c0 < 2) {
      if (isStunRequest(buf)) {
        // RFC 5626 UDP keepalive: a STUN binding request on the SIP port
        this.stats.stun++;
        this.sendRaw(flow, stunBindingResponse(buf, address, port));
      }
      return;
    }
    if (c0 === 13 && isKeepalive(buf)) return; // CRLF keepalives over UDP need no answer
    // a datagram over its source's share is dropped here; the queue counts it (queue.stats.dropped)
    this.queue.push(address, { buf, flow }, buf.length, false);
  }

  /** A message's turn has come: parse a datagram, hand up a stream's message if its connection is still open. */
  private arrived(a: Arrived): void {
    if ('buf' in a) {
      const r = parseMessage(a.buf, { stream: false });
      if (r.ok) this.handler.message(r.message, a.flow);
      else this.handler.malformed(r.error, r.partial, a.flow);
      return;
    }
    const c = a.conn;
    if (c.socket.destroyed) return; // its sender is gone: nobody to answer
    const ev = a.event;
    if (ev.type === 'message') this.handler.message(ev.message, c.flow);
    else if (ev.type === 'error') {
      this.handler.malformed(ev.error, ev.partial, c.flow);
      if (ev.fatal) c.socket.end(); // framing is lost: the rest of the stream is unreadable
    }
  }

  /** Whether a new connection from `socket`'s address is within the limits (count, per address with `more` not yet adopted, ban list). */
  private mayConnect(socket: Socket, more = 0): boolean {
    const addr = socket.remoteAddress === undefined ? undefined : remoteAddress(socket);
    return !(this.closed || this.conns.size >= this.maxConnections || addr === undefined || (this.perAddress.get(addr) ?? 0) + more >= this.maxPerAddress || this.isBanned(addr));
  }

  private onConnection(socket: Socket, proto: 'tcp' | 'tls'): void {
    if (!this.mayConnect(socket)) {
      socket.destroy();
      return;
    }
    // a connection a stranger opened must speak soon; ours (connect) start out trusted
    this.adopt(socket, proto).silentSince = Date.now();
  }

  private adopt(socket: Socket, proto: 'tcp' | 'tls', peerKey: string | null = null): Conn {
    const { conn, release } = this.register(socket, proto, peerKey);
    socket.setNoDelay(true);
    socket.setTimeout(this.idleTimeoutMs, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      try {
        this.onStream(conn, chunk);
      } catch {
        socket.destroy();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      release();
      this.buffered -= conn.held;
      conn.held = 0;
    });
    return conn;
  }

  /**
   * A connection counted in: by id, by the remote address and port (for reuse), and in its
   * address's share; `release` takes it out again when it closes.
   */
  private register(socket: Socket, proto: Exclude<Proto, 'udp'>, peerKey: string | null, ws?: WebSocket): { conn: Conn; release: () => void } {
    const id = this.nextConn++;
    const addr = remoteAddress(socket);
    const flow: Flow = { proto, address: addr, port: socket.remotePort ?? 0, conn: id };
    const conn: Conn = { id, socket, framer: new SipStreamFramer({ maxMessageSize: this.maxMessageSize }), flow, silentSince: 0, partialSince: 0, held: 0, peerKey, node: null, proof: null, ws, corked: false };
    this.conns.set(id, conn);
    const at = `${proto} ${addr} ${flow.port}`;
    this.byPeer.set(at, id);
    countUp(this.perAddress, addr);
    const release = (): void => {
      this.conns.delete(id);
      if (this.byPeer.get(at) === id) this.byPeer.delete(at);
      countDown(this.perAddress, addr);
    };
    return { conn, release };
  }

  private onStream(conn: Conn, chunk: Buffer): void {
    this.stats.tcpIn++;
    const events = conn.framer.push(chunk);
    const after = conn.framer.bufferedBytes;
    this.buffered += after - conn.held;
    conn.held = after;
    if (events.length > 0) conn.silentSince = 0;
    if (after === 0) conn.partialSince = 0;
    else if (conn.partialSince === 0 || events.length > 0) conn.partialSince = Date.now();
    const share = Math.ceil(chunk.length / Math.max(1, events.length));
    let full = false;
    for (const event of events) {
      // RFC 5626 4.4.1: a CRLFCRLF ping gets a CRLF pong at once (it costs nothing to answer)
      if (event.type === 'keepalive') {
        if (!conn.socket.destroyed) conn.socket.write(CRLF);
      } else if (this.queue.push(conn.flow.address, { event, conn }, share, true, full ? undefined : () => conn.socket.resume()) === Pushed.Full) full = true;
    }
    // its source has sent more than its share: read no more of this connection until it drains
    if (full) conn.socket.pause();
    if (this.buffered > this.maxBuffered) this.shedLargest();
  }

  /** The incomplete messages of all connections hold more than their budget: close the one holding most. */
  private shedLargest(): void {
    let worst: Conn | null = null;
    for (const c of this.conns.values()) if (worst === null || c.held > worst.held) worst = c;
    if (worst === null) return;
    this.stats.overBudget++;
    this.buffered -= worst.held;
    worst.held = 0;
    worst.socket.destroy();
  }

  /** Whether a flow can still carry a message (a TCP connection may have closed). */
  isOpen(flow: Flow): boolean {
    if (flow.proto === 'udp') return !this.closed;
    const c = this.conns.get(flow.conn);
    return c !== undefined && (c.ws !== undefined ? c.ws.readyState === c.ws.OPEN : !c.socket.destroyed);
  }

  /** Sends a serialised message on a flow; false when it cannot (closed flow, forbidden address). */
  send(flow: Flow, buf: Buffer): boolean {
    if (flow.proto === 'udp') {
      if (isForbiddenDestination(flow.address)) {
        this.stats.dropped++;
        return false;
      }
      this.stats.udpOut++;
      return this.sendRaw(flow, buf);
    }
    const c = this.conns.get(flow.conn);
    if (c === undefined || c.socket.destroyed) return false;
    if (c.ws !== undefined) {
      if (c.ws.bufferedAmount > this.maxUnread) {
        this.stats.unread++;
        c.ws.terminate();
        return false;
      }
      this.stats.tcpOut++;
      // RFC 7118 5: text frames for messages that are UTF-8 (all the node sends)
      c.ws.send(buf.toString('utf8'));
      return true;
    }
    if (c.socket.writableLength > this.maxUnread) {
      // the other side does not read what it is sent: let it go rather than buffer for it
      this.stats.unread++;
      c.socket.destroy();
      return false;
    }
    this.stats.tcpOut++;
    if (!c.corked) {
      c.corked = true;
      c.socket.cork();
      this.outBufs.push(null);
      this.outTo.push(c);
      this.flushSoon();
    }
    c.socket.write(buf);
    return true;
  }

  private sendRaw(flow: Flow, buf: Buffer): boolean {
    if (this.udp === undefined || this.closed) return false;
    this.outBufs.push(buf);
    this.outTo.push(flow);
    this.flushSoon();
    return true;
  }

  private flushSoon(): void {
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flush);
    }
  }

  // UDP datagrams go out together once the messages handled in this turn of the fair queue (up
  // to eight, fair-queue.ts) are done, not one by one as they are made: over loopback or a LAN a
  // send that finds the peer asleep pays for waking it, and in a burst only the first does. It
  // saved about a sixth of the CPU per REGISTER under load. The queue flushes at the end of its
  // turn; what is sent outside a turn (timers, retransmissions) goes at the next turn of the
  // event loop. Flushing at the event loop's next turn for everything had made each answer wait
  // for whatever else that turn held: 0.2-0.3 ms at the median for an INVITE's 100 Trying.
  // A TCP or TLS connection is corked from its first message of the turn to the flush, so the
  // messages of a turn to another node go in one write (and one TLS record), not one each: the
  // writes to the other node were about 5% of a node's time routing calls. A quiet node's turns
  // hold one message and gain nothing; a busy node's share a write.
  // What a turn sends goes out in the order it was made, datagrams and connections alike: a
  // proxy forwards the INVITE before it answers 100 Trying, and the wake-up of whoever gets the
  // first is paid before the second leaves.
  /** a datagram, or null where outTo holds a corked connection to uncork */
  private outBufs: Array<Buffer | null> = [];
  private outTo: Array<Flow | Conn> = [];
  private flushQueued = false;
  private readonly flush = (): void => {
    this.flushQueued = false;
    const bufs = this.outBufs;
    if (bufs.length === 0) return;
    const to = this.outTo;
    this.outBufs = [];
    this.outTo = [];
    const udp = this.udp;
    for (let i = 0; i < bufs.length; i++) {
      const buf = bufs[i];
      if (buf === null) {
        const c = to[i] as Conn;
        this.stats.tcpWrites++;
        c.corked = false;
        udp?.end(); // the datagrams made before this connection's messages leave before them
        c.socket.uncork();
      } else if (udp !== undefined) {
        const flow = to[i] as Flow;
        udp.send(buf, flow.port, flow.address);
      }
    }
    udp?.end();
  };

  /**
   * Opens a TCP or TLS connection (for requests to a contact whose flow has gone, or to another
   * node); resolves to its flow. Over TLS, given `key`, it refuses a server whose certificate's
   * key is not that one (a node's announced key), before a byte of SIP is sent.
   */
  async connect(address: string, port: number, timeoutMs = 5000, proto: 'tcp' | 'tls' = 'tcp', key?: string): Promise<Flow> {
    const name = proto === 'tls' ? 'TLS' : 'TCP';
    if (isForbiddenDestination(address)) throw new TransportError(`refusing to connect to ${address}`);
    if (this.conns.size >= this.maxConnections) throw new TransportError('too many connections');
    const tls = this.opts.tls;
    if (proto === 'tls' && tls === undefined) throw new TransportError('no TLS: the node has no certificate');
    const socket: Socket =
      proto === 'tls' && tls !== undefined
        ? tlsConnect({ host: address, port, rejectUnauthorized: false, minVersion: 'TLSv1.2' })
        : tcpConnect({ host: address, port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TransportError(`${name} connect to ${address}:${port} timed out`));
      }, timeoutMs);
      socket.once(proto === 'tls' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new TransportError(`${name} connect to ${address}:${port}: ${e.message}`));
      });
    });
    if (key !== undefined) {
      const x = (socket as TLSSocket).getPeerX509Certificate();
      const shown = x === undefined ? null : spkiFingerprint(x);
      if (shown !== key.toLowerCase()) {
        socket.destroy();
        this.stats.wrongKey++;
        throw new TransportError(`TLS to ${address}:${port}: its certificate's key ${shown?.slice(0, 16) ?? '(none)'}... is not the announced ${key.slice(0, 16)}...`);
      }
    }
    return this.adopt(socket, proto, key?.toLowerCase() ?? null).flow;
  }

  /**
   * Keying material both ends of a TLS connection derive from its session (RFC 5705, via
   * `label`), which a signature binds to this connection and no other; null when not TLS.
   */
  channelBinding(flow: Flow, label: string): Uint8Array | null {
    const c = flow.proto === 'tls' ? this.conns.get(flow.conn) : undefined;
    if (c === undefined || c.socket.destroyed) return null;
    return (c.socket as TLSSocket).exportKeyingMaterial(32, label, Buffer.alloc(0));
  }

  /** The node the other side of a TLS flow proved to be; null when it has not. */
  provenNode(flow: Flow): Uint8Array | null {
    return flow.proto === 'tls' ? (this.conns.get(flow.conn)?.node ?? null) : null;
  }

  /** Remembers, for the connection's life, which node its other side proved to be. */
  setProvenNode(flow: Flow, node: Uint8Array): void {
    const c = flow.proto === 'tls' ? this.conns.get(flow.conn) : undefined;
    if (c !== undefined) c.node = node;
  }

  /** This node's proof for a TLS connection, made by `make` once per connection; null when not TLS. */
  ownProof(flow: Flow, make: (c: Flow) => string | null): string | null {
    const c = flow.proto === 'tls' ? this.conns.get(flow.conn) : undefined;
    if (c === undefined) return null;
    c.proof ??= make(flow);
    return c.proof;
  }

  /** open connections by transport, remote address and port: their ids */
  private readonly byPeer = new Map<string, number>();

  /** connections flowTo opened, by transport, address, port and expected key: their ids */
  private readonly opened = new Map<string, number>();

  /** host name -> its address and until when it is trusted (ms), for names nodes announce */
  private readonly resolved = new Map<string, { address: string | null; until: number }>();

  /**
   * The address of a host name a node announced (A/AAAA through the system resolver, kept for a
   * minute, failures for ten seconds so a dead name is not asked on every call); null when it
   * does not resolve within `timeoutMs`. Announced URIs carry their port, so no SRV lookup.
   */
  private async resolve(name: string, timeoutMs: number): Promise<string | null> {
    const now = Date.now();
    const hit = this.resolved.get(name);
    if (hit !== undefined && hit.until > now) return hit.address;
    let timer: NodeJS.Timeout | undefined;
    const address = await Promise.race([
      dnsLookup(name, { family: isIP(this.host) === 6 ? 6 : 4 }).then((r) => r.address, () => null),
      new Promise<null>((r) => (timer = setTimeout(() => r(null), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (this.resolved.size >= 1000) this.resolved.clear();
    this.resolved.set(name, { address, until: now + (address === null ? 10_000 : 60_000) });
    return address;
  }

  /**
   * A flow to the host and port of `uri`: UDP, or a new TCP connection for `;transport=tcp`, or
   * a TLS one for sips: and `;transport=tls` (checked against the key the URI names, a node's
   * `;spki=`). A host name (a node announced as sip:node.example.org:5060) is resolved first;
   * null when it does not resolve.
   */
  async flowTo(uri: SipUri, timeoutMs = 5000): Promise<Flow | null> {
    const now = this.flowNow(uri);
    if (now !== undefined) return now;
    let host = bareHost(uri.host);
    if (isIP(host) === 0) {
      const address = await this.resolve(host.toLowerCase(), timeoutMs);
      if (address === null) return null;
      host = address;
      const open = this.flowAt(uri, host);
      if (open !== undefined) return open;
    }
    const t = target(uri, host);
    const flow = await this.connect(host, t.port, timeoutMs, t.proto as 'tcp' | 'tls', t.key);
    if (this.opened.size >= 1000) this.opened.clear();
    this.opened.set(t.name, flow.conn);
    return flow;
  }

  /**
   * What flowTo(uri) gives when it need not wait: a UDP flow, or a connection already open
   * (null: none can be), with the host an address or a name resolved a moment ago; undefined
   * when a name must be resolved or a connection opened. The proxy forwards on it in the same
   * turn it handled the request: going through flowTo's promise put the forwarded INVITE after
   * its 100 Trying and a turn of the event loop later.
   */
  flowNow(uri: SipUri): Flow | null | undefined {
    let host = bareHost(uri.host);
    if (isIP(host) === 0) {
      const hit = this.resolved.get(host.toLowerCase());
      if (hit === undefined || hit.until <= Date.now()) return undefined;
      if (hit.address === null) return null;
      host = hit.address;
    }
    return this.flowAt(uri, host);
  }

  /** flowNow once the host's address is known. */
  private flowAt(uri: SipUri, host: string): Flow | null | undefined {
    const { proto, port, key, name } = target(uri, host);
    if (proto === 'udp') return { proto: 'udp', address: host, port, conn: 0 };
    // a connection open to that address and port, whoever opened it, is the one to use (RFC 3261
    // 18.1.1): a phone on TCP or TLS is reached in a dialog at the address of its connection,
    // which it names in its Contact, and nothing listens there to take a new one
    const peer = this.conns.get(this.byPeer.get(`${proto} ${host} ${port}`) ?? 0);
    if (peer !== undefined && !peer.socket.destroyed && (key === undefined || peer.peerKey === key)) return peer.flow;
    // a connection this node opened to the same place (and key) is used again: one TLS handshake
    // per pair of nodes, not one per call
    const open = this.opened.get(name);
    if (open !== undefined) {
      const c = this.conns.get(open);
      if (c !== undefined && !c.socket.destroyed) return c.flow;
      this.opened.delete(name);
    }
    // a WebSocket is only ever opened by the other side (a browser): nothing to dial
    if (proto === 'ws' || proto === 'wss') return null;
    return undefined;
  }

  /** which UDP path the socket uses, and why (sip/udp.ts); undefined before start */
  get udpPath(): UdpPath | undefined {
    return this.udp?.path;
  }

  get connections(): number {
    return this.conns.size;
  }

  async stop(): Promise<void> {
    if (this.closed) return;
    this.flush(); // what was answered before stopping still goes out
    this.closed = true;
    this.queue.stop();
    clearInterval(this.sweeper);
    for (const c of this.conns.values()) c.socket.destroy();
    this.conns.clear();
    await Promise.all([
      this.udp?.close(),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tlsServer ? this.tlsServer.close(() => r()) : r())),
      new Promise<void>((r) => (this.wsServer ? this.wsServer.close(() => r()) : r())),
      new Promise<void>((r) => (this.wsHttp ? this.wsHttp.close(() => r()) : r())),
    ]);
  }
}
