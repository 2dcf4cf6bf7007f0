// A phone registered at two serving nodes stays reachable when one dies (issue 14, point 4), with
// three node processes on loopback. Alice owns sip:alice@a.test and has it served by A and B
// (`dots name delegate NAME A,B` with her wallet); her phone registers the same address at both
// (at B through B's alias for her account). Once A's binding is the freshest, A is killed
// (SIGKILL: it can say nothing). A message from a phone at C for sip:alice@a.test goes to A
// first, gets no answer, and reaches her phone through B.
import t from 'tap';
import { join } from 'node:path';
import { Harness, converged, runDots, } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { TestPhone } from './sip-client.ts';
import { newWallet } from './phones.ts';
import { mineUntil, nameAt, nodeIdOf } from './util/names.ts';

const NAME = 'sip:alice@a.test';

t.test('a phone registered at two nodes is reached through the second when the first dies', async (t) => {
  const dir = tmpDir(t, 'dots-roam-');
  const h = new Harness(t);
  const w = await newWallet(t, join(dir, 'alice.key'));
  const pub = w.pub;
  const datadirA = join(dir, 'A');
  const datadirB = join(dir, 'B');
  t.equal((await runDots(['user', 'add', 'alice', '--password', 'alice-pw', '--owner', pub, '--datadir', datadirA, '--domain', 'a.test'])).code, 0);
  t.equal((await runDots(['user', 'add', 'alice', '--password', 'alice-pw', '--alias', NAME, '--datadir', datadirB, '--domain', 'b.test'])).code, 0);
  // C mines: A is killed halfway
  const c = await h.start('C', { args: ['--domain', 'c.test', '--open-registration'] });
  const a = await h.start('A', { datadir: datadirA, bootstrap: [c.p2p], args: ['--domain', 'a.test', '--sip-keepalive', '1'] });
  const b = await h.start('B', { datadir: datadirB, bootstrap: [c.p2p], args: ['--domain', 'b.test', '--sip-keepalive', '1'] });
  const mine = (): Promise<unknown> => c.mine(1);

  // the phone's first registration, at A: A claims alice's name and hands it to her key
  const atA = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  t.teardown(() => atA.close());
  t.equal((await atA.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'registered at A');
  const aId = await nodeIdOf(c, a, mine);
  const bId = await nodeIdOf(c, b, mine);
  await mineUntil(mine, 'alice owns her name', async () => (await nameAt(c, NAME))?.owner === pub, { timeoutMs: 60_000 });
  // her wallet has A and B serve it
  const del = await runDots(['name', 'delegate', NAME, `${aId},${bId}`, ...w.args, '--api', c.api], 20_000, w.env);
  t.equal(del.code, 0, del.stderr);

  // the same address registered at B (a name of a.test: B's account for alice answers to it)
  const atB = await new TestPhone({ host: '127.0.0.1', port: b.sipPort }).open();
  t.teardown(() => atB.close());
  t.equal((await atB.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'registered at B as sip:alice@a.test');
  await mineUntil(mine, 'B binds alice', async () => (await nameAt(c, NAME))?.bindings.some((x) => x.node === bId && x.status === 'online'), { timeoutMs: 60_000 });
  // the phone leaves A and comes back: A's binding is then the freshest, where calls go first
  t.equal((await atA.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 0 })).status, 200);
  await mineUntil(mine, 'A says alice left', async () => (await nameAt(c, NAME))?.bindings.find((x) => x.node === aId)?.status === 'offline', { timeoutMs: 60_000 });
  t.equal((await atA.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200);
  await mineUntil(mine, 'both bindings online, A first', async () => {
    const v = await nameAt(c, NAME);
    return v !== null && v.bindings.length === 2 && v.bindings.every((x) => x.status === 'online') && v.bindings[0].node === aId;
  }, { timeoutMs: 60_000 });
  await converged([a, b, c]);
  t.pass('C sees alice online at A (first) and at B');

  await a.kill();
  const bob = await new TestPhone({ host: '127.0.0.1', port: c.sipPort }).open();
  t.teardown(() => bob.close());
  t.equal((await bob.register({ user: 'bob', domain: 'c.test', expires: 600 })).status, 200);
  const t0 = Date.now();
  const sent = bob.request('MESSAGE', NAME, ['From: <sip:bob@c.test>;tag=roam1', 'Max-Forwards: 70', 'Content-Type: text/plain'], 'still there?', 20_000);
  const got = await atB.incoming('MESSAGE', 15_000);
  t.equal(got.body.toString('utf8'), 'still there?', `the message reached alice through B after A did not answer (${Date.now() - t0} ms)`);
  atB.answer(got, 200);
  t.equal((await sent).status, 200, 'and bob hears it was delivered');
  t.equal((await nameAt(c, NAME))?.bindings.find((x) => x.node === aId)?.status, 'online', "A's binding still says online: a dead node cannot say otherwise, which is why C falls back");
});
