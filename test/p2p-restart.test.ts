// A node that was down while 200 blocks (with records) were mined catches up after a restart,
// by header-first sync from its peer, and reports progress while it does.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { signRecord, Kind, type NameCommit } from '../core/records.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { Harness, converged } from './util/proc.ts';
import { waitFor } from './util/wait.ts';

t.test('a node stopped for 200 blocks catches up after restart', async (t) => {
  const h = new Harness(t);
  const a = await h.start('A');
  let b = await h.start('B', { bootstrap: [a.p2p] });
  await a.mine(5);
  await converged([a, b]);
  const down = await b.stop();
  t.ok(down < 5000, `B stopped in ${down} ms`);

  const ids: string[] = [];
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 10; i++) {
      const sk = generateSecretKey();
      ids.push(await a.submit(signRecord<NameCommit>('regtest', sk, { kind: Kind.NameCommit, pubkey: publicKeyOf(sk), commitment: randomBytes(32) })));
    }
    await a.mine(50);
  }
  t.equal((await a.status()).height, 205, 'A mined 200 blocks while B was down');

  const t0 = Date.now();
  b = await h.restart(b, { bootstrap: [a.p2p] });
  t.equal((await b.status()).height, 5, 'B restarted at its old height');
  const s = await converged([a, b], 30_000);
  t.equal(s.height, 205, `B caught up to 205 in ${Date.now() - t0} ms (including its start)`);
  for (const id of [ids[0], ids[ids.length - 1]]) t.equal((await b.record(id))?.confirmed, true, 'records came with the blocks');
  await waitFor('B to report it is not syncing', async () => !(await b.status()).syncing);
  t.ok(b.lines.some((l) => /sync: connected \d+ blocks/.test(l)), 'B logged its sync');

  // And it keeps following.
  await a.mine(1);
  t.equal((await converged([a, b])).height, 206, 'B follows new blocks after catching up');
});
