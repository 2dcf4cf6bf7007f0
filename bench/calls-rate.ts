// `dots bench calls`, the first figure: calls per second the two nodes route with under 1%
// failures. A SIPp caller at B calls the users u0..u99@a.test in turn (100 distinct names, each
// registered at A with the same SIPp callee as its contact). A call is INVITE, 100, 200, ACK,
// BYE, 200, with both nodes record-routing, so every message of the call crosses B and A. A rate
// is sustained when a window of `seconds` at that rate ends with under 1% of the calls failed or
// unfinished; the search doubles the rate until a window fails, then bisects (like `dots bench
// sip`). Each window's log line says how many cores each process used and how much went to other
// processes on the machine: other work there moves the figure.
//
// The calls are short (-d 0 by default: BYE right after ACK). Call receipts pay whole seconds
// (unix times of the 200 and the BYE at the node), so only the calls whose 200 and BYE fall on
// both sides of a second boundary earn one: a few per second normally, many more once the nodes
// fall behind. Those receipts are part of what the nodes do here (B asks A to countersign).
// DOTS_BENCH_CALLS_RATES=800,1000: just these windows, no search.
//
// The same search also runs against one server alone (measureAlone): the caller's INVITEs go
// straight to node A, then straight to one Kamailio 5.6 (one worker, lookup + record_route +
// t_relay) with the same users registered to the same callee, one after the other in the same
// run: what one node carries against a C proxy on the same machine.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { waitExit } from '../test/util/proc.ts';
import { sleep } from '../test/util/wait.ts';
import { DOMAIN_A, DOMAIN_B, PIN_MODE, kamailioForCallee, pinned, type Ctx, type MetricRow } from './calls-net.ts';
import { KAMAILIO_DOMAIN } from './kamailio.ts';
import { Ua } from './ua.ts';
import { cpuSeconds, machineTicks } from './cpu.ts';
import { fixedRates, runWindows, searchRate, type SearchResult, type Window } from './rate-search.ts';
import { BENCH_SCENARIOS, lastStats, loadFlags } from './sipp.ts';

interface Health {
  lagMaxMs: number;
  gcSeconds: number;
  drops: number;
}

/** Where the caller sends its calls. */
export interface CallTarget {
  /** as the log says it */
  name: string;
  port: number;
  /** the callees' domain there */
  domain: string;
  /** the processes that route the calls other than the nodes (Kamailio's), whose CPU is counted apart */
  others: () => number[];
}

interface Trial extends Window {
  uasRetransmissions: number;
  /**
   * cores used per wall second: node A, node B, the target's processes other than the nodes
   * (Kamailio), SIPp caller, SIPp callee, and all processes
   */
  cores: { a: number; b: number; others: number; uac: number; uas: number; machine: number };
  /** log lines at warn/error level the nodes wrote during the window */
  nodeProblems: number;
  /** per node: longest event loop delay (ms), GC seconds, datagrams dropped on its SIP socket */
  health: { a: Health; b: Health };
  why: string;
}

export type RateResult = SearchResult<Trial>;

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

/** What the machine's other processes used, besides the nodes, the target and SIPp. */
function restOf(x: Trial['cores']): number {
  return Math.max(0, x.machine - x.a - x.b - x.others - x.uac - x.uas);
}

/** The two nodes: the caller at B calls users of A. */
export function throughBA(c: Ctx): CallTarget {
  return { name: 'B and A', port: c.b.sipPort, domain: DOMAIN_A, others: () => [] };
}

