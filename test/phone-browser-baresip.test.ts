// Issue 16's stretch goal: a browser calls a baresip phone across two nodes. baresip speaks what
// WebRTC needs once told to (`medianat=ice;mediaenc=dtls_srtp` with its ice and dtls_srtp
// modules and `rtcp_mux yes`: test/phones.ts, `webrtc`), and the nodes pass the SDP through
// untouched, so nothing in the node is specific to this call. Node A serves baresip's alice,
// node B the browser's bob; bob calls sip:alice@a.test from the page, baresip answers by itself,
// audio flows both ways (the page's inbound RTP counters rise; baresip reports its RTP
// established), bob hangs up and baresip closes the call too.
//
// baresip opens sockets on every interface, so the whole file runs in a network namespace of its
// own. baresip's ICE gathers no loopback candidates (without one it answers 486), so the
// namespace's loopback gets a second address, 10.99.0.1, for it; the browser's candidates are
// loopback ones (--allow-loopback-in-peer-connection).
import t from 'tap';
import { join } from 'node:path';
import { Harness, runDots } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { sleep, waitFor } from './util/wait.ts';
import { bindingAt, mineUntil, type Binding } from './util/names.ts';
import { BaresipPhone, BrowserPhone, find, inNetworkNamespace } from './phones.ts';

inNetworkNamespace({ file: import.meta.url, title: 'a browser calls baresip across two nodes (in a network namespace)', needs: ['baresip', 'chromium'], install: 'baresip chromium', setup: ['ip addr add 10.99.0.1/24 dev lo'] }, () => {
  t.test('bob in Chromium at B calls alice on baresip at A: WebRTC media (ICE, DTLS-SRTP) between them', async (t) => {
    const dir = tmpDir(t);
    const h = new Harness(t);
    const datadirs = { a: join(dir, 'A'), b: join(dir, 'B') };
    for (const [user, domain, datadir] of [['alice', 'a.test', datadirs.a], ['bob', 'b.test', datadirs.b]] as const) {
      const r = await runDots(['user', 'add', user, '--password', `${user}-secret`, '--datadir', datadir, '--domain', domain]);
      t.equal(r.code, 0, `account ${user}@${domain}${r.code === 0 ? '' : ': ' + r.stderr}`);
    }
    const a = await h.start('A', { datadir: datadirs.a, args: ['--domain', 'a.test', '--sip-keepalive', '2'] });
    const b = await h.start('B', { datadir: datadirs.b, bootstrap: [a.p2p], args: ['--domain', 'b.test', '--ws-port', '0', '--sip-keepalive', '2'] });
    const logs = (): string => `\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}`;

    const alice = BaresipPhone.start(t, dir, { user: 'alice', domain: 'a.test', password: 'alice-secret', nodePort: a.sipPort, sipPort: 20_000, ctrlPort: 20_010, webrtc: true });
    await alice.control();
    await waitFor('alice registered', async () => alice.event('REGISTER_OK') !== undefined || alice.output().includes('alice@a.test: {0/UDP/v4} 200 OK'), 10_000);
    const bob = await BrowserPhone.open(t, 'bob');
    await bob.signIn(`${b.api}/phone/`, 'bob-secret');
    await bob.registered();
    t.pass('baresip (alice) registered at A, the browser (bob) at B over the WebSocket');

    let blocks = 0;
    await mineUntil(
      () => (blocks++ % 2 === 0 ? a : b).mine(1),
      'B to see alice online',
      async () => {
        const v = await bindingAt(b, 'sip:alice@a.test');
        return v?.status === 'online' ? (v as Binding) : undefined;
      },
      { timeoutMs: 45_000 },
    ).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${logs()}`);
    });

    await bob.dial('sip:alice@a.test');
    await bob.callState('established').catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- baresip\n${alice.output().slice(-3000)}${logs()}`);
    });
    const est = await alice.waitEvent('CALL_ESTABLISHED', 10_000);
    t.match(est, { direction: 'incoming', peeruri: 'sip:bob@b.test' }, 'baresip answered the call from sip:bob@b.test');
    const offer = /^m=audio \d+ (\S+)/m.exec(alice.output())?.[1];
    t.equal(offer, 'UDP/TLS/RTP/SAVPF', 'the browser offered DTLS-SRTP (UDP/TLS/RTP/SAVPF), and the node passed it through');

    const first = await waitFor('audio at the browser', async () => {
      const c = await bob.counters('audio-in');
      return c.packets > 20 ? c : undefined;
    }, 15_000).catch((e: unknown) => {
      throw new Error(`${(e as Error).message}\n--- baresip\n${alice.output().slice(-3000)}`);
    });
    await sleep(2000);
    const later = await bob.counters('audio-in');
    t.ok(later.packets > first.packets && later.bytes > first.bytes, `the browser receives baresip's audio: inbound RTP ${first.packets} -> ${later.packets} packets`);
    await alice.waitEvent('CALL_RTPESTAB', 10_000);
    t.pass("baresip receives the browser's audio (RTP established)");
    const path = await bob.path();
    const answer = find(alice.output(), /^SIP\/2\.0 200 /, { cseq: /INVITE/ });
    const candidates = [...(answer?.text ?? '').matchAll(/^a=candidate:\S+ 1 (?:udp|UDP) \d+ (\S+) (\d+) typ/gm)].map((m) => `${m[1]}:${m[2]}`);
    // baresip's checks come from 127.0.0.1, so the browser learns it as a peer-reflexive candidate,
    // whose address Chromium withholds from getStats: its port is the socket baresip offered
    const port = (hp: string): string => hp.split(':').pop() ?? '';
    t.ok(candidates.some((c) => port(c) === port(path.remote)), `the media goes straight to baresip's own socket (${path.remote}; its answer's candidates: ${candidates.join(', ')}), not to a node; the browser's side ${path.local}`);

    await bob.click('#hangup');
    await alice.waitEvent('CALL_CLOSED', 10_000);
    await bob.callState('ended', 10_000);
    t.pass('bob hung up: the call is closed at both ends');
  });
});
