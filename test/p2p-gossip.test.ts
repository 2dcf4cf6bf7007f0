// Three real nodes in a line (A <- B <- C): they converge on one tip while two of them mine, and
// a record submitted at one is pending at the others in well under a second.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { signRecord, Kind, type NameCommit } from '../core/records.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { Harness, converged } from './util/proc.ts';
import { waitFor } from './util/wait.ts';
import { DotsNode } from '../node/node.ts';
import { defaultConfig } from '../node/config.ts';
import { silentLogger } from '../core/log.ts';
import { toHex } from '../core/hash.ts';
import { tmpDir } from './util/tmp.ts';

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

t.test('a record that comes while a new peer is joining gossip reaches it', async (t) => {
  const h = new Harness(t);
  const a = await h.start('A');
  const b = await h.start('B', { bootstrap: [a.p2p] });
  await waitFor('B connected to A', async () => (await b.status()).peers === 1);
  // pending at B before C comes: B hands it to C at their handshake, which is how C's pool
  // hears the moment B has taken C on, before C's subscription to gossip has reached B
  const marker = await a.submit(nameCommit());
  await waitFor('the marker pending at B', () => b.record(marker), 5000);
  // Several Cs, each a new node: the window is a few tens of milliseconds. Before B handed over
  // what it took in it, the record submitted at B as the marker arrived at C was lost about one
  // try in ten (with the fix taken out, this test failed in three of four runs).
  const tries = 10;
  let reached = 0;
  for (let i = 0; i < tries; i++) {
    const dir = tmpDir(t, `dots-p2p-C${i}-`);
    const c = await DotsNode.start({ ...defaultConfig('regtest'), datadir: dir, apiPort: 0, p2pPort: 0, sipPort: 0, bootstrap: [b.p2p] }, silentLogger);
    try {
      const rec = nameCommit();
      const arrived = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 5000);
        c.pool.on('record', (r) => {
          if (toHex(r.id) === marker) void b.submit(rec).catch(() => undefined);
          if (toHex(r.id) === toHex(rec.id)) {
            clearTimeout(timer);
            resolve(true);
          }
        });
      });
      if (await arrived) reached++;
    } finally {
      await c.stop();
    }
  }
  t.equal(reached, tries, `each record sent as a new peer joined reached it (${reached} of ${tries})`);
});
