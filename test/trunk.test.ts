// An operator joins with the SIP server it already runs (issue 18): Kamailio is the registrar of
// k.test, trunked to node A (`dots node --trunk`), which serves k.test on the chain; node B serves
// b.test with its own phones. Kamailio's user is a trunk user of A (`dots user add kuser --trunk`):
// A checks it online with an OPTIONS through Kamailio, which hands it to the phone, and binds it
// on the chain like its own phones; a message from B's phone reaches the Kamailio phone through B,
// A and Kamailio; the Kamailio phone's message reaches B's phone through Kamailio, A (which takes
// it as the server's, by its source) and B; a stranger claiming to be the Kamailio user at A is
// refused; a phone that stops answering goes offline on B's view of the chain.
import t from 'tap';
import { join } from 'node:path';
import { Harness, has, runDots } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { freeUdpPort } from './util/ports.ts';
import { TestPhone } from './sip-client.ts';
import { startOperatorKamailio } from './util/kamailio.ts';
import { bindingAt, mineUntil, nameAt } from './util/names.ts';

t.test('a Kamailio registrar trunked to node A: presence, messages both ways, strangers refused', { skip: has('kamailio') ? false : 'kamailio not installed (apt-get install kamailio)' }, async (t) => {
  const dir = tmpDir(t);
  const h = new Harness(t);
  const kport = await freeUdpPort();
  const [da, db] = [join(dir, 'a'), join(dir, 'b')];
  t.equal((await runDots(['user', 'add', 'kuser', '--trunk', '--datadir', da, '--domain', 'k.test'])).code, 0, 'kuser added as a user of the server behind the trunk');
  t.equal((await runDots(['user', 'add', 'bob', '--password', 'bob-secret', '--datadir', db, '--domain', 'b.test'])).code, 0);
  const a = await h.start('A', { datadir: da, args: ['--domain', 'k.test', '--trunk', `sip:127.0.0.1:${kport}`, '--sip-keepalive', '1'] });
  const k = await startOperatorKamailio(t, { dir, port: kport, domain: 'k.test', node: `127.0.0.1:${a.sipPort}` });
  const b = await h.start('B', { datadir: db, bootstrap: [a.p2p], args: ['--domain', 'b.test'] });

  const kphone = await new TestPhone({ host: '127.0.0.1', port: kport }).open();
  const bob = await new TestPhone({ host: '127.0.0.1', port: b.sipPort }).open();
  const stranger = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  t.teardown(() => {
    kphone.close();
    bob.close();
    stranger.close();
  });
  t.equal((await kphone.register({ user: 'kuser', domain: 'k.test', expires: 600 })).status, 200, 'kuser\'s phone registered at Kamailio');
  t.equal((await bob.registerWithAuth({ user: 'bob', domain: 'b.test', password: 'bob-secret', expires: 600 })).status, 200, 'bob\'s phone registered at B');
  await waitFor('A\'s check to reach kuser\'s phone through Kamailio', async () => kphone.options > 0 || undefined, 10_000).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- kamailio\n${k.log().slice(-2000)}`);
  });
  t.pass('A\'s OPTIONS for sip:kuser@k.test reached the phone through Kamailio\'s lookup');

  let blocks = 0;
  await mineUntil(
    () => (blocks++ % 2 === 0 ? a : b).mine(1),
    'B to see kuser online at A, and A to see bob online at B',
    async () => {
      const [ku, bo] = await Promise.all([bindingAt(b, 'sip:kuser@k.test'), bindingAt(a, 'sip:bob@b.test')]);
      return ku?.status === 'online' && bo?.status === 'online' ? true : undefined;
    },
    { timeoutMs: 45_000 },
  ).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}\n--- A\n${a.log(30)}\n--- B\n${b.log(20)}`);
  });
  t.pass('kuser, registered only at Kamailio, is online on B\'s view of the chain');

  // bob -> B -> A -> Kamailio -> kuser
  const toK = bob.request('MESSAGE', 'sip:kuser@k.test', ['From: <sip:bob@b.test>;tag=b1', 'Content-Type: text/plain'], 'hello kuser', 10_000);
  const atK = await kphone.incoming('MESSAGE', 10_000);
  t.equal(atK.body.toString(), 'hello kuser', 'bob\'s message reached kuser\'s phone at Kamailio, body untouched');
  kphone.answer(atK, 200);
  t.equal((await toK).status, 200, 'and its 200 came back to bob');

  // kuser -> Kamailio -> A (the server's source: its users') -> B -> bob
  const toB = kphone.request('MESSAGE', 'sip:bob@b.test', ['From: <sip:kuser@k.test>;tag=k1', 'Content-Type: text/plain'], 'hello bob', 10_000);
  const atB = await bob.incoming('MESSAGE', 10_000);
  t.equal(atB.body.toString(), 'hello bob', 'kuser\'s message reached bob at B');
  bob.answer(atB, 200);
  t.equal((await toB).status, 200, 'and its 200 came back through A and Kamailio');

  // Numbers from a carrier: A's key holds the block +1555; a number in it that nobody bound goes
  // to A, and over the trunk as sip:NUMBER@k.test, which Kamailio's lookup finds.
  const claiming = runDots(['name', 'claim', '+1555', '--wallet', join(da, 'node.key'), '--api', a.api], 60_000);
  await mineUntil(() => a.mine(1), 'A to hold the block +1555', async () => ((await nameAt(b, '+1555'))?.owner ?? undefined), { timeoutMs: 45_000 });
  t.equal((await claiming).code, 0, 'A\'s key claimed the number block +1555 (dots name claim with the node key as the wallet)');
  const numbered = await new TestPhone({ host: '127.0.0.1', port: kport }).open();
  t.teardown(() => numbered.close());
  t.equal((await numbered.register({ user: '+15550001', domain: 'k.test', expires: 600 })).status, 200, 'a phone registered at Kamailio as +15550001@k.test');
  const toNumber = bob.request('MESSAGE', 'sip:+15550001@b.test', ['From: <sip:bob@b.test>;tag=b2', 'Content-Type: text/plain'], 'hello number', 10_000);
  const atNumber = await numbered.incoming('MESSAGE', 10_000).catch(async (e: unknown) => {
    const r = await toNumber.catch((x: unknown) => ({ status: 0, reason: String(x), headers: [] }));
    throw new Error(`${(e as Error).message}; bob got ${r.status} ${JSON.stringify((r as { headers?: unknown }).headers ?? '')}\n--- A\n${a.log(15)}\n--- B\n${b.log(15)}\n--- kamailio\n${k.log().slice(-1500)}`);
  });
  t.match(atNumber.uri, /^sip:\+15550001@127\.0\.0\.1:/, 'Kamailio found the phone of +15550001 (A sent it as sip:+15550001@k.test)');
  t.equal(atNumber.body.toString(), 'hello number', 'bob\'s message to a number of A\'s block reached it, with no binding of that number on the chain');
  numbered.answer(atNumber, 200);
  t.equal((await toNumber).status, 200);

  // a stranger at another address claiming to be kuser: not the server, and kuser has no credentials at A
  const forged = await stranger.request('MESSAGE', 'sip:bob@b.test', ['From: <sip:kuser@k.test>;tag=s1', 'Content-Type: text/plain'], 'spoofed');
  t.equal(forged.status, 403, 'a request from another source claiming kuser is refused (403)');

  // the phone stops answering: A's checks go unanswered, and kuser goes offline on the chain
  kphone.answerOptions = false;
  await mineUntil(() => a.mine(1), 'B to see kuser offline', async () => ((await bindingAt(b, 'sip:kuser@k.test'))?.status === 'offline' ? true : undefined), { timeoutMs: 45_000 }).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}\n--- A\n${a.log(30)}`);
  });
  t.pass('kuser offline on B\'s view once the phone stopped answering');
});

t.test('past one server: two Kamailios sharing registrations over DMQ, both trunked to node A', { skip: has('kamailio') ? false : 'kamailio not installed (apt-get install kamailio)' }, async (t) => {
  const dir = tmpDir(t);
  const h = new Harness(t);
  const [k1port, k2port] = [await freeUdpPort(), await freeUdpPort()];
  const [da, db] = [join(dir, 'a'), join(dir, 'b')];
  t.equal((await runDots(['user', 'add', 'kuser', '--trunk', '--datadir', da, '--domain', 'k.test'])).code, 0);
  t.equal((await runDots(['user', 'add', 'bob', '--password', 'bob-secret', '--datadir', db, '--domain', 'b.test'])).code, 0);
  const a = await h.start('A', { datadir: da, args: ['--domain', 'k.test', '--trunk', `sip:127.0.0.1:${k1port}`, '--trunk', `sip:127.0.0.1:${k2port}`, '--sip-keepalive', '1'] });
  const node = `127.0.0.1:${a.sipPort}`;
  const k1 = await startOperatorKamailio(t, { dir, port: k1port, domain: 'k.test', node, dmqPeer: `127.0.0.1:${k2port}` });
  const k2 = await startOperatorKamailio(t, { dir, port: k2port, domain: 'k.test', node, dmqPeer: `127.0.0.1:${k1port}` });
  const b = await h.start('B', { datadir: db, bootstrap: [a.p2p], args: ['--domain', 'b.test'] });
  const kphone = await new TestPhone({ host: '127.0.0.1', port: k2port }).open();
  const bob = await new TestPhone({ host: '127.0.0.1', port: b.sipPort }).open();
  t.teardown(() => {
    kphone.close();
    bob.close();
  });
  t.equal((await kphone.register({ user: 'kuser', domain: 'k.test', expires: 600 })).status, 200, 'kuser\'s phone registered at the second Kamailio');
  t.equal((await bob.registerWithAuth({ user: 'bob', domain: 'b.test', password: 'bob-secret', expires: 600 })).status, 200);
  let blocks = 0;
  await mineUntil(
    () => (blocks++ % 2 === 0 ? a : b).mine(1),
    'B to see kuser online (A asked the first Kamailio, which has her registration from the second)',
    async () => {
      const [ku, bo] = await Promise.all([bindingAt(b, 'sip:kuser@k.test'), bindingAt(a, 'sip:bob@b.test')]);
      return ku?.status === 'online' && bo?.status === 'online' ? true : undefined;
    },
    { timeoutMs: 45_000 },
  ).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- k1\n${k1.log().slice(-1500)}\n--- k2\n${k2.log().slice(-1500)}`);
  });
  t.pass('kuser, registered at the second Kamailio, is online on the chain');
  const send = async (body: string): Promise<void> => {
    const res = bob.request('MESSAGE', 'sip:kuser@k.test', ['From: <sip:bob@b.test>;tag=b' + body.length, 'Content-Type: text/plain'], body, 15_000);
    const got = await kphone.incoming('MESSAGE', 15_000).catch(async (e: unknown) => {
      const r = await res.catch((x: unknown) => ({ status: String(x) }));
      throw new Error(`${(e as Error).message}: bob got ${JSON.stringify(r)}\n--- k2\n${k2.log().slice(-3000)}`);
    });
    t.equal(got.body.toString(), body, `"${body}" reached kuser`);
    kphone.answer(got, 200);
    t.equal((await res).status, 200);
  };
  await send('through the first');
  const up = async (): Promise<number> => Number(/^dots_sip_trunk_servers_up (\d+)$/m.exec(await (await fetch(`${a.api}/metrics`)).text())?.[1] ?? NaN);
  t.equal(await up(), 2, 'both servers answer A\'s checks (dots_sip_trunk_servers_up)');
  // the first Kamailio dies: A's next check finds it silent, and A sends to the second first
  await k1.stop();
  const t0 = Date.now();
  await waitFor('A to find the first Kamailio down', async () => ((await up()) === 1 ? true : undefined), 15_000);
  t.pass(`A found the first Kamailio silent in ${Date.now() - t0} ms (its check waits 4 s for an answer)`);
  await send('through the second');
  // and kuser's requests through the second are the server's too
  const toB = kphone.request('MESSAGE', 'sip:bob@b.test', ['From: <sip:kuser@k.test>;tag=k9', 'Content-Type: text/plain'], 'from the second', 10_000);
  const atB = await bob.incoming('MESSAGE', 10_000);
  bob.answer(atB, 200);
  t.equal((await toB).status, 200, 'kuser\'s message through the second Kamailio reached bob (its source is a trunk source too)');
});
