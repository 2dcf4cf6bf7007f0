// `dots bench calls`, the second figure: what a node adds to an INVITE. INVITE to 200 is timed
// in Node (hrtime) at 50 calls/s, straight to the SIPp callee and through B and A; a node adds
// half the difference. For comparison, the same through one Kamailio 5.6 placed like node B,
// when it is installed, and through node A alone placed as Kamailio is (the caller's INVITE
// straight to A, A to the callee, UDP both ways): the same work as Kamailio's, where a node's
// half of a call between nodes also holds the TLS link to the other node and the chain lookup.
// The paths are called in turn within one window (see timedCalls).
import { sleep } from '../test/util/wait.ts';
import { DOMAIN_A, DOMAIN_B, kamailioForCallee, type Ctx, type MetricRow } from './calls-net.ts';
import { KAMAILIO_DOMAIN } from './kamailio.ts';
import { fixed, quantile, rounded } from './stats.ts';
import { Ua, call, type CallResult } from './ua.ts';

interface LatencySummary {
  median: number;
  p99: number;
  n: number;
  failed: number;
}

export interface Latency {
  direct: LatencySummary;
  through: LatencySummary;
  /** through node A alone (its own user, UDP in and out), placed as Kamailio is */
  alone: LatencySummary;
  /** through one Kamailio (record-routing, one worker, on node B's cpu), when installed */
  kamailio: LatencySummary | null;
}

/** Where timed calls go: a port and the Request-URI of the i-th call. */
interface Path {
  name: string;
  port: number;
  ruri: (i: number) => string;
}

interface Timed {
  ms: number[];
  failed: number;
  calls: number;
  slowest: string;
}

/**
 * Calls at `rate` per second to each of `paths` for `seconds`, interleaved (call i goes to path
 * i mod k, evenly spaced), so every path meets the same moments of the machine: a GC pause of
 * the client or a busy neighbour lands on all of them alike, not on whichever ran at that time.
 * INVITE -> final times of the answered calls, per path.
 */
async function timedCalls(ua: Ua, paths: Path[], rate: number, seconds: number): Promise<Timed[]> {
  const k = paths.length;
  const n = Math.round(rate * seconds) * k;
  const start = Date.now();
  const runs: Array<Array<Promise<CallResult & { at: number }>>> = paths.map(() => []);
  for (let i = 0; i < n; i++) {
    const wait = start + (i * 1000) / (rate * k) - Date.now();
    if (wait > 0) await sleep(wait);
    const at = Date.now() - start;
    const p = paths[i % k];
    const j = Math.floor(i / k);
    runs[i % k].push(call(ua, p.port, p.ruri(j), 'bob', DOMAIN_B).then((r) => ({ ...r, at })));
  }
  const out: Timed[] = [];
  for (const rsP of runs) {
    const rs = await Promise.all(rsP);
    const ms = rs.filter((r) => r.ok).map((r) => r.ms).sort((x, y) => x - y);
    // the slowest calls and when they were made (s into the run): a pattern tells GC from timers
    const slowest = rs
      .filter((r) => r.ok)
      .sort((x, y) => y.ms - x.ms)
      .slice(0, 5)
      .map((r) => `${r.ms.toFixed(1)} ms at ${(r.at / 1000).toFixed(2)} s (${new Date(start + r.at).toISOString().slice(11, 23)})`)
      .join(', ');
    out.push({ ms, failed: rs.filter((r) => !r.ok).length, calls: rs.length, slowest });
  }
  return out;
}

function summary(x: { ms: number[]; failed: number }): LatencySummary {
  return { median: quantile(x.ms, 0.5), p99: quantile(x.ms, 0.99), n: x.ms.length, failed: x.failed };
}

/** One Kamailio placed like node B, with u0 registered to the same callee, for what a C proxy adds on this machine; null when there is none. */
async function startReference(c: Ctx, ua: Ua): Promise<{ path: Path; stop: () => Promise<unknown> } | null> {
  const k = await kamailioForCallee(c, ua, { name: 'kamailio', users: ['u0'], role: 'b', shmMb: 256 });
  return k === null ? null : { path: { name: 'Kamailio', port: k.port, ruri: () => `sip:u0@${KAMAILIO_DOMAIN}` }, stop: k.stop };
}

/**
 * INVITE -> 200 at `rate` calls/s each for `seconds`: straight to the callee, through B and A,
 * and through Kamailio, the three interleaved in one window.
 */
