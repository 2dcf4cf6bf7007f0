// The proxy and presence agent of one node, in process, with real UDP phones on loopback:
// forking to a user's contacts and cancelling the losers, failover to the next q-value group
// when a contact does not answer, the best final response, loop detection (482), who may
// relay (403, 407 and digest), in-dialog requests only for dialogs the node record-routed, and
// PUBLISH/SUBSCRIBE/NOTIFY for the node's own users.
import t from 'tap';
import type { Test } from 'tap';
import type { SipService } from '../sip/service.ts';
import { authorize, credentialsFor } from '../sip/digest.ts';
import { getHeader, getHeaders, type SipRequest, type SipResponse } from '../sip/message.ts';
import { buildPidf } from '../sip/pidf.ts';
import { TestPhone, sipNode } from './sip-client.ts';

const DOMAIN = 'proxy.test';
const USERS = new Map([
  ['alice', credentialsFor('alice', DOMAIN, 'wonderland')],
  ['bob', credentialsFor('bob', DOMAIN, 'builder')],
  ['carol', credentialsFor('carol', DOMAIN, 'singer')],
]);

async function node(t: Test, maxActive?: number): Promise<{ svc: SipService; phone(): Promise<TestPhone> }> {
  return sipNode(t, DOMAIN, USERS, { proxy: { noAnswerMs: 400, maxActive } });
}

async function registered(p: TestPhone, user: string, password: string, extra: Partial<Parameters<TestPhone['register']>[0]> = {}): Promise<void> {
  const r = await p.registerWithAuth({ user, domain: DOMAIN, password, expires: 600, ...extra });
  if (r.status !== 200) throw new Error(`register ${user}: ${r.status}`);
}

