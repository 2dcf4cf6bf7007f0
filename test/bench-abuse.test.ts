// `dots bench abuse` runs end to end (a short version: two floods of 2 s), so the benchmark the
// README's figures come from keeps working. Its figures are not asserted here: the attacks and
// what must hold under them are test/sip-fairness.test.ts.
import t from 'tap';
import { benchAbuse } from '../bench/abuse.ts';

t.test('dots bench abuse: a node, a phone, and two floods from another address', async (t) => {
  const rows = await benchAbuse({ seconds: 2, json: true, verbose: false, only: ['register', 'tcp-unfinished'] });
  t.same(
    rows.map((r) => r.flood),
    ['none', 'register', 'tcp-unfinished'],
    'the baseline, then each flood asked for',
  );
  for (const r of rows) {
    const [ok, attempts] = String(r.legit).split('/').map(Number);
    t.ok(attempts >= 1 && ok <= attempts, `${r.flood}: the phone tried (${r.legit})`);
    t.ok(Number(r['peak MB']) > 0, `${r.flood}: the node's memory was read (${r['peak MB']} MB)`);
  }
  t.equal(rows[0].sent, 0, 'nothing is sent without a flood');
  t.ok(Number(rows[1].sent) > 0, `the REGISTER flood was sent (${rows[1].sent})`);
  const [ok, attempts] = String(rows[0].legit).split('/');
  t.equal(ok, attempts, 'without a flood every attempt of the phone succeeds');
});
