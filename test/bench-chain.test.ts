// `dots bench chain` runs end to end on a small chain (its figures are not asserted: numbers are
// the benchmark's, not the tests'), and the bound arithmetic it prints is right.
import t from 'tap';
import { benchChain, ceiling, needed } from '../bench/chain.ts';

t.test('the best ratio the main thread leaves, and the main thread a ratio needs', async (t) => {
  t.equal(ceiling(2, 28_000, Infinity).toFixed(6), '1.000000', 'a main thread that costs nothing leaves the pool its whole rate');
  // checks at 2/28,000 = 4/56,000 CPU-seconds a record, the main thread 1/56,000 more: 5/56,000
  // for 2 cores, 22,400 records a second
  t.equal(ceiling(2, 28_000, 56_000).toFixed(6), '0.800000', 'a main thread at twice the pool rate on two cores leaves 0.8');
  t.equal(ceiling(2, 28_000, needed(2, 28_000, 0.9)).toFixed(6), '0.900000', 'needed() is the inverse of ceiling()');
  t.equal(Math.round(needed(2, 28_000, 0.9)), 126_000, '0.9 of 28,000 on two cores needs the node\'s own work at 126,000 records a CPU-second');
  t.equal(needed(2, 28_000, 1), Infinity, 'the whole bound needs a main thread that costs nothing');
});

t.test('dots bench chain on 400 records: every figure printed, the main thread alone among them', async (t) => {
  const rows = await benchChain({ json: true, seconds: 0, records: 400, perBlock: 100 });
  const value = (metric: string): string => {
    const row = rows.find((r) => String(r.metric).trim().startsWith(metric));
    if (row === undefined) throw new Error(`no row ${metric}`);
    return String(row.value);
  };
  t.equal(Number(value('records')), 600, 'the 400 records and the 200 transfers that funded their signers');
  for (const m of ['records/s', 'records/s, the main thread alone with every signature already checked', 'records per CPU-second of that pass', 'so at best', 'records per CPU-second of it that 0.9']) {
    const median = Number(value(m).split(' ')[0]);
    t.ok(Number.isFinite(median) && median > 0, `${m}: ${value(m)}`);
  }
  t.ok(Number(value('so at best').split(' ')[0]) <= 1, 'the best ratio is at most 1');
  // each round's bound is the faster of its two ways of checking on every core
  const rounds = (m: string): number[] => (/\((.*)\)/.exec(value(m))?.[1] ?? '').split(', ').map(Number);
  const workers = rounds('signature checks/s alone, a worker on each');
  const node = rounds('signature checks/s alone, as the node checks');
  const bound = rounds('signature checks/s, the bound');
  t.equal(bound.length, 3, 'three rounds');
  t.same(bound, workers.map((w, i) => Math.max(w, node[i])), `the bound: ${bound.join(', ')}; workers ${workers.join(', ')}; the node's way ${node.join(', ')}`);
  t.ok(workers.every((w) => w > 0) && node.every((n) => n > 0), 'both ways checked signatures');
});