/** Sends an INVITE (or another request) from `p` as `from`; returns its branch and the responses as they come. */
function invite(p: TestPhone, uri: string, from: string, extra: string[] = [], method = 'INVITE'): { branch: string; final: Promise<SipResponse> } {
  const branch = 'z9hG4bK' + Math.random().toString(36).slice(2);
  const text = [
    `${method} ${uri} SIP/2.0`,
    `Via: SIP/2.0/UDP 127.0.0.1:${p.port};rport;branch=${branch}`,
    ...(extra.some((h) => /^Max-Forwards:/i.test(h)) ? [] : ['Max-Forwards: 70']),
    `From: <${from}>;tag=c${p.port}`,
    `To: <${uri}>`,
    `Call-ID: call-${branch}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:caller@127.0.0.1:${p.port}>`,
    ...extra,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  p.sendRaw(text);
  return { branch, final: p.response(branch, 5000) };
}

function reply(phone: TestPhone, req: SipRequest, status: number, reason: string, tag: string): void {
  const lines = [`SIP/2.0 ${status} ${reason}`];
  for (const v of getHeaders(req, 'via')) lines.push(`Via: ${v}`);
  for (const rr of getHeaders(req, 'record-route')) lines.push(`Record-Route: ${rr}`);
  lines.push(`From: ${getHeader(req, 'from')}`, `To: ${getHeader(req, 'to')};tag=${tag}`, `Call-ID: ${getHeader(req, 'call-id')}`, `CSeq: ${getHeader(req, 'cseq')}`);
  if (status < 300) lines.push(`Contact: <sip:callee@127.0.0.1:${phone.port}>`);
  lines.push('Content-Length: 0', '', '');
  phone.sendRaw(lines.join('\r\n'));
}

t.test('forking: both contacts ring, the first 200 wins, the other is cancelled', async (t) => {
  const { phone } = await node(t);
  const [p1, p2, caller] = [await phone(), await phone(), await phone()];
  await registered(p1, 'alice', 'wonderland', { callId: 'a1' });
  await registered(p2, 'alice', 'wonderland', { callId: 'a2' });
  await registered(caller, 'bob', 'builder');
  const call = invite(caller, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`);
  const [i1, i2] = await Promise.all([p1.incoming('INVITE'), p2.incoming('INVITE')]);
  t.equal(i1.uri, `sip:alice@127.0.0.1:${p1.port}`, 'retargeted to contact 1');
  t.equal(i2.uri, `sip:alice@127.0.0.1:${p2.port}`, 'and to contact 2 at once (same q)');
  t.match(getHeader(i1, 'record-route'), /;lr>$/, 'the node record-routes');
  t.equal(getHeader(i1, 'max-forwards'), '69', 'Max-Forwards decremented');
  t.equal(getHeaders(i1, 'via').length, 2, 'the node added its Via');
  reply(p2, i2, 180, 'Ringing', 'p2');
  reply(p1, i1, 200, 'OK', 'p1');
  const res = await call.final;
  t.equal(res.status, 200, 'the caller gets the 200');
  t.match(getHeader(res, 'to'), /tag=p1/, 'from contact 1');
  t.equal(getHeaders(res, 'via').length, 1, 'the node took its Via off');
  const cancel = await p2.incoming('CANCEL');
  t.equal(getHeader(cancel, 'call-id'), getHeader(i2, 'call-id'), 'the ringing contact is cancelled');
  reply(p2, cancel, 200, 'OK', 'p2');
  reply(p2, i2, 487, 'Request Terminated', 'p2');
  const ack = await p2.incoming('ACK');
  t.match(getHeader(ack, 'cseq'), /ACK/, 'the node acknowledges the 487 itself');
});

t.test('after the call is answered and the proxy has let go of it, a retransmitted 200 still reaches the caller (RFC 6026 Accepted)', async (t) => {
  const { phone } = await node(t);
  const [callee, caller] = [await phone(), await phone()];
  await registered(callee, 'alice', 'wonderland');
  await registered(caller, 'bob', 'builder');
  const call = invite(caller, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`);
  const inv = await callee.incoming('INVITE');
  reply(callee, inv, 200, 'OK', 'acc');
  const first = await call.final;
  t.equal(first.status, 200, 'the 200 reaches the caller');
  // the proxy's branch is done and its context let go of; the callee has not seen an ACK
  await new Promise((r) => setTimeout(r, 50));
  reply(callee, inv, 200, 'OK', 'acc');
  const again = await caller.response(call.branch, 3000);
  t.equal(again.status, 200, 'the retransmitted 200 is relayed too');
  t.equal(getHeaders(again, 'via').length, 1, 'with the node\'s Via taken off');
  t.match(getHeader(again, 'via'), new RegExp(`branch=${call.branch}`), 'the caller\'s own Via on top');
  t.equal(getHeader(again, 'call-id'), getHeader(first, 'call-id'), 'the same call');
});

t.test('the INVITE goes on in the turn it arrived in, before its 100 Trying: a known hop is not waited for', async (t) => {
  const { svc, phone } = await node(t);
  const [callee, caller] = [await phone(), await phone()];
  await registered(caller, 'bob', 'builder');
  // what the node sends, in order, through its real transport; and whether it waited for a flow
  const tr = svc.transport;
  const sent: string[] = [];
  const send = tr.send.bind(tr);
  tr.send = (flow, buf) => {
    sent.push(buf.toString('latin1', 0, buf.indexOf(' ')) + (buf.subarray(0, 12).toString('latin1') === 'SIP/2.0 100 ' ? ' 100' : ''));
    return send(flow, buf);
  };
  let waited = 0;
  const flowTo = tr.flowTo.bind(tr);
  tr.flowTo = (...a) => {
    waited++;
    return flowTo(...a);
  };
  // a phone's address (no registered flow to use): a UDP hop the node can send to at once
  const call = invite(caller, `sip:callee@127.0.0.1:${callee.port}`, `sip:bob@${DOMAIN}`);
  const inv = await callee.incoming('INVITE');
  await caller.wait((m) => m.kind === 'response' && m.status === 100);
  t.same(sent, ['INVITE', 'SIP/2.0 100'], 'the INVITE left first, then the 100 Trying to the caller');
  t.equal(waited, 0, 'no flow was waited for: the hop was known, so the INVITE went in the same turn');
  reply(callee, inv, 200, 'OK', 'c1');
  t.equal((await call.final).status, 200, 'and the call is answered through the node');
});

t.test('failover: a contact that does not answer gives way to the next q group; the best failure goes back', async (t) => {
  const { phone } = await node(t);
  const [dead, p3, caller] = [await phone(), await phone(), await phone()];
  await registered(dead, 'alice', 'wonderland', { callId: 'd1', contactHeaders: [`<sip:alice@127.0.0.1:${dead.port}>;q=1.0`] });
  await registered(p3, 'alice', 'wonderland', { callId: 'd2', contactHeaders: [`<sip:alice@127.0.0.1:${p3.port}>;q=0.5`] });
  await registered(caller, 'bob', 'builder');
  // `dead` registered, then stays silent
  const call = invite(caller, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`);
  const i3 = await p3.incoming('INVITE', 3000);
  t.pass('after the first contact stayed silent, the q=0.5 contact gets the INVITE');
  reply(p3, i3, 486, 'Busy Here', 'p3');
  t.equal((await call.final).status, 486, 'the caller gets the only real answer, 486');
});

t.test('loops are detected (482); a request with no hops left is 483', async (t) => {
  const { svc, phone } = await node(t);
  const p = await phone();
  // a contact that points back at the node itself: the INVITE spirals once, then loops
  await registered(p, 'carol', 'singer', { contact: `sip:carol@127.0.0.1:${svc.port}` });
  const caller = await phone();
  await registered(caller, 'bob', 'builder');
  t.equal((await invite(caller, `sip:carol@${DOMAIN}`, `sip:bob@${DOMAIN}`).final).status, 482, '482 Loop Detected');
  t.ok(svc.proxy.stats.loops >= 1);
  t.equal((await invite(caller, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`, ['Max-Forwards: 0']).final).status, 483, '483 Too Many Hops');
});

