// The SIP UDP socket: node:dgram, or sip/native/udp.cc where it is built (Linux, an IPv4 host).
// The native one reads up to 64 datagrams a system call and hands them over in one call, and
// sends a turn's datagrams with one system call: Node's dgram path costs 8-13 us more per
// transaction than C's recvfrom/sendto on this project's machine (docs/sip.md). Both keep the
// order of what is sent, and both lose a datagram the kernel will not take, as UDP may.
// DOTS_SIP_UDP=dgram keeps node:dgram (the start-up line says which one is used, and why).
import { createSocket, type SocketOptions } from 'node:dgram';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';

export const NATIVE_UDP_FILE = fileURLToPath(new URL('./native/udp.node', import.meta.url));

/** A datagram's bytes and where it came from. */
export type DatagramHandler = (buf: Buffer, address: string, port: number) => void;

/** Which path a socket takes, and why not the native one when it does not. */
export type UdpPath = { kind: 'native' } | { kind: 'dgram'; reason: string };

export interface UdpSocket {
  readonly port: number;
  readonly path: UdpPath;
  /** Sends a datagram, or queues it until `end()` (the native socket); either way in order. */
  send(buf: Buffer, port: number, address: string): void;
  /** Sends the queued datagrams. */
  end(): void;
  close(): Promise<void>;
}

export interface UdpOptions {
  host: string;
  /** 0 picks a free port */
  port: number;
  recvBufferSize: number;
  sendBufferSize: number;
}

interface Addon {
  open(host: string, port: number, rcvbuf: number, sndbuf: number, owner: object, onBatch: (bytes: Buffer, meta: Uint32Array, count: number) => void): [unknown, number];
  send(socket: unknown, bytes: Buffer, meta: Uint32Array, count: number): number;
  close(socket: unknown): void;
}

let loaded: Addon | string | undefined;

function addon(): Addon | string {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(NATIVE_UDP_FILE) as Addon;
    } catch (e) {
      loaded = (e as { code?: string }).code === 'MODULE_NOT_FOUND' ? 'not built (npm run build:native needs g++ on Linux)' : `cannot load it: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  return loaded;
}

/** The addon a socket on `host` gets, or why it gets node:dgram instead. */
function nativeFor(host: string): Addon | string {
  if (process.env.DOTS_SIP_UDP === 'dgram') return 'DOTS_SIP_UDP=dgram';
  if (isIP(host) !== 4) return 'the native path is IPv4 only';
  return addon();
}

/** Which UDP path a socket on `host` gets, and why not the native one when it does not. */
export function udpPath(host: string): UdpPath {
  const a = nativeFor(host);
  return typeof a === 'string' ? { kind: 'dgram', reason: a } : { kind: 'native' };
}

/** Opens and binds the socket (node:dgram when the native path is not there); throws when it cannot bind. */
export async function openUdp(o: UdpOptions, onDatagram: DatagramHandler): Promise<UdpSocket> {
  const a = nativeFor(o.host);
  return typeof a === 'string' ? DgramUdp.open(o, onDatagram, a) : new NativeUdp(a, o, onDatagram);
}

class DgramUdp implements UdpSocket {
  readonly path: UdpPath;

  private constructor(
    private readonly sock: ReturnType<typeof createSocket>,
    readonly port: number,
    reason: string,
  ) {
    this.path = { kind: 'dgram', reason };
  }

  static async open(o: UdpOptions, onDatagram: DatagramHandler, reason: string): Promise<DgramUdp> {
    const family = isIP(o.host) === 6 ? 'udp6' : 'udp4';
    // only IP literals are sent to, so the address needs no resolving: answering at once
    // saves dgram a tick per datagram
    const lookup = ((address: string, _o: unknown, cb: (e: Error | null, a: string, f: number) => void): void => cb(null, address, family === 'udp6' ? 6 : 4)) as unknown as SocketOptions['lookup'];
    const udp = createSocket({ type: family, recvBufferSize: o.recvBufferSize, sendBufferSize: o.sendBufferSize, lookup });
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind({ address: o.host, port: o.port, exclusive: true }, () => {
          udp.off('error', reject);
          resolve();
        });
      });
    } catch (e) {
      udp.close();
      throw e;
    }
    udp.on('message', (buf, rinfo) => onDatagram(buf, rinfo.address, rinfo.port));
    udp.on('error', () => undefined); // ICMP-driven errors on send must not take the node down
    return new DgramUdp(udp, udp.address().port, reason);
  }

  send(buf: Buffer, port: number, address: string): void {
    this.sock.send(buf, port, address);
  }

  end(): void {}

  close(): Promise<void> {
    return new Promise((resolve) => this.sock.close(() => resolve()));
  }
}

/** Dotted IPv4 text of a 32-bit address, and back; both cached (a node hears from few addresses at a time). */
const textOf = new Map<number, string>();
const numberOf = new Map<string, number>();

function ipText(n: number): string {
  let s = textOf.get(n);
  if (s === undefined) {
    if (textOf.size >= 4096) textOf.clear();
    s = `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    textOf.set(n, s);
  }
  return s;
}

/** -1 for anything but a dotted IPv4 address */
function ipNumber(s: string): number {
  let n = numberOf.get(s);
  if (n === undefined) {
    n = -1;
    if (isIP(s) === 4) {
      const p = s.split('.');
      n = ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
    }
    if (numberOf.size >= 4096) numberOf.clear();
    numberOf.set(s, n);
  }
  return n;
}

class NativeUdp implements UdpSocket {
  readonly path: UdpPath = { kind: 'native' };
  readonly port: number;
  private readonly handle: unknown;
  private closed = false;
  private out: Buffer[] = [];
  private outBytes = 0;
  private outMeta = new Uint32Array(4 * 64);
  private outCount = 0;

  constructor(
    private readonly lib: Addon,
    o: UdpOptions,
    onDatagram: DatagramHandler,
  ) {
    const onBatch = (bytes: Buffer, meta: Uint32Array, count: number): void => {
      for (let i = 0; i < count; i++) {
        const at = meta[4 * i];
        onDatagram(bytes.subarray(at, at + meta[4 * i + 1]), ipText(meta[4 * i + 3]), meta[4 * i + 2]);
      }
    };
    const [handle, port] = lib.open(o.host, o.port, o.recvBufferSize, o.sendBufferSize, this, onBatch);
    this.handle = handle;
    this.port = port;
  }

  send(buf: Buffer, port: number, address: string): void {
    const ip = ipNumber(address);
    if (ip < 0 || this.closed) return; // not an IPv4 address: this socket cannot send there
    if (this.outMeta.length < 4 * (this.outCount + 1)) {
      const m = new Uint32Array(this.outMeta.length * 2);
      m.set(this.outMeta);
      this.outMeta = m;
    }
    const m = this.outMeta;
    const k = 4 * this.outCount++;
    m[k] = this.outBytes;
    m[k + 1] = buf.length;
    m[k + 2] = port;
    m[k + 3] = ip;
    this.out.push(buf);
    this.outBytes += buf.length;
  }

  end(): void {
    if (this.outCount === 0) return;
    const bytes = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out, this.outBytes);
    const n = this.outCount;
    this.out = [];
    this.outBytes = 0;
    this.outCount = 0;
    if (!this.closed) this.lib.send(this.handle, bytes, this.outMeta, n);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.end();
      this.closed = true;
      this.lib.close(this.handle);
    }
    // the descriptor is closed in libuv's close phase, before the next check phase
    return new Promise((resolve) => setImmediate(resolve));
  }
}
