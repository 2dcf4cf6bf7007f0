// Issue 5 with real phones: a baresip at each of two nodes, one calls the other across the nodes,
// the call is answered, media flows, and the call is hung up on both sides.
//
// Node A serves a.test (alice), node B serves b.test (bob); each has the phone's account with a
// password (digest authentication). The nodes know each other only through the peer network and
// the chain: once each phone is registered and has answered its node's OPTIONS pings, its binding
// goes online on the chain, and blocks are mined until each node sees the other's user online.
// Then bob dials sip:alice@a.test through ctrl_tcp: B reads from the chain that A serves alice and
// forwards the INVITE to A, A forwards it to alice's phone, which answers by itself
// (answermode=auto). Both phones report the call established and SRTP media flowing (directly
// between them: the nodes carry no media), alice hangs up after 2 s (her BYE follows the route set
// of both nodes' Record-Route back to bob), and both phones report the call closed. The INVITE
// alice received carries both nodes' Record-Route (two each: the nodes talk TLS between them,
// the phones UDP), and B, the originating node, gets the call
// receipt countersigned by A.
//
// baresip opens DNS and RTP sockets on every interface, so the whole test runs in a network
// namespace of its own (unshare -n, loopback only): the file re-runs itself there.
import t from 'tap';
import { join } from 'node:path';
import { Harness, runDots } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { sleep, waitFor } from './util/wait.ts';
import { BaresipPhone as Phone, find, inNetworkNamespace, traced, type Traced } from './phones.ts';
import { bindingAt, mineUntil, type Binding } from './util/names.ts';

/** The audio port of an SDP body in a traced message. */
function audioPort(m: Traced | undefined): number {
  return Number(/^m=audio (\d+) /m.exec(m?.text ?? '')?.[1] ?? NaN);
}

