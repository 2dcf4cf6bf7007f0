// `dots bench tls`: what TLS costs a node, in one run against one `dots node` process (regtest,
// open registration): REGISTER transactions per second over UDP, TCP and TLS with the same load
// generator (this process, closed loops: each of 32 phones sends its next refresh when the last
// is answered), their ratios, and TLS handshakes per second (8 loops connecting, completing the
// handshake and closing). Debian's SIPp has no TLS, hence a generator of our own; its figures are
// for comparing transports with each other, not with `dots bench sip` (SIPp, open loop).
//
// Then an INVITE across two nodes: a phone at B calls a phone at A that answers 486 at once,
// 300 calls one after another, timed from INVITE to the final response at the caller, once with
// the nodes speaking TLS between them (the default) and once with `--no-tls` (UDP), each on a
// network of its own, in the same run: p50 and p99 of each. 3,000 calls go first, untimed: with
// only 20 before it, the timed window ran code V8 had not optimized yet, and measured that (p50
// 2.4-3.4 ms instead of 0.9). The nodes log at info, as a node runner runs them.
//
// Every phone registers once before the windows (the node claims names and pings each contact
// then), so the windows measure refreshes, a registrar's steady state.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { SipStreamFramer, getHeader, parseMessage, type SipMessage } from '../sip/message.ts';
import { buildResponse, serializeMessage } from '../sip/serialize.ts';
import { NodeProc } from '../test/util/proc.ts';
import { bindingAt, mineUntil } from '../test/util/names.ts';
import { sleep } from '../test/util/wait.ts';
import { cpuSeconds } from './cpu.ts';
import { Ua, call, registerText, rnd } from './ua.ts';
import { quantile } from './stats.ts';

type Row = Record<string, string | number>;
type Transport = 'udp' | 'tcp' | 'tls';

const PHONES = 32;
const DOMAIN = 'bench.local';

/** One phone's way to the node: send a message, hear responses (by branch) and answer OPTIONS. */
interface Line {
  send(b: Buffer): void;
  via: string;
  contact(user: string): string;
  close(): void;
}

/** Waiters by Via branch, shared by the lines of one transport. */
class Waiters {
  private readonly byBranch = new Map<string, () => void>();

  wait(branch: string, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.byBranch.delete(branch);
        resolve(false);
      }, timeoutMs);
      this.byBranch.set(branch, () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** A message arrived: a final response wakes its waiter; OPTIONS are answered by `answer`. */
  heard(m: SipMessage, answer: (b: Buffer) => void): void {
    if (m.kind === 'request') {
      if (m.method === 'OPTIONS') answer(serializeMessage(buildResponse(m, 200, 'OK', undefined, { toTag: rnd() })));
      return;
    }
    if (m.status < 200) return;
    const branch = /branch=([^;,\s]+)/.exec(getHeader(m, 'via') ?? '')?.[1] ?? '';
    const w = this.byBranch.get(branch);
    if (w === undefined) return;
    this.byBranch.delete(branch);
    w();
  }
}

async function udpLines(port: number, waiters: Waiters): Promise<Line[]> {
  const sock: UdpSocket = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
  sock.on('message', (b, from) => {
    const r = parseMessage(b);
    if (r.ok) waiters.heard(r.message, (out) => sock.send(out, from.port, from.address));
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  const me = sock.address().port;
  const lines: Line[] = [];
  for (let i = 0; i < PHONES; i++) {
    lines.push({ send: (b) => sock.send(b, port, '127.0.0.1'), via: `UDP 127.0.0.1:${me}`, contact: (u) => `sip:${u}@127.0.0.1:${me}`, close: () => (i === 0 ? sock.close() : undefined) });
  }
  return lines;
}

async function streamLine(proto: 'tcp' | 'tls', port: number, waiters: Waiters): Promise<Line> {
  const s: Socket = proto === 'tls' ? tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }) : tcpConnect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => {
    s.once(proto === 'tls' ? 'secureConnect' : 'connect', () => resolve());
    s.once('error', reject);
  });
  s.setNoDelay(true);
  const framer = new SipStreamFramer();
  s.on('data', (d: Buffer) => {
    for (const ev of framer.push(d)) if (ev.type === 'message') waiters.heard(ev.message, (out) => s.write(out));
  });
  s.on('error', () => undefined);
  const me = s.localPort ?? 0;
  return { send: (b) => s.write(b), via: `${proto.toUpperCase()} 127.0.0.1:${me}`, contact: (u) => `sip:${u}@127.0.0.1:${me};transport=${proto}`, close: () => s.destroy() };
}

