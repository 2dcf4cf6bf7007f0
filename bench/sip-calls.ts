// `dots bench calls`: the call numbers of two nodes (issue #5). Node A serves a.test, node B
// b.test, both `dots node` processes on regtest that know each other only through the peer
// network; B learns from the chain (tip plus pending records) that A serves A's users.
//
// 1. Calls per second the two nodes route with under 1% failures. A SIPp caller at B calls the
//    users u0..u99@a.test in turn (100 distinct names, each registered at A with the same SIPp
//    callee as its contact). A call is INVITE, 100, 200, ACK, BYE, 200, with both nodes
//    record-routing, so every message of the call crosses B and A. A rate is sustained when a
//    window of `seconds` at that rate ends with under 1% of the calls failed or unfinished; the
//    search doubles the rate until a window fails, then bisects (like `dots bench sip`).
// 2. What a node adds to an INVITE: INVITE to 200 measured from Node (hrtime) at 50 calls/s,
//    straight to the SIPp callee and through B and A; a node adds half the difference.
// 3. How soon a phone that registers at A can be called from B: the name is claimed and bound
//    once (setup), the phone unregisters and B sees it offline; then it registers again and a
//    caller at B tries every 10 ms until an INVITE reaches the phone. That is REGISTER, A's
//    OPTIONS check of the contact, the binding signed and pending at A, gossiped to B.
//
// The calls are short (-d 0 by default: BYE right after ACK). Call receipts pay whole seconds
// (unix times of the 200 and the BYE at the node), so only the calls whose 200 and BYE fall on
// both sides of a second boundary earn one: a few per second normally, many more once the nodes
// fall behind. Those receipts are part of what the nodes do here (B asks A to countersign).
//
// CPUs (DOTS_BENCH_CALLS_PIN, see PIN below): by default nothing is pinned, so the two nodes and
// SIPp share the machine's cores as the scheduler sees fit, the conditions of the Kamailio figure
// in shared/phones (7,000 calls/s with Record-Route, SIPp on the same 2 cores). `split` gives
// the nodes one core between them and SIPp the other (a per-core figure, about 60% of the
// default on 2 cores). Each window's log line says how many cores each process used and how
// much went to other processes on the machine: other work there moves the figure.
// The nodes get --sip-keepalive 60 so OPTIONS pings stay out of the way. Processes are stopped
// through their own handles, never by name.
//
// Knobs for looking closer (environment): DOTS_BENCH_CALLS_ONLY=rate,latency,reach;
// DOTS_BENCH_CALLS_RATES=800,1000 (these windows, no search); DOTS_BENCH_CALLS_CALL_MS=1500 (ms
// from ACK to BYE; calls of a second or more all earn receipts); DOTS_BENCH_CALLS_LOGS=DIR (keep
// the node logs); DOTS_BENCH_CALLS_NODE_ARGS="--trace-gc" (flags for the nodes' Node.js).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { cpSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { getHeader, getHeaders, parseMessage, splitHeaderList, type SipRequest, type SipResponse } from '../sip/message.ts';
import { UserError } from '../core/errors.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DOTS_BIN = join(ROOT, 'bin', 'dots.js');
const UAS_SCENARIO = join(ROOT, 'test', 'fixtures', 'sipp', 'uas-call.xml');
const UAC_SCENARIO = join(ROOT, 'bench', 'sipp', 'uac-calls.xml');
const DOMAIN_A = 'a.test';
const DOMAIN_B = 'b.test';

type Row = Record<string, string | number>;

export interface CallsBenchOptions {
  /** the window each rate is held for, seconds */
  seconds: number;
  /** JSON rows (numbers) instead of table rows */
  json?: boolean;
  /** progress lines to stderr (default true) */
  verbose?: boolean;
  /** distinct callees at A (default 100) */
  users?: number;
  /** ms between ACK and BYE (SIPp -d, default 0) */
  callMs?: number;
  /** the first rate tried (default 500 calls/s) */
  startRate?: number;
  /** re-registrations timed for the third figure (default 5) */
  reachRuns?: number;
  /** only these parts (rate, latency, reach); also DOTS_BENCH_CALLS_ONLY=rate,latency */
  only?: string[];
}

// ---------------------------------------------------------------------------
// processes

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

type Role = 'sipp' | 'a' | 'b';

/**
 * Which CPU each process runs on (taskset), by DOTS_BENCH_CALLS_PIN:
 * - none (default): wherever the scheduler puts them;
 * - split: the SIPp caller and callee on cpu 0, nodes A and B on cpu 1;
 * - each: SIPp and node A on cpu 0, node B on cpu 1.
 * Nothing is pinned on one core or without taskset.
 */
const PIN_ASKED = process.env.DOTS_BENCH_CALLS_PIN ?? 'none';
const PIN_MODE = availableParallelism() >= 2 && has('taskset') ? PIN_ASKED : 'none';
const PIN: Record<Role, number> | null = PIN_MODE === 'split' ? { sipp: 0, a: 1, b: 1 } : PIN_MODE === 'each' ? { sipp: 0, a: 0, b: 1 } : null;

function pinned(role: Role, cmd: string, args: string[]): [string, string[]] {
  return PIN === null ? [cmd, args] : ['taskset', ['-c', String(PIN[role]), cmd, ...args]];
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function waitExit(c: ChildProcess, ms = 10_000): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const t = setTimeout(() => {
      c.kill('SIGKILL');
    }, ms);
    c.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** CPU seconds (user + system) of a process, 0 once it is gone. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / 100;
  } catch {
    return 0;
  }
}

function freeUdpPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });
}

/** A `dots node` process on regtest with free ports; its stderr (the log) is kept for the report. */
class NodeProc {
  readonly lines: string[] = [];
  /** log lines by level since start */
  readonly counts = { warn: 0, error: 0, other: 0 };
  /** the last warn/error lines, for the report */
  readonly problems: string[] = [];
  /** warn/error lines by what they say (hex ids, peer ids and numbers blanked) */
  readonly kinds = new Map<string, number>();
  p2p = '';
  api = '';
  sipPort = 0;
  /** resolves once the log file is complete (the node's stderr closed) */
  logged: Promise<void> = Promise.resolve();

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {}