t.test('who may relay: a stranger gets 403, a user not on its registered flow 407, then digest opens the way', async (t) => {
  const { phone } = await node(t);
  const target = await phone();
  const stranger = await phone();
  const far = `sip:someone@127.0.0.1:${target.port}`;
  t.equal((await invite(stranger, far, 'sip:eve@elsewhere.test').final).status, 403, 'a From outside the domain may not relay');
  const carol = await phone(); // not registered: has an account, must authenticate
  const first = await invite(carol, far, `sip:carol@${DOMAIN}`, [], 'MESSAGE').final;
  t.equal(first.status, 407, '407 Proxy Authentication Required');
  const ch = getHeaders(first, 'proxy-authenticate').find((c) => /algorithm=MD5/.test(c)) as string;
  t.ok(ch, 'with an MD5 challenge');
  const authz = authorize(ch, { user: 'carol', password: 'singer', method: 'MESSAGE', uri: far });
  const second = invite(carol, far, `sip:carol@${DOMAIN}`, [`Proxy-Authorization: ${authz}`], 'MESSAGE');
  const got = await target.incoming('MESSAGE');
  t.pass('with credentials, the MESSAGE is forwarded to the address');
  target.answer(got, 200);
  t.equal((await second.final).status, 200);
  const wrong = authorize(ch, { user: 'carol', password: 'wrong', method: 'MESSAGE', uri: far });
  t.equal((await invite(carol, far, `sip:carol@${DOMAIN}`, [`Proxy-Authorization: ${wrong}`], 'MESSAGE').final).status, 407, 'a wrong password is challenged again');
  t.equal((await invite(stranger, `sip:nobody@${DOMAIN}`, 'sip:eve@elsewhere.test').final).status, 404, 'an unknown user of this node is 404');
  t.equal((await invite(stranger, `sip:alice@${DOMAIN}`, 'sip:eve@elsewhere.test').final).status, 404, 'toward a stranger, a known user without a phone is 404 too: which accounts exist is not told');
  const bob = await phone();
  await registered(bob, 'bob', 'builder');
  t.equal((await invite(bob, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`).final).status, 480, 'this node\'s own registered phone is told the user exists but is offline (480)');
  t.equal((await invite(bob, `sip:nobody@${DOMAIN}`, `sip:bob@${DOMAIN}`).final).status, 404, 'and that an unknown user is unknown (404)');
  const bye = await invite(stranger, `sip:x@127.0.0.1:${target.port}`, 'sip:eve@elsewhere.test', ['Route: <sip:10.9.9.9;lr>'], 'BYE').final;
  t.equal(bye.status, 403, 'a preloaded Route to elsewhere is not relayed');
});

t.test('presence: PUBLISH by the user, SUBSCRIBE by this node\'s users, NOTIFY on change, errors', async (t) => {
  const { phone } = await node(t);
  const alice = await phone();
  await registered(alice, 'alice', 'wonderland');
  await new Promise((r) => setTimeout(r, 100)); // the first keepalive ping makes her online
  // A stranger's SUBSCRIBE would have the node send NOTIFYs (and open connections) wherever its
  // Contact and Record-Route point: refused.
  const stranger = await phone();
  const victimRoute = `Record-Route: <sip:203.0.113.9:5060;transport=tcp;lr>`;
  t.equal((await invite(stranger, `sip:alice@${DOMAIN}`, 'sip:w@elsewhere.test', ['Event: presence', 'Expires: 600', victimRoute], 'SUBSCRIBE').final).status, 403, 'a stranger may not watch');
  t.equal((await invite(stranger, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`, ['Event: presence', 'Expires: 600', victimRoute], 'SUBSCRIBE').final).status, 407, 'nor someone who only claims to be a user: it must authenticate');
  const watcher = await phone();
  await registered(watcher, 'bob', 'builder');
  const sub = invite(watcher, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`, ['Event: presence', 'Expires: 600'], 'SUBSCRIBE');
  t.equal((await sub.final).status, 200, 'this node\'s user watches');
  const basic = async (): Promise<[string, string]> => {
    const n = await watcher.incoming('NOTIFY');
    watcher.answer(n, 200);
    const body = n.body.toString('utf8');
    return [/<basic>(\w+)</.exec(body)?.[1] ?? '', /<note[^>]*>([^<]*)</.exec(body)?.[1] ?? ''];
  };
  t.same(await basic(), ['open', ''], 'first NOTIFY: open');
  const doc = buildPidf({ entity: `sip:alice@${DOMAIN}`, basic: 'closed', note: 'in a meeting' });
  const pub = invite(alice, `sip:alice@${DOMAIN}`, `sip:alice@${DOMAIN}`, ['Event: presence', 'Expires: 600', 'Content-Type: application/pidf+xml'], 'PUBLISH');
  t.equal((await pub.final).status, 400, 'a PUBLISH without a body is refused');
  const p2 = await alice.request('PUBLISH', `sip:alice@${DOMAIN}`, [`From: <sip:alice@${DOMAIN}>;tag=pub`, 'Event: presence', 'Expires: 600', 'Content-Type: application/pidf+xml'], doc);
  t.equal(p2.status, 200, 'alice publishes "closed, in a meeting"');
  t.ok(getHeader(p2, 'sip-etag'), 'with an entity tag');
  t.same(await basic(), ['closed', 'in a meeting'], 'the watcher is told');
  const other = await phone();
  const forged = await other.request('PUBLISH', `sip:alice@${DOMAIN}`, [`From: <sip:alice@${DOMAIN}>;tag=f`, 'Event: presence', 'Content-Type: application/pidf+xml'], doc);
  t.equal(forged.status, 407, 'someone else publishing for alice must authenticate');
  const asBob = `From: <sip:bob@${DOMAIN}>;tag=b${watcher.port}`;
  const dialog = watcher.request('SUBSCRIBE', `sip:alice@${DOMAIN}`, ['Event: dialog', 'Max-Forwards: 70', `Contact: <sip:w@127.0.0.1:${watcher.port}>`, asBob]);
  const fwd = await alice.incoming('SUBSCRIBE');
  t.equal(getHeader(fwd, 'event'), 'dialog', 'another event package is the phone\'s to answer: forwarded');
  alice.answer(fwd, 489, 'Bad Event');
  t.equal((await dialog).status, 489, "and the phone's answer comes back");
  const unknown = await watcher.request('SUBSCRIBE', `sip:nobody@${DOMAIN}`, ['Event: presence', `Contact: <sip:w@127.0.0.1:${watcher.port}>`, asBob]);
  t.equal(unknown.status, 404, 'an unknown presentity: 404');
  const brief = await watcher.request('SUBSCRIBE', `sip:alice@${DOMAIN}`, ['Event: presence', 'Expires: 5', `Contact: <sip:w@127.0.0.1:${watcher.port}>`, asBob]);
  t.equal(brief.status, 423, 'too brief: 423');
  t.equal(getHeader(brief, 'min-expires'), '60');
});

t.test('callers cannot be forged: a From of this node is its user, and P-Asserted-Identity is believed only from this node\'s users', async (t) => {
  const { phone } = await node(t);
  const alice = await phone();
  await registered(alice, 'alice', 'wonderland');
  const bob = await phone();
  await registered(bob, 'bob', 'builder');
  const stranger = await phone();
  // From bob of this domain, but not from bob's phone nor with bob's digest: challenged, alice's phone stays silent.
  const forged = invite(stranger, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`);
  t.equal((await forged.final).status, 407, 'a stranger claiming to be bob must authenticate as bob');
  await t.rejects(alice.incoming('INVITE', 500), 'alice\'s phone never rang');
  // A stranger from its own domain may call, but an identity it asserts is removed.
  const m = stranger.request('MESSAGE', `sip:alice@${DOMAIN}`, ['From: <sip:eve@elsewhere.test>;tag=e', `P-Asserted-Identity: <sip:bob@${DOMAIN}>`, 'Content-Type: text/plain', 'Max-Forwards: 70'], 'hi');
  const got = await alice.incoming('MESSAGE');
  t.equal(getHeader(got, 'p-asserted-identity'), undefined, 'a stranger\'s P-Asserted-Identity does not reach the phone');
  t.match(getHeader(got, 'from'), /eve@elsewhere\.test/, 'its own From does');
  alice.answer(got, 200);
  t.equal((await m).status, 200);
  // bob, on his registered flow: his request goes through as he sent it.
  const b = bob.request('MESSAGE', `sip:alice@${DOMAIN}`, [`From: <sip:bob@${DOMAIN}>;tag=b`, `P-Asserted-Identity: <sip:bob@${DOMAIN}>`, 'Content-Type: text/plain', 'Max-Forwards: 70'], 'hello');
  const fromBob = await alice.incoming('MESSAGE');
  t.match(getHeader(fromBob, 'p-asserted-identity'), /bob@/, 'this node\'s user keeps the identity it asserts');
  alice.answer(fromBob, 200);
  t.equal((await b).status, 200);
});

