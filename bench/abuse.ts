// `dots bench abuse`: a phone that registers and calls every second while one address floods the
// node, one kind of flood at a time (issue #19). For each it prints the phone's success rate, the
// p50 and p99 of its registration (REGISTER, 401, REGISTER with digest, 200) and of its call
// setup (INVITE to 200; the callee answers at once), and the node's peak memory (RSS) during that
// flood, and the datagrams the kernel dropped because a socket's buffer was full (a flood the
// node could not read as fast as it came). The goals: every legitimate attempt succeeds, p99
// under 200 ms, memory under 512 MB.
//
// One `dots node` (regtest, accounts alice, bob and carol). The phones are this process's agents
// at 127.0.0.3 (alice, who registers and calls), 127.0.0.4 (bob, who answers) and 127.0.0.5
// (carol, registered, who never answers a call). Every flood comes from 127.0.0.2: datagrams and
// TCP messages from a process of its own (test/util/flood.ts), bare TCP connections from this one. A phone retransmits
// as RFC 3261 says (T1 = 500 ms), so a lost datagram shows as latency, not as failure, unless
// the attempt takes over 8 s.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { getHeader, getHeaders, type SipRequest } from '../sip/message.ts';
import { runDots } from '../test/util/proc.ts';
import { optionsTemplate, tcpFlood, udpFlood, type Flood } from '../test/util/flood.ts';
import { sleep } from '../test/util/wait.ts';
import { BenchNode } from './node.ts';
import { Ua, call, rnd } from './ua.ts';
import { quantile, rounded } from './stats.ts';

const DOMAIN = 'abuse.test';
const FLOOD_FROM = '127.0.0.2';
const PASSWORDS = { alice: 'alice-secret', bob: 'bob-secret', carol: 'carol-secret' };
/** an attempt that takes longer has failed (a phone gives up at 32 s; a person much sooner) */
const ATTEMPT_MS = 8000;

type Row = Record<string, string | number>;

export interface AbuseBenchOptions {
  /** how long each flood lasts, seconds */
  seconds: number;
  json?: boolean;
  /** datagrams a second of the UDP floods (default 20,000; the 60 KB one sends a tenth) */
  rate?: number;
  /** only these floods (names as in the table); also DOTS_BENCH_ABUSE_ONLY=register,invite */
  only?: string[];
  /** progress lines to stderr (default true) */
  verbose?: boolean;
}

interface Target {
  port: number;
}

/** A flood: its name, what it is, and how to start it against the node's SIP port. */
interface FloodKind {
  name: string;
  what: (rate: number) => string;
  start: (t: Target, rate: number, seconds: number) => Flood;
}

/** A UDP flood from FLOOD_FROM of the request `lines` (with `@N@` numbering each), at `rate` a second. */
function udp(lines: string[]): FloodKind['start'] {
  return (t, rate, seconds) => udpFlood({ host: '127.0.0.1', port: t.port, from: FLOOD_FROM, rate, seconds, template: [...lines, 'Content-Length: 0', '', ''].join('\r\n') });
}

const via = `Via: SIP/2.0/UDP ${FLOOD_FROM}:5999;branch=z9hG4bK@N@`;

const KINDS: FloodKind[] = [
  {
    name: 'register',
    what: (r) => `${r.toLocaleString('en-US')}/s REGISTERs for alice with wrong digests`,
    start: udp([
      `REGISTER sip:${DOMAIN} SIP/2.0`,
      via,
      'Max-Forwards: 70',
      `From: <sip:alice@${DOMAIN}>;tag=@N@`,
      `To: <sip:alice@${DOMAIN}>`,
      'Call-ID: @N@@reg',
      'CSeq: 2 REGISTER',
      `Contact: <sip:alice@${FLOOD_FROM}:5999>`,
      `Authorization: Digest username="alice", realm="${DOMAIN}", nonce="@N@", uri="sip:${DOMAIN}", response="00000000000000000000000000000000", algorithm=MD5`,
    ]),
  },
  {
    name: 'invite',
    what: (r) => `${r.toLocaleString('en-US')}/s INVITEs to carol, who never answers`,
    start: udp([`INVITE sip:carol@${DOMAIN} SIP/2.0`, via, 'Max-Forwards: 70', 'From: <sip:x@elsewhere.test>;tag=@N@', `To: <sip:carol@${DOMAIN}>`, 'Call-ID: @N@@inv', 'CSeq: 1 INVITE', `Contact: <sip:x@${FLOOD_FROM}:5999>`]),
  },
  {
    name: 'subscribe',
    what: (r) => `${r.toLocaleString('en-US')}/s SUBSCRIBEs to alice from a stranger`,
    start: udp([`SUBSCRIBE sip:alice@${DOMAIN} SIP/2.0`, via, 'Max-Forwards: 70', 'From: <sip:x@elsewhere.test>;tag=@N@', `To: <sip:alice@${DOMAIN}>`, 'Call-ID: @N@@sub', 'CSeq: 1 SUBSCRIBE', 'Event: presence', 'Expires: 3600', `Contact: <sip:x@${FLOOD_FROM}:5999>`, 'Record-Route: <sip:192.0.2.1:5060;transport=tcp;lr>']),
  },
  {
    name: 'options-60k',
    what: (r) => `${Math.round(r / 10).toLocaleString('en-US')}/s OPTIONS with a 60 KB Via`,
    start: (t, rate, seconds) => udpFlood({ host: '127.0.0.1', port: t.port, from: FLOOD_FROM, rate: Math.round(rate / 10), seconds, template: optionsTemplate(`sip:127.0.0.1:${t.port}`, FLOOD_FROM, 60_000) }),
  },
  {
    name: 'tcp-messages',
    what: () => 'OPTIONS over 8 TCP connections, as fast as the node reads them',
    start: (t, _rate, seconds) => tcpFlood({ host: '127.0.0.1', port: t.port, from: FLOOD_FROM, connections: 8, seconds, template: optionsTemplate(`sip:127.0.0.1:${t.port}`, FLOOD_FROM).replace('SIP/2.0/UDP', 'SIP/2.0/TCP') }),
  },
  {
    name: 'tcp-connections',
    what: () => 'TCP connections from one address, reopened as they close (up to 10,000 held)',
    start: (t, _rate, seconds) => tcpConnections(t, seconds, 10_000, null),
  },
  {
    name: 'tcp-unfinished',
    what: () => '60 KB headers never finished, a byte every second, on every connection allowed',
    start: (t, _rate, seconds) => tcpConnections(t, seconds, 1000, 'OPTIONS sip:x SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2;branch=z9hG4bK' + 'v'.repeat(60_000)),
  },
];

