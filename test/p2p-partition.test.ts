// Partition and heal: A and B mine on one side, C alone on the other with more work. When C
// rejoins, everyone ends on C's branch; a record confirmed only on the losing branch goes back to
// the pending pools (also C's, by a direct push) and is mined again. And a reorganisation that
// returns more records than a peer takes at once: every one still reaches it, paced.
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

t.test('partition and heal', async (t) => {
  const h = new Harness(t);
  const a = await h.start('A');
  let [b, c] = await Promise.all([h.start('B', { bootstrap: [a.p2p] }), h.start('C', { bootstrap: [a.p2p] })]);
  await a.mine(3);
  const common = await converged([a, b, c]);
  t.equal(common.height, 3, 'common prefix of 3 blocks');

  // Partition: C restarts without any peer.
  c = await h.restart(c);
  await waitFor('A to see C gone', async () => (await a.status()).peers === 1);

  const lost = await a.submit(nameCommit());
  await waitFor('record at B', () => b.record(lost), 5000, 10);
  await a.mine(1);
  await converged([a, b]);
  await b.mine(1);
  const side1 = await converged([a, b]);
  t.equal(side1.height, 5, 'A and B at height 5');
  t.equal((await b.record(lost))?.confirmed, true, 'record confirmed on the A/B branch');

  const kept = await c.submit(nameCommit());
  await c.mine(4);
  t.equal((await c.status()).height, 7, 'C alone at height 7 (more work)');

  // Heal: C rejoins through A.
  c = await h.restart(c, { bootstrap: [a.p2p] });
  const healed = await converged([a, b, c]);
  const cTip = (await c.status()).tip;
  t.equal(healed.height, 7, 'everyone at height 7');
  t.equal(healed.tip, cTip, "everyone on C's branch");
  for (const n of [a, b]) {
    t.equal((await n.record(kept))?.confirmed, true, `${n.name} has C's record confirmed`);
    const r = await waitFor(`lost record pending at ${n.name}`, () => n.record(lost), 5000);
    t.equal(r.confirmed, false, `record from the losing branch is pending again at ${n.name}`);
  }
  await waitFor('lost record offered to C', () => c.record(lost), 5000);
  t.pass('C got the returned record by push');

  await c.mine(1);
  await converged([a, b, c]);
  for (const n of [a, b, c]) {
    const r = await waitFor(`record mined at ${n.name}`, async () => {
      const x = await n.record(lost);
      return x?.confirmed === true ? x : undefined;
    });
    t.equal(r.height, 8, `${n.name}: returned record mined at height 8`);
  }
});

t.test('a reorganisation returning thousands of records offers every one to a peer, within what the peer takes', async (t) => {
  const h = new Harness(t);
  // A and C apart: A's block carries 3,000 records, C's branch has more work and none of them
  const a = await h.start('A');
  let c = await h.start('C');
  const n = 3000;
  for (let i = 0; i < n; i += 32) await Promise.all(Array.from({ length: Math.min(32, n - i) }, () => a.submit(nameCommit())));
  await a.mine(1);
  const pendingAt = async (node: typeof a): Promise<number> => (await node.get<{ total: number }>('/api/pending?limit=1')).body.total;
  t.equal(await pendingAt(a), 0, 'A mined all 3,000 into its block');
  await c.mine(2);
  c = await h.restart(c, { bootstrap: [a.p2p] });
  await converged([a, c]);
  t.equal((await a.status()).height, 2, "A moved to C's branch");
  await waitFor('A to have the 3,000 pending again', async () => ((await pendingAt(a)) === n ? true : undefined), 10_000);
  // More than a peer's burst of 2,000 records and 12 requests of 256: sent all at once, C took
  // the first 2,000 and dropped the rest, charging A a point a request.
  await waitFor('C to have been offered all 3,000', async () => ((await pendingAt(c)) === n ? true : undefined), 30_000);
  t.pass('C has every record of the disconnected block pending');
  t.notOk(
    c.lines.some((l) => l.includes('flood') && l.includes(a.peerId.slice(-6))),
    'and charged A nothing for them',
  );
});
