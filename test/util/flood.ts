// A one-address flood (UDP datagrams, or messages over TCP connections) from a process of its
// own, for the fairness tests and `dots bench abuse`. A flood sent from the process under test would take turns with the node on one event
// loop and prove nothing; from a child it competes for the machine the way a stranger would.
// The child sends `template` with `@N@` replaced by a running number (ten digits, so a
// Content-Length stays right), over UDP paced to `rate` a second, over TCP as fast as the node
// reads, and prints how many it sent.
import { spawn } from 'node:child_process';

export interface UdpFloodOptions {
  /** where the node listens */
  host: string;
  port: number;
  /** the address the flood comes from (any of 127.0.0.0/8 is this machine) */
  from: string;
  /** datagrams a second */
  rate: number;
  seconds: number;
  /** the datagram, `@N@` replaced by a running number of ten digits */
  template: string;
}

/** Messages over TCP connections from one address, each written as fast as the node reads it. */
export interface TcpFloodOptions {
  host: string;
  port: number;
  from: string;
  /** connections (each reopened if the node closes it) */
  connections: number;
  seconds: number;
  /** the message, `@N@` replaced by a running number of ten digits */
  template: string;
}

export interface Flood {
  /** resolves with the number of datagrams sent, once the child has ended */
  readonly done: Promise<number>;
  /** ends the flood now */
  stop(): void;
}

const CHILD = `
const dgram = require('node:dgram');
const [host, port, from, rate, seconds, template] = JSON.parse(process.argv[1]);
const parts = template.split('@N@');
const s = dgram.createSocket({ type: 'udp4', sendBufferSize: 4 << 20 });
s.on('error', () => undefined);
let sent = 0;
s.bind(0, from, () => {
  const t0 = Date.now();
  const total = Math.floor(rate * seconds);
  const tick = () => {
    const due = Math.min(total, Math.floor(((Date.now() - t0) * rate) / 1000));
    for (; sent < due; sent++) s.send(parts.join(String(sent).padStart(10, '0')), port, host);
    if (sent < total) setTimeout(tick, 1);
    else end();
  };
  tick();
});
const end = () => s.close(() => { process.stdout.write(String(sent)); process.exit(0); });
process.on('SIGTERM', end);
`;

const TCP_CHILD = `
const net = require('node:net');
const [host, port, from, connections, seconds, template] = JSON.parse(process.argv[1]);
const parts = template.split('@N@');
let sent = 0;
let stopped = false;
const open = new Set();
const batch = () => {
  let b = '';
  for (let i = 0; i < 64; i++) b += parts.join(String(sent++).padStart(10, '0'));
  return b;
};
const one = () => {
  if (stopped) return;
  const s = net.connect({ host, port, localAddress: from });
  open.add(s);
  s.on('error', () => undefined);
  s.on('close', () => { open.delete(s); setTimeout(one, 100); });
  const pump = () => { while (!stopped && s.write(batch())); if (!stopped) s.once('drain', pump); };
  s.on('connect', pump);
};
for (let i = 0; i < connections; i++) one();
const end = () => { stopped = true; for (const s of open) s.destroy(); process.stdout.write(String(sent)); process.exit(0); };
setTimeout(end, seconds * 1000);
process.on('SIGTERM', end);
`;

/** Starts a UDP flood; it ends by itself after `seconds`, or at `stop()`. */
export function udpFlood(o: UdpFloodOptions): Flood {
  return child(CHILD, [o.host, o.port, o.from, o.rate, o.seconds, o.template]);
}

/** Starts a TCP flood of messages; it ends by itself after `seconds`, or at `stop()`. */
export function tcpFlood(o: TcpFloodOptions): Flood {
  return child(TCP_CHILD, [o.host, o.port, o.from, o.connections, o.seconds, o.template]);
}

function child(source: string, args: unknown[]): Flood {
  const child = spawn(process.execPath, ['-e', source, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<number>((resolve) => child.on('exit', () => resolve(Number(out) || 0)));
  return {
    done,
    stop: () => {
      if (child.exitCode === null) child.kill('SIGTERM');
    },
  };
}

/** An OPTIONS to `ruri` from `from`, numbered by `@N@` (each a new transaction). */
export function optionsTemplate(ruri: string, from: string, viaPadding = 0): string {
  const pad = viaPadding > 0 ? ';x=' + 'a'.repeat(viaPadding) : '';
  return [`OPTIONS ${ruri} SIP/2.0`, `Via: SIP/2.0/UDP ${from}:5999;branch=z9hG4bK@N@${pad}`, 'Max-Forwards: 70', `From: <sip:flood@${from}>;tag=@N@`, `To: <${ruri}>`, 'Call-ID: @N@@flood', 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
}
