// SIP transports (RFC 3261 18): one UDP socket and one TCP listener on the same port. The
// transport parses what arrives (datagrams by Content-Length, streams through the framer) and
// hands messages up with the flow they came on; it knows nothing of transactions.
//
// A flow is how to reach the other side again: the source address and port of a datagram (we
// answer the port a message came from, which is what works behind NATs, RFC 3581), or the TCP
// connection itself (RFC 5626 flows). Sending to a broadcast, multicast or unspecified address
// is refused here, whatever a Via or Contact asked for.

import { lookup as dnsLookup } from 'node:dns/promises';
import { createSocket, type Socket as UdpSocket, type RemoteInfo, type SocketOptions } from 'node:dgram';
import { BlockList, createServer, connect as tcpConnect, isIP, type Server, type Socket } from 'node:net';
import { SipStreamFramer, isKeepalive, type FramerEvent, parseMessage, type SipMessage, type SipParseError } from './message.ts';
import { FairQueue, Pushed, type FairQueueOptions } from './fair-queue.ts';
import { isStunRequest, stunBindingResponse } from './stun.ts';
import { bareHost, uriParam, type SipUri } from './uri.ts';

export type Proto = 'udp' | 'tcp';

export interface Flow {
  proto: Proto;
  /** remote IP address */
  address: string;
  port: number;
  /** TCP connection id; 0 for UDP */
  conn: number;
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
  return `SIP/2.0/${flow.proto === 'udp' ? 'UDP' : 'TCP'} ${hostport};branch=${branch}${rport ? ';rport' : ''}`;
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

export class SipTransport {
  private udp?: UdpSocket;
  private tcp?: Server;
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
  stats = { udpIn: 0, udpOut: 0, tcpIn: 0, tcpOut: 0, dropped: 0, stun: 0, banned: 0, overBudget: 0, unread: 0 };

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
    this.queue = new FairQueue<Arrived>((a) => this.arrived(a), opts.queue);
  }

  /** True when `address` is on the ban list. */
  isBanned(address: string): boolean {
    return this.banned !== null && this.banned.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
  }

