// `dots bench calls`, the second figure: what a node adds to an INVITE. INVITE to 200 is timed
// in Node (hrtime) at 50 calls/s, straight to the SIPp callee and through B and A; a node adds
// half the difference. For scale, the same through one Kamailio 5.6 placed like node B, when
// it is installed.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { has } from '../test/util/proc.ts';
import { freeUdpPort } from '../test/util/ports.ts';
import { sleep } from '../test/util/wait.ts';
import { DOMAIN_A, DOMAIN_B, pinned, type Ctx, type MetricRow } from './calls-net.ts';
import { startKamailio } from './kamailio.ts';
import { fixed, quantile, rounded } from './stats.ts';
import { Ua, call, rnd, type CallResult } from './ua.ts';

interface LatencySummary {
  median: number;
  p99: number;
  n: number;
  failed: number;
}

export interface Latency {
  direct: LatencySummary;
  through: LatencySummary;
  /** through one Kamailio (record-routing, one worker, on node B's cpu), when installed */
  kamailio: LatencySummary | null;
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
  const dir = join(c.dir, 'kamailio');
  mkdirSync(dir, { recursive: true });
  let k;
  try {
    k = await startKamailio({ dir, port: await freeUdpPort(), children: 1, shmMb: 256, wrap: pinned('b') });
  } catch {
    c.log('  kamailio did not start; no reference');
    return null;
  }
  try {
    const reg = await ua.register(k.port, 'u0', 'bench.local', `sip:u0@127.0.0.1:${c.uas.port}`, 3600, `k-${rnd()}`, 1);
    if (reg !== 200) {
      c.log(`  kamailio answered REGISTER with ${reg}; no reference`);
      return null;
    }
    await timedCalls(ua, k.port, () => 'sip:u0@bench.local', rate, 1);
    const t = await timedCalls(ua, k.port, () => 'sip:u0@bench.local', rate, seconds);
    c.log(`  slowest through Kamailio: ${t.slowest}`);
    return summary(t);
  } finally {
    await k.stop();
  }
}

/** INVITE -> 200 at `rate` calls/s for `seconds`: direct, through B and A, and through Kamailio. */
export async function measureLatency(c: Ctx, rate: number, seconds: number): Promise<Latency> {
  c.log(`INVITE -> 200 at ${rate} calls/s: straight to the callee, then through B and A`);
  const ua = await new Ua().open();
  let lat: Latency;
  try {
    const user = (i: number): string => c.users[i % c.users.length];
    // warm-up through both nodes (JIT), not counted
    await timedCalls(ua, c.b.sipPort, (i) => `sip:${user(i)}@${DOMAIN_A}`, rate, 1);
    const d = await timedCalls(ua, c.uas.port, (i) => `sip:${user(i)}@127.0.0.1:${c.uas.port}`, rate, seconds);
    const t = await timedCalls(ua, c.b.sipPort, (i) => `sip:${user(i)}@${DOMAIN_A}`, rate, seconds);
    c.log(`  slowest direct: ${d.slowest}`);
    c.log(`  slowest through B and A: ${t.slowest}`);
    const k = await kamailioLatency(c, ua, rate, seconds);
    lat = { direct: summary(d), through: summary(t), kamailio: k };
  } finally {
    ua.close();
  }
  c.log(`  direct: median ${lat.direct.median.toFixed(3)} ms, p99 ${lat.direct.p99.toFixed(3)} ms (${lat.direct.n} calls, ${lat.direct.failed} failed); through B and A: median ${lat.through.median.toFixed(3)} ms, p99 ${lat.through.p99.toFixed(3)} ms (${lat.through.n} calls, ${lat.through.failed} failed)`);
  if (lat.kamailio !== null) c.log(`  through one Kamailio: median ${lat.kamailio.median.toFixed(3)} ms, p99 ${lat.kamailio.p99.toFixed(3)} ms (${lat.kamailio.n} calls, ${lat.kamailio.failed} failed)`);
  return lat;
}

/** The table rows of the latency figure. */
export function latencyRows(lat: Latency): MetricRow[] {
  const perNodeMedian = (lat.through.median - lat.direct.median) / 2;
  const perNodeP99 = (lat.through.p99 - lat.direct.p99) / 2;
  const rows: MetricRow[] = [
    { metric: 'INVITE->200 straight to the callee: median', value: rounded(lat.direct.median, 3), unit: 'ms', notes: `p99 ${fixed(lat.direct.p99, 3)} ms; ${lat.direct.n} calls at 50/s, ${lat.direct.failed} failed` },
    { metric: 'INVITE->200 through B and A: median', value: rounded(lat.through.median, 3), unit: 'ms', notes: `p99 ${fixed(lat.through.p99, 3)} ms; ${lat.through.n} calls at 50/s, ${lat.through.failed} failed` },
    { metric: 'latency a node adds to an INVITE: median', value: rounded(perNodeMedian, 3), unit: 'ms', notes: '(through - direct) / 2: the INVITE in and out, and its 200 back' },
    { metric: 'latency a node adds to an INVITE: p99', value: rounded(perNodeP99, 3), unit: 'ms', notes: '(through p99 - direct p99) / 2' },
  ];
  if (lat.kamailio !== null) {
    const k = lat.kamailio;
    rows.push({ metric: 'for scale: latency Kamailio adds: median', value: rounded(k.median - lat.direct.median, 3), unit: 'ms', notes: `p99 ${fixed(k.p99 - lat.direct.p99, 3)} ms; one Kamailio 5.6 (1 worker, record-routing) placed like node B, same client and callee; ${k.n} calls, ${k.failed} failed` });
  }
  return rows;
}