/** Each phone refreshes its registration again as soon as the last one is answered, until `endAt`. */
async function closedLoops(proto: Transport, lines: Line[], waiters: Waiters, endAt: number): Promise<{ ok: number; failed: number }> {
  let ok = 0;
  let failed = 0;
  await Promise.all(
    lines.map(async (line, i) => {
      const user = `${proto}${i}`;
      const callId = `bench-${proto}-${i}`;
      let cseq = 1000;
      while (Date.now() < endAt) {
        const { text, branch } = registerText({ via: line.via, user, domain: DOMAIN, contact: line.contact(user), expires: 3600, callId, cseq: cseq++ });
        const answered = waiters.wait(branch, 2000);
        line.send(Buffer.from(text, 'latin1'));
        if (await answered) ok++;
        else failed++;
      }
    }),
  );
  return { ok, failed };
}

/** calls made before the timed ones, so V8 has optimized the call path (see the header) */
const WARM_CALLS = 3000;

/** INVITE to final response through B and A, ms, for `calls` calls; the nodes with TLS between them or not, their data under `dir`. */
async function inviteLatency(tls: boolean, calls: number, dir: string): Promise<number[]> {
  const callee = await new Ua().open();
  const caller = await new Ua().open();
  const nodes: NodeProc[] = [];
  try {
    const extra = tls ? [] : ['--no-tls'];
    const tag = tls ? 'tls' : 'udp';
    const a = await NodeProc.start({ name: 'A', datadir: join(dir, `a-${tag}`), args: ['--domain', 'a.test', '--open-registration', '--sip-keepalive', '60', ...extra] });
    nodes.push(a);
    const b = await NodeProc.start({ name: 'B', datadir: join(dir, `b-${tag}`), bootstrap: [a.p2p], args: ['--domain', 'b.test', '--open-registration', '--sip-keepalive', '60', ...extra] });
    nodes.push(b);
    callee.onRequest = (req, _at, from) => {
      if (req.method === 'INVITE') callee.respond(req, 486, 'Busy Here', from);
    };
    if ((await callee.register(a.sipPort, 'callee', 'a.test', `sip:callee@127.0.0.1:${callee.port}`, 3600, 'lat-callee', 1)) !== 200) throw new Error('the callee could not register at A');
    if ((await caller.register(b.sipPort, 'caller', 'b.test', `sip:caller@127.0.0.1:${caller.port}`, 3600, 'lat-caller', 1)) !== 200) throw new Error('the caller could not register at B');
    await mineUntil(() => a.mine(1), 'B to see the callee online', async () => (await bindingAt(b, 'sip:callee@a.test'))?.status === 'online', { timeoutMs: 60_000 });
    const ms: number[] = [];
    for (let i = 0; i < calls + WARM_CALLS; i++) {
      const r = await call(caller, b.sipPort, 'sip:callee@a.test', 'caller', 'b.test', 3000);
      if (i >= WARM_CALLS && r.status === 486) ms.push(r.ms);
    }
    return ms;
  } finally {
    callee.close();
    caller.close();
    for (const n of nodes.reverse()) await n.stop(5000);
  }
}