/**
 * TCP from FLOOD_FROM: keeps up to `want` connections open (a new one tried whenever one closes,
 * at most 500 a second), each sending `first` (if any) and then a byte a second.
 */
function tcpConnections(t: Target, seconds: number, want: number, first: string | null): Flood {
  const open = new Set<Socket>();
  let opened = 0;
  let stopped = false;
  let resolveDone: (n: number) => void = () => undefined;
  const done = new Promise<number>((r) => (resolveDone = r));
  const trickle = setInterval(() => {
    for (const s of open) if (!s.destroyed) s.write('v');
  }, 1000);
  const top = setInterval(() => {
    for (let i = 0; i < 50 && open.size < want && !stopped; i++) {
      const s = connect({ host: '127.0.0.1', port: t.port, localAddress: FLOOD_FROM });
      opened++;
      open.add(s);
      s.on('error', () => undefined);
      s.on('close', () => open.delete(s));
      if (first !== null) s.on('connect', () => s.write(first));
    }
  }, 100);
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    clearInterval(trickle);
    clearInterval(top);
    clearTimeout(end);
    for (const s of open) s.destroy();
    resolveDone(opened);
  };
  const end = setTimeout(stop, seconds * 1000);
  return { done, stop };
}

/** Resident memory of a process now (VmRSS), and its peak so far (VmHWM), bytes. */
function memory(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: NaN, hwm: NaN };
  }
}

/**
 * Datagrams the machine's kernel dropped for want of room in a socket's receive buffer so far
 * (RcvbufErrors in /proc/net/snmp; every socket on the machine counts, so compare quiet runs).
 */
function kernelDrops(): number {
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp: '));
    const names = lines[0].split(/\s+/);
    return Number(lines[1].split(/\s+/)[names.indexOf('RcvbufErrors')]);
  } catch {
    return NaN;
  }
}

/** bob answers every INVITE at once (200 with Record-Route and Contact) and every BYE. */
function answering(bob: Ua): void {
  bob.onRequest = (req: SipRequest, _at, from) => {
    if (req.method === 'ACK') return;
    if (req.method !== 'INVITE') {
      bob.respond(req, 200, 'OK', from);
      return;
    }
    const lines = ['SIP/2.0 200 OK'];
    for (const v of getHeaders(req, 'via')) lines.push(`Via: ${v}`);
    for (const rr of getHeaders(req, 'record-route')) lines.push(`Record-Route: ${rr}`);
    const to = getHeader(req, 'to') ?? '';
    lines.push(`From: ${getHeader(req, 'from') ?? ''}`, `To: ${to};tag=${bob.port}`, `Call-ID: ${getHeader(req, 'call-id') ?? ''}`, `CSeq: ${getHeader(req, 'cseq') ?? ''}`, `Contact: <sip:bob@${bob.address}:${bob.port}>`, 'Content-Length: 0', '', '');
    bob.send(lines.join('\r\n'), from.port);
  };
}

interface Legit {
  attempts: number;
  ok: number;
  register: number[];
  call: number[];
}