  static async start(name: 'A' | 'B', datadir: string, domain: string, extra: string[], logFile: string): Promise<NodeProc> {
    // DOTS_BENCH_CALLS_NODE_ARGS: flags for the nodes' Node.js (--trace-gc, --cpu-prof, ...)
    const nodeArgs = (process.env.DOTS_BENCH_CALLS_NODE_ARGS ?? '').split(/\s+/).filter((x) => x !== '');
    const args = [...nodeArgs, DOTS_BIN, 'node', '--network', 'regtest', '--datadir', datadir, '--domain', domain, '--open-registration', '--p2p-port', '0', '--sip-port', '0', '--api-port', '0', '--sip-keepalive', '60', ...extra];
    const [cmd, argv] = pinned(name === 'A' ? 'a' : 'b', process.execPath, args);
    const proc = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const n = new NodeProc(name, proc);
    const file = createWriteStream(logFile);
    file.on('error', () => undefined);
    n.logged = new Promise((resolve) => file.once('close', () => resolve()));
    const write = (l: string): void => {
      if (!file.writableEnded) file.write(l + '\n');
    };
    // what the node prints on stdout goes to its log file too (addresses; --trace-gc lines)
    createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => write(`${new Date().toISOString()} stdout ${l}`));
    const errLines = createInterface({ input: proc.stderr as NodeJS.ReadableStream });
    errLines.once('close', () => file.end());
    errLines.on('line', (l) => {
      write(l);
      const lv = / (warn|error) /.exec(l.slice(0, 40))?.[1];
      if (lv === 'warn' || lv === 'error') {
        n.counts[lv]++;
        n.problems.push(l);
        if (n.problems.length > 50) n.problems.shift();
        const kind = l
          .replace(/^\S+\s+/, '')
          .replace(/12D3KooW[.\w]*/g, 'PEER')
          .replace(/[0-9a-f]{8,}/g, 'ID')
          .replace(/\d+/g, 'N');
        n.kinds.set(kind, (n.kinds.get(kind) ?? 0) + 1);
      } else n.counts.other++;
      n.lines.push(l);
      if (n.lines.length > 2000) n.lines.splice(0, 500);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        proc.kill('SIGKILL');
        reject(new Error(`node ${name} did not start in 60 s:\n${n.lines.slice(-20).join('\n')}`));
      }, 60_000);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`node ${name} exited with ${code} at start:\n${n.lines.slice(-20).join('\n')}`));
      });
      createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        const m = /^(p2p|api|sip):\s+(\S+)/.exec(l);
        if (m?.[1] === 'p2p') n.p2p = m[2];
        if (m?.[1] === 'api') n.api = m[2].replace(/\/api\/status$/, '');
        if (m?.[1] === 'sip') n.sipPort = Number(/:(\d+)$/.exec(m[2])?.[1] ?? 0);
        if (n.p2p !== '' && n.api !== '' && n.sipPort > 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return n;
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  async get<T>(path: string): Promise<{ status: number; body: T }> {
    const res = await fetch(this.api + path);
    return { status: res.status, body: (await res.json()) as T };
  }

  async mine(count = 1): Promise<void> {
    const res = await fetch(this.api + '/api/dev/mine', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ count }) });
    if (res.status !== 200) throw new Error(`${this.name}: mine failed (${res.status}): ${await res.text()}`);
  }

  async binding(name: string): Promise<string> {
    const r = await this.get<{ binding: { status: string } | null }>(`/api/names/${encodeURIComponent(name)}`);
    return r.status === 200 ? (r.body.binding?.status ?? 'unbound') : 'unknown';
  }

  async pending(): Promise<number> {
    return (await this.get<{ pending: number }>('/api/status')).body.pending;
  }

  /**
   * The node's own view of a window, from GET /metrics (prom-client resets the event loop
   * histogram at each scrape, so a scrape before the window and one after bracket it): the
   * longest event loop delay, its p99, and seconds spent in GC so far.
   */
  async health(): Promise<{ lagMaxMs: number; lagP99Ms: number; gcSeconds: number }> {
    try {
      const text = await (await fetch(this.api + '/metrics', { signal: AbortSignal.timeout(5000) })).text();
      const one = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      let gc = 0;
      for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm)) gc += Number(m[1]);
      return { lagMaxMs: one('nodejs_eventloop_lag_max_seconds') * 1000, lagP99Ms: one('nodejs_eventloop_lag_p99_seconds') * 1000, gcSeconds: gc };
    } catch {
      return { lagMaxMs: NaN, lagP99Ms: NaN, gcSeconds: NaN };
    }
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      await waitExit(this.proc, 10_000);
    }
    await Promise.race([this.logged, sleep(2000)]);
  }
}

/** [busy, total] jiffies of all CPUs so far (/proc/stat), for the machine's load during a window. */
function machineTicks(): [number, number] {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.reduce((x, y) => x + y, 0);
    const idle = f[3] + (f[4] ?? 0);
    return [total - idle, total];
  } catch {
    return [NaN, NaN];
  }
}

/** Datagrams the kernel dropped on the UDP sockets bound to `port` (their receive buffer was full). */
function udpDrops(port: number): number {
  try {
    const hex = ':' + port.toString(16).toUpperCase().padStart(4, '0');
    let drops = 0;
    for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 12 && f[1].endsWith(hex)) drops += Number(f[f.length - 1]);
    }
    return drops;
  } catch {
    return NaN;
  }
}

/** The SIPp callee: answers calls (uas-call.xml copies Record-Route) and the nodes' OPTIONS (-aa). */
class Uas {
  private constructor(
    readonly port: number,
    readonly proc: ChildProcess,
    private readonly stats: string,
  ) {}

  static async start(dir: string): Promise<Uas> {
    const port = await freeUdpPort();
    const stats = join(dir, 'uas-stats.csv');
    // no -m: SIPp counts every OPTIONS ping as a call of its own
    const args = ['-sf', UAS_SCENARIO, '-i', '127.0.0.1', '-p', String(port), '-aa', '-nostdin', '-buff_size', '8388608', '-max_recv_loops', '100000', '-max_sched_loops', '100000', '-trace_stat', '-stf', stats, '-fd', '1'];
    const [cmd, argv] = pinned('sipp', 'sipp', args);
    const proc = spawn(cmd, argv, { stdio: 'ignore' });
    const u = new Uas(port, proc, stats);
    // ready when it answers OPTIONS (-aa)
    const probe = await new Ua().open();
    try {
      for (let i = 0; ; i++) {
        if (proc.exitCode !== null) throw new Error(`the SIPp callee exited (${proc.exitCode})`);
        const branch = 'z9hG4bK' + randomBytes(6).toString('hex');
        const r = await probe.transact(optionsText(`sip:probe@127.0.0.1:${port}`, probe.port, branch), branch, port, 300);
        if (r !== null) break;
        if (i > 50) throw new Error('the SIPp callee does not answer');
      }
    } catch (e) {
      await u.stop();
      throw e;
    } finally {
      probe.close();
    }
    return u;
  }

  /** Cumulative retransmissions and failed "calls" (its own count) so far. */
  counters(): { retransmissions: number; failed: number } {
    const s = lastStats(this.stats);
    return { retransmissions: s?.['Retransmissions(C)'] ?? 0, failed: s?.['FailedCall(C)'] ?? 0 };
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGINT');
    await waitExit(this.proc, 5000);
  }
}