export async function measureLatency(c: Ctx, rate: number, seconds: number): Promise<Latency> {
  c.log(`INVITE -> 200 at ${rate} calls/s each for ${seconds} s, interleaved: straight to the callee, through B and A, through one Kamailio`);
  const ua = await new Ua().open();
  let lat: Latency;
  const ref = await startReference(c, ua);
  try {
    const user = (i: number): string => c.users[i % c.users.length];
    const paths: Path[] = [
      { name: 'direct', port: c.uas.port, ruri: (i) => `sip:${user(i)}@127.0.0.1:${c.uas.port}` },
      { name: 'through B and A', port: c.b.sipPort, ruri: (i) => `sip:${user(i)}@${DOMAIN_A}` },
      { name: 'through A alone', port: c.a.sipPort, ruri: (i) => `sip:${user(i)}@${DOMAIN_A}` },
    ];
    if (ref !== null) paths.push(ref.path);
    // warm-up along every path, not counted: 5 s at four times the rate (compiled code, the
    // connection between the nodes, as on a node that has been running); Kamailio gets the same
    await timedCalls(ua, paths, rate * 4, 5);
    const t = await timedCalls(ua, paths, rate, seconds);
    paths.forEach((p, i) => c.log(`  slowest ${p.name}: ${t[i].slowest}`));
    lat = { direct: summary(t[0]), through: summary(t[1]), alone: summary(t[2]), kamailio: ref === null ? null : summary(t[3]) };
  } finally {
    ua.close();
    await ref?.stop();
  }
  c.log(`  direct: median ${lat.direct.median.toFixed(3)} ms, p99 ${lat.direct.p99.toFixed(3)} ms (${lat.direct.n} calls, ${lat.direct.failed} failed); through B and A: median ${lat.through.median.toFixed(3)} ms, p99 ${lat.through.p99.toFixed(3)} ms (${lat.through.n} calls, ${lat.through.failed} failed)`);
  c.log(`  through A alone: median ${lat.alone.median.toFixed(3)} ms, p99 ${lat.alone.p99.toFixed(3)} ms (${lat.alone.n} calls, ${lat.alone.failed} failed)`);
  if (lat.kamailio !== null) c.log(`  through one Kamailio: median ${lat.kamailio.median.toFixed(3)} ms, p99 ${lat.kamailio.p99.toFixed(3)} ms (${lat.kamailio.n} calls, ${lat.kamailio.failed} failed)`);
  return lat;
}

/** The table rows of the latency figure. */
export function latencyRows(lat: Latency): MetricRow[] {
  const perNodeMedian = (lat.through.median - lat.direct.median) / 2;
  const perNodeP99 = (lat.through.p99 - lat.direct.p99) / 2;
  const aloneMedian = lat.alone.median - lat.direct.median;
  const aloneP99 = lat.alone.p99 - lat.direct.p99;
  const calls = (x: LatencySummary): string => `${x.n} calls at 50/s, interleaved with the other paths, ${x.failed} failed`;
  const rows: MetricRow[] = [
    { metric: 'INVITE->200 straight to the callee: median', value: rounded(lat.direct.median, 3), unit: 'ms', notes: `p99 ${fixed(lat.direct.p99, 3)} ms; ${calls(lat.direct)}` },
    { metric: 'INVITE->200 through B and A: median', value: rounded(lat.through.median, 3), unit: 'ms', notes: `p99 ${fixed(lat.through.p99, 3)} ms; ${calls(lat.through)}` },
    { metric: 'latency a node adds to an INVITE: median', value: rounded(perNodeMedian, 3), unit: 'ms', notes: '(through B and A - direct) / 2: a node\'s half of a call between nodes (the INVITE in and out, and its 200 back; UDP on the phone\'s side, the TLS link on the other)' },
    { metric: 'latency a node adds to an INVITE: p99', value: rounded(perNodeP99, 3), unit: 'ms', notes: '(through p99 - direct p99) / 2' },
    { metric: 'INVITE->200 through node A alone: median', value: rounded(lat.alone.median, 3), unit: 'ms', notes: `p99 ${fixed(lat.alone.p99, 3)} ms; ${calls(lat.alone)}; the caller's INVITE straight to A for its own user, UDP in and out, as Kamailio is placed` },
    { metric: 'latency node A alone adds: median', value: rounded(aloneMedian, 3), unit: 'ms', notes: `p99 ${fixed(aloneP99, 3)} ms (alone - direct)` },
  ];
  if (lat.kamailio !== null) {
    const k = lat.kamailio;
    const km = k.median - lat.direct.median;
    const kp = k.p99 - lat.direct.p99;
    const more = (x: number): string => `${fixed(x, 3)} ms`;
    rows.push({ metric: 'latency Kamailio adds, same window: median', value: rounded(km, 3), unit: 'ms', notes: `p99 ${fixed(kp, 3)} ms; one Kamailio 5.6 (1 worker, record-routing) between the caller and the callee, same client and callee, its calls interleaved with the others; ${k.n} calls, ${k.failed} failed; INVITE->200 median ${fixed(k.median, 3)} ms, p99 ${fixed(k.p99, 3)} ms (node A alone: ${fixed(lat.alone.p99, 3)} ms). Node A alone adds ${more(aloneMedian - km)} more at the median, ${more(aloneP99 - kp)} more at p99; a node's half of a call between nodes ${more(perNodeMedian - km)} and ${more(perNodeP99 - kp)} more (negative: less)` });
  }
  return rows;
}
