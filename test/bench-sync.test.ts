// `dots bench sync` runs end to end on a small chain: a node process serving it, a node syncing it,
// a line of three nodes for record latency. Its figures are not asserted (numbers are the
// benchmark's, not the tests'); that every one is printed, and consistent, is.
import t from 'tap';
import { benchSync } from '../bench/sync.ts';

t.test('dots bench sync on 400 blocks: the whole sync, its second half, and record latency printed', async (t) => {
  const rows = await benchSync({ json: true, seconds: 0, blocks: 400, records: 800, latencyRecords: 20 });
  const value = (metric: string): string => {
    const row = rows.find((r) => String(r.metric).trim().startsWith(metric));
    if (row === undefined) throw new Error(`no row ${metric} in ${rows.map((r) => r.metric).join(' | ')}`);
    return String(row.value);
  };
  t.equal(Number(value('initial sync: blocks')), 400);
  t.equal(Number(value('initial sync: records')), 800);
  const half = rows.find((r) => String(r.metric).startsWith('its second half (heights '));
  const m = /heights (\d+)-400\)/.exec(String(half?.metric));
  t.ok(m !== null && Number(m[1]) > 200 && Number(m[1]) <= 400, `the second half starts past the middle (${half?.metric})`);
  const rounds = value('the bound, each round').split(', ').map(Number);
  t.ok(rounds.length === 3 && rounds.every((r) => Number.isFinite(r) && r > 0), `three rounds of the bound: ${rounds.join(', ')}`);
  const sorted = [...rounds].sort((a, b) => a - b);
  t.equal(Number(value('signature checks/s alone on every core, the bound')), sorted[1], 'the bound is their median');
  for (const metric of ['initial sync: blocks/s', 'initial sync: records/s', 'signature checks/s alone on every core, the bound', 'initial sync: records/s / the bound', 'its second half (heights', 'its second half: records/s', 'its second half: records/s / the bound']) {
    const v = Number(value(metric));
    t.ok(Number.isFinite(v) && v > 0, `${metric}: ${value(metric)}`);
  }
  t.equal(Number(value('record A->B->C: records')) + Number(value('record A->B->C: lost')), 20, 'every latency record arrived or was counted lost');
});
