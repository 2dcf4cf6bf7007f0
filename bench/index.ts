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
    return (await benchHash({ seconds: o.seconds })).map((r) => ({ name: r.name, 'hashes/s': Math.round(r.hashesPerSecond) }));
  },
  chain: async (o) => {
    const { benchChain } = await import('./chain.ts');
    return benchChain(o);
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
