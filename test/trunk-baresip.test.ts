// Issue 18 with real phones: an operator's Kamailio (the registrar of k.test) trunked to node A,
// and node B with its own phone. kuser's baresip registers at Kamailio only; bob's at B. A checks
// kuser online through Kamailio and binds her on the chain; bob calls sip:kuser@k.test (B -> A ->
// Kamailio -> her phone), she answers, SRTP flows straight between the phones; then she calls
// bob (Kamailio -> A -> B -> his phone); when her phone dies she goes offline on B's view.
//
// baresip opens DNS and RTP sockets on every interface: the file re-runs itself in a network
// namespace of its own (unshare -n, loopback only).
import t from 'tap';
import { join } from 'node:path';
import { Harness, runDots } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { sleep, waitFor } from './util/wait.ts';
import { freeUdpPort } from './util/ports.ts';
import { BaresipPhone as Phone, find, inNetworkNamespace, type Traced } from './phones.ts';
import { startOperatorKamailio } from './util/kamailio.ts';
import { bindingAt, mineUntil, nameAt } from './util/names.ts';

/** The audio port of an SDP body in a traced message. */
function audioPort(m: Traced | undefined): number {
  return Number(/^m=audio (\d+) /m.exec(m?.text ?? '')?.[1] ?? NaN);
}
const rtpFrom = (p: Phone): number => Number(/incoming rtp for 'audio' established, receiving from 127\.0\.0\.1:(\d+)/.exec(p.output())?.[1] ?? NaN);

