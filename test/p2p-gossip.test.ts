// Three real nodes in a line (A <- B <- C): they converge on one tip while two of them mine, and
// a record submitted at one is pending at the others in well under a second.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { signRecord, Kind, type NameCommit } from '../core/records.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { Harness, converged } from './util/proc.ts';
import { waitFor } from './util/wait.ts';

function nameCommit(): ReturnType<typeof signRecord> {
  const sk = generateSecretKey();
  return signRecord<NameCommit>('regtest', sk, { kind: Kind.NameCommit, pubkey: publicKeyOf(sk), commitment: randomBytes(32) });
}

t.test('three nodes converge and relay records', async (t) => {
  const h = new Harness(t);
  const T0 = Date.now();
  const mark = (s: string): void => void t.comment(`${Date.now() - T0} ms: ${s}`);
  const a = await h.start('A');
  mark("A up");
  const [b, c] = await Promise.all([h.start('B', { bootstrap: [a.p2p] }), h.start('C', { bootstrap: [a.p2p] })]);
  await waitFor('A to have two peers', async () => (await a.status()).peers === 2);
  t.equal((await b.status()).peers, 1, 'B has one peer');
  mark("peers");

  // A and B mine at the same time, several rounds; competing blocks of equal work may split
  // the nodes for a moment, and the next block settles it.
  for (let round = 0; round < 5; round++) await Promise.all([a.mine(2), b.mine(1)]);
  await a.mine(1);
  const s = await converged([a, b, c]);
  mark("converged");
  t.ok(s.height >= 6, `all three on tip ${s.tip.slice(0, 16)} at height ${s.height}`);

  // Records: submitted at one node, pending at the others quickly.
  const times: number[] = [];
  for (const [from, ...others] of [[a, b, c], [c, a, b], [b, a, c]]) {
    const t0 = Date.now();
    const id = await from.submit(nameCommit());
    await Promise.all(others.map((n) => waitFor(`record at ${n.name}`, () => n.record(id), 5000, 5)));
    times.push(Date.now() - t0);
  }
  mark("records");
  t.ok(Math.max(...times) < 1000, `record reached both other nodes in ${times.join(', ')} ms`);

  // They get mined, and the block reaches everyone.
  await c.mine(1);
  const after = await converged([a, b, c]);
  t.equal(after.pending, 0, 'pending pool emptied by the block');
  const st = await a.get<{ syncing: boolean; peers: number }>('/api/status');
  t.equal(st.body.syncing, false, 'not syncing once converged');

  const ms = await c.stop();
  t.ok(ms < 5000, `a stopped node exits promptly (${ms} ms)`);
  await waitFor('A to notice C left', async () => (await a.status()).peers === 1);
});

t.test('records pending before a peer connects reach it when it does', async (t) => {
  const h = new Harness(t);
  const a = await h.start('A');
  // gossip now would reach nobody: A has no peer yet
  const id = await a.submit(nameCommit());
  const b = await h.start('B', { bootstrap: [a.p2p] });
  const got = await waitFor('the record pending at B, with no block mined', () => b.record(id), 10_000);
  t.equal(got.confirmed, false, 'A handed its pending records to B when B connected');
});