/** The last line of a SIPp -trace_stat file as numbers by column (cumulative columns end in (C)). */
function lastStats(file: string): Record<string, number> | null {
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  if (lines.length < 2) return null;
  const head = lines[0].split(';');
  const last = lines[lines.length - 1].split(';');
  const out: Record<string, number> = {};
  head.forEach((h, i) => (out[h] = Number(last[i])));
  return out;
}

// ---------------------------------------------------------------------------
// a small SIP user agent in Node, over UDP: phones, registrations and timed calls

const SDP = 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n';

function rnd(): string {
  return randomBytes(8).toString('hex');
}

function optionsText(ruri: string, localPort: number, branch: string): string {
  return [`OPTIONS ${ruri} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${localPort};rport;branch=${branch}`, 'Max-Forwards: 70', `From: <sip:bench@127.0.0.1>;tag=${rnd()}`, `To: <${ruri}>`, `Call-ID: ${rnd()}`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
}

interface Got {
  res: SipResponse;
  /** hrtime (ns) it arrived */
  at: bigint;
}

class Ua {
  private sock: Socket | null = null;
  port = 0;
  /** branch -> who waits for the final response */
  private readonly waiting = new Map<string, (g: Got) => void>();
  /** requests that reached this UA (other than OPTIONS, answered here) */
  onRequest: ((req: SipRequest, at: bigint, from: RemoteInfo) => void) | null = null;
  /** OPTIONS pings answered, with the time of the last one */
  options = 0;
  lastOptionsAt = 0n;

  async open(): Promise<this> {
    const s = createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    this.sock = s;
    s.on('message', (b, from) => this.onBytes(b, from));
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    this.port = s.address().port;
    return this;
  }

  close(): void {
    this.sock?.close();
    this.sock = null;
    this.waiting.clear();
  }

  send(text: string | Buffer, port: number): void {
    this.sock?.send(typeof text === 'string' ? Buffer.from(text, 'latin1') : text, port, '127.0.0.1');
  }

  /** Sends a request; resolves with its final response, or null after `timeoutMs`. */
  transact(text: string, branch: string, port: number, timeoutMs: number): Promise<Got | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiting.delete(branch);
        resolve(null);
      }, timeoutMs);
      this.waiting.set(branch, (g) => {
        clearTimeout(t);
        resolve(g);
      });
      this.send(text, port);
    });
  }

  private onBytes(b: Buffer, from: RemoteInfo): void {
    const at = process.hrtime.bigint();
    const r = parseMessage(b);
    if (!r.ok) return;
    const m = r.message;
    if (m.kind === 'response') {
      if (m.status < 200) return;
      const via = getHeader(m, 'via') ?? '';
      const branch = /branch=([^;,\s]+)/.exec(via)?.[1] ?? '';
      const w = this.waiting.get(branch);
      if (w === undefined) return;
      this.waiting.delete(branch);
      w({ res: m, at });
      return;
    }
    if (m.method === 'OPTIONS') {
      this.options++;
      this.lastOptionsAt = at;
      this.respond(m, 200, 'OK', from);
      return;
    }
    this.onRequest?.(m, at, from);
  }

  /** Answers a request where it came from (the Vias, From, To with a tag, Call-ID and CSeq copied). */
  respond(req: SipRequest, status: number, reason: string, to: RemoteInfo): void {
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const v of getHeaders(req, 'via')) lines.push(`Via: ${v}`);
    const toHdr = getHeader(req, 'to') ?? '';
    lines.push(`From: ${getHeader(req, 'from') ?? ''}`, `To: ${/;\s*tag=/i.test(toHdr) ? toHdr : `${toHdr};tag=${this.port}`}`, `Call-ID: ${getHeader(req, 'call-id') ?? ''}`, `CSeq: ${getHeader(req, 'cseq') ?? ''}`, 'Content-Length: 0', '', '');
    this.send(lines.join('\r\n'), to.port);
  }

  /** REGISTER user@domain at `port` with `contact`; resolves with the status (0: no answer). */
  async register(port: number, user: string, domain: string, contact: string, expires: number, callId: string, cseq: number): Promise<number> {
    const branch = 'z9hG4bK' + rnd();
    const text = [
      `REGISTER sip:${domain} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};rport;branch=${branch}`,
      'Max-Forwards: 70',
      `From: <sip:${user}@${domain}>;tag=${rnd()}`,
      `To: <sip:${user}@${domain}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq} REGISTER`,
      `Contact: <${contact}>`,
      `Expires: ${expires}`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    for (let attempt = 0; attempt < 3; attempt++) {
      const g = await this.transact(text, branch, port, 2000);
      if (g !== null) return g.res.status;
    }
    return 0;
  }
}

interface CallResult {
  /** final status of the INVITE (0: none) */
  status: number;
  /** INVITE sent to final response, ms */
  ms: number;
  /** the whole call (BYE answered with 200) completed */
  ok: boolean;
}

function hostPort(uri: string): { port: number } | null {
  const m = /sip:(?:[^@;>]*@)?127\.0\.0\.1:(\d+)/.exec(uri);
  return m === null ? null : { port: Number(m[1]) };
}

/**
 * One call from `ua` to `ruri`, sent to 127.0.0.1:`port`: INVITE, and on a 2xx ACK and BYE
 * along the route set the 200 recorded (Record-Route reversed); on a failure, its ACK.
 */
