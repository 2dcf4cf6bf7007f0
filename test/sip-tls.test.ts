// SIP over TLS (RFC 3261 26.2; issue 16, points 1 and 2), with the SIP stack in process and real
// TLS connections on loopback: a phone registers over TLS with digest; a call from a phone on UDP
// to a phone on TLS crosses the node with one Record-Route per side (RFC 5658) and a TLS Via; and
// node to node, a node reaches another at the TLS URI it announced, checks the certificate's key
// against the `;spki=` of that URI (a certificate that does not match is refused), and the node
// called knows the caller's node by the proof it signs on the connection (a proof copied onto
// another connection proves nothing).
import t from 'tap';
import { connect, createServer, type Socket } from 'node:net';
import type { Test } from 'tap';
import { credentialsFor } from '../sip/digest.ts';
import { getHeaders, type SipRequest } from '../sip/message.ts';
import { NODE_PROOF_TAG, spkiFingerprint, tlsUri } from '../sip/tls.ts';
import { generateSecretKey, publicKeyOf, signTagged, verifyTagged } from '../core/sig.ts';
import { nodeIdOf } from '../core/address.ts';
import { bytesEqual } from '../core/hash.ts';
import { selfSignedCertificate } from '../node/certificate.ts';
import { SipService, type SipServiceOptions } from '../sip/service.ts';
import type { CallEnd } from '../sip/proxy.ts';
import { TestPhone, serve } from './sip-client.ts';

const USERS_A = new Map([['alice', credentialsFor('alice', 'a.test', 'alice-pw')]]);
const USERS_B = new Map([['bob', credentialsFor('bob', 'b.test', 'bob-pw')]]);

async function node(t: Test, domain: string, users: typeof USERS_A, extra: Partial<SipServiceOptions> = {}): Promise<{ svc: SipService; phone: (proto?: 'udp' | 'tcp' | 'tls') => Promise<TestPhone>; key: string }> {
  const tls = { port: 0, ...selfSignedCertificate(domain, ['127.0.0.1']) };
  const svc = new SipService({ host: '127.0.0.1', port: 0, domain, openRegistration: false, users: { lookup: (u) => users.get(u) }, keepalive: { intervalMs: 60_000, timeoutMs: 1000 }, timers: { t1: 100, t2: 400, t4: 500 }, tls, ...extra });
  const phones = await serve(t, svc);
  return {
    svc,
    key: spkiFingerprint(tls.cert),
    phone: async (proto = 'udp') => (proto === 'tls' ? new TestPhone({ host: '127.0.0.1', port: svc.tlsPort }, 'tls').open().then((p) => (t.teardown(() => p.close()), p)) : phones(proto)),
  };
}

/**
 * Node A, whose chain view knows one other node, B, by its node key (as its announcement would):
 * B's secret and id, and the calls A reports ended.
 */
async function nodeKnowingB(t: Test): Promise<{ a: Awaited<ReturnType<typeof node>>; bSecret: Uint8Array; B_ID: Uint8Array; ends: CallEnd[] }> {
  const bSecret = generateSecretKey();
  const B_ID = nodeIdOf(publicKeyOf(bSecret));
  const ends: CallEnd[] = [];
  const a = await node(t, 'a.test', USERS_A, {
    locator: { locate: () => ({ kind: 'unknown' }), verifyNodeProof: (id, binding, sig) => bytesEqual(id, B_ID) && verifyTagged(publicKeyOf(bSecret), NODE_PROOF_TAG, binding, sig) },
    onCallEnd: (e) => ends.push(e),
  });
  return { a, bSecret, B_ID, ends };
}

