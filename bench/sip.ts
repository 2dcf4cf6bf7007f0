// `dots bench sip`: REGISTER transactions per second that one node sustains with under 1%
// failures (SIPp, 10,000 distinct users, digest authentication off and on), side by side with
// Kamailio 5.6 as an in-memory registrar with one worker, digest off and on (its auth module), in
// the same run.
//
// Each server first gets every user registered once (a warm-up at a moderate rate: that is
// when the node claims names on the chain and verifies each phone), then the rate search runs
// on refreshes, which is the steady state of a registrar. A rate is sustained when a run of
// `seconds` at that rate completes with under 1% of registrations failed or unfinished. The
// search doubles the rate until a run fails, then bisects. SIPp answers the node's OPTIONS
// keepalives (-aa); Kamailio sends none. With two cores or more, SIPp is pinned to the first
// and the server under test to the second (taskset), so each server has exactly one core and
// SIPp never competes with it: "one worker each" in the literal sense.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addUsers } from '../telecom/users.ts';
import { UserError } from '../core/errors.ts';
import { has, NodeProc, waitExit } from '../test/util/proc.ts';
import { freePort } from '../test/util/ports.ts';
import { sleep } from '../test/util/wait.ts';
import { CAN_PIN, cpuTimes, onCpu } from './cpu.ts';
import { startKamailio } from './kamailio.ts';
import { fixedRates, runWindows, searchRate, type Window } from './rate-search.ts';
import { FIXTURES, lastStats, loadFlags } from './sipp.ts';

export const USERS = 10_000;
export const DOMAIN = 'bench.local';

export interface SipBenchOptions {
  seconds: number;
  /** log progress lines to stderr */
  verbose?: boolean;
  /** only these targets (node-open, node-digest, kamailio, kamailio-digest) */
  only?: string[];
}

export interface Trial extends Window {
  /** CPU seconds the server used per wall second */
  cores: number;
}

export interface Target {
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
  stop(): Promise<unknown>;
}

/** CPU pinning: [sipp's cpu, the server's cpu], or null on one core or without taskset. */
export const PIN: [number, number] | null = CAN_PIN ? [0, 1] : null;

async function startNode(dir: string, port: number, open: boolean): Promise<Target> {
  const node = await NodeProc.start({
    datadir: dir,
    sipPort: port,
    args: ['--domain', DOMAIN, ...(open ? ['--open-registration'] : [])],
    // flags for the node's Node.js (e.g. --cpu-prof), as DOTS_BENCH_CALLS_NODE_ARGS for the calls
    nodeArgs: (process.env.DOTS_BENCH_SIP_NODE_ARGS ?? '').split(/\s+/).filter((x) => x !== ''),
    wrap: (cmd, args) => onCpu(PIN?.[1], cmd, args),
  });
  return {
    name: open ? 'dots node, digest off' : 'dots node, digest MD5',
    sippPort: await freePort(),
    settle: async () => {
      // the warm-up made the node sign name commitments: wait until the pool stops growing
      let last = -1;
      for (let i = 0; i < 120; i++) {
        await sleep(1000);
        const s = await node.status();
        if (s.pending === last) return;
        last = s.pending;
      }
    },
    port,
    scenario: join(FIXTURES, open ? 'register.xml' : 'register-auth.xml'),
    inf: '',
    txPerReg: open ? 1 : 2,
    pids: () => [node.pid as number],
    stop: () => node.stop(),
  };
}

async function kamailioTarget(dir: string, port: number, auth: boolean): Promise<Target> {
  const k = await startKamailio({ dir, port, children: 1, shmMb: 1024, args: auth ? ['-A', 'WITH_AUTH'] : [], wrap: (cmd, args) => onCpu(PIN?.[1], cmd, args) });
  return {
    name: auth ? 'Kamailio 5.6, 1 worker, digest MD5 (auth module)' : 'Kamailio 5.6, 1 worker',
    sippPort: await freePort(),
    settle: () => sleep(1000),
    port,
    scenario: join(FIXTURES, auth ? 'register-auth.xml' : 'register.xml'),
    inf: '',
    txPerReg: auth ? 2 : 1,
    pids: k.pids,
    stop: k.stop,
  };
}