/** One window: `rate` calls/s for `seconds` from SIPp to `target`; stopped early once it has clearly failed. */
async function trial(c: Ctx, target: CallTarget, rate: number, seconds: number, callMs: number): Promise<Trial> {
  const total = Math.round(rate * seconds);
  const stats = join(c.dir, `uac-${rate}-${Date.now()}.csv`);
  const errors = join(c.dir, `uac-${rate}-${Date.now()}-errors.log`);
  const args = [
    `127.0.0.1:${target.port}`,
    '-sf', join(BENCH_SCENARIOS, 'uac-calls.xml'),
    '-inf', c.usersFile,
    '-key', 'domain', target.domain,
    '-key', 'caller', 'bob',
    '-key', 'caller_domain', DOMAIN_B,
    '-i', '127.0.0.1',
    '-p', '0',
    '-r', String(rate),
    '-m', String(total),
    '-l', String(Math.max(200, rate * 3)),
    '-d', String(callMs),
    ...loadFlags(stats),
    '-trace_err', '-error_file', errors,
  ];
  const pids = { a: c.a.pid, b: c.b.pid, uas: c.uas.proc.pid };
  const [ha0, hb0] = await Promise.all([c.a.health(), c.b.health()]);
  const drops0 = { a: udpDrops(c.a.sipPort), b: udpDrops(c.b.sipPort) };
  const ticks0 = machineTicks();
  const others = target.others();
  const before = { a: cpuSeconds(pids.a), b: cpuSeconds(pids.b), others: cpuSeconds(...others), uas: cpuSeconds(pids.uas) };
  const uasBefore = c.uas.counters();
  const problemsBefore = c.a.counts.warn + c.a.counts.error + c.b.counts.warn + c.b.counts.error;
  const start = Date.now();
  const [cmd, argv] = pinned('sipp')('sipp', args);
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
    others: (cpuSeconds(...others) - before.others) / elapsed,
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
    `  ${rate} calls/s for ${seconds} s: ${success} ok, ${failed} failed, ${unfinished} unfinished, retransmissions ${r.retransmissions} (caller) ${r.uasRetransmissions} (callee), ${elapsed.toFixed(1)} s; cores A ${cores.a.toFixed(2)} B ${cores.b.toFixed(2)}${others.length > 0 ? ` ${target.name} ${cores.others.toFixed(2)}` : ''} caller ${cores.uac.toFixed(2)} callee ${cores.uas.toFixed(2)}, all other processes ${restOf(cores).toFixed(2)}; A: ${h(health.a)}; B: ${h(health.b)}; node warnings ${nodeProblems}: ${ok ? 'sustained' : `not sustained (${why})`}`,
  );
  if (failed > 0 && errorKinds !== '') c.log(`    why SIPp failed calls: ${errorKinds}`);
  return r;
}

/**
 * Waits (at least `minMs`) until the servers are quiet again: after a window that failed, the
 * callee goes on retransmitting the 200s of the calls SIPp left open (up to 32 s), and they
 * cross the servers; the next window should not start in that storm.
 */