async function call(ua: Ua, port: number, ruri: string, fromUser: string, fromDomain: string, timeoutMs = 4000): Promise<CallResult> {
  const branch = 'z9hG4bK' + rnd();
  const callId = rnd() + '@bench';
  const fromTag = rnd();
  const from = `<sip:${fromUser}@${fromDomain}>;tag=${fromTag}`;
  const contact = `<sip:${fromUser}@127.0.0.1:${ua.port}>`;
  const invite = [
    `INVITE ${ruri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${ua.port};rport;branch=${branch}`,
    'Max-Forwards: 70',
    `From: ${from}`,
    `To: <${ruri}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: ${contact}`,
    'Content-Type: application/sdp',
    `Content-Length: ${SDP.length}`,
    '',
    SDP,
  ].join('\r\n');
  const t0 = process.hrtime.bigint();
  const g = await ua.transact(invite, branch, port, timeoutMs);
  if (g === null) return { status: 0, ms: NaN, ok: false };
  const ms = Number(g.at - t0) / 1e6;
  const res = g.res;
  const to = getHeader(res, 'to') ?? `<${ruri}>`;
  if (res.status >= 300) {
    // the ACK of a failure: same branch, same next hop (RFC 3261 17.1.1.3)
    ua.send([`ACK ${ruri} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${ua.port};rport;branch=${branch}`, 'Max-Forwards: 70', `From: ${from}`, `To: ${to}`, `Call-ID: ${callId}`, 'CSeq: 1 ACK', 'Content-Length: 0', '', ''].join('\r\n'), port);
    return { status: res.status, ms, ok: false };
  }
  // the route set: Record-Route reversed; the remote target: the callee's Contact
  const rr: string[] = [];
  for (const h of getHeaders(res, 'record-route')) rr.push(...splitHeaderList(h));
  const routes = rr.reverse();
  const target = /<([^>]+)>/.exec(getHeader(res, 'contact') ?? '')?.[1] ?? ruri;
  const next = hostPort(routes.length > 0 ? routes[0] : target);
  if (next === null) return { status: res.status, ms, ok: false };
  const inDialog = (method: string, cseq: number, br: string): string =>
    [`${method} ${target} SIP/2.0`, `Via: SIP/2.0/UDP 127.0.0.1:${ua.port};rport;branch=${br}`, 'Max-Forwards: 70', ...routes.map((r) => `Route: ${r}`), `From: ${from}`, `To: ${to}`, `Call-ID: ${callId}`, `CSeq: ${cseq} ${method}`, `Contact: ${contact}`, 'Content-Length: 0', '', ''].join('\r\n');
  ua.send(inDialog('ACK', 1, 'z9hG4bK' + rnd()), next.port);
  const byeBranch = 'z9hG4bK' + rnd();
  const bye = await ua.transact(inDialog('BYE', 2, byeBranch), byeBranch, next.port, timeoutMs);
  return { status: res.status, ms, ok: bye !== null && bye.res.status === 200 };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

// ---------------------------------------------------------------------------
// the three measurements

interface Ctx {
  dir: string;
  a: NodeProc;
  b: NodeProc;
  uas: Uas;
  users: string[];
  usersFile: string;
  log: (s: string) => void;
}

/** Calls at `rate` per second for `seconds` to `port`, each call to ruri(i); INVITE->final times of the answered ones. */
async function timedCalls(ua: Ua, port: number, ruri: (i: number) => string, rate: number, seconds: number): Promise<{ ms: number[]; failed: number; calls: number; slowest: string }> {
  const n = Math.round(rate * seconds);
  const start = Date.now();
  const runs: Array<Promise<CallResult & { at: number }>> = [];
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / rate - Date.now();
    if (wait > 0) await sleep(wait);
    const at = Date.now() - start;
    runs.push(call(ua, port, ruri(i), 'bob', DOMAIN_B).then((r) => ({ ...r, at })));
  }
  const rs = await Promise.all(runs);
  const ms = rs.filter((r) => r.ok).map((r) => r.ms).sort((x, y) => x - y);
  // the slowest calls and when they were made (s into the run): a pattern tells GC from timers
  const slowest = rs
    .filter((r) => r.ok)
    .sort((x, y) => y.ms - x.ms)
    .slice(0, 5)
    .map((r) => `${r.ms.toFixed(1)} ms at ${(r.at / 1000).toFixed(2)} s (${new Date(start + r.at).toISOString().slice(11, 23)})`)
    .join(', ');
  return { ms, failed: rs.filter((r) => !r.ok).length, calls: n, slowest };
}

interface LatencySummary {
  median: number;
  p99: number;
  n: number;
  failed: number;
}

interface Latency {
  direct: LatencySummary;
  through: LatencySummary;
  /** through one Kamailio (record-routing, one worker, on the nodes' cpu), when installed */
  kamailio: LatencySummary | null;
}

function summary(x: { ms: number[]; failed: number }): LatencySummary {
  return { median: quantile(x.ms, 0.5), p99: quantile(x.ms, 0.99), n: x.ms.length, failed: x.failed };
}

/**
 * The same measurement through Kamailio 5.6 (test/fixtures/sipp/kamailio-registrar.cfg: lookup,
 * record_route, t_relay; one worker, on node B's CPU when pinned) with u0 registered to the same
 * callee: what a C proxy adds on this machine, for scale.
 */
async function kamailioLatency(c: Ctx, ua: Ua, rate: number, seconds: number): Promise<LatencySummary | null> {
  if (!has('kamailio')) return null;
  const port = await freeUdpPort();
  const kdir = join(c.dir, 'kamailio');
  mkdirSync(kdir, { recursive: true });
  const cfg = readFileSync(join(ROOT, 'test', 'fixtures', 'sipp', 'kamailio-registrar.cfg'), 'utf8')
    .replaceAll('@CHILDREN@', '1')
    .replaceAll('@RUNDIR@', kdir)
    .replaceAll('127.0.0.1:5070', `127.0.0.1:${port}`);
  writeFileSync(join(kdir, 'kamailio.cfg'), cfg);
  const [cmd, argv] = pinned('b', 'kamailio', ['-f', join(kdir, 'kamailio.cfg'), '-DD', '-E', '-m', '256', '-M', '16', '-P', join(kdir, 'kamailio.pid')]);
  const k = spawn(cmd, argv, { stdio: 'ignore' });
  try {
    let up = false;
    for (let i = 0; i < 50 && !up && k.exitCode === null; i++) {
      const branch = 'z9hG4bK' + rnd();
      up = (await ua.transact(optionsText(`sip:127.0.0.1:${port}`, ua.port, branch), branch, port, 200)) !== null;
    }
    if (!up) {
      c.log('  kamailio did not start; no reference');
      return null;
    }
    const reg = await ua.register(port, 'u0', 'bench.local', `sip:u0@127.0.0.1:${c.uas.port}`, 3600, `k-${rnd()}`, 1);
    if (reg !== 200) {
      c.log(`  kamailio answered REGISTER with ${reg}; no reference`);
      return null;
    }
    await timedCalls(ua, port, () => 'sip:u0@bench.local', rate, 1);
    const t = await timedCalls(ua, port, () => 'sip:u0@bench.local', rate, seconds);
    c.log(`  slowest through Kamailio: ${t.slowest}`);
    return summary(t);
  } finally {
    if (k.exitCode === null) k.kill('SIGTERM');
    await waitExit(k, 5000);
  }
}

async function latency(c: Ctx, rate: number, seconds: number): Promise<Latency> {
  const ua = await new Ua().open();
  try {
    const user = (i: number): string => c.users[i % c.users.length];
    // warm-up through both nodes (JIT), not counted
    await timedCalls(ua, c.b.sipPort, (i) => `sip:${user(i)}@${DOMAIN_A}`, rate, 1);
    const d = await timedCalls(ua, c.uas.port, (i) => `sip:${user(i)}@127.0.0.1:${c.uas.port}`, rate, seconds);
    const t = await timedCalls(ua, c.b.sipPort, (i) => `sip:${user(i)}@${DOMAIN_A}`, rate, seconds);
    c.log(`  slowest direct: ${d.slowest}`);
    c.log(`  slowest through B and A: ${t.slowest}`);
    const k = await kamailioLatency(c, ua, rate, seconds);
    return { direct: summary(d), through: summary(t), kamailio: k };
  } finally {
    ua.close();
  }
}