function invite(from: TestPhone, uri: string, fromUri: string, tag: string): { branch: string; final: Promise<{ status: number }> } {
  const branch = 'z9hG4bK' + tag;
  from.sendRaw(
    [
      `INVITE ${uri} SIP/2.0`,
      `Via: SIP/2.0/${from.transport} 127.0.0.1:${from.port};rport;branch=${branch}`,
      'Max-Forwards: 70',
      `From: <${fromUri}>;tag=${tag}`,
      `To: <${uri}>`,
      `Call-ID: call-${tag}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:caller@127.0.0.1:${from.port}>`,
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
  return { branch, final: from.response(branch, 8000) };
}

t.test('a phone registers over TLS, with digest, and sees the node certificate', async (t) => {
  const { svc, phone, key } = await node(t, 'a.test', USERS_A);
  t.ok(svc.tlsPort > 0 && svc.tlsPort !== svc.port, `TLS listens on a port of its own (${svc.tlsPort})`);
  t.equal(svc.tlsUri, tlsUri(`127.0.0.1:${svc.tlsPort}`, key), "the node's TLS URI names its certificate's key");
  const alice = await phone('tls');
  const cert = alice.peerCertificate();
  t.ok(cert !== undefined && spkiFingerprint(cert) === key, 'the phone was shown the node certificate');
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'registered over TLS');
  const [b] = svc.registrar.lookup('sip:alice@a.test');
  t.equal(b?.flow.proto, 'tls', 'the contact is kept with its TLS flow');
});

t.test('a call from a UDP phone to a TLS phone: one Record-Route per side, a TLS Via', async (t) => {
  const users = new Map([...USERS_A, ['carol', credentialsFor('carol', 'a.test', 'carol-pw')]]);
  const { svc, phone } = await node(t, 'a.test', users);
  const alice = await phone('tls');
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registered over TLS');
  const carol = await phone('udp');
  t.equal((await carol.registerWithAuth({ user: 'carol', domain: 'a.test', password: 'carol-pw', expires: 600 })).status, 200, 'carol registered over UDP');
  const call = invite(carol, 'sip:alice@a.test', 'sip:carol@a.test', 'tls1');
  const got = (await alice.incoming('INVITE', 5000)) as SipRequest;
  t.match(getHeaders(got, 'via')[0], new RegExp(`^SIP/2\\.0/TLS 127\\.0\\.0\\.1:${svc.tlsPort};`), 'the node sent it over TLS, its TLS port in the Via');
  t.same(getHeaders(got, 'record-route'), [`<sip:127.0.0.1:${svc.tlsPort};transport=tls;lr>`, `<sip:127.0.0.1:${svc.port};lr>`], "the callee's side (TLS) on top, the caller's side (UDP) below: each reaches the node the way it came");
  alice.answer(got, 486);
  t.equal((await call.final).status, 486, "alice's answer goes back to carol");
});

t.test('node to node over TLS: the announced key is checked, and the called node knows who called', async (t) => {
  const { a, bSecret, B_ID, ends } = await nodeKnowingB(t);
  let uris: string[] = [];
  const b = await node(t, 'b.test', USERS_B, {
    locator: { locate: () => ({ kind: 'remote', nodes: [{ nodeId: new Uint8Array(20).fill(0xa), uris }], online: true }) },
    nodeProof: { nodeId: B_ID, sign: (binding) => signTagged(bSecret, NODE_PROOF_TAG, binding) },
  });
  const alice = await a.phone('udp');
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registered at A');
  const bob = await b.phone('udp');
  t.equal((await bob.registerWithAuth({ user: 'bob', domain: 'b.test', password: 'bob-pw', expires: 600 })).status, 200, 'bob registered at B');

  // A's URI as it would be announced: B connects over TLS and checks the key
  uris = [a.svc.tlsUri as string];
  const call = invite(bob, 'sip:alice@a.test', 'sip:bob@b.test', 'n2n1');
  const got = (await alice.incoming('INVITE', 5000)) as SipRequest;
  const rr = getHeaders(got, 'record-route');
  t.same(rr, [`<sip:127.0.0.1:${a.svc.port};lr>`, `<sip:127.0.0.1:${a.svc.tlsPort};transport=tls;lr>`, `<sip:127.0.0.1:${b.svc.tlsPort};transport=tls;lr>`, `<sip:127.0.0.1:${b.svc.port};lr>`], 'B to A over TLS: each node records both of its sides');
  t.match(getHeaders(got, 'via')[1], new RegExp(`^SIP/2\\.0/TLS 127\\.0\\.0\\.1:${b.svc.tlsPort};`), 'B sent it to A over TLS');
  t.equal(b.svc.transport.stats.wrongKey, 0, "A's certificate matched its announcement");
  t.same(getHeaders(got, 'dots-node-proof'), [], "B's proof went no further than A");
  alice.answer(got, 200);
  t.equal((await call.final).status, 200, "alice's answer comes back to bob");
  // alice hangs up along the route set: A reports the call's end, naming the node that called
  const bye = alice.request('BYE', `sip:caller@127.0.0.1:${bob.port}`, [`Route: ${rr.join(', ')}`, `From: <sip:alice@a.test>;tag=ph${alice.port}`, 'To: <sip:bob@b.test>;tag=n2n1', 'Call-ID: call-n2n1'], '', 5000);
  bob.answer(await bob.incoming('BYE', 5000), 200);
  t.equal((await bye).status, 200, 'the BYE went back through A and B to bob');
  t.equal(ends.length, 1, 'A reported the end of the call');
  t.same(ends[0]?.peerNodeId, B_ID, 'as terminating node, with B as the calling node: B proved it on the connection with its node key');
  t.equal(ends[0]?.role, 'term', 'A was the terminating node');

  // the same URI with another key: an impostor at A's address, or a stale announcement
  uris = [tlsUri(`127.0.0.1:${a.svc.tlsPort}`, 'ab'.repeat(32))];
  const refused = invite(bob, 'sip:alice@a.test', 'sip:bob@b.test', 'n2n2');
  t.equal((await refused.final).status, 480, 'a certificate whose key is not the announced one is refused: the caller gets 480');
  t.equal(b.svc.transport.stats.wrongKey, 1, 'counted as a wrong key');
  t.equal(alice.received.filter((m) => m.kind === 'request' && m.method === 'INVITE').length, 0, 'and nothing reached alice');
});

t.test('--require-tls: no registration over UDP, no SRTP keys over a plain transport either way', async (t) => {
  const users = new Map([...USERS_A, ['carol', credentialsFor('carol', 'a.test', 'carol-pw')]]);
  let uris: string[] = [];
  const { svc, phone } = await node(t, 'a.test', users, { requireTls: true, locator: { locate: () => ({ kind: 'remote', nodes: [{ nodeId: new Uint8Array(20).fill(7), uris }], online: true }) } });
  const plain = await phone('udp');
  const r = await plain.registerWithAuth({ user: 'carol', domain: 'a.test', password: 'carol-pw', expires: 600 });
  t.equal(r.status, 403, 'a REGISTER over UDP is refused');
  t.match(getHeaders(r, 'warning')[0], /register over TLS/, 'saying to use TLS');
  t.equal(svc.registrar.lookup('sip:carol@a.test').length, 0, 'and nothing is registered');
  const alice = await phone('tls');
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'over TLS it registers');

  const sdp = ['v=0', 'o=- 1 1 IN IP4 127.0.0.1', 's=-', 'c=IN IP4 127.0.0.1', 't=0 0', 'm=audio 4000 RTP/SAVP 0', 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz', ''].join('\r\n');
  const inClear = await plain.request('INVITE', 'sip:alice@a.test', ['From: <sip:carol@a.test>;tag=c1', 'Content-Type: application/sdp'], sdp, 3000);
  t.equal(inClear.status, 488, 'an INVITE with SRTP keys over UDP is refused (488), not relayed');
  t.match(getHeaders(inClear, 'warning')[0], /a=crypto/, 'the Warning says why');
  t.equal(alice.received.filter((m) => m.kind === 'request' && m.method === 'INVITE').length, 0, 'alice never saw it');

  // out: alice (TLS) calls a name another node serves on UDP only
  const far = await new TestPhone({ host: '127.0.0.1', port: 1 }).open();
  t.teardown(() => far.close());
  uris = [`sip:127.0.0.1:${far.port}`];
  const out = await alice.request('INVITE', 'sip:zed@far.test', ['From: <sip:alice@a.test>;tag=a1', 'Content-Type: application/sdp'], sdp, 5000);
  t.equal(out.status, 480, 'a call whose only way on is plain UDP fails rather than send the keys in the clear');
  t.match(getHeaders(out, 'warning')[0] ?? '', /a=crypto/, 'the Warning names the SRTP keys');
  t.equal(far.received.length, 0, 'nothing reached the plain node');
});

t.test('forking where one contact cannot take the call (a sips: call, a phone on UDP): the other contact still gets it', async (t) => {
  const users = new Map([...USERS_A, ['carol', credentialsFor('carol', 'a.test', 'carol-pw')]]);
  const { phone } = await node(t, 'a.test', users);
  // alice on UDP first and on TLS second, the same q: one group of two branches
  const aliceUdp = await phone('udp');
  t.equal((await aliceUdp.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600, callId: 'au' })).status, 200);
  const aliceTls = await phone('tls');
  t.equal((await aliceTls.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600, callId: 'at' })).status, 200);
  const carol = await phone('tls');
  t.equal((await carol.registerWithAuth({ user: 'carol', domain: 'a.test', password: 'carol-pw', expires: 600 })).status, 200);
  // the UDP branch fails as it starts (sips: goes over TLS to the end); that must not end the call
  const answered = (async () => {
    const inv = await aliceTls.incoming('INVITE', 3000);
    const lines = [`SIP/2.0 200 OK`, ...getHeaders(inv, 'via').map((v) => `Via: ${v}`), ...getHeaders(inv, 'record-route').map((r) => `Record-Route: ${r}`)];
    lines.push(`From: ${getHeaders(inv, 'from')[0]}`, `To: ${getHeaders(inv, 'to')[0]};tag=at1`, `Call-ID: ${getHeaders(inv, 'call-id')[0]}`, `CSeq: ${getHeaders(inv, 'cseq')[0]}`, `Contact: <sips:alice@127.0.0.1:${aliceTls.port}>`, 'Content-Length: 0', '', '');
    aliceTls.sendRaw(lines.join('\r\n'));
  })();
  const res = await carol.request('INVITE', 'sips:alice@a.test', ['From: <sip:carol@a.test>;tag=f1'], '', 5000);
  await answered;
  t.equal(res.status, 200, 'the call is answered by the phone on TLS');
  t.equal(aliceUdp.received.filter((m) => m.kind === 'request' && m.method === 'INVITE').length, 0, 'the phone on UDP was not sent it');
});