inNetworkNamespace({ file: import.meta.url, title: 'baresip calls between a Kamailio trunked to node A and a phone at node B (in a network namespace)', needs: ['baresip', 'kamailio'], install: 'baresip kamailio' }, () => {
  t.test('bob at B calls kuser at the operator\'s Kamailio behind A, and she calls him back', async (t) => {
    const dir = tmpDir(t);
    const h = new Harness(t);
    const kport = await freeUdpPort();
    const [da, db] = [join(dir, 'a'), join(dir, 'b')];
    t.equal((await runDots(['user', 'add', 'kuser', '--trunk', '--datadir', da, '--domain', 'k.test'])).code, 0);
    t.equal((await runDots(['user', 'add', 'bob', '--password', 'bob-secret', '--datadir', db, '--domain', 'b.test'])).code, 0);
    const a = await h.start('A', { datadir: da, args: ['--domain', 'k.test', '--trunk', `sip:127.0.0.1:${kport}`, '--sip-keepalive', '1'] });
    const k = await startOperatorKamailio(t, { dir, port: kport, domain: 'k.test', node: `127.0.0.1:${a.sipPort}` });
    const b = await h.start('B', { datadir: db, bootstrap: [a.p2p], args: ['--domain', 'b.test', '--sip-keepalive', '2'] });
    const kuser = Phone.start(t, dir, { user: 'kuser', domain: 'k.test', password: 'unused', nodePort: kport, sipPort: 20_000, ctrlPort: 20_010 });
    const bob = Phone.start(t, dir, { user: 'bob', domain: 'b.test', password: 'bob-secret', nodePort: b.sipPort, sipPort: 20_002, ctrlPort: 20_012 });
    await Promise.all([kuser.control(), bob.control()]);
    for (const p of [kuser, bob]) await waitFor(`${p.user} registered`, async () => p.event('REGISTER_OK') !== undefined || p.output().includes(`${p.user}@${p.domain}: {0/UDP/v4} 200 OK`), 10_000);
    t.pass('kuser registered at Kamailio, bob at B');

    let blocks = 0;
    await mineUntil(
      () => (blocks++ % 2 === 0 ? a : b).mine(1),
      'B to see kuser online and A to see bob online',
      async () => {
        const [ku, bo] = await Promise.all([bindingAt(b, kuser.aor), bindingAt(a, bob.aor)]);
        return ku?.status === 'online' && bo?.status === 'online' ? true : undefined;
      },
      { timeoutMs: 45_000 },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}\n--- kamailio\n${k.log().slice(-1500)}`);
    });
    t.pass('kuser, registered at Kamailio only, is online on the chain as B sees it');

    // bob -> B -> A -> Kamailio -> kuser
    t.equal((await bob.command('dial', kuser.aor)).ok, true, 'bob dials sip:kuser@k.test');
    await Promise.all([bob.waitEvent('CALL_ESTABLISHED', 15_000), kuser.waitEvent('CALL_ESTABLISHED', 15_000)]).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}\n--- kamailio\n${k.log().slice(-1500)}`);
    });
    await Promise.all([bob.waitEvent('CALL_RTPESTAB'), kuser.waitEvent('CALL_RTPESTAB')]);
    t.pass('the call is established and SRTP flows both ways');
    const invite = find(kuser.output(), /^INVITE sip:kuser\S*@127\.0\.0\.1:20000\b/, { src: `127.0.0.1:${kport}`, dst: '127.0.0.1:20000' });
    t.ok(invite, 'kuser got the INVITE from Kamailio, at her registered contact');
    const rr = invite?.text.match(/^Record-Route:.*$/gim)?.map((l) => l.trim()) ?? [];
    t.ok(rr.some((l) => l.includes(`127.0.0.1:${kport}`)) && rr.some((l) => l.includes(`127.0.0.1:${a.sipPort}`)) && rr.some((l) => l.includes(`127.0.0.1:${b.sipPort}`)), `Kamailio, A and B all record-routed it (${rr.length} entries)`);
    const answer = find(bob.output(), /^SIP\/2\.0 200 /, { src: `127.0.0.1:${b.sipPort}`, dst: '127.0.0.1:20002', cseq: /INVITE/ });
    t.equal(rtpFrom(kuser), audioPort(invite), 'kuser receives SRTP from bob\'s phone itself (the port of his offer)');
    t.equal(rtpFrom(bob), audioPort(answer), 'bob receives SRTP from kuser\'s phone itself (the port of her answer)');
    await sleep(1000);
    t.equal((await bob.command('hangup')).ok, true);
    await Promise.all([bob.waitEvent('CALL_CLOSED'), kuser.waitEvent('CALL_CLOSED')]);
    t.pass('bob hangs up; the call is closed at both phones');

    // kuser -> Kamailio -> A -> B -> bob
    const before = bob.events().filter((e) => e === 'CALL_ESTABLISHED').length;
    t.equal((await kuser.command('dial', bob.aor)).ok, true, 'kuser dials sip:bob@b.test');
    await waitFor('the call back established at both phones', async () => bob.events().filter((e) => e === 'CALL_ESTABLISHED').length > before && kuser.events().filter((e) => e === 'CALL_ESTABLISHED').length > 1 || undefined, 15_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}\n--- kamailio\n${k.log().slice(-1500)}`);
    });
    t.pass('kuser\'s call to bob is established: Kamailio sent it over the trunk, A routed it by the chain');
    t.equal((await kuser.command('hangup')).ok, true);

    // by number: A's key holds the block +1555; a phone at Kamailio registered as +15550001 is
    // reached by dialling the number, with no binding of it on the chain
    const claiming = runDots(['name', 'claim', '+1555', '--wallet', join(da, 'node.key'), '--api', a.api], 60_000);
    await mineUntil(() => a.mine(1), 'B to see A hold +1555', async () => ((await nameAt(b, '+1555'))?.owner ?? undefined), { timeoutMs: 45_000 });
    t.equal((await claiming).code, 0, 'A\'s key claimed the number block +1555');
    const knum = Phone.start(t, dir, { user: '+15550001', domain: 'k.test', password: 'unused', nodePort: kport, sipPort: 20_004, ctrlPort: 20_014 });
    await knum.control();
    await waitFor('+15550001 registered at Kamailio', async () => knum.event('REGISTER_OK') !== undefined || knum.output().includes('+15550001@k.test: {0/UDP/v4} 200 OK'), 10_000);
    t.equal((await bob.command('dial', '+15550001')).ok, true, 'bob dials +15550001');
    await Promise.all([knum.waitEvent('CALL_ESTABLISHED', 15_000), knum.waitEvent('CALL_RTPESTAB', 15_000)]).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}\n--- kamailio\n${k.log().slice(-1500)}`);
    });
    t.pass('the call to the number is established at the phone behind Kamailio, media flowing');
    t.equal((await bob.command('hangup')).ok, true);
    await knum.waitEvent('CALL_CLOSED');

    // her phone dies: A's checks through Kamailio go unanswered, and she goes offline
    await kuser.stop();
    await mineUntil(() => a.mine(1), 'B to see kuser offline', async () => ((await bindingAt(b, kuser.aor))?.status === 'offline' ? true : undefined), { timeoutMs: 45_000 });
    t.pass('kuser offline on B\'s view once her phone died');
  });
});
