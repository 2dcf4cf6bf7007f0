// SIP over TLS with real phones (issue 16, point 1): a baresip at each of two nodes registers over
// TLS (digest), bob at B calls alice at A, and every hop of the signalling is TLS: bob -> B, B -> A
// (node to node, A's certificate checked against the key A announced on the chain), A -> alice.
// The call is answered, SRTP flows between the phones, both hang up.
//
// baresip opens DNS and RTP sockets on every interface, so the whole test runs in a network
// namespace of its own (unshare -n, loopback only): the file re-runs itself there.
import t from 'tap';
import { join } from 'node:path';
import { Harness, runDots } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { bindingAt, mineUntil } from './util/names.ts';
import { BaresipPhone, find, inNetworkNamespace, traced } from './phones.ts';

inNetworkNamespace({ file: import.meta.url, title: 'baresip over TLS across two nodes (in a network namespace)', needs: ['baresip'], install: 'baresip' }, () => {
  t.test('alice at A and bob at B on TLS: registered, called across the nodes over TLS, answered, hung up', async (t) => {
    const dir = tmpDir(t);
    const h = new Harness(t);
    for (const [user, domain, node] of [['alice', 'a.test', 'A'], ['bob', 'b.test', 'B']] as const) {
      const r = await runDots(['user', 'add', user, '--password', `${user}-pw`, '--datadir', join(dir, node), '--domain', domain]);
      t.equal(r.code, 0, `${user} has an account at ${node}${r.code === 0 ? '' : ': ' + r.stderr}`);
    }
    const a = await h.start('A', { datadir: join(dir, 'A'), args: ['--domain', 'a.test', '--sip-keepalive', '2'] });
    const b = await h.start('B', { datadir: join(dir, 'B'), bootstrap: [a.p2p], args: ['--domain', 'b.test', '--sip-keepalive', '2'] });
    t.ok(a.tlsPort > 0 && b.tlsPort > 0, `both nodes listen for TLS (A ${a.tlsPort}, B ${b.tlsPort})`);
    const alice = BaresipPhone.start(t, dir, { user: 'alice', domain: 'a.test', password: 'alice-pw', nodePort: a.tlsPort, tls: true, sipPort: 20_000, ctrlPort: 20_010 });
    const bob = BaresipPhone.start(t, dir, { user: 'bob', domain: 'b.test', password: 'bob-pw', nodePort: b.tlsPort, tls: true, sipPort: 20_002, ctrlPort: 20_012 });
    await Promise.all([alice.control(), bob.control()]);
    const A = `127.0.0.1:${a.tlsPort}`;
    const B = `127.0.0.1:${b.tlsPort}`;
    for (const [p, at] of [[alice, A], [bob, B]] as const) {
      await waitFor(`${p.user} registered over TLS`, async () => find(p.output(), /^SIP\/2\.0 200 /, { src: at, cseq: /REGISTER/ }), 15_000).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}\n--- ${p.user}\n${p.output().slice(-3000)}`);
      });
      const reg = traced(p.output()).find((m) => m.dst === at && /^REGISTER /.test(m.text) && /^Authorization: Digest /m.test(m.text));
      t.match(reg?.text ?? '', /^Via: SIP\/2\.0\/TLS /m, `${p.user} registered over TLS, with digest credentials`);
    }
    let blocks = 0;
    await mineUntil(
      () => (blocks++ % 2 === 0 ? a : b).mine(1),
      'each node to see the other phone online',
      async () => (await bindingAt(b, 'sip:alice@a.test'))?.status === 'online' && (await bindingAt(a, 'sip:bob@b.test'))?.status === 'online',
      { timeoutMs: 45_000 },
    );
    t.equal((await bob.command('dial', 'sip:alice@a.test')).ok, true, 'bob dials alice');
    await Promise.all([bob.waitEvent('CALL_ESTABLISHED', 15_000), alice.waitEvent('CALL_ESTABLISHED', 15_000)]).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(30)}\n--- B\n${b.log(30)}`);
    });
    t.pass('the call is established at both phones');
    const invite = find(alice.output(), /^INVITE /, { src: A });
    t.ok(invite, 'alice got the INVITE from A over TLS');
    const vias = (invite?.text.match(/^Via: \S+ [^;\r\n]+/gim) ?? []).map((v) => v.slice(5));
    t.same(vias, [`SIP/2.0/TLS ${A}`, `SIP/2.0/TLS ${B}`, 'SIP/2.0/TLS 127.0.0.1:20003'], 'every hop was TLS: A to alice, B to A, bob to B');
    t.same(invite?.text.match(/^Record-Route:.*$/gim)?.map((l) => l.trim()), [`Record-Route: <sip:${A};transport=tls;lr>`, `Record-Route: <sip:${B};transport=tls;lr>`], 'both nodes record-routed their TLS side, so the whole dialog stays on TLS');
    await Promise.all([bob.waitEvent('CALL_RTPESTAB'), alice.waitEvent('CALL_RTPESTAB')]);
    t.pass('SRTP flows between the phones');
    t.equal((await alice.command('hangup')).ok, true, 'alice hangs up');
    await Promise.all([alice.waitEvent('CALL_CLOSED'), bob.waitEvent('CALL_CLOSED')]);
    t.ok(find(alice.output(), /^BYE /, { dst: A }), 'her BYE went to A over TLS');
    t.pass('the call is closed at both phones');
  });
});