t.test('sips: (RFC 5630) means TLS on every hop: not accepted over UDP, not forwarded to a phone on UDP', async (t) => {
  const users = new Map([...USERS_A, ['carol', credentialsFor('carol', 'a.test', 'carol-pw')]]);
  const { phone } = await node(t, 'a.test', users);
  const carol = await phone('udp');
  t.equal((await carol.registerWithAuth({ user: 'carol', domain: 'a.test', password: 'carol-pw', expires: 600 })).status, 200, 'carol registered over UDP');
  const alice = await phone('tls');
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registered over TLS');

  const overUdp = await carol.request('INVITE', 'sips:alice@a.test', ['From: <sip:carol@a.test>;tag=s1'], '', 3000);
  t.equal(overUdp.status, 416, 'a sips: INVITE over UDP is refused (416)');
  t.match(getHeaders(overUdp, 'warning')[0] ?? '', /sips: request must come over TLS/, 'the Warning says why');
  t.equal(alice.received.filter((m) => m.kind === 'request' && m.method === 'INVITE').length, 0, 'alice never saw it');
  const reg = await carol.request('REGISTER', 'sips:a.test', ['From: <sips:carol@a.test>;tag=s2', 'To: <sips:carol@a.test>', `Contact: <sip:carol@127.0.0.1:${carol.port}>`], '', 3000);
  t.equal(reg.status, 416, 'so is a sips: REGISTER over UDP');

  const toUdp = await alice.request('INVITE', 'sips:carol@a.test', ['From: <sips:alice@a.test>;tag=s3'], '', 5000);
  t.equal(toUdp.status, 480, 'a sips: call to a phone registered over UDP fails rather than take its last hop in the clear');
  t.match(getHeaders(toUdp, 'warning')[0] ?? '', /sips: address/, 'the Warning says why');
  t.equal(carol.received.filter((m) => m.kind === 'request' && m.method === 'INVITE').length, 0, 'carol never saw it');

  const call = invite(carol, 'sip:alice@a.test', 'sip:carol@a.test', 'sips4');
  const got = (await alice.incoming('INVITE', 5000)) as SipRequest;
  t.equal(got.uri.split(':')[0], 'sip', 'a sip: call from UDP to alice still goes through');
  alice.answer(got, 486);
  t.equal((await call.final).status, 486, 'and her answer comes back');
});

