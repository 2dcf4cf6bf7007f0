// SIP over WebSocket (RFC 7118; issue 16, point 3, the transport), with the SIP stack in process
// and a real WebSocket client on loopback playing a browser phone: it opens the connection with
// the "sip" subprotocol, registers with digest from a `.invalid` address (as JsSIP and SIP.js
// do: a browser has no address to give), and is called by a phone on UDP through its WebSocket,
// the node record-routing both sides. A client that does not ask for "sip" is refused.
import t from 'tap';
import type { Test } from 'tap';
import WebSocket from 'ws';
import { connect, type Socket } from 'node:net';
import { authorize, credentialsFor } from '../sip/digest.ts';
import { getHeaders, parseMessage, type SipMessage, type SipRequest } from '../sip/message.ts';
import { buildResponse, serializeMessage } from '../sip/serialize.ts';
import { sipNode } from './sip-client.ts';
import { selfSignedCertificate } from '../node/certificate.ts';
import { waitFor } from './util/wait.ts';

const DOMAIN = 'ws.test';
const USERS = new Map([
  ['alice', credentialsFor('alice', DOMAIN, 'alice-pw')],
  ['carol', credentialsFor('carol', DOMAIN, 'carol-pw')],
]);

/** A browser phone's SIP over a WebSocket: one message per frame. */
async function wsPhone(t: Test, port: number, secure = false): Promise<{ ws: WebSocket; got: SipMessage[]; send: (s: string) => void }> {
  const ws = new WebSocket(`${secure ? 'wss' : 'ws'}://127.0.0.1:${port}`, 'sip', { rejectUnauthorized: false });
  t.teardown(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const got: SipMessage[] = [];
  ws.on('message', (d: Buffer) => {
    const r = parseMessage(Buffer.from(d));
    if (r.ok) got.push(r.message);
  });
  return { ws, got, send: (s) => ws.send(s) };
}

function register(branch: string, cseq: number, authz?: string): string {
  return [
    `REGISTER sip:${DOMAIN} SIP/2.0`,
    `Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=${branch}`,
    'Max-Forwards: 70',
    `From: <sip:alice@${DOMAIN}>;tag=ws1`,
    `To: <sip:alice@${DOMAIN}>`,
    'Call-ID: ws-reg-1',
    `CSeq: ${cseq} REGISTER`,
    'Contact: <sip:h7kjh112@df7jal23ls0d.invalid;transport=ws>;expires=600',
    ...(authz === undefined ? [] : [`Authorization: ${authz}`]),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

t.test('a browser-like phone registers over WebSocket and is called through it', async (t) => {
  const { svc, phone } = await sipNode(t, DOMAIN, USERS, { ws: { port: 0, secure: false } });
  t.ok(svc.wsPort > 0, `WebSocket on its own port (${svc.wsPort})`);
  const alice = await wsPhone(t, svc.wsPort);
  t.equal(alice.ws.protocol, 'sip', 'the node speaks the "sip" subprotocol');
  alice.send(register('z9hG4bKws1', 1));
  const challenge = await waitFor('the 401', async () => alice.got.find((m) => m.kind === 'response' && m.status === 401), 3000);
  const ch = getHeaders(challenge, 'www-authenticate').find((c) => /algorithm=MD5/.test(c)) as string;
  alice.send(register('z9hG4bKws2', 2, authorize(ch, { user: 'alice', password: 'alice-pw', method: 'REGISTER', uri: `sip:${DOMAIN}` })));
  const ok = await waitFor('the 200', async () => alice.got.find((m) => m.kind === 'response' && m.status === 200), 3000);
  t.match(getHeaders(ok, 'via')[0], /^SIP\/2\.0\/WS df7jal23ls0d\.invalid;branch=z9hG4bKws2;received=127\.0\.0\.1/, 'registered over WebSocket (the 200 came back on it)');
  t.equal(svc.registrar.lookup(`sip:alice@${DOMAIN}`)[0]?.flow.proto, 'ws', 'the contact is kept with its WebSocket');

  const carol = await phone();
  t.equal((await carol.registerWithAuth({ user: 'carol', domain: DOMAIN, password: 'carol-pw', expires: 600 })).status, 200, 'carol registered over UDP');
  const call = carol.request('INVITE', `sip:alice@${DOMAIN}`, [`From: <sip:carol@${DOMAIN}>;tag=c1`, `Contact: <sip:carol@127.0.0.1:${carol.port}>`], '', 5000);
  const invite = (await waitFor('the INVITE at alice', async () => alice.got.find((m) => m.kind === 'request' && m.method === 'INVITE'), 5000)) as SipRequest;
  t.equal(invite.uri, 'sip:h7kjh112@df7jal23ls0d.invalid;transport=ws', 'it went to her contact, on her WebSocket (no address to reach it otherwise)');
  t.match(getHeaders(invite, 'via')[0], new RegExp(`^SIP/2\\.0/WS 127\\.0\\.0\\.1:${svc.wsPort};`), 'with the node\'s WebSocket side in its Via');
  t.same(getHeaders(invite, 'record-route'), [`<sip:127.0.0.1:${svc.wsPort};transport=ws;lr>`, `<sip:127.0.0.1:${svc.port};lr>`], 'and one Record-Route per side');
  alice.send(serializeMessage(buildResponse(invite, 486, 'Busy Here', undefined, { toTag: 'a1' })).toString('latin1'));
  t.equal((await call).status, 486, 'her answer reached carol');
});

t.test('a WebSocket that does not ask for the "sip" subprotocol is refused', async (t) => {
  const { svc } = await sipNode(t, DOMAIN, USERS, { ws: { port: 0, secure: false } });
  const ws = new WebSocket(`ws://127.0.0.1:${svc.wsPort}`);
  t.teardown(() => ws.terminate());
  const result = await new Promise<string>((resolve) => {
    ws.once('open', () => resolve('open'));
    ws.once('unexpected-response', (_req, res) => resolve(`refused ${res.statusCode}`));
    ws.once('error', (e) => resolve(`error ${e.message}`));
  });
  t.equal(result, 'refused 400', 'refused with 400 (RFC 7118 asks for the "sip" subprotocol)');
});

t.test('wss: the WebSocket over TLS, with the node certificate, counts as TLS for --require-tls', async (t) => {
  const tls = { port: 0, ...selfSignedCertificate(DOMAIN, ['127.0.0.1']) };
  const { svc } = await sipNode(t, DOMAIN, USERS, { tls, ws: { port: 0, secure: true }, requireTls: true });
  const { got, send } = await wsPhone(t, svc.wsPort, true);
  send(register('z9hG4bKwss1', 1).replace('SIP/2.0/WS ', 'SIP/2.0/WSS '));
  const challenge = await waitFor('the 401', async () => got.find((m) => m.kind === 'response' && m.status === 401), 3000);
  const ch = getHeaders(challenge, 'www-authenticate').find((c) => /algorithm=MD5/.test(c)) as string;
  send(register('z9hG4bKwss2', 2, authorize(ch, { user: 'alice', password: 'alice-pw', method: 'REGISTER', uri: `sip:${DOMAIN}` })).replace('SIP/2.0/WS ', 'SIP/2.0/WSS '));
  await waitFor('the 200', async () => got.find((m) => m.kind === 'response' && m.status === 200), 3000);
  t.equal(svc.registrar.lookup(`sip:alice@${DOMAIN}`)[0]?.flow.proto, 'wss', 'registered over wss, which --require-tls accepts');
});

t.test('connections to the WebSocket port that never become one count against their address', async (t) => {
  const { svc } = await sipNode(t, DOMAIN, USERS, { ws: { port: 0, secure: false }, transport: { maxConnectionsPerAddress: 3 } });
  // a stranger opens plain TCP connections and sends nothing (no upgrade, no HTTP request)
  const idle: Socket[] = [];
  t.teardown(() => idle.forEach((s) => s.destroy()));
  for (let i = 0; i < 3; i++) {
    const s = connect(svc.wsPort, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    idle.push(s);
  }
  const fourth = connect(svc.wsPort, '127.0.0.1');
  const closed = await new Promise<boolean>((resolve) => {
    fourth.once('close', () => resolve(true));
    setTimeout(() => resolve(false), 2000).unref();
  });
  fourth.destroy();
  t.ok(closed, 'a fourth connection from that address is closed at once');
  idle.forEach((s) => s.destroy());
  // once they are gone, a browser from the same address gets in
  const browser = await waitFor('a WebSocket to open', async () => wsPhone(t, svc.wsPort).catch(() => undefined), 3000);
  t.equal(browser.ws.protocol, 'sip', 'a WebSocket from the same address opens once the idle connections are gone');
  // and an open WebSocket no longer counts as pending: two more connections fit beside it
  const more = await Promise.all([wsPhone(t, svc.wsPort), wsPhone(t, svc.wsPort)]);
  t.equal(more.length, 2, 'three WebSockets from one address, the per-address limit');
});
