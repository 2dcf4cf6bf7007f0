// `dots bench sip`: REGISTER transactions per second that one node sustains with under 1%
// failures (SIPp, 10,000 distinct users, digest authentication off and on), side by side with
// Kamailio 5.6 as a plain in-memory registrar with one worker, in the same run.
//
// Each server first gets every user registered once (a warm-up at a moderate rate: that is
// when the node claims names on the chain and verifies each phone), then the rate search runs
// on refreshes, which is the steady state of a registrar. A rate is sustained when a run of
// `seconds` at that rate completes with under 1% of registrations failed or unfinished. The
// search doubles the rate until a run fails, then bisects. SIPp answers the node's OPTIONS
// keepalives (-aa); Kamailio sends none. With two cores or more, SIPp is pinned to the first
// and the server under test to the second (taskset), so each server has exactly one core and
// SIPp never competes with it: "one worker each" in the literal sense.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addUsers } from '../telecom/users.ts';
import { UserError } from '../core/errors.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIX = join(ROOT, 'test', 'fixtures', 'sipp');
const DOTS_BIN = join(ROOT, 'bin', 'dots.js');
const USERS = 10_000;
const DOMAIN = 'bench.local';

export interface SipBenchOptions {
  seconds: number;
  /** log progress lines to stderr */
  verbose?: boolean;
  /** only these targets (node-open, node-digest, kamailio) */
  only?: string[];
}

interface Trial {
  rate: number;
  ok: boolean;
  success: number;
  failed: number;
  unfinished: number;
  retransmissions: number;
  elapsed: number;
  /** CPU seconds the server used per wall second */
  cores: number;
}

interface Target {
  name: string;
  /** SIPp's port, the same in every run: the phones keep their address, so refreshes update the same bindings */
  sippPort: number;
  /** resolves once the server has finished what the warm-up started (the node's chain work) */
  settle(): Promise<void>;
  port: number;
  scenario: string;
  inf: string;
  /** SIP transactions per registration (2 with a digest challenge) */
  txPerReg: number;
  /** pids whose CPU time counts */
  pids(): number[];
  stop(): Promise<void>;
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** CPU pinning: [sipp's cpu, the server's cpu], or null on one core or without taskset. */
const PIN: [number, number] | null = availableParallelism() >= 2 && has('taskset') ? [0, 1] : null;

/** `cmd args` run on one CPU when pinning is possible. */
function pinned(cpu: number | undefined, cmd: string, args: string[]): [string, string[]] {
  return PIN === null || cpu === undefined ? [cmd, args] : ['taskset', ['-c', String(cpu), cmd, ...args]];
}

async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    // the UDP port must be free too
    const ok = await new Promise<boolean>((resolve) => {
      const u = createSocket('udp4');
      u.once('error', () => resolve(false));
      u.bind(port, '127.0.0.1', () => u.close(() => resolve(true)));
    });
    if (ok) return port;
  }
}

function cpuSeconds(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
      ticks += Number(rest[11]) + Number(rest[12]); // utime, stime
    } catch {
      // gone
    }
  }
  return ticks / 100;
}

function childrenOf(pid: number): number[] {
  const r = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map(Number);
}

function waitExit(c: ChildProcess): Promise<void> {
  return new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r())));
}

async function startNode(dir: string, port: number, open: boolean): Promise<Target> {
  const args = [DOTS_BIN, 'node', '--network', 'regtest', '--datadir', dir, '--api-port', '0', '--p2p-port', '0', '--sip-port', String(port), '--domain', DOMAIN];
  if (open) args.push('--open-registration');
  const [cmd, argv] = pinned(PIN?.[1], process.execPath, args);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`node did not start: ${err}`)), 30_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (/api:\s+http/.test(out)) {
        clearTimeout(t);
        resolve();
      }
    });
    child.once('exit', () => reject(new Error(`node exited: ${err}`)));
  });
  const api = /api:\s+(http:\/\/\S+)\/api\/status/.exec(out)?.[1] ?? '';
  return {
    name: open ? 'dots node, digest off' : 'dots node, digest MD5',
    sippPort: await freePort(),
    settle: async () => {
      // the warm-up made the node sign name commitments: wait until the pool stops growing
      let last = -1;
      for (let i = 0; i < 120; i++) {
        await new Promise((r) => setTimeout(r, 1000));
        const s = (await (await fetch(`${api}/api/status`)).json()) as { pending: number };
        if (s.pending === last) return;
        last = s.pending;
      }
    },
    port,
    scenario: join(FIX, open ? 'register.xml' : 'register-auth.xml'),
    inf: '',
    txPerReg: open ? 1 : 2,
    pids: () => [child.pid as number],
    stop: async () => {
      child.kill('SIGTERM');
      await waitExit(child);
    },
  };
}