t.test('overload: past maxActive forwarded requests, new calls get 503 with Retry-After', async (t) => {
  const { svc, phone } = await node(t, 1);
  const [silent, caller] = [await phone(), await phone()];
  await registered(silent, 'alice', 'wonderland');
  await registered(caller, 'bob', 'builder');
  const first = invite(caller, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`);
  await silent.incoming('INVITE');
  const second = await invite(caller, `sip:alice@${DOMAIN}`, `sip:bob@${DOMAIN}`).final;
  t.equal(second.status, 503, 'the second call while the first is in progress: 503');
  t.equal(getHeader(second, 'retry-after'), '1');
  t.equal((await first.final).status, 480, 'the first one still ends properly (its contact never answered)');
  t.equal(svc.proxy.activeCount, 0, 'nothing left in progress');
});

t.test('failover between nodes: an INVITE to a node that sends no 100 Trying goes to the next serving node in 1.5 s, not the full no-answer time', async (t) => {
  let nodes: Array<{ nodeId: Uint8Array; uris: string[] }> = [];
  // noAnswerMs of 30 s: only the node rule (a live node answers 100 Trying at once) can fail over in time
  const { svc, phone } = await sipNode(t, DOMAIN, USERS, { proxy: { noAnswerMs: 30_000 }, locator: { locate: () => ({ kind: 'remote', nodes, online: true }) } });
  const [gone, live, caller] = [await phone(), await phone(), await phone()];
  await registered(caller, 'bob', 'builder');
  nodes = [
    { nodeId: new Uint8Array(20).fill(1), uris: [`sip:127.0.0.1:${gone.port}`] },
    { nodeId: new Uint8Array(20).fill(2), uris: [`sip:127.0.0.1:${live.port}`] },
  ];
  const t0 = Date.now();
  const call = invite(caller, 'sip:zed@far.test', `sip:bob@${DOMAIN}`);
  const atGone = await gone.incoming('INVITE', 3000);
  t.equal(atGone.uri, 'sip:zed@far.test', 'the first serving node gets the INVITE first, and says nothing');
  const atLive = await live.incoming('INVITE', 5000);
  t.pass(`the next serving node gets it ${Date.now() - t0} ms after the caller sent it`);
  live.answer(atLive, 486);
  t.equal((await call.final).status, 486, 'and its answer goes back to the caller');
  t.equal(svc.proxy.stats.forwarded, 1, 'one forwarded request, two branches');
});
