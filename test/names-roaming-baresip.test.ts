// Issue 14, point 4, with real phones: a baresip configured with two registrars (`outbound` and
// `outbound2`, sipnat=outbound: it registers at both at once, one RFC 5626 flow each) stays
// reachable when the node it is called through dies. Three node processes: alice owns
// sip:alice@a.test and has it served by A and B (her wallet's `dots name delegate`); her phone
// registers at A and at B (B's alias of her account); bob's baresip is registered at C. Once C
// sees both of alice's bindings online, the node C would try first is killed (SIGKILL: it can
// say nothing), and bob calls alice: C tries the dead node, hears no 100 Trying, and goes on to
// the other, where alice's phone answers. Media flows between the phones, both hang up.
//
// baresip opens DNS and RTP sockets on every interface, so the test runs in a network namespace
// of its own (unshare -n, loopback only): the file re-runs itself there.
import t from 'tap';
import { join } from 'node:path';
import { Harness, converged, runDots, type NodeProc } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { TestPhone } from './sip-client.ts';
import { BaresipPhone, find, inNetworkNamespace, newWallet } from './phones.ts';
import { mineUntil, nameAt, nodeIdOf } from './util/names.ts';

const NAME = 'sip:alice@a.test';

inNetworkNamespace({ file: import.meta.url, title: 'a baresip with two registrars survives one (in a network namespace)', needs: ['baresip'], install: 'baresip' }, () => {
  t.test('alice registered at A and B, the node called first dies, bob at C still reaches her', async (t) => {
    const dir = tmpDir(t, 'dots-roam-baresip-');
    const h = new Harness(t);
    const w = await newWallet(t, join(dir, 'alice.key'));
    const datadir = { A: join(dir, 'A'), B: join(dir, 'B'), C: join(dir, 'C') };
    const add = async (args: string[]): Promise<void> => {
      const r = await runDots(['user', 'add', ...args]);
      t.equal(r.code, 0, `dots user add ${args[0]} at ${args[args.indexOf('--domain') + 1]}${r.code === 0 ? '' : ': ' + r.stderr}`);
    };
    await add(['alice', '--password', 'alice-pw', '--owner', w.pub, '--datadir', datadir.A, '--domain', 'a.test']);
    await add(['alice', '--password', 'alice-pw', '--alias', NAME, '--datadir', datadir.B, '--domain', 'b.test']);
    await add(['bob', '--password', 'bob-pw', '--datadir', datadir.C, '--domain', 'c.test']);
    const c = await h.start('C', { datadir: datadir.C, args: ['--domain', 'c.test'] });
    const a = await h.start('A', { datadir: datadir.A, bootstrap: [c.p2p], args: ['--domain', 'a.test', '--sip-keepalive', '1'] });
    const b = await h.start('B', { datadir: datadir.B, bootstrap: [c.p2p], args: ['--domain', 'b.test', '--sip-keepalive', '1'] });
    const mine = (): Promise<unknown> => c.mine(1);

    // alice's first registration at A has A claim her name and hand it to her key; her wallet
    // then has A and B serve it
    const first = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
    t.teardown(() => first.close());
    t.equal((await first.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'registered at A once');
    const ids = new Map<NodeProc, string>([
      [a, await nodeIdOf(c, a, mine)],
      [b, await nodeIdOf(c, b, mine)],
    ]);
    await mineUntil(mine, 'alice owns her name', async () => (await nameAt(c, NAME))?.owner === w.pub, { timeoutMs: 60_000 });
    const del = await runDots(['name', 'delegate', NAME, `${ids.get(a)},${ids.get(b)}`, ...w.args, '--api', c.api], 20_000, w.env);
    t.equal(del.code, 0, `alice's wallet has A and B serve her name${del.code === 0 ? '' : ': ' + del.stderr}`);
    t.equal((await first.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 0 })).status, 200, 'that registration is removed');

    // her baresip: two registrars, both at once
    const alice = BaresipPhone.start(t, dir, { user: 'alice', domain: 'a.test', password: 'alice-pw', nodePort: a.sipPort, nodePort2: b.sipPort, sipPort: 20_000, ctrlPort: 20_010 });
    const bob = BaresipPhone.start(t, dir, { user: 'bob', domain: 'c.test', password: 'bob-pw', nodePort: c.sipPort, sipPort: 20_002, ctrlPort: 20_012 });
    await Promise.all([alice.control(), bob.control()]);
    for (const [node, label] of [[a, 'A'], [b, 'B']] as const) {
      await waitFor(`alice registered at ${label}`, async () => find(alice.output(), /^SIP\/2\.0 200 /, { src: `127.0.0.1:${node.sipPort}`, cseq: /REGISTER/ }), 10_000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n--- alice's phone\n${alice.output().slice(-4000)}\n--- ${label}\n${node.log(20)}`);
      });
      const reg = find(alice.output(), /^REGISTER /, { dst: `127.0.0.1:${node.sipPort}` });
      t.match(reg?.text ?? '', /^Contact: .*reg-id=\d.*$/im, `alice's phone registered at ${label} with an outbound flow of its own (reg-id)`);
    }
    const view = await mineUntil(mine, 'C to see alice online at A and B', async () => {
      const v = await nameAt(c, NAME);
      return v !== null && v.bindings.length === 2 && v.bindings.every((x) => x.status === 'online') ? v : undefined;
    }, { timeoutMs: 60_000 });
    await converged([a, b, c]);
    const [dead, alive] = view.bindings[0].node === ids.get(a) ? [a, b] : [b, a];
    t.pass(`C sees alice online at both; it would call through ${dead.name} first`);

    await dead.kill();
    const t0 = Date.now();
    t.equal((await bob.command('dial', NAME)).ok, true, `bob dials ${NAME}`);
    const [atBob, atAlice] = await Promise.all([bob.waitEvent('CALL_ESTABLISHED', 20_000), alice.waitEvent('CALL_ESTABLISHED', 20_000)]).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- C\n${c.log(20)}\n--- ${alive.name}\n${alive.log(20)}`);
    });
    t.match(atAlice, { direction: 'incoming' }, `alice's phone answered, ${Date.now() - t0} ms after ${dead.name} died`);
    t.equal(atAlice.id, atBob.id, 'one call at both ends');
    t.ok(find(alice.output(), /^INVITE /, { src: `127.0.0.1:${alive.sipPort}`, dst: '127.0.0.1:20000' }), `the INVITE came through ${alive.name}, the node still alive`);
    await Promise.all([bob.waitEvent('CALL_RTPESTAB'), alice.waitEvent('CALL_RTPESTAB')]);
    t.pass('media flows between the phones');
    t.equal((await bob.command('hangup')).ok, true, 'bob hangs up');
    await Promise.all([alice.waitEvent('CALL_CLOSED'), bob.waitEvent('CALL_CLOSED')]);
    t.pass('the call is closed at both phones');
  });
});