async function startKamailio(dir: string, port: number): Promise<Target> {
  const cfg = readFileSync(join(FIX, 'kamailio-registrar.cfg'), 'utf8')
    .replaceAll('@CHILDREN@', '1')
    .replaceAll('@RUNDIR@', dir)
    .replaceAll('127.0.0.1:5070', `127.0.0.1:${port}`);
  const file = join(dir, 'kamailio.cfg');
  writeFileSync(file, cfg);
  const [cmd, argv] = pinned(PIN?.[1], 'kamailio', ['-f', file, '-DD', '-E', '-m', '1024', '-M', '16', '-P', join(dir, 'kamailio.pid')]);
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  // ready when it answers OPTIONS
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`kamailio exited: ${err}`);
    if (await answersOptions(port)) break;
    if (Date.now() > deadline) throw new Error(`kamailio did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    name: 'Kamailio 5.6, 1 worker',
    sippPort: await freePort(),
    settle: () => new Promise((r) => setTimeout(r, 1000)),
    port,
    scenario: join(FIX, 'register.xml'),
    inf: '',
    txPerReg: 1,
    pids: () => [child.pid as number, ...childrenOf(child.pid as number)],
    stop: async () => {
      child.kill('SIGTERM');
      await waitExit(child);
    },
  };
}

function answersOptions(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    const t = setTimeout(() => {
      s.close();
      resolve(false);
    }, 300);
    s.on('message', () => {
      clearTimeout(t);
      s.close();
      resolve(true);
    });
    s.bind(0, '127.0.0.1', () => {
      const lp = s.address().port;
      const m = `OPTIONS sip:127.0.0.1:${port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:${lp};branch=z9hG4bK${Date.now()}\r\nMax-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=1\r\nTo: <sip:127.0.0.1:${port}>\r\nCall-ID: probe${Date.now()}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n`;
      s.send(m, port, '127.0.0.1');
    });
  });
}

/** One SIPp run: `total` registrations at `rate` per second. */
async function sipp(t: Target, dir: string, rate: number, total: number, limitSeconds: number): Promise<Omit<Trial, 'ok' | 'cores'> & { cpu: number }> {
  const stats = join(dir, `stats-${t.port}-${rate}-${Date.now()}.csv`);
  const localPort = t.sippPort;
  const args = [
    `127.0.0.1:${t.port}`,
    '-sf', t.scenario,
    '-inf', t.inf,
    '-i', '127.0.0.1',
    '-p', String(localPort),
    '-r', String(rate),
    '-m', String(total),
    '-l', String(Math.max(1000, rate * 2)),
    '-nostdin', '-aa',
    '-buff_size', '8388608',
    '-max_recv_loops', '100000',
    '-max_sched_loops', '100000',
    '-trace_stat', '-stf', stats, '-fd', '1',
  ];
  const before = cpuSeconds(t.pids());
  const start = Date.now();
  const [cmd, argv] = pinned(PIN?.[0], 'sipp', args);
  const child = spawn(cmd, argv, { stdio: 'ignore' });
  const killer = setTimeout(() => child.kill('SIGINT'), limitSeconds * 1000);
  await waitExit(child);
  clearTimeout(killer);
  const elapsed = (Date.now() - start) / 1000;
  const cpu = cpuSeconds(t.pids()) - before;
  const lines = existsSync(stats) ? readFileSync(stats, 'utf8').trim().split('\n') : [];
  rmSync(stats, { force: true });
  if (lines.length < 2) return { rate, success: 0, failed: total, unfinished: 0, retransmissions: 0, elapsed, cpu };
  const head = lines[0].split(';');
  const last = lines[lines.length - 1].split(';');
  const col = (n: string): number => Number(last[head.indexOf(n)] ?? 0);
  const success = col('SuccessfulCall(C)');
  const failed = col('FailedCall(C)');
  return { rate, success, failed, unfinished: Math.max(0, total - success - failed), retransmissions: col('Retransmissions(C)'), elapsed, cpu };
}

async function trial(t: Target, dir: string, rate: number, seconds: number, log: (s: string) => void): Promise<Trial> {
  const total = Math.round(rate * seconds);
  const r = await sipp(t, dir, rate, total, seconds + 15);
  const bad = r.failed + r.unfinished;
  const ok = bad < total * 0.01 && r.elapsed <= seconds * 1.05 + 1.5;
  const cores = r.cpu / r.elapsed;
  log(`  ${t.name}: ${rate}/s for ${seconds}s -> ${r.success} ok, ${r.failed} failed, ${r.unfinished} unfinished, ${r.retransmissions} retransmissions, ${r.elapsed.toFixed(1)}s, server ${cores.toFixed(2)} cores: ${ok ? 'sustained' : 'not sustained'}`);
  return { ...r, ok, cores };
}

async function search(t: Target, dir: string, seconds: number, log: (s: string) => void): Promise<Trial | null> {
  // warm-up: every user registered once
  log(`  ${t.name}: warm-up, ${USERS} users`);
  await sipp(t, dir, 2000, USERS, 60);
  await t.settle();
  let best: Trial | null = null;
  let lo = 0;
  let hi = 0;
  let rate = 4000;
  // grow until a run fails
  for (;;) {
    const r = await trial(t, dir, rate, seconds, log);
    if (r.ok) {
      best = r;
      lo = rate;
      rate *= 2;
      if (rate > 200_000) return best;
    } else {
      hi = rate;
      break;
    }
  }
  // bisect to within 10%
  while (hi - lo > Math.max(500, lo * 0.1)) {
    const mid = Math.round((lo + hi) / 2 / 100) * 100;
    const r = await trial(t, dir, mid, seconds, log);
    if (r.ok) {
      best = r;
      lo = mid;
    } else hi = mid;
  }
  return best;
}

export async function benchSip(o: SipBenchOptions): Promise<Array<Record<string, string | number>>> {
  if (!has('sipp')) throw new UserError('dots bench sip needs SIPp: apt-get install sip-tester');
  const log = (s: string): void => {
    if (o.verbose !== false) process.stderr.write(s + '\n');
  };
  const dir = mkdtempSync(join(tmpdir(), 'dots-bench-sip-'));
  const rows: Array<Record<string, string | number>> = [];
  log(PIN === null ? 'sipp and the servers share the CPUs (one core or no taskset)' : `sipp on cpu ${PIN[0]}, each server on cpu ${PIN[1]}`);
  try {
    const open = join(dir, 'users-open.csv');
    const auth = join(dir, 'users-auth.csv');
    const lines = ['SEQUENTIAL'];
    const alines = ['SEQUENTIAL'];
    for (let i = 0; i < USERS; i++) {
      lines.push(`u${i};${DOMAIN};`);
      alines.push(`u${i};${DOMAIN};[authentication username=u${i} password=pw${i}];`);
    }
    writeFileSync(open, lines.join('\n') + '\n');
    writeFileSync(auth, alines.join('\n') + '\n');
    const only = o.only ?? process.env.DOTS_BENCH_SIP_ONLY?.split(',');
    const want = (n: string): boolean => only === undefined || only.includes(n);
    const plan: Array<{ key: string; start: () => Promise<Target>; inf: string }> = [];
    if (want('node-open')) plan.push({ key: 'node-open', inf: open, start: async () => startNode(join(dir, 'node-open'), await freePort(), true) });
    if (want('node-digest')) {
      plan.push({
        key: 'node-digest',
        inf: auth,
        start: async () => {
          const d = join(dir, 'node-digest');
          mkdirSync(d, { recursive: true });
          addUsers(d, Array.from({ length: USERS }, (_, i) => ({ name: `u${i}`, password: `pw${i}` })), DOMAIN);
          return startNode(d, await freePort(), false);
        },
      });
    }
    if (want('kamailio')) {
      if (has('kamailio')) plan.push({ key: 'kamailio', inf: open, start: async () => startKamailio(dir, await freePort()) });
      else rows.push({ server: 'Kamailio 5.6, 1 worker', 'REGISTER/s': 'not installed (apt-get install kamailio)', 'transactions/s': '', 'server cores': '', retransmissions: '' });
    }
    for (const p of plan) {
      log(`${p.key}: starting`);
      const t = await p.start();
      t.inf = p.inf;
      try {
        const best = await search(t, dir, o.seconds, log);
        rows.push({
          server: t.name,
          'REGISTER/s': best === null ? 0 : best.rate,
          'transactions/s': best === null ? 0 : best.rate * t.txPerReg,
          'server cores': best === null ? '' : best.cores.toFixed(2),
          retransmissions: best === null ? '' : best.retransmissions,
        });
      } finally {
        await t.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return rows;
}
