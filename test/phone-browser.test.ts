// Issue 16, point 3: the browser phone, end to end, in two real headless Chromiums (Debian's
// /usr/bin/chromium through playwright-core, fake microphones). Node A serves a.test (alice), node B
// b.test (bob), each with SIP over WebSocket; each browser opens its node's phone page (/phone/,
// beside the explorer), signs in with the account's password, and registers over the WebSocket
// (JsSIP, digest). The nodes bind both users on the chain as for any phone; bob then dials
// sip:alice@a.test, alice's page rings and she answers; the call's audio flows both ways
// (getStats, as the page shows it: inbound RTP packets and bytes rising on both sides) over an
// ICE pair between the two browsers, whose addresses are no node's; bob hangs up and both pages
// show the call ended. A call to a name nobody holds fails with the node's answer on the page.
// Chromium missing is a failure, not a skip: CI's .ci/run installs it.
import t from 'tap';
import { join } from 'node:path';
import { Harness, runDots, type NodeProc } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { sleep, waitFor } from './util/wait.ts';
import { bindingAt, mineUntil, type Binding } from './util/names.ts';
import { BrowserPhone } from './phones.ts';
import { chromiumMissing } from './util/chromium.ts';

t.test('two browsers at two nodes: bob calls alice, audio flows both ways between the browsers, bob hangs up', async (t) => {
  if (chromiumMissing(t)) return;
  const dir = tmpDir(t);
  const h = new Harness(t);
  const accounts = [
    { user: 'alice', domain: 'a.test', password: 'alice-secret' },
    { user: 'bob', domain: 'b.test', password: 'bob-secret' },
  ];
  const nodes: NodeProc[] = [];
  for (const [i, acc] of accounts.entries()) {
    const datadir = join(dir, acc.user);
    const r = await runDots(['user', 'add', acc.user, '--password', acc.password, '--datadir', datadir, '--domain', acc.domain]);
    t.equal(r.code, 0, `account ${acc.user}@${acc.domain}${r.code === 0 ? '' : ': ' + r.stderr}`);
    nodes.push(await h.start(i === 0 ? 'A' : 'B', { datadir, bootstrap: nodes.map((n) => n.p2p), args: ['--domain', acc.domain, '--ws-port', '0', '--sip-keepalive', '2'] }));
  }
  const [a, b] = nodes;
  const logs = (): string => `\n--- A\n${a.log(20)}\n--- B\n${b.log(20)}`;
  t.ok(a.wsPort > 0 && b.wsPort > 0, `both nodes serve SIP over WebSocket (A ${a.wsPort}, B ${b.wsPort})`);
  t.match(a.stdout.find((l) => l.startsWith('phone:')) ?? '', new RegExp(`^phone:\\s+${a.api.replace(/\./g, '\\.')}/phone/$`), 'dots node prints where its phone page is');

  const [alice, bob] = await Promise.all([BrowserPhone.open(t, 'alice'), BrowserPhone.open(t, 'bob')]);
  for (const [p, node, acc] of [[alice, a, accounts[0]], [bob, b, accounts[1]]] as const) {
    await p.signIn(`${node.api}/phone/`, acc.password);
    t.equal(await p.page.locator('#signin [name=domain]').inputValue(), acc.domain, `${acc.user}'s page is prefilled with the node's domain`);
  }
  for (const [p, acc] of [[alice, accounts[0]], [bob, accounts[1]]] as const) {
    await p.registered().catch((e: unknown) => {
      throw new Error(`${(e as Error).message}${logs()}`);
    });
    t.equal(await p.text('#me'), `sip:${acc.user}@${acc.domain}`, `${acc.user}'s browser registered over the WebSocket`);
  }

  // the nodes ping the browsers (OPTIONS over the WebSocket; JsSIP answers) and bind them on the chain
  let blocks = 0;
  await mineUntil(
    () => (blocks++ % 2 === 0 ? a : b).mine(1),
    'B to see alice online and A to see bob online',
    async () => {
      const v = await Promise.all([bindingAt(b, 'sip:alice@a.test'), bindingAt(a, 'sip:bob@b.test')]);
      return v[0]?.status === 'online' && v[1]?.status === 'online' ? (v as [Binding, Binding]) : undefined;
    },
    { timeoutMs: 45_000 },
  ).catch((e: unknown) => {
    throw new Error(`${(e as Error).message}${logs()}`);
  });
  t.pass(`both browsers are online on the chain after ${blocks} blocks`);

  // a name nobody holds: the call fails with the node's answer
  await bob.dial('sip:nobody@a.test');
  await bob.callState('ended');
  t.match(await bob.text('#call-state'), /^Call failed: .*\(404 /, 'a call to a name nobody holds fails on the page with the node\'s 404');

  // bob calls alice by name; her page rings; she answers
  await bob.dial('sip:alice@a.test');
  await alice.callState('incoming').catch((e: unknown) => {
    throw new Error(`${(e as Error).message}${logs()}`);
  });
  t.equal(await alice.text('#peer'), 'sip:bob@b.test', 'alice sees the call is from sip:bob@b.test');
  await alice.click('#answer');
  await Promise.all([alice.callState('established'), bob.callState('established')]);
  t.pass('the call is established on both pages');

  // audio both ways: the inbound counters rise on both sides
  const first = await waitFor('audio at both browsers', async () => {
    const c = await Promise.all([alice.counters('audio-in'), bob.counters('audio-in')]);
    return c[0].packets > 20 && c[1].packets > 20 ? c : undefined;
  }, 15_000);
  await sleep(2000);
  const later = await Promise.all([alice.counters('audio-in'), bob.counters('audio-in')]);
  for (const [i, who] of ['alice', 'bob'].entries()) {
    t.ok(later[i].packets > first[i].packets && later[i].bytes > first[i].bytes, `${who}'s browser receives audio: inbound RTP ${first[i].packets} -> ${later[i].packets} packets, ${first[i].bytes} -> ${later[i].bytes} bytes`);
  }
  const out = await Promise.all([alice.counters('audio-out'), bob.counters('audio-out')]);
  t.ok(out[0].packets > 0 && out[1].packets > 0, `and sends it (outbound RTP: alice ${out[0].packets}, bob ${out[1].packets} packets)`);

  // the media path: straight between the browsers, never through a node
  const [pa, pb] = await Promise.all([alice.path(), bob.path()]);
  t.ok(pa.remote !== '' && pa.remote === pb.local && pb.remote === pa.local, `media goes straight between the browsers: alice ${pa.local} <-> bob ${pb.local}`);
  const nodePorts = new Set([a, b].flatMap((n) => [n.sipPort, n.tlsPort, n.wsPort, Number(new URL(n.api).port)]));
  t.notOk([pa.local, pb.local].some((hp) => nodePorts.has(Number(hp.split(':').pop()))), 'no node port is on the media path');

  // bob hangs up: both pages end the call
  await bob.click('#hangup');
  await Promise.all([alice.callState('ended', 10_000), bob.callState('ended', 10_000)]);
  t.match(await alice.text('#call-state'), /they hung up/, 'alice\'s page: they hung up');
  t.match(await bob.text('#call-state'), /you hung up/, 'bob\'s page: you hung up');
});