/** One SIPp run: `total` registrations at `rate` per second. */
async function sipp(t: Target, dir: string, rate: number, total: number, limitSeconds: number): Promise<Omit<Trial, 'ok' | 'cores'> & { cpu: [number, number] }> {
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
    '-aa',
    ...loadFlags(stats),
  ];
  const before = cpuTimes(...t.pids());
  const start = Date.now();
  const [cmd, argv] = onCpu(PIN?.[0], 'sipp', args);
  const child = spawn(cmd, argv, { stdio: 'ignore' });
  const killer = setTimeout(() => child.kill('SIGINT'), limitSeconds * 1000);
  await waitExit(child);
  clearTimeout(killer);
  const elapsed = (Date.now() - start) / 1000;
  const after = cpuTimes(...t.pids());
  const cpu: [number, number] = [after[0] - before[0], after[1] - before[1]];
  const s = lastStats(stats);
  rmSync(stats, { force: true });
  if (s === null) return { rate, success: 0, failed: total, unfinished: 0, retransmissions: 0, elapsed, cpu };
  const success = s['SuccessfulCall(C)'] ?? 0;
  const failed = s['FailedCall(C)'] ?? 0;
  return { rate, success, failed, unfinished: Math.max(0, total - success - failed), retransmissions: s['Retransmissions(C)'] ?? 0, elapsed, cpu };
}

async function trial(t: Target, dir: string, rate: number, seconds: number, log: (s: string) => void): Promise<Trial> {
  const total = Math.round(rate * seconds);
  const r = await sipp(t, dir, rate, total, seconds + 15);
  const bad = r.failed + r.unfinished;
  const ok = bad < total * 0.01 && r.elapsed <= seconds * 1.05 + 1.5;
  const cores = (r.cpu[0] + r.cpu[1]) / r.elapsed;
  // CPU per registration answered, split user/kernel: what a change to the server saves, read
  // below saturation where the rate search's bisection cannot see it
  const per = (x: number): string => ((x / Math.max(1, r.success)) * 1e6).toFixed(0);
  log(`  ${t.name}: ${rate}/s for ${seconds}s -> ${r.success} ok, ${r.failed} failed, ${r.unfinished} unfinished, ${r.retransmissions} retransmissions, ${r.elapsed.toFixed(1)}s, server ${cores.toFixed(2)} cores (${per(r.cpu[0])} us user + ${per(r.cpu[1])} us system per registration): ${ok ? 'sustained' : 'not sustained'}`);
  return { ...r, ok, cores };
}

/** Registers every user once (the warm-up), lets the server settle, then searches the REGISTER rate it sustains. */
export async function search(t: Target, dir: string, seconds: number, log: (s: string) => void): Promise<Trial | null> {
  // warm-up: every user registered once
  log(`  ${t.name}: warm-up, ${USERS} users`);
  await sipp(t, dir, 2000, USERS, 60);
  await t.settle();
  const run = (rate: number): Promise<Trial> => trial(t, dir, rate, seconds, log);
  const fixed = fixedRates(process.env.DOTS_BENCH_SIP_RATES);
  return (fixed !== null ? await runWindows(fixed, run) : await searchRate({ start: 4000, max: 100_000, step: 100, minGap: 500, run })).best;
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
    const authFile = join(dir, 'users-auth.csv');
    const lines = ['SEQUENTIAL'];
    const alines = ['SEQUENTIAL'];
    for (let i = 0; i < USERS; i++) {
      lines.push(`u${i};${DOMAIN};`);
      alines.push(`u${i};${DOMAIN};[authentication username=u${i} password=pw${i}];`);
    }
    writeFileSync(open, lines.join('\n') + '\n');
    writeFileSync(authFile, alines.join('\n') + '\n');
    const only = o.only ?? process.env.DOTS_BENCH_SIP_ONLY?.split(',');
    const want = (n: string): boolean => only === undefined || only.includes(n);
    const plan: Array<{ key: string; start: () => Promise<Target>; inf: string }> = [];
    if (want('node-open')) plan.push({ key: 'node-open', inf: open, start: async () => startNode(join(dir, 'node-open'), await freePort(), true) });
    if (want('node-digest')) {
      plan.push({
        key: 'node-digest',
        inf: authFile,
        start: async () => {
          const d = join(dir, 'node-digest');
          mkdirSync(d, { recursive: true });
          addUsers(d, Array.from({ length: USERS }, (_, i) => ({ name: `u${i}`, password: `pw${i}` })), DOMAIN);
          return startNode(d, await freePort(), false);
        },
      });
    }
    for (const [key, auth] of [['kamailio', false], ['kamailio-digest', true]] as const) {
      if (!want(key)) continue;
      if (has('kamailio')) plan.push({ key, inf: auth ? authFile : open, start: async () => kamailioTarget(dir, await freePort(), auth) });
      else rows.push({ server: `Kamailio 5.6 (${key})`, 'REGISTER/s': 'not installed (apt-get install kamailio)', 'transactions/s': '', 'server cores': '', retransmissions: '' });
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
