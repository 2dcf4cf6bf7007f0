// `dots bench calls`: the call numbers of two nodes (issue #5), three benchmarks on one network
// (calls-net.ts: node A serving a.test, node B serving b.test, the SIPp callee, 100 users):
//
// 1. calls per second the two nodes route with under 1% failures (calls-rate.ts);
// 2. what a node adds to an INVITE, with Kamailio for scale (calls-latency.ts);
// 3. how soon a phone that registers at A can be called from B (calls-reach.ts);
// 4. calls per second through node A alone against one Kamailio 5.6 (calls-rate.ts).
//
// They run in the order 2, 3, 1, 4 (the rate searches leave the servers busiest) and print one
// table, in the order 1, 4, 2, 3, with a last row counting the nodes' warnings. Processes are
// stopped through their own handles, never by name.
//
// Knobs for looking closer (environment): DOTS_BENCH_CALLS_ONLY=rate,alone,latency,reach;
// DOTS_BENCH_CALLS_RATES=800,1000 (these windows, no search); DOTS_BENCH_CALLS_CALL_MS=1500 (ms
// from ACK to BYE; calls of a second or more all earn receipts); DOTS_BENCH_CALLS_LOGS=DIR (keep
// the node logs); DOTS_BENCH_CALLS_NODE_ARGS="--trace-gc" (flags for the nodes' Node.js);
// DOTS_BENCH_CALLS_PIN=none|split|each (calls-net.ts).
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { has } from '../test/util/proc.ts';
import { PIN, PIN_ASKED, PIN_MODE, startNetwork, type Closer, type MetricRow } from './calls-net.ts';
import { latencyRows, measureLatency } from './calls-latency.ts';
import { aloneRows, measureAlone, measureRate, rateRows, type RateResult } from './calls-rate.ts';
import { measureReach, reachRows } from './calls-reach.ts';
import { fixed } from './stats.ts';

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
  /** only these parts (rate, alone, latency, reach); also DOTS_BENCH_CALLS_ONLY=rate,latency */
  only?: string[];
}

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
  const startRate = o.startRate ?? 500;
  const seconds = o.seconds;
  const load0 = loadavg()[0];
  const dir = mkdtempSync(join(tmpdir(), 'dots-bench-calls-'));
  const open: Closer[] = [];
  log(PIN === null ? 'no CPU pinning' : `pinning (${PIN_MODE}): SIPp caller and callee on cpu ${PIN.sipp}, node A on cpu ${PIN.a}, node B on cpu ${PIN.b}`);
  try {
    const c = await startNetwork(dir, nUsers, log, open);
    const { a, b } = c;
    const only = o.only ?? process.env.DOTS_BENCH_CALLS_ONLY?.split(',');
    const want = (part: string): boolean => only === undefined || only.includes(part);

    const lat = want('latency') ? await measureLatency(c, 50, seconds) : null;
    const reach = want('reach') ? await measureReach(c, reachRuns, 10) : null;
    const sr: RateResult = want('rate') ? await measureRate(c, seconds, callMs, startRate) : { best: null, failedAt: null, trials: 0 };
    const alone = want('alone') ? await measureAlone(c, seconds, callMs, startRate) : null;

    log(`node A: ${a.counts.warn} warnings, ${a.counts.error} errors; node B: ${b.counts.warn} warnings, ${b.counts.error} errors`);
    for (const n of [a, b]) for (const [k, count] of [...n.kinds].sort((x, y) => y[1] - x[1]).slice(0, 8)) log(`  ${n.name}: ${count} x ${k}`);
    for (const n of [a, b]) for (const l of n.problems.slice(-3)) log(`  ${n.name} (last): ${l}`);

    // ---- the table
    const load1 = loadavg()[0];
    const rows: MetricRow[] = [];
    if (want('rate')) rows.push(...rateRows(sr, { seconds, users: nUsers, callMs, startRate }));
    if (alone !== null) rows.push(...aloneRows(alone, { seconds, startRate }));
    if (lat !== null) rows.push(...latencyRows(lat));
    if (reach !== null) rows.push(...reachRows(reach));
    const kinds = [a, b].flatMap((n) => [...n.kinds].sort((x, y) => y[1] - x[1]).slice(0, 3).map(([k, count]) => `${n.name}: ${count} x "${k.slice(0, 100)}"`));
    rows.push({
      metric: 'node log warnings + errors',
      value: a.counts.warn + b.counts.warn + a.counts.error + b.counts.error,
      unit: 'lines',
      notes: `A ${a.counts.warn}/${a.counts.error}, B ${b.counts.warn}/${b.counts.error}${kinds.length > 0 ? ` (${kinds.join('; ')})` : ''}; load average ${load0.toFixed(2)} -> ${load1.toFixed(2)}; ${sr.trials + (alone === null ? 0 : alone.node.trials + (alone.kamailio?.trials ?? 0))} rate windows; ${((Date.now() - t0) / 1000).toFixed(0)} s in all`,
    });
    if (o.json) return rows;
    return rows.map((r) => ({ metric: r.metric, value: `${r.unit === 'calls/s' || r.unit === 'lines' || r.unit === 'us' ? r.value.toLocaleString('en-US') : fixed(r.value, r.unit === 'ms' && r.value >= 100 ? 0 : 3)} ${r.unit}`, notes: r.notes }));
  } finally {
    for (const s of open.reverse()) await s.stop().catch(() => undefined);
    const keep = process.env.DOTS_BENCH_CALLS_LOGS;
    if (keep !== undefined && keep !== '') {
      for (const f of ['node-a.log', 'node-b.log']) if (existsSync(join(dir, f))) cpSync(join(dir, f), join(keep, f));
      log(`node logs copied to ${keep}`);
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