  /** Binds UDP then TCP on the same port; with port 0 retries until both get the same free port. */
  async start(): Promise<void> {
    const family = isIP(this.host) === 6 ? 'udp6' : 'udp4';
    for (let attempt = 0; ; attempt++) {
      // only IP literals are sent to, so the address needs no resolving: answering at once
      // saves dgram a tick per datagram
      const lookup = ((address: string, _o: unknown, cb: (e: Error | null, a: string, f: number) => void): void => cb(null, address, family === 'udp6' ? 6 : 4)) as unknown as SocketOptions['lookup'];
      const udp = createSocket({ type: family, recvBufferSize: 4 << 20, sendBufferSize: 4 << 20, lookup });
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind({ address: this.host, port: this.opts.port, exclusive: true }, () => {
            udp.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        udp.close();
        throw new TransportError(`cannot bind UDP ${this.host}:${this.opts.port}: ${(e as Error).message}`);
      }
      const port = udp.address().port;
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
        udp.close();
        tcp.close();
        if (this.opts.port === 0 && attempt < 10) continue; // the free UDP port is taken for TCP: try another
        throw new TransportError(`cannot listen on TCP ${this.host}:${port}: ${(e as Error).message}`);
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = port;
      break;
    }
    const udp = this.udp as UdpSocket;
    udp.on('message', (buf, rinfo) => {
      try {
        this.onDatagram(buf, rinfo);
      } catch {
        this.stats.dropped++; // whatever a datagram holds, it never takes the node down
      }
    });
    udp.on('error', () => undefined); // ICMP-driven errors on send must not take the node down
    (this.tcp as Server).on('connection', (s) => this.onConnection(s));
    (this.tcp as Server).on('error', () => undefined);
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
    this.sweeper.unref();
  }

  /** Closes connections that never sent a message in time, or whose message does not finish in time. */
  private sweep(): void {
    const now = Date.now();
    for (const c of this.conns.values()) {
      if ((c.silentSince !== 0 && now - c.silentSince > this.firstMessageTimeoutMs) || (c.partialSince !== 0 && now - c.partialSince > this.messageTimeoutMs)) c.socket.destroy();
    }
  }

  private onDatagram(buf: Buffer, rinfo: RemoteInfo): void {
    this.stats.udpIn++;
    if (this.banned !== null && this.isBanned(rinfo.address)) {
      this.stats.banned++;
      return;
    }
    const flow: Flow = { proto: 'udp', address: rinfo.address, port: rinfo.port, conn: 0 };
    if (buf.length < 4) return; // nothing SIP is that short; a lone CRLF keepalive lands here too
    const c0 = buf[0];
    if (c0 < 2) {
      if (isStunRequest(buf)) {
        // RFC 5626 UDP keepalive: a STUN binding request on the SIP port
        this.stats.stun++;
        this.sendRaw(flow, stunBindingResponse(buf, rinfo.address, rinfo.port));
      }
      return;
    }
    if (c0 === 13 && isKeepalive(buf)) return; // CRLF keepalives over UDP need no answer
    // a datagram over its source's share is dropped here; the queue counts it (queue.stats.dropped)
    this.queue.push(rinfo.address, { buf, flow }, buf.length, false);
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

  private onConnection(socket: Socket): void {
    const addr = socket.remoteAddress === undefined ? undefined : socket.remoteAddress.replace(/^::ffff:/, '');
    if (this.closed || this.conns.size >= this.maxConnections || addr === undefined || (this.perAddress.get(addr) ?? 0) >= this.maxPerAddress || this.isBanned(addr)) {
      socket.destroy();
      return;
    }
    // a connection a stranger opened must speak soon; ours (connect) start out trusted
    this.adopt(socket).silentSince = Date.now();
  }

  private adopt(socket: Socket): Conn {
    const id = this.nextConn++;
    const addr = (socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    const flow: Flow = { proto: 'tcp', address: addr, port: socket.remotePort ?? 0, conn: id };
    const conn: Conn = { id, socket, framer: new SipStreamFramer({ maxMessageSize: this.maxMessageSize }), flow, silentSince: 0, partialSince: 0, held: 0 };
    this.conns.set(id, conn);
    this.perAddress.set(addr, (this.perAddress.get(addr) ?? 0) + 1);
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
      this.conns.delete(id);
      this.buffered -= conn.held;
      conn.held = 0;
      const left = (this.perAddress.get(addr) ?? 1) - 1;
      if (left <= 0) this.perAddress.delete(addr);
      else this.perAddress.set(addr, left);
    });
    return conn;
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
    return c !== undefined && !c.socket.destroyed;
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
    if (c.socket.writableLength > this.maxUnread) {
      // the other side does not read what it is sent: let it go rather than buffer for it
      this.stats.unread++;
      c.socket.destroy();
      return false;
    }
    this.stats.tcpOut++;
    c.socket.write(buf);
    return true;
  }

  private sendRaw(flow: Flow, buf: Buffer): boolean {
    if (this.udp === undefined || this.closed) return false;
    this.outBufs.push(buf);
    this.outFlows.push(flow);
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flush);
    }
    return true;
  }

  // UDP datagrams go out together once the messages handled in this turn of the event loop (up
  // to eight, fair-queue.ts) are done, not one by one as they are made: over
  // loopback or a LAN a send that finds the peer asleep pays for waking it, and in a burst
  // only the first does. It saved about a sixth of the CPU per REGISTER under load, for a
  // delay of well under a millisecond.
  private outBufs: Buffer[] = [];
  private outFlows: Flow[] = [];
  private flushQueued = false;
  private readonly flush = (): void => {
    this.flushQueued = false;
    const udp = this.udp;
    const bufs = this.outBufs;
    const flows = this.outFlows;
    if (bufs.length === 0) return;
    this.outBufs = [];
    this.outFlows = [];
    if (udp === undefined) return;
    for (let i = 0; i < bufs.length; i++) udp.send(bufs[i], flows[i].port, flows[i].address);
  };

  /** Opens a TCP connection (for requests to a contact whose flow has gone); resolves to its flow. */
  async connect(address: string, port: number, timeoutMs = 5000): Promise<Flow> {
    if (isForbiddenDestination(address)) throw new TransportError(`refusing to connect to ${address}`);
    if (this.conns.size >= this.maxConnections) throw new TransportError('too many connections');
    const socket = tcpConnect({ host: address, port, noDelay: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new TransportError(`TCP connect to ${address}:${port} timed out`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new TransportError(`TCP connect to ${address}:${port}: ${e.message}`));
      });
    });
    return this.adopt(socket).flow;
  }

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
   * A flow to the host and port of `uri`: UDP, or a new TCP connection for `;transport=tcp`.
   * A host name (a node announced as sip:node.example.org:5060) is resolved first; null when it
   * does not resolve.
   */
  async flowTo(uri: SipUri, timeoutMs = 5000): Promise<Flow | null> {
    let host = bareHost(uri.host);
    if (isIP(host) === 0) {
      const address = await this.resolve(host.toLowerCase(), timeoutMs);
      if (address === null) return null;
      host = address;
    }
    const port = uri.port ?? 5060;
    const t = uriParam(uri, 'transport');
    if (typeof t === 'string' && t.toLowerCase() === 'tcp') return this.connect(host, port, timeoutMs);
    return { proto: 'udp', address: host, port, conn: 0 };
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
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
  }
}
