// A user who owns her name moves it to another node, end to end with three node processes on
// loopback: node A (domain a.test) adds alice with `--owner` her wallet's key, claims her address
// and hands it to that key, served by A. Alice then delegates the name to node B with her wallet
// alone (`dots name delegate`, through B's API); her phone registers at B, and node C routes a
// message for sip:alice@a.test to B. A's operator does nothing, and A can neither bind the name
// any more nor take it back.
import t from 'tap';
import { join } from 'node:path';
import { Harness, converged, runDots, } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { TestPhone } from './sip-client.ts';
import { newWallet } from './phones.ts';
import { bindingAt, mineUntil, nameAt, nodeIdOf, type NameView } from './util/names.ts';

const NAME = 'sip:alice@a.test';

t.test("alice's own name moves from node A to node B with no action from A's operator", async (t) => {
  const dir = tmpDir(t, 'dots-move-');
  const h = new Harness(t);
  const w = await newWallet(t, join(dir, 'alice.key'));
  const pub = w.pub;
  const datadirA = join(dir, 'A');
  const datadirB = join(dir, 'B');
  const addA = await runDots(['user', 'add', 'alice', '--password', 'alice-pw', '--owner', pub, '--datadir', datadirA, '--domain', 'a.test']);
  t.equal(addA.code, 0, addA.stderr);
  t.match(addA.stdout, /hands it to the key/, 'dots user add says what --owner does');
  // at B alice's account answers to her a.test name (the name her wallet will delegate to B)
  const addB = await runDots(['user', 'add', 'alice', '--password', 'alice-pw-b', '--alias', NAME, '--datadir', datadirB, '--domain', 'b.test']);
  t.equal(addB.code, 0, addB.stderr);
  const a = await h.start('A', { datadir: datadirA, args: ['--domain', 'a.test', '--sip-keepalive', '1'] });
  const b = await h.start('B', { datadir: datadirB, bootstrap: [a.p2p], args: ['--domain', 'b.test', '--sip-keepalive', '1'] });
  const c = await h.start('C', { bootstrap: [a.p2p], args: ['--domain', 'c.test', '--open-registration'] });
  const mine = (): Promise<unknown> => a.mine(1);

  const phoneA = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  t.teardown(() => phoneA.close());
  t.equal((await phoneA.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registers at A');
  const aId = await nodeIdOf(a, a, mine);
  const bId = await nodeIdOf(a, b, mine);
  await mineUntil(mine, 'alice owns her name, served and bound by A', async () => {
    const v = await nameAt(c, NAME);
    return v !== null && v.owner === pub && v.delegates.join() === aId && v.bindings[0]?.node === aId && v.bindings[0].status === 'online';
  }, { timeoutMs: 60_000 });
  t.pass("A claimed alice's name, handed it to her key and binds it as her delegate");

  // alice moves: her wallet delegates the name to B, through B's API; A is not asked
  const moved = await runDots(['name', 'delegate', NAME, bId, ...w.args, '--api', b.api], 20_000, w.env);
  t.equal(moved.code, 0, moved.stderr);
  await mine();
  const phoneB = await new TestPhone({ host: '127.0.0.1', port: b.sipPort }).open();
  t.teardown(() => phoneB.close());
  t.equal((await phoneB.registerWithAuth({ user: 'alice', domain: 'b.test', password: 'alice-pw-b', expires: 600 })).status, 200, 'alice registers at B');
  await mineUntil(mine, 'C sees alice bound to B', async () => (await bindingAt(c, NAME))?.node === bId && (await bindingAt(c, NAME))?.status === 'online', { timeoutMs: 60_000 });
  await converged([a, b, c]);
  const v = (await nameAt(c, NAME)) as NameView;
  t.same(v.delegates, [bId], 'B serves the name now');
  t.same(v.bindings.map((x) => x.node), [bId], "A's binding left the chain with A's delegation");
  t.equal(v.owner, pub, 'alice still owns it');
  t.ok(a.log(400).includes('handing sip:alice@a.test'), "A's log shows the hand-over");

  // a message from a phone at C reaches alice's phone at B
  const bob = await new TestPhone({ host: '127.0.0.1', port: c.sipPort }).open();
  t.teardown(() => bob.close());
  t.equal((await bob.register({ user: 'bob', domain: 'c.test', expires: 600 })).status, 200);
  const sent = bob.request('MESSAGE', NAME, ['From: <sip:bob@c.test>;tag=mv1', 'Max-Forwards: 70', 'Content-Type: text/plain'], 'found you');
  const got = await phoneB.incoming('MESSAGE', 10_000);
  t.equal(got.body.toString('utf8'), 'found you', 'C routed alice to B, B to her phone');
  phoneB.answer(got, 200);
  t.equal((await sent).status, 200);
});