/** alice registers and calls bob once a second until `until` (ms), each attempt timed. */
async function legitimate(alice: Ua, port: number, until: number): Promise<Legit> {
  const r: Legit = { attempts: 0, ok: 0, register: [], call: [] };
  let cseq = 10;
  const callId = rnd() + '@alice';
  while (Date.now() < until) {
    const next = Date.now() + 1000;
    r.attempts++;
    const t0 = performance.now();
    const reg = await alice.registerWithDigest(port, 'alice', DOMAIN, PASSWORDS.alice, 600, callId, cseq, ATTEMPT_MS);
    cseq += 2;
    const regMs = performance.now() - t0;
    const c = reg === 200 ? await call(alice, port, `sip:bob@${DOMAIN}`, 'alice', DOMAIN, ATTEMPT_MS, true) : null;
    if (reg === 200) r.register.push(regMs);
    if (c !== null && c.status === 200) r.call.push(c.ms);
    if (reg === 200 && c !== null && c.ok) r.ok++;
    await sleep(Math.max(0, next - Date.now()));
  }
  return r;
}

export async function benchAbuse(o: AbuseBenchOptions): Promise<Row[]> {
  const rate = o.rate ?? 20_000;
  const only = o.only ?? process.env.DOTS_BENCH_ABUSE_ONLY?.split(',');
  const kinds = only === undefined ? KINDS : KINDS.filter((k) => only.includes(k.name));
  if (only !== undefined && kinds.length !== only.length) throw new UserError(`DOTS_BENCH_ABUSE_ONLY names floods of ${KINDS.map((k) => k.name).join(', ')}`);
  const verbose = o.verbose !== false;
  const t0 = Date.now();
  const log = (s: string): void => {
    if (verbose) process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${s}\n`);
  };
  const dir = mkdtempSync(join(tmpdir(), 'dots-bench-abuse-'));
  const datadir = join(dir, 'node');
  const agents: Ua[] = [];
  let node: BenchNode | null = null;
  try {
    for (const [user, password] of Object.entries(PASSWORDS)) {
      const r = await runDots(['user', 'add', user, '--password', password, '--datadir', datadir, '--domain', DOMAIN]);
      if (r.code !== 0) throw new Error(`dots user add ${user}: ${r.stderr.trim()}`);
    }
    node = await BenchNode.start({ name: 'node', datadir, logFile: join(dir, 'node.log'), args: ['--domain', DOMAIN, '--sip-keepalive', '60'] });
    const port = node.sipPort;
    const pid = node.pid as number;
    log(`node sip:127.0.0.1:${port}, log ${join(dir, 'node.log')}`);
    const [alice, bob, carol] = await Promise.all([new Ua('127.0.0.3').open(), new Ua('127.0.0.4').open(), new Ua('127.0.0.5').open()]);
    agents.push(alice, bob, carol);
    answering(bob);
    for (const [ua, user] of [[bob, 'bob'], [carol, 'carol']] as const) {
      const s = await ua.registerWithDigest(port, user, DOMAIN, PASSWORDS[user], 3600, rnd(), 1, ATTEMPT_MS);
      if (s !== 200) throw new Error(`${user} could not register (${s})`);
    }
    const rows: Row[] = [];
    const measure = async (name: string, what: string, flood: Flood | null): Promise<void> => {
      let peak = memory(pid).rss;
      const drops0 = kernelDrops();
      const sampler = setInterval(() => (peak = Math.max(peak, memory(pid).rss)), 200);
      if (flood !== null) await sleep(1000); // the flood is under way before the phone starts
      const l = await legitimate(alice, port, Date.now() + o.seconds * 1000);
      flood?.stop();
      const sent = flood === null ? 0 : await flood.done;
      clearInterval(sampler);
      peak = Math.max(peak, memory(pid).rss);
      const drops = kernelDrops() - drops0;
      const reg = l.register.sort((x, y) => x - y);
      const cl = l.call.sort((x, y) => x - y);
      const row = {
        flood: name,
        what,
        sent,
        legit: `${l.ok}/${l.attempts}`,
        'register p50 ms': rounded(quantile(reg, 0.5), 1),
        'register p99 ms': rounded(quantile(reg, 0.99), 1),
        'call p50 ms': rounded(quantile(cl, 0.5), 1),
        'call p99 ms': rounded(quantile(cl, 0.99), 1),
        'peak MB': Math.round(peak / 2 ** 20),
        'kernel drops': drops,
      };
      log(`${name}: ${row.legit} ok, register p50/p99 ${row['register p50 ms']}/${row['register p99 ms']} ms, call ${row['call p50 ms']}/${row['call p99 ms']} ms, peak ${row['peak MB']} MB, ${sent} sent, ${drops} dropped by the kernel`);
      rows.push(row);
      await sleep(2000); // what the flood left in flight settles before the next
    };
    await measure('none', 'no flood (the baseline)', null);
    for (const k of kinds) await measure(k.name, k.what(rate), k.start({ port }, rate, o.seconds + 2));
    const all = memory(pid);
    log(`node peak RSS over the whole run (VmHWM): ${Math.round(all.hwm / 2 ** 20)} MB; warnings ${node.counts.warn}, errors ${node.counts.error}`);
    return o.json ? rows : rows.map((r) => ({ ...r, sent: r.sent.toLocaleString('en-US') }));
  } finally {
    for (const a of agents) a.close();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