t.test("a node's proof copied onto another connection proves nothing", async (t) => {
  const { a, bSecret, B_ID, ends } = await nodeKnowingB(t);
  const alice = await a.phone('udp');
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registered at A');
  // a stranger on TLS, with B's signature over some other session's keying material
  const forged = `${Buffer.from(B_ID).toString('hex')} ${Buffer.from(signTagged(bSecret, NODE_PROOF_TAG, new Uint8Array(32).fill(9))).toString('hex')}`;
  const eve = await a.phone('tls');
  const call = eve.request('INVITE', 'sip:alice@a.test', ['From: <sip:eve@elsewhere.test>;tag=e1', `DOTS-Node-Proof: ${forged}`], '', 5000);
  const got = (await alice.incoming('INVITE', 5000)) as SipRequest;
  t.same(getHeaders(got, 'dots-node-proof'), [], 'the header is not passed on');
  alice.answer(got, 200);
  t.equal((await call).status, 200, 'the call is answered');
  const bye = alice.request('BYE', `sip:eve@127.0.0.1:${eve.port}`, [...getHeaders(got, 'record-route').map((r) => `Route: ${r}`), `From: <sip:alice@a.test>;tag=ph${alice.port}`, 'To: <sip:eve@elsewhere.test>;tag=e1', `Call-ID: ${getHeaders(got, 'call-id')[0]}`], '', 5000);
  eve.answer(await eve.incoming('BYE', 5000), 200);
  t.equal((await bye).status, 200, 'and hung up');
  t.equal(ends.length, 1, 'the call ended');
  t.equal(ends[0]?.peerNodeId, null, 'and A names no calling node: the proof was not for this connection');
});