interface Reach {
  /** REGISTER sent to INVITE at the phone, ms, one per run */
  ms: number[];
  /** REGISTER sent to A's OPTIONS check at the phone, ms */
  optionsMs: number[];
  /** REGISTER sent to its 200, ms */
  registerMs: number[];
  /** calls B answered 480 before the one that got through, in all */
  refused: number;
  failedRuns: number;
}

/**
 * The third figure. `phone` has been registered once as `user`, the name bound, and B has seen
 * it offline again. Each run: REGISTER, then a call from B every `everyMs` until one reaches
 * the phone (answered 486 Busy Here, so it ends there); then unregister and wait for B to see it.
 */
async function reachability(c: Ctx, phone: Ua, user: string, runs: number, everyMs: number): Promise<Reach> {
  const name = `sip:${user}@${DOMAIN_A}`;
  const caller = await new Ua().open();
  const out: Reach = { ms: [], optionsMs: [], registerMs: [], refused: 0, failedRuns: 0 };
  let cseq = 10;
  let arrived: bigint | null = null;
  phone.onRequest = (req, at, from) => {
    if (req.method === 'INVITE') {
      if (arrived === null) arrived = at;
      phone.respond(req, 486, 'Busy Here', from);
    }
  };
  try {
    for (let run = 0; run < runs; run++) {
      arrived = null;
      const optionsBefore = phone.options;
      const t0 = process.hrtime.bigint();
      const reg = phone.register(c.a.sipPort, user, DOMAIN_A, `sip:${user}@127.0.0.1:${phone.port}`, 3600, `reach-${user}`, ++cseq).then((st) => [st, process.hrtime.bigint()] as const);
      const calls: Array<Promise<CallResult>> = [];
      const deadline = Date.now() + 15_000;
      while (arrived === null && Date.now() < deadline) {
        calls.push(call(caller, c.b.sipPort, `sip:${user}@${DOMAIN_A}`, 'bob', DOMAIN_B, 3000));
        await sleep(everyMs);
      }
      const [regStatus, regAt] = await reg;
      const results = await Promise.all(calls);
      const got = arrived as bigint | null;
      if (got === null || regStatus !== 200) {
        out.failedRuns++;
        c.log(`  reachability run ${run + 1}: ${regStatus !== 200 ? `REGISTER got ${regStatus}` : 'no INVITE within 15 s'}`);
      } else {
        out.ms.push(Number(got - t0) / 1e6);
        out.registerMs.push(Number(regAt - t0) / 1e6);
        if (phone.options > optionsBefore) out.optionsMs.push(Number(phone.lastOptionsAt - t0) / 1e6);
        const refused = results.filter((r) => r.status === 480).length;
        out.refused += refused;
        const other = results.filter((r) => r.status !== 480 && r.status !== 486);
        c.log(`  reachability run ${run + 1}: INVITE at the phone ${out.ms[out.ms.length - 1].toFixed(0)} ms after REGISTER (200 after ${out.registerMs[out.registerMs.length - 1].toFixed(1)} ms, OPTIONS check after ${phone.options > optionsBefore ? out.optionsMs[out.optionsMs.length - 1].toFixed(1) : '?'} ms); ${refused} calls answered 480 before${other.length > 0 ? `, ${other.length} other answers: ${[...new Set(other.map((r) => r.status))].join(', ')}` : ''}`);
      }
      // unregister, and wait until B sees the phone offline again
      await phone.register(c.a.sipPort, user, DOMAIN_A, `sip:${user}@127.0.0.1:${phone.port}`, 0, `reach-${user}`, ++cseq);
      await waitFor(`B to see ${name} offline`, async () => ((await c.b.binding(name)) === 'offline' ? true : undefined), 15_000, 50);
    }
  } finally {
    phone.onRequest = null;
    caller.close();
  }
  return out;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

interface Trial {
  rate: number;
  ok: boolean;
  success: number;
  failed: number;
  unfinished: number;
  retransmissions: number;
  uasRetransmissions: number;
  elapsed: number;
  /** cores used per wall second: node A, node B, SIPp caller, SIPp callee, and all processes */
  cores: { a: number; b: number; uac: number; uas: number; machine: number };
  /** log lines at warn/error level the nodes wrote during the window */
  nodeProblems: number;
  /** per node: longest event loop delay (ms), GC seconds, datagrams dropped on its SIP socket */
  health: { a: Health; b: Health };
  why: string;
}

interface Health {
  lagMaxMs: number;
  gcSeconds: number;
  drops: number;
}

/**
 * What SIPp's -trace_err file says about failed calls, by kind, most frequent first: the
 * response received instead of the one expected (with its Warning, which says which node gave
 * up and why), or the other reason SIPp gives.
 */
function failureKinds(file: string): string {
  if (!existsSync(file)) return '';
  const kinds = new Map<string, number>();
  for (const chunk of readFileSync(file, 'latin1').split(/(?=^.*Aborting call)/m)) {
    if (!chunk.includes('Aborting call')) continue;
    const got = /received '(SIP\/2\.0 \d{3}[^\r\n']*|[A-Z]+ )/.exec(chunk)?.[1];
    const expecting = /while expecting '([^']+)'/.exec(chunk)?.[1];
    const warning = /^Warning:\s*(.*)$/im.exec(chunk)?.[1]?.trim();
    const k =
      got !== undefined
        ? `got ${got.trim()}${warning !== undefined ? ` (Warning: ${warning})` : ''}${expecting !== undefined ? ` expecting ${expecting}` : ''}`
        : chunk.split('\n')[0].replace(/^.*?Aborting/, 'Aborting').replace(/'[^']*'/g, "'..'").replace(/\d+/g, 'N').slice(0, 100);
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  return [...kinds].sort((x, y) => y[1] - x[1]).slice(0, 4).map(([k, n]) => `${n} x ${k}`).join('; ');
}

