// `dots bench NAME`: runs the benchmarks in this folder and prints a table (or JSON).
import { UserError } from '../core/errors.ts';

export interface BenchOptions {
  json: boolean;
  seconds: number;
}

type Row = Record<string, string | number>;

const BENCHES: Record<string, (o: BenchOptions) => Promise<Row[]>> = {
  hash: async (o) => {
    const { benchHash } = await import('./hash.ts');
    const r = await benchHash({ seconds: o.seconds });
    if (o.json) {
      return r.rows.map(({ cpuShare, ...x }) => ({ ...x, ratio: Number(x.ratio.toFixed(4)), ...(cpuShare === null ? {} : { cpuShare: Number(cpuShare.toFixed(3)) }) }));
    }
    console.log(`\nnative limit from ${r.nativeSource}; load average ${r.load.map((l) => l.toFixed(2)).join(' -> ')} (rates are wall-clock: compare quiet runs)`);
    console.log(`the miner's workers hashed ${r.workerStartMs[0]} ms after a new pool's first search with 1 thread, ${r.workerStartMs[1]} ms with ${r.rows.at(-1)?.threads ?? 0}`);
    return r.rows.map((x) => ({
      name: x.name,
      threads: x.threads,
      'hashes/s': x.hashesPerSecond.toLocaleString('en-US'),
      'x limit': x.ratio.toFixed(2),
      cpu: x.cpuShare === null ? '' : `${Math.round(100 * x.cpuShare)}%`,
      goal: x.goal,
    }));
  },
  chain: async (o) => {
    const { benchChain } = await import('./chain.ts');
    return benchChain(o);
  },
  presence: async (o) => {
    const { benchPresence } = await import('./presence.ts');
    return benchPresence(o);
  },
  receipts: async (o) => {
    const { benchReceipts } = await import('./receipts.ts');
    return benchReceipts(o);
  },
  pool: async (o) => {
    const { benchPool } = await import('./pool.ts');
    return benchPool(o);
  },
  sip: async (o) => {
    const { benchSip } = await import('./sip.ts');
    // a rate counts as sustained over a 20 s window unless a longer one is asked for
    return benchSip({ seconds: o.seconds >= 5 ? o.seconds : 20 });
  },
  calls: async (o) => {
    const { benchCalls } = await import('./calls.ts');
    // a rate counts as sustained over a 10 s window unless a longer one is asked for
    return benchCalls({ json: o.json, seconds: o.seconds >= 5 ? o.seconds : 10 });
  },
  abuse: async (o) => {
    const { benchAbuse } = await import('./abuse.ts');
    // each flood lasts 20 s unless a longer one is asked for
    return benchAbuse({ json: o.json, seconds: o.seconds >= 5 ? o.seconds : 20 });
  },
  roam: async (o) => {
    const { benchRoam } = await import('./roam.ts');
    return benchRoam(o);
  },
  tls: async (o) => {
    const { benchTls } = await import('./tls.ts');
    return benchTls(o);
  },
  trunk: async (o) => {
    const { benchTrunk } = await import('./trunk.ts');
    return benchTrunk({ json: o.json, seconds: o.seconds >= 5 ? o.seconds : 10 });
  },
  sync: async (o) => {
    const { benchSync } = await import('./sync.ts');
    return benchSync(o);
  },
  registrations: async (o) => {
    const { benchRegistrations } = await import('./registrations.ts');
    return benchRegistrations(o);
  },
};

function table(rows: Row[]): string {
  if (rows.length === 0) return '';
  const cols = Object.keys(rows[0]);
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals: string[]): string => vals.map((v, i) => v.padEnd(w[i])).join('  ');
  return [line(cols), line(w.map((n) => '-'.repeat(n))), ...rows.map((r) => line(cols.map((c) => String(r[c]))))].join('\n');
}

export async function runBenchmarks(which: string, o: BenchOptions): Promise<number> {
  const names = which === 'all' ? Object.keys(BENCHES) : [which];
  const results: Record<string, Row[]> = {};
  for (const n of names) {
    const b = BENCHES[n];
    if (b === undefined) throw new UserError(`unknown benchmark "${n}" (${Object.keys(BENCHES).join(', ')}, all)`);
    results[n] = await b(o);
    if (!o.json) console.log(`\n${n}\n${table(results[n])}`);
  }
  if (o.json) console.log(JSON.stringify(results, null, 2));
  return 0;
}