t.test('handshakes never finished count against their address: a stranger cannot hold the TLS port', async (t) => {
  const { svc } = await node(t, 'a.test', USERS_A, { transport: { maxConnectionsPerAddress: 4 } });
  const held: Socket[] = [];
  t.teardown(() => held.forEach((s) => s.destroy()));
  const open = (): Promise<{ s: Socket; closed: Promise<void> }> =>
    new Promise((resolve) => {
      const s = connect({ host: '127.0.0.1', port: svc.tlsPort, localAddress: '127.0.0.9' }, () => resolve({ s, closed }));
      const closed = new Promise<void>((r) => s.once('close', () => r()));
      s.on('error', () => undefined);
      held.push(s);
    });
  // four TCP connections to the TLS port that never say a word
  const four = await Promise.all([open(), open(), open(), open()]);
  const fifth = await open();
  await fifth.closed;
  t.pass('a fifth from the same address is closed at once');
  let stillOpen = 0;
  for (const c of four) if (!c.s.destroyed) stillOpen++;
  t.equal(stillOpen, 4, 'the four it holds stay (until the handshake timeout)');
  const alice = await new TestPhone({ host: '127.0.0.1', port: svc.tlsPort }, 'tls', '127.0.0.2').open();
  t.teardown(() => alice.close());
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'a phone at another address registers over TLS meanwhile');
});

t.test('a node whose TLS port accepts and never answers is given up as soon as a silent one would be', async (t) => {
  // a TCP listener that takes connections and says nothing: the TLS handshake never ends
  const mute = createServer(() => undefined);
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => mute.close(() => r())));
  mute.on('connection', (s) => t.teardown(() => s.destroy()));
  const a = await node(t, 'a.test', USERS_A);
  let uris: string[] = [];
  // noAnswerMs of 30 s: only the node rule can move on before the test's wait ends
  const b = await node(t, 'b.test', USERS_B, {
    proxy: { noAnswerMs: 30_000 },
    locator: { locate: () => ({ kind: 'remote', nodes: [{ nodeId: new Uint8Array(20).fill(1), uris: [uris[0]] }, { nodeId: new Uint8Array(20).fill(2), uris: [uris[1]] }], online: true }) },
  });
  uris = [tlsUri(`127.0.0.1:${(mute.address() as { port: number }).port}`, 'cd'.repeat(32)), a.svc.tlsUri as string];
  const alice = await a.phone('udp');
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registered at A');
  const bob = await b.phone('udp');
  t.equal((await bob.registerWithAuth({ user: 'bob', domain: 'b.test', password: 'bob-pw', expires: 600 })).status, 200, 'bob registered at B');
  const call = invite(bob, 'sip:alice@a.test', 'sip:bob@b.test', 'mute1');
  const got = (await alice.incoming('INVITE', 5000)) as SipRequest;
  t.pass('the INVITE reached alice through the second node, the first one never finishing its handshake');
  alice.answer(got, 486);
  t.equal((await call.final).status, 486, 'and her answer came back');
});
