// `dots bench calls`, the third figure: how soon a phone that registers at A can be called from
// B. The name was claimed and bound once (the network's setup), the phone unregistered and B saw
// it offline; then it registers again and a caller at B tries every 10 ms until an INVITE reaches
// the phone. That is REGISTER, A's OPTIONS check of the contact, the binding signed and pending
// at A, gossiped to B.
import { waitFor, sleep } from '../test/util/wait.ts';
import { DOMAIN_A, DOMAIN_B, confirmPending, type Ctx, type MetricRow } from './calls-net.ts';
import { fixed, median, rounded } from './stats.ts';
import { Ua, call, type CallResult } from './ua.ts';

export interface Reach {
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
 * `runs` runs with the network's phone: REGISTER, then a call from B every `everyMs` until one
 * reaches the phone (answered 486 Busy Here, so it ends there); then unregister and wait for B
 * to see it. Afterwards what the runs left pending is confirmed.
 */
export async function measureReach(c: Ctx, runs: number, everyMs: number): Promise<Reach> {
  c.log(`registration at A to a call from B reaching the phone, ${runs} runs`);
  const { phone, late: user } = c;
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
  await confirmPending(c.a, c.b, 5);
  return out;
}

/** The table row of the reachability figure. */
export function reachRows(reach: Reach): MetricRow[] {
  const sorted = [...reach.ms].sort((x, y) => x - y);
  return [
    {
      metric: 'REGISTER at A to a call from B reaching the phone: median',
      value: rounded(median(reach.ms), 0),
      unit: 'ms',
      notes:
        `${reach.ms.length} runs, min ${fixed(sorted[0] ?? NaN, 0)} max ${fixed(sorted[sorted.length - 1] ?? NaN, 0)} ms; a call from B every 10 ms; name bound once before, binding pending and gossiped; ` +
        `REGISTER 200 after ${fixed(median(reach.registerMs), 1)} ms, A's OPTIONS check after ${fixed(median(reach.optionsMs), 1)} ms (medians)${reach.failedRuns > 0 ? `; ${reach.failedRuns} runs failed` : ''}`,
    },
  ];
}