/** One window: `rate` calls/s for `seconds` from SIPp at B; stopped early once it has clearly failed. */
async function trial(c: Ctx, rate: number, seconds: number, callMs: number): Promise<Trial> {
  const total = Math.round(rate * seconds);
  const stats = join(c.dir, `uac-${rate}-${Date.now()}.csv`);
  const errors = join(c.dir, `uac-${rate}-${Date.now()}-errors.log`);
  const args = [
    `127.0.0.1:${c.b.sipPort}`,
    '-sf', UAC_SCENARIO,
    '-inf', c.usersFile,
    '-key', 'domain', DOMAIN_A,
    '-key', 'caller', 'bob',
    '-key', 'caller_domain', DOMAIN_B,
    '-i', '127.0.0.1',
    '-p', '0',
    '-r', String(rate),
    '-m', String(total),
    '-l', String(Math.max(200, rate * 3)),
    '-d', String(callMs),
    '-nostdin',
    '-buff_size', '8388608',
    '-max_recv_loops', '100000',
    '-max_sched_loops', '100000',
    '-trace_stat', '-stf', stats, '-fd', '1',
    '-trace_err', '-error_file', errors,
  ];
  const pids = { a: c.a.pid, b: c.b.pid, uas: c.uas.proc.pid };
  const [ha0, hb0] = await Promise.all([c.a.health(), c.b.health()]);
  const drops0 = { a: udpDrops(c.a.sipPort), b: udpDrops(c.b.sipPort) };
  const ticks0 = machineTicks();
  const before = { a: cpuSeconds(pids.a), b: cpuSeconds(pids.b), uas: cpuSeconds(pids.uas) };
  const uasBefore = c.uas.counters();
  const problemsBefore = c.a.counts.warn + c.a.counts.error + c.b.counts.warn + c.b.counts.error;
  const start = Date.now();
  const [cmd, argv] = pinned('sipp', 'sipp', args);
  const child = spawn(cmd, argv, { stdio: 'ignore' });
  let uacCpu = 0;
  let why = '';
  const limit = seconds * 1.05 + 2;
  const watch = setInterval(() => {
    uacCpu = cpuSeconds(child.pid);
    const s = lastStats(stats);
    const t = (Date.now() - start) / 1000;
    if (s !== null && why === '') {
      // clearly failed: stop the window now rather than wait for its end
      if ((s['FailedCall(C)'] ?? 0) > total * 0.01) why = `${s['FailedCall(C)']} failed by ${t.toFixed(0)} s`;
      else if ((s['CurrentCall'] ?? 0) > Math.max(200, rate * 2)) why = `${s['CurrentCall']} calls open at ${t.toFixed(0)} s`;
    }
    if (why === '' && t > limit) why = `not done after ${limit.toFixed(0)} s`;
    if (why !== '' && child.exitCode === null) child.kill('SIGINT');
  }, 500);
  await waitExit(child, 600_000);
  clearInterval(watch);
  const elapsed = (Date.now() - start) / 1000;
  const cores = {
    a: (cpuSeconds(pids.a) - before.a) / elapsed,
    b: (cpuSeconds(pids.b) - before.b) / elapsed,
    uac: uacCpu / elapsed,
    uas: (cpuSeconds(pids.uas) - before.uas) / elapsed,
    machine: 0,
  };
  const ticks1 = machineTicks();
  cores.machine = ((ticks1[0] - ticks0[0]) / (ticks1[1] - ticks0[1])) * availableParallelism();
  const [ha1, hb1] = await Promise.all([c.a.health(), c.b.health()]);
  const health = {
    a: { lagMaxMs: ha1.lagMaxMs, gcSeconds: ha1.gcSeconds - ha0.gcSeconds, drops: udpDrops(c.a.sipPort) - drops0.a },
    b: { lagMaxMs: hb1.lagMaxMs, gcSeconds: hb1.gcSeconds - hb0.gcSeconds, drops: udpDrops(c.b.sipPort) - drops0.b },
  };
  await sleep(1100); // the callee's stats line for the last second
  const s = lastStats(stats);
  rmSync(stats, { force: true });
  const errorKinds = failureKinds(errors);
  rmSync(errors, { force: true });
  const success = s?.['SuccessfulCall(C)'] ?? 0;
  const failed = s?.['FailedCall(C)'] ?? 0;
  const unfinished = Math.max(0, total - success - failed);
  const bad = failed + unfinished;
  const ok = why === '' && bad < total * 0.01 && elapsed <= seconds * 1.05 + 1.5;
  if (why === '' && !ok) why = bad >= total * 0.01 ? `${bad} of ${total} failed or unfinished` : `took ${elapsed.toFixed(1)} s`;
  const uasAfter = c.uas.counters();
  const nodeProblems = c.a.counts.warn + c.a.counts.error + c.b.counts.warn + c.b.counts.error - problemsBefore;
  const r: Trial = { rate, ok, success, failed, unfinished, retransmissions: s?.['Retransmissions(C)'] ?? 0, uasRetransmissions: uasAfter.retransmissions - uasBefore.retransmissions, elapsed, cores, nodeProblems, health, why };
  const h = (x: Health): string => `loop delay max ${x.lagMaxMs.toFixed(0)} ms, GC ${x.gcSeconds.toFixed(2)} s, ${x.drops} dropped`;
  c.log(
    `  ${rate} calls/s for ${seconds} s: ${success} ok, ${failed} failed, ${unfinished} unfinished, retransmissions ${r.retransmissions} (caller) ${r.uasRetransmissions} (callee), ${elapsed.toFixed(1)} s; cores A ${cores.a.toFixed(2)} B ${cores.b.toFixed(2)} caller ${cores.uac.toFixed(2)} callee ${cores.uas.toFixed(2)}, all other processes ${Math.max(0, cores.machine - cores.a - cores.b - cores.uac - cores.uas).toFixed(2)}; A: ${h(health.a)}; B: ${h(health.b)}; node warnings ${nodeProblems}: ${ok ? 'sustained' : `not sustained (${why})`}`,
  );
  if (failed > 0 && errorKinds !== '') c.log(`    why SIPp failed calls: ${errorKinds}`);
  return r;
}

/**
 * Waits (at least `minMs`) until the nodes are quiet again: after a window that failed, the
 * callee goes on retransmitting the 200s of the calls SIPp left open (up to 32 s), and they
 * cross both nodes; the next window should not start in that storm.
 */