inNetworkNamespace({ file: import.meta.url, title: 'baresip calls across two nodes (in a network namespace)', needs: ['baresip'], install: 'baresip' }, () => {
  t.test('baresip at each node: bob at B calls alice at A, she answers, both hang up', async (t) => {
    const t0 = Date.now();
    const dir = tmpDir(t);
    const h = new Harness(t);
    const accounts = [
      { user: 'alice', domain: 'a.test', password: 'alice-secret', name: 'A' },
      { user: 'bob', domain: 'b.test', password: 'bob-secret', name: 'B' },
    ];
    const datadirs: string[] = [];
    for (const acc of accounts) {
      const datadir = join(dir, `node-${acc.name}`);
      const r = await runDots(['user', 'add', acc.user, '--password', acc.password, '--datadir', datadir, '--domain', acc.domain]);
      t.equal(r.code, 0, `account ${acc.user}@${acc.domain} created${r.code === 0 ? '' : ': ' + r.stderr}`);
      datadirs.push(datadir);
    }
    const a = await h.start('A', { datadir: datadirs[0], args: ['--domain', 'a.test', '--sip-keepalive', '2'] });
    const b = await h.start('B', { datadir: datadirs[1], bootstrap: [a.p2p], args: ['--domain', 'b.test', '--sip-keepalive', '2'] });
    t.ok(a.sipPort > 0 && b.sipPort > 0, `both nodes listen for SIP (A ${a.sip}, B ${b.sip})`);

    const alice = Phone.start(t, dir, { ...accounts[0], nodePort: a.sipPort, sipPort: 20_000, ctrlPort: 20_010 });
    const bob = Phone.start(t, dir, { ...accounts[1], nodePort: b.sipPort, sipPort: 20_002, ctrlPort: 20_012 });
    await Promise.all([alice.control(), bob.control()]);
    // registration may finish before ctrl_tcp is connected: read it from baresip's own output
    for (const p of [alice, bob]) await waitFor(`${p.user} registered`, async () => p.event('REGISTER_OK') !== undefined || p.output().includes(`${p.user}@${p.domain}: {0/UDP/v4} 200 OK`), 10_000);
    for (const [p, node, contact] of [[alice, a, '127.0.0.1:20000'], [bob, b, '127.0.0.1:20002']] as const) {
      const at = `127.0.0.1:${node.sipPort}`;
      const challenge = find(p.output(), /^SIP\/2\.0 401 /, { src: at, dst: contact, cseq: /REGISTER/ });
      t.match(challenge?.text ?? '', new RegExp(`^WWW-Authenticate: Digest realm="${p.domain.replace(/\./g, '\\.')}"`, 'm'), `${p.user}'s first REGISTER is challenged (401, realm ${p.domain})`);
      const withCredentials = traced(p.output()).some((m) => m.src === contact && m.dst === at && /^REGISTER /.test(m.text) && new RegExp(`^Authorization: Digest username="${p.user}"`, 'm').test(m.text));
      t.ok(withCredentials && find(p.output(), /^SIP\/2\.0 200 /, { src: at, dst: contact, cseq: /REGISTER/ }), `${p.user} registered at ${node.name} with digest credentials (200)`);
    }

    // A and B claim their names and bind their phones; each learns the other's from the chain
    const aliceName = 'sip:alice@a.test';
    const bobName = 'sip:bob@b.test';
    let blocks = 0;
    const [atB, atA] = await mineUntil(
      // both mine: each node's own records are in its pool first, the other's arrive by gossip
      () => (blocks++ % 2 === 0 ? a : b).mine(1),
      'B to see alice online and A to see bob online',
      async () => {
        const v = await Promise.all([bindingAt(b, aliceName), bindingAt(a, bobName)]);
        return v[0]?.status === 'online' && v[1]?.status === 'online' ? (v as [Binding, Binding]) : undefined;
      },
      { timeoutMs: 45_000 },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}`);
    });
    t.not(atB.node, atA.node, `alice is served by A (${atB.node.slice(0, 12)}), bob by B (${atA.node.slice(0, 12)}), after ${blocks} blocks`);
    // B pays A for the call it originates (the receipt settles it): B mines for the coins
    await b.mine(1);

    // bob dials alice across the nodes; alice's phone answers by itself
    const dialed = await bob.command('dial', aliceName);
    t.equal(dialed.ok, true, `bob dials ${aliceName}`);
    const [estBob, estAlice] = await Promise.all([bob.waitEvent('CALL_ESTABLISHED', 15_000), alice.waitEvent('CALL_ESTABLISHED', 15_000)]).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}`);
    });
    t.match(estBob, { direction: 'outgoing', peeruri: aliceName }, 'the call is established at bob (outgoing, to alice)');
    t.match(estAlice, { direction: 'incoming', peeruri: bobName }, 'the call is established at alice (incoming, from bob)');
    await Promise.all([bob.waitEvent('CALL_RTPESTAB'), alice.waitEvent('CALL_RTPESTAB')]);
    t.pass('SRTP media flows both ways between the phones');

    t.equal(estAlice.id, estBob.id, 'one call: the same Call-ID at both ends');

    // the signalling went through both nodes: bob -> B -> A -> alice, both nodes record-routing
    const A = `127.0.0.1:${a.sipPort}`;
    const B = `127.0.0.1:${b.sipPort}`;
    t.ok(find(bob.output(), /^INVITE sip:alice@a\.test\b/, { src: '127.0.0.1:20002', dst: B }), 'bob sent the INVITE to B, his node');
    const invite = find(alice.output(), /^INVITE sip:alice-\S+@127\.0\.0\.1:20000\b/, { src: A, dst: '127.0.0.1:20000' });
    t.ok(invite, 'alice got it from A, at her registered contact');
    const rr = invite?.text.match(/^Record-Route:.*$/gim)?.map((l) => l.trim()) ?? [];
    // the phones are on UDP, the nodes speak TLS between them: each node records both its sides
    const [aTls, bTls] = [`127.0.0.1:${a.tlsPort}`, `127.0.0.1:${b.tlsPort}`];
    t.same(rr, [`Record-Route: <sip:${A};lr>`, `Record-Route: <sip:${aTls};transport=tls;lr>`, `Record-Route: <sip:${bTls};transport=tls;lr>`, `Record-Route: <sip:${B};lr>`], 'both nodes record-routed the INVITE (A on top of B), one entry per side: UDP to the phones, TLS between the nodes');
    const vias = (invite?.text.match(/^Via: \S+ [^;\r\n]+/gim) ?? []).map((v) => v.slice(5));
    t.same(vias, [`SIP/2.0/UDP ${A}`, `SIP/2.0/TLS ${bTls}`, 'SIP/2.0/UDP 127.0.0.1:20002'], 'it left bob\'s phone over UDP, went from B to A over TLS, and from A to alice over UDP');
    const answer = find(bob.output(), /^SIP\/2\.0 200 /, { src: B, dst: '127.0.0.1:20002', cseq: /INVITE/ });
    t.ok(answer, 'bob got alice\'s 200 OK back through B');
    t.ok(find(bob.output(), /^ACK /, { src: '127.0.0.1:20002', dst: B }) && find(alice.output(), /^ACK /, { src: A, dst: '127.0.0.1:20000' }), 'the ACK went the same way, bob -> B -> A -> alice');

    // media went straight between the phones (the nodes carry signalling only)
    const rtpFrom = (p: Phone): number => Number(/incoming rtp for 'audio' established, receiving from 127\.0\.0\.1:(\d+)/.exec(p.output())?.[1] ?? NaN);
    t.equal(rtpFrom(alice), audioPort(invite), `alice receives SRTP from bob's phone (port ${audioPort(invite)} of his offer)`);
    t.equal(rtpFrom(bob), audioPort(answer), `bob receives SRTP from alice's phone (port ${audioPort(answer)} of her answer)`);
    t.match(bob.event('CALL_MENC'), { param: /AES_CM_128_HMAC_SHA1_80/ }, 'SRTP with AES_CM_128_HMAC_SHA1_80');

    await sleep(2000);
    const hung = await alice.command('hangup');
    t.equal(hung.ok, true, 'alice hangs up');
    await Promise.all([alice.waitEvent('CALL_CLOSED'), bob.waitEvent('CALL_CLOSED')]);
    t.pass('the call is closed at both phones');
    t.ok(find(alice.output(), /^BYE /, { src: '127.0.0.1:20000', dst: A }), 'alice sent her BYE to A (the route set)');
    t.ok(find(bob.output(), /^BYE sip:bob-\S+@127\.0\.0\.1:20002\b/, { src: B, dst: '127.0.0.1:20002' }), 'bob got it from B');
    // baresip closes the call when it sends its BYE, so the 200 may still be on its way
    const byeOk = await waitFor('alice to get the 200 to her BYE', async () => find(alice.output(), /^SIP\/2\.0 200 /, { src: A, dst: '127.0.0.1:20000', cseq: /BYE/ }), 5000).catch(() => undefined);
    t.ok(byeOk, 'alice got bob\'s 200 to the BYE back through A');

    // B originated the call, A terminated it: B gets A's countersignature on the receipt
    const line = await waitFor('B to log the call receipt', async () => b.lines.find((l) => /receipts: call \S+ with node \S+ \(\d+ s\) receipted/.test(l)), 15_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}`);
    });
    t.pass(`the nodes exchanged the call receipt: ${line.replace(/^.*receipts: /, '')}`);
    t.comment(`took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });
});