export async function benchTls(o: { json: boolean; seconds: number }): Promise<Row[]> {
  const seconds = o.seconds >= 3 ? o.seconds : 10;
  const say = (s: string): void => {
    if (!o.json) console.error(s);
  };
  const dir = mkdtempSync(join(tmpdir(), 'dots-bench-tls-'));
  const node = await NodeProc.start({ datadir: join(dir, 'node'), name: 'node', args: ['--domain', DOMAIN, '--open-registration', '--sip-keepalive', '3600'] });
  const rows: Row[] = [];
  try {
    const results = new Map<Transport, number>();
    for (const proto of ['udp', 'tcp', 'tls'] as const) {
      const waiters = new Waiters();
      const port = proto === 'tls' ? node.tlsPort : node.sipPort;
      const lines = proto === 'udp' ? await udpLines(port, waiters) : await Promise.all(Array.from({ length: PHONES }, () => streamLine(proto, port, waiters)));
      // every phone registered once: the node claims its name and checks it with OPTIONS
      await closedLoops(proto, lines, waiters, Date.now() + 1);
      await sleep(2000);
      const cpu0 = cpuSeconds(node.pid ?? 0);
      const t0 = Date.now();
      const r = await closedLoops(proto, lines, waiters, t0 + seconds * 1000);
      const wall = (Date.now() - t0) / 1000;
      const cores = (cpuSeconds(node.pid ?? 0) - cpu0) / wall;
      const rate = r.ok / wall;
      results.set(proto, rate);
      say(`  ${proto}: ${Math.round(rate)} REGISTER/s (${r.failed} unanswered), node at ${cores.toFixed(2)} of a core`);
      rows.push({ metric: `REGISTER/s over ${proto.toUpperCase()}, ${PHONES} phones in closed loops`, value: Math.round(rate), notes: `${r.failed} unanswered in ${seconds} s; the node used ${cores.toFixed(2)} of a core` });
      for (const l of lines) l.close();
    }
    const udp = results.get('udp') ?? NaN;
    rows.push({ metric: 'TLS / UDP', value: ((results.get('tls') ?? NaN) / udp).toFixed(2), notes: 'the same generator, the same run' });
    rows.push({ metric: 'TLS / TCP', value: ((results.get('tls') ?? NaN) / (results.get('tcp') ?? NaN)).toFixed(2), notes: 'what encryption costs on a connection' });
    // handshakes: 8 loops connecting, completing the TLS handshake and closing
    let done = 0;
    const endAt = Date.now() + seconds * 1000;
    const cpu0 = cpuSeconds(node.pid ?? 0);
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (Date.now() < endAt) {
          await new Promise<void>((resolve) => {
            const s = tlsConnect({ host: '127.0.0.1', port: node.tlsPort, rejectUnauthorized: false }, () => {
              done++;
              s.destroy();
              resolve();
            });
            s.once('error', () => resolve());
          });
        }
      }),
    );
    const wall = (Date.now() - t0) / 1000;
    const cores = (cpuSeconds(node.pid ?? 0) - cpu0) / wall;
    rows.push({ metric: 'TLS handshakes/s (ECDSA P-256 certificate, TLS 1.3)', value: Math.round(done / wall), notes: `8 loops; the node used ${cores.toFixed(2)} of a core` });
    for (const tls of [true, false]) {
      const ms = (await inviteLatency(tls, 300, dir)).sort((x, y) => x - y);
      say(`  INVITE across B and A, ${tls ? 'TLS' : 'UDP'} between the nodes: p50 ${quantile(ms, 0.5).toFixed(2)} ms, p99 ${quantile(ms, 0.99).toFixed(2)} ms (${ms.length} calls)`);
      rows.push({ metric: `INVITE to 486 through B and A, ${tls ? 'TLS' : 'UDP (--no-tls)'} between the nodes: p50 / p99`, value: `${quantile(ms, 0.5).toFixed(2)} / ${quantile(ms, 0.99).toFixed(2)} ms`, notes: `${ms.length} calls one after another; phones on UDP` });
    }
    return rows;
  } finally {
    await node.stop(5000);
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  }
}