async function settle(c: Ctx, minMs: number): Promise<void> {
  const t0 = Date.now();
  await sleep(minMs);
  for (;;) {
    const before = cpuSeconds(c.a.pid) + cpuSeconds(c.b.pid);
    await sleep(1000);
    const used = cpuSeconds(c.a.pid) + cpuSeconds(c.b.pid) - before;
    if (used < 0.1) break;
    if (Date.now() - t0 > 40_000) {
      c.log(`  the nodes are still busy (${used.toFixed(2)} cores) ${((Date.now() - t0) / 1000).toFixed(0)} s after the window`);
      return;
    }
  }
  if (Date.now() - t0 > minMs + 1500) c.log(`  quiet again after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

async function search(c: Ctx, seconds: number, callMs: number, startRate: number): Promise<{ best: Trial | null; failedAt: Trial | null; trials: number }> {
  let best: Trial | null = null;
  let failedAt: Trial | null = null;
  let trials = 0;
  let lo = 0;
  let hi = 0;
  let rate = startRate;
  const run = async (r: number): Promise<Trial> => {
    trials++;
    const t = await trial(c, r, seconds, callMs);
    await settle(c, t.ok ? 1000 : 3000);
    return t;
  };
  for (;;) {
    const t = await run(rate);
    if (t.ok) {
      best = t;
      lo = rate;
      if (rate >= 100_000) return { best, failedAt, trials };
      rate *= 2;
    } else {
      failedAt = t;
      hi = rate;
      break;
    }
  }
  // bisect to within 10% (and 50 calls/s)
  while (hi - lo > Math.max(50, lo * 0.1)) {
    const mid = Math.round((lo + hi) / 2 / 50) * 50;
    if (mid <= lo || mid >= hi) break;
    const t = await run(mid);
    if (t.ok) {
      best = t;
      lo = mid;
    } else {
      failedAt = t;
      hi = mid;
    }
  }
  return { best, failedAt, trials };
}

// ---------------------------------------------------------------------------

export async function benchCalls(o: CallsBenchOptions): Promise<Row[]> {
  if (!has('sipp')) throw new UserError('dots bench calls needs SIPp: apt-get install sip-tester');
  if (!['none', 'split', 'each'].includes(PIN_ASKED)) throw new UserError(`DOTS_BENCH_CALLS_PIN must be none, split or each, got "${PIN_ASKED}"`);
  const verbose = o.verbose !== false;
  const t0 = Date.now();
  const log = (s: string): void => {
    if (verbose) process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${s}\n`);
  };
  const nUsers = o.users ?? 100;
  const callMs = o.callMs ?? Number(process.env.DOTS_BENCH_CALLS_CALL_MS ?? 0);
  if (!(Number.isInteger(callMs) && callMs >= 0)) throw new UserError('DOTS_BENCH_CALLS_CALL_MS must be a whole number of ms');
  const reachRuns = o.reachRuns ?? 5;
  const load0 = loadavg()[0];
  const dir = mkdtempSync(join(tmpdir(), 'dots-bench-calls-'));
  const started: Array<{ stop(): Promise<void> }> = [];
  const uas: Ua[] = [];
  log(PIN === null ? 'no CPU pinning' : `pinning (${PIN_MODE}): SIPp caller and callee on cpu ${PIN.sipp}, node A on cpu ${PIN.a}, node B on cpu ${PIN.b}`);
  try {
    // ---- setup: two nodes, the callee, 100 users and one phone registered at A, names bound
    const a = await NodeProc.start('A', join(dir, 'a'), DOMAIN_A, [], join(dir, 'node-a.log'));
    started.push(a);
    const b = await NodeProc.start('B', join(dir, 'b'), DOMAIN_B, ['--bootstrap', a.p2p], join(dir, 'node-b.log'));
    started.push(b);
    log(`node A sip:127.0.0.1:${a.sipPort} ${a.api}, node B sip:127.0.0.1:${b.sipPort} ${b.api}`);
    const callee = await Uas.start(dir);
    started.push(callee);
    const users = Array.from({ length: nUsers }, (_, i) => `u${i}`);
    const usersFile = join(dir, 'users.csv');
    writeFileSync(usersFile, ['SEQUENTIAL', ...users.map((u) => `${u};`)].join('\n') + '\n');
    const registrar = await new Ua().open();
    uas.push(registrar);
    const phone = await new Ua().open();
    uas.push(phone);
    const late = 'late';
    const regs = await Promise.all(users.map((u) => registrar.register(a.sipPort, u, DOMAIN_A, `sip:${u}@127.0.0.1:${callee.port}`, 3600, `reg-${u}`, 1)));
    regs.push(await phone.register(a.sipPort, late, DOMAIN_A, `sip:${late}@127.0.0.1:${phone.port}`, 3600, `reach-${late}`, 1));
    if (!regs.every((s) => s === 200)) throw new Error(`registrations at A: ${regs.filter((s) => s !== 200).length} not answered 200`);
    const c: Ctx = { dir, a, b, uas: callee, users, usersFile, log };
    const names = [...users, late].map((u) => `sip:${u}@${DOMAIN_A}`);
    log(`${names.length} users registered at A; mining at A until B sees them online (commit, reveal, binding)`);
    let blocks = 0;
    await waitFor(
      'B to see every user of A online',
      async () => {
        const st = await Promise.all(names.map((n) => b.binding(n)));
        if (st.every((s) => s === 'online')) return true;
        await a.mine(1);
        blocks++;
        await sleep(250);
        return undefined;
      },
      90_000,
      0,
    );
    log(`bound after ${blocks} blocks; the phone "${late}" unregisters, B must see it offline`);
    await phone.register(a.sipPort, late, DOMAIN_A, `sip:${late}@127.0.0.1:${phone.port}`, 0, `reach-${late}`, 2);
    await waitFor(`B to see ${late} offline`, async () => ((await b.binding(`sip:${late}@${DOMAIN_A}`)) === 'offline' ? true : undefined), 20_000, 50);
    // confirm what is pending, so B's pool is (nearly) empty when the calls start
    for (let i = 0; i < 10 && ((await a.pending()) > 0 || (await b.pending()) > 0); i++) {
      await a.mine(1);
      await sleep(300);
    }
    log(`pending records: A ${await a.pending()}, B ${await b.pending()}`);

    const only = o.only ?? process.env.DOTS_BENCH_CALLS_ONLY?.split(',');
    const want = (part: string): boolean => only === undefined || only.includes(part);
    const none = { median: NaN, p99: NaN, n: 0, failed: 0 };

    // ---- 2: latency
    let lat: Latency = { direct: none, through: none, kamailio: null };
    if (want('latency')) {
      log('INVITE -> 200 at 50 calls/s: straight to the callee, then through B and A');
      lat = await latency(c, 50, 5);
      log(`  direct: median ${lat.direct.median.toFixed(3)} ms, p99 ${lat.direct.p99.toFixed(3)} ms (${lat.direct.n} calls, ${lat.direct.failed} failed); through B and A: median ${lat.through.median.toFixed(3)} ms, p99 ${lat.through.p99.toFixed(3)} ms (${lat.through.n} calls, ${lat.through.failed} failed)`);
      if (lat.kamailio !== null) log(`  through one Kamailio: median ${lat.kamailio.median.toFixed(3)} ms, p99 ${lat.kamailio.p99.toFixed(3)} ms (${lat.kamailio.n} calls, ${lat.kamailio.failed} failed)`);
    }

    // ---- 3: registration to reachable
    let reach: Reach = { ms: [], optionsMs: [], registerMs: [], refused: 0, failedRuns: 0 };
    if (want('reach')) {
      log(`registration at A to a call from B reaching the phone, ${reachRuns} runs`);
      reach = await reachability(c, phone, late, reachRuns, 10);
      for (let i = 0; i < 5 && ((await a.pending()) > 0 || (await b.pending()) > 0); i++) {
        await a.mine(1);
        await sleep(300);
      }
    }

    // ---- 1: rate search
    const seconds = o.seconds;
    let sr: Awaited<ReturnType<typeof search>> = { best: null, failedAt: null, trials: 0 };
    if (want('rate')) {
      log(`calls per second from B to ${nUsers} users at A, ${seconds} s windows, BYE ${callMs} ms after ACK`);
      // DOTS_BENCH_CALLS_RATES=800,900: just these windows, no search (to look at one rate)
      const fixed = process.env.DOTS_BENCH_CALLS_RATES?.split(',').map(Number).filter((x) => x > 0);
      if (fixed !== undefined && fixed.length > 0) {
        for (const r of fixed) {
          const t = await trial(c, r, seconds, callMs);
          sr.trials++;
          if (t.ok && (sr.best === null || r > sr.best.rate)) sr.best = t;
          if (!t.ok) sr.failedAt = t;
          await sleep(2000);
        }
      } else sr = await search(c, seconds, callMs, o.startRate ?? 500);
    }
    const best = sr.best;
    log(`node A: ${a.counts.warn} warnings, ${a.counts.error} errors; node B: ${b.counts.warn} warnings, ${b.counts.error} errors`);
    for (const n of [a, b]) for (const [k, count] of [...n.kinds].sort((x, y) => y[1] - x[1]).slice(0, 8)) log(`  ${n.name}: ${count} x ${k}`);
    for (const n of [a, b]) for (const l of n.problems.slice(-3)) log(`  ${n.name} (last): ${l}`);

    // ---- the table
    const load1 = loadavg()[0];
    const sortedReach = [...reach.ms].sort((x, y) => x - y);
    const med = (xs: number[]): number => quantile([...xs].sort((x, y) => x - y), 0.5);
    const perNodeMedian = (lat.through.median - lat.direct.median) / 2;
    const perNodeP99 = (lat.through.p99 - lat.direct.p99) / 2;
    const coreNote = (t: Trial): string =>
      `pinning ${PIN_MODE}; cores: A ${t.cores.a.toFixed(2)}, B ${t.cores.b.toFixed(2)}, SIPp caller ${t.cores.uac.toFixed(2)}, callee ${t.cores.uas.toFixed(2)}, other processes ${Math.max(0, t.cores.machine - t.cores.a - t.cores.b - t.cores.uac - t.cores.uas).toFixed(2)} (of ${availableParallelism()})`;
    const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
    const round = (x: number, d: number): number => (Number.isFinite(x) ? Number(x.toFixed(d)) : NaN);
    const rows: Array<{ metric: string; value: number; unit: string; notes: string }> = [];
    if (want('rate')) {
      rows.push({
        metric: 'calls/s through B and A, < 1% failed',
        value: best?.rate ?? 0,
        unit: 'calls/s',
        notes:
          (best === null
            ? `not even ${o.startRate ?? 500}/s`
            : `${seconds} s window, ${nUsers} callees at A, BYE ${callMs} ms after ACK; ${best.success} ok, ${best.failed} failed, ${best.unfinished} unfinished, ${best.retransmissions} retransmissions; ${coreNote(best)}`) +
          (sr.failedAt !== null ? `; ${sr.failedAt.rate}/s failed: ${sr.failedAt.why}` : ''),
      });
    }
    if (want('latency')) {
      rows.push(
        { metric: 'INVITE->200 straight to the callee: median', value: round(lat.direct.median, 3), unit: 'ms', notes: `p99 ${f(lat.direct.p99, 3)} ms; ${lat.direct.n} calls at 50/s, ${lat.direct.failed} failed` },
        { metric: 'INVITE->200 through B and A: median', value: round(lat.through.median, 3), unit: 'ms', notes: `p99 ${f(lat.through.p99, 3)} ms; ${lat.through.n} calls at 50/s, ${lat.through.failed} failed` },
        { metric: 'latency a node adds to an INVITE: median', value: round(perNodeMedian, 3), unit: 'ms', notes: '(through - direct) / 2: the INVITE in and out, and its 200 back' },
        { metric: 'latency a node adds to an INVITE: p99', value: round(perNodeP99, 3), unit: 'ms', notes: '(through p99 - direct p99) / 2' },
      );
      if (lat.kamailio !== null) {
        const k = lat.kamailio;
        rows.push({ metric: 'for scale: latency Kamailio adds: median', value: round(k.median - lat.direct.median, 3), unit: 'ms', notes: `p99 ${f(k.p99 - lat.direct.p99, 3)} ms; one Kamailio 5.6 (1 worker, record-routing) placed like node B, same client and callee; ${k.n} calls, ${k.failed} failed` });
      }
    }
    if (want('reach')) {
      rows.push({
        metric: 'REGISTER at A to a call from B reaching the phone: median',
        value: round(med(reach.ms), 0),
        unit: 'ms',
        notes:
          `${reach.ms.length} runs, min ${f(sortedReach[0] ?? NaN, 0)} max ${f(sortedReach[sortedReach.length - 1] ?? NaN, 0)} ms; a call from B every 10 ms; name bound once before, binding pending and gossiped; ` +
          `REGISTER 200 after ${f(med(reach.registerMs), 1)} ms, A's OPTIONS check after ${f(med(reach.optionsMs), 1)} ms (medians)${reach.failedRuns > 0 ? `; ${reach.failedRuns} runs failed` : ''}`,
      });
    }
    const kinds = [a, b].flatMap((n) => [...n.kinds].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([k, count]) => `${n.name}: ${count} x "${k.slice(0, 100)}"`));
    rows.push({
      metric: 'node log warnings + errors',
      value: a.counts.warn + b.counts.warn + a.counts.error + b.counts.error,
      unit: 'lines',
      notes: `A ${a.counts.warn}/${a.counts.error}, B ${b.counts.warn}/${b.counts.error}${kinds.length > 0 ? ` (${kinds.join('; ')})` : ''}; load average ${load0.toFixed(2)} -> ${load1.toFixed(2)}; ${sr.trials} rate windows; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`,
    });
    if (o.json) return rows;
    return rows.map((r) => ({ metric: r.metric, value: `${r.unit === 'calls/s' || r.unit === 'lines' ? r.value.toLocaleString('en-US') : f(r.value, r.unit === 'ms' && r.value >= 100 ? 0 : 3)} ${r.unit}`, notes: r.notes }));
  } finally {
    for (const u of uas) u.close();
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    const keep = process.env.DOTS_BENCH_CALLS_LOGS;
    if (keep !== undefined && keep !== '') {
      for (const f of ['node-a.log', 'node-b.log']) if (existsSync(join(dir, f))) cpSync(join(dir, f), join(keep, f));
      log(`node logs copied to ${keep}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