async function settle(c: Ctx, target: CallTarget, minMs: number): Promise<void> {
  const t0 = Date.now();
  const pids = [c.a.pid, c.b.pid, ...target.others()];
  await sleep(minMs);
  for (;;) {
    const before = cpuSeconds(...pids);
    await sleep(1000);
    const used = cpuSeconds(...pids) - before;
    if (used < 0.1) break;
    if (Date.now() - t0 > 40_000) {
      c.log(`  the servers are still busy (${used.toFixed(2)} cores) ${((Date.now() - t0) / 1000).toFixed(0)} s after the window`);
      return;
    }
  }
  if (Date.now() - t0 > minMs + 1500) c.log(`  quiet again after ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

/** The rate search (or just the windows DOTS_BENCH_CALLS_RATES names) through `target`, `seconds` a window. */
export async function measureRate(c: Ctx, seconds: number, callMs: number, startRate: number, target = throughBA(c)): Promise<RateResult> {
  c.log(`calls per second through ${target.name} to ${c.users.length} users, ${seconds} s windows, BYE ${callMs} ms after ACK`);
  const fixed = fixedRates(process.env.DOTS_BENCH_CALLS_RATES);
  if (fixed === null) {
    return searchRate({
      start: startRate,
      max: 100_000,
      step: 50,
      minGap: 50,
      run: async (r) => {
        const t = await trial(c, target, r, seconds, callMs);
        await settle(c, target, t.ok ? 1000 : 3000);
        return t;
      },
    });
  }
  return runWindows(fixed, async (r) => {
    const t = await trial(c, target, r, seconds, callMs);
    await sleep(2000);
    return t;
  });
}

/** The searches against one server alone: node A, then one Kamailio (null when not installed). */
export interface AloneResult {
  node: RateResult;
  kamailio: RateResult | null;
}

/**
 * The caller's calls straight to node A (its users, record-routed by A alone), then straight to
 * one Kamailio 5.6 with one worker (test/fixtures/sipp/kamailio-registrar.cfg, on node A's CPU
 * when pinned) where the same users are registered to the same callee.
 */
export async function measureAlone(c: Ctx, seconds: number, callMs: number, startRate: number): Promise<AloneResult> {
  const node = await measureRate(c, seconds, callMs, startRate, { name: 'A alone', port: c.a.sipPort, domain: DOMAIN_A, others: () => [] });
  const ua = await new Ua().open();
  try {
    const k = await kamailioForCallee(c, ua, { name: 'kamailio-alone', users: c.users, role: 'a', shmMb: 1024 });
    if (k === null) return { node, kamailio: null };
    try {
      return { node, kamailio: await measureRate(c, seconds, callMs, startRate, { name: 'Kamailio', port: k.port, domain: KAMAILIO_DOMAIN, others: k.pids }) };
    } finally {
      await k.stop();
    }
  } finally {
    ua.close();
  }
}

/** The table row of the rate figure. */
export function rateRows(sr: RateResult, o: { seconds: number; users: number; callMs: number; startRate: number }): MetricRow[] {
  const best = sr.best;
  const coreNote = (t: Trial): string =>
    `pinning ${PIN_MODE}; cores: A ${t.cores.a.toFixed(2)}, B ${t.cores.b.toFixed(2)}, SIPp caller ${t.cores.uac.toFixed(2)}, callee ${t.cores.uas.toFixed(2)}, other processes ${restOf(t.cores).toFixed(2)} (of ${availableParallelism()})`;
  return [
    {
      metric: 'calls/s through B and A, < 1% failed',
      value: best?.rate ?? 0,
      unit: 'calls/s',
      notes:
        (best === null
          ? `not even ${o.startRate}/s`
          : `${o.seconds} s window, ${o.users} callees at A, BYE ${o.callMs} ms after ACK; ${best.success} ok, ${best.failed} failed, ${best.unfinished} unfinished, ${best.retransmissions} retransmissions; ${coreNote(best)}`) +
        (sr.failedAt !== null ? `; ${sr.failedAt.rate}/s failed: ${sr.failedAt.why}` : ''),
    },
    ...(best === null
      ? []
      : [
          {
            // On a machine with fewer cores than the nodes and SIPp need, the rate stops where the
            // machine does; what a call costs each node says what one node's core would carry.
            metric: 'CPU per call at the busier node, at that rate',
            value: Math.round((1e6 * Math.max(best.cores.a, best.cores.b)) / best.rate),
            unit: 'us',
            notes: `A ${Math.round((1e6 * best.cores.a) / best.rate)} us, B ${Math.round((1e6 * best.cores.b) / best.rate)} us of a core per call; one core at that cost is ${Math.round(best.rate / Math.max(best.cores.a, best.cores.b)).toLocaleString('en-US')} calls/s (not measured: a projection)`,
          },
        ]),
  ];
}

/** The table rows of the comparison with one server alone. */
export function aloneRows(r: AloneResult, o: { seconds: number; startRate: number }): MetricRow[] {
  const row = (metric: string, sr: RateResult, cores: (t: Trial) => number): MetricRow => {
    const best = sr.best;
    return {
      metric,
      value: best?.rate ?? 0,
      unit: 'calls/s',
      notes:
        (best === null
          ? `not even ${o.startRate}/s`
          : `${o.seconds} s window; ${best.success} ok, ${best.failed} failed, ${best.unfinished} unfinished; ${cores(best).toFixed(2)} of a core, ${Math.round((1e6 * cores(best)) / best.rate)} us a call; SIPp caller ${best.cores.uac.toFixed(2)}, callee ${best.cores.uas.toFixed(2)}`) +
        (sr.failedAt !== null ? `; ${sr.failedAt.rate}/s failed: ${sr.failedAt.why}` : ''),
    };
  };
  const rows = [row('calls/s through node A alone, < 1% failed', r.node, (t) => t.cores.a)];
  if (r.kamailio !== null) {
    rows.push(row('calls/s through one Kamailio 5.6 (1 worker), same run', r.kamailio, (t) => t.cores.others));
    const n = r.node.best?.rate ?? 0;
    const k = r.kamailio.best?.rate ?? 0;
    rows.push({ metric: 'one node against Kamailio: calls/s ratio', value: k > 0 ? n / k : 0, unit: 'x', notes: `${n.toLocaleString('en-US')} against ${k.toLocaleString('en-US')} calls/s, the same callee, callers and users; goal 1.0` });
  }
  return rows;
}
