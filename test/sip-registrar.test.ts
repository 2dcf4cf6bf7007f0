// The registrar of RFC 3261 10.3 over real UDP and TCP sockets: bindings, expiry, 423,
// q-values, Call-ID/CSeq ordering, the wildcard, several contacts, Path and outbound, the
// transaction layer (retransmissions), digest authentication (MD5 and SHA-256, stale and
// replayed nonces, failures per source), dispatch of other requests, and OPTIONS keepalives.
import t from 'tap';
import type { Test } from 'tap';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { SipService } from '../sip/service.ts';
import { credentialsFor, authorize, DigestAuth, type DigestCredentials } from '../sip/digest.ts';
import { getHeader, getHeaders, type SipResponse } from '../sip/message.ts';
import { TestPhone, contactsOf, serve } from './sip-client.ts';
import { eventually } from './util/wait.ts';

const DOMAIN = 'reg.test';
const USERS = new Map([
  ['alice', credentialsFor('alice', DOMAIN, 'wonderland')],
  ['bob', credentialsFor('bob', DOMAIN, 'builder')],
]);

interface Ctx {
  svc: SipService;
  presence: Array<[string, boolean, number]>;
  phone(proto?: 'udp' | 'tcp', localAddress?: string): Promise<TestPhone>;
}

async function service(t: Test, open: boolean, extra: Partial<ConstructorParameters<typeof SipService>[0]> = {}): Promise<Ctx> {
  const presence: Array<[string, boolean, number]> = [];
  const svc = new SipService({
    host: '127.0.0.1',
    port: 0,
    domain: DOMAIN,
    openRegistration: open,
    users: { lookup: (u) => USERS.get(u) },
    keepalive: { intervalMs: 400, timeoutMs: 300, maxFailures: 2 },
    timers: { t1: 100, t2: 400, t4: 500 },
    onPresence: (aor, online, until) => presence.push([aor, online, until]),
    ...extra,
  });
  return { svc, presence, phone: await serve(t, svc) };
}

const expiresOf = (c: string): number => Number(/;expires=(\d+)/.exec(c)?.[1] ?? -1);

t.test('REGISTER: bindings, expiry, 423, q-values, several contacts, query', async (t) => {
  const { svc, phone } = await service(t, true);
  const p = await phone();
  let r = await p.register({ user: 'carol', domain: DOMAIN, expires: 600 });
  t.equal(r.status, 200);
  t.equal(contactsOf(r).length, 1);
  t.match(contactsOf(r)[0], new RegExp(`^<sip:carol@127.0.0.1:${p.port}>;expires=600$`));
  t.match(getHeader(r, 'to'), /;tag=/, 'To tag added');
  t.ok(getHeader(r, 'date'), 'Date in the 200 (RFC 3261 10.3 step 8)');
  t.match(getHeader(r, 'via'), new RegExp(`rport=${p.port}`), 'rport filled in');

  // Expires header as the default, the contact parameter wins, and the maximum is applied
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: ['<sip:carol@10.0.0.1:5060>'], extra: ['Expires: 300'] });
  t.equal(r.status, 200);
  const byUri = (u: string): string => contactsOf(r).find((c) => c.includes(u)) ?? '';
  t.equal(expiresOf(byUri('10.0.0.1')), 300, 'Expires header applies');
  t.equal(contactsOf(r).length, 2, 'the 200 lists every binding');
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: ['<sip:carol@10.0.0.1:5060>;expires=99999'], extra: ['Expires: 300'] });
  t.equal(expiresOf(byUri('10.0.0.1')), svc.registrar.maxExpires, 'longer than the maximum: shortened');

  // too brief
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: ['<sip:carol@10.0.0.2>;expires=5'] });
  t.equal(r.status, 423);
  t.equal(getHeader(r, 'min-expires'), String(svc.registrar.minExpires));
  t.equal(svc.registrar.lookup('sip:carol@reg.test').length, 2, '423 changes nothing');

  // q-values: listed highest first; a bad q is a 400
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: ['<sip:carol@10.0.0.3>;q=0.9', '<sip:carol@10.0.0.4>;q=0.1'] });
  t.equal(r.status, 200);
  t.equal(contactsOf(r).length, 4);
  t.match(contactsOf(r)[2], /10\.0\.0\.3.*;q=0\.9/, 'after the two without q (1.0)');
  t.match(contactsOf(r)[contactsOf(r).length - 1], /10\.0\.0\.4.*;q=0\.1/);
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: ['<sip:carol@10.0.0.5>;q=1.5'] });
  t.equal(r.status, 400);

  // a REGISTER without Contact is a query
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: [] });
  t.equal(r.status, 200);
  t.equal(contactsOf(r).length, 4);

  // unregister one contact
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: ['<sip:carol@10.0.0.4>;expires=0'] });
  t.equal(contactsOf(r).length, 3);
  t.notOk(contactsOf(r).some((c) => c.includes('10.0.0.4')));

  // too many contacts
  const many = Array.from({ length: 10 }, (_, i) => `<sip:carol@10.1.0.${i}>`);
  r = await p.register({ user: 'carol', domain: DOMAIN, contactHeaders: many });
  t.equal(r.status, 403, 'over the contact limit');

  // another domain: 404; the To must be in the domain
  r = await p.register({ user: 'carol', domain: 'elsewhere.test' });
  t.equal(r.status, 404);
  r = await p.register({ user: 'carol', domain: DOMAIN, requestUri: 'sip:elsewhere.test' });
  t.equal(r.status, 404, 'Request-URI of another domain');
});

t.test('Call-ID and CSeq ordering, the wildcard, retransmissions', async (t) => {
  const { svc, phone } = await service(t, true);
  const p = await phone();
  let r = await p.register({ user: 'dave', domain: DOMAIN, cseq: 10 });
  t.equal(r.status, 200);
  r = await p.register({ user: 'dave', domain: DOMAIN, cseq: 9 });
  t.equal(r.status, 400, 'lower CSeq on the same Call-ID fails');
  r = await p.register({ user: 'dave', domain: DOMAIN, cseq: 10 });
  t.equal(r.status, 400, 'same CSeq with a new branch fails');
  r = await p.register({ user: 'dave', domain: DOMAIN, cseq: 5, callId: 'another-call' });
  t.equal(r.status, 200, 'another Call-ID may use any CSeq');

  // a REGISTER without credentials is answered statelessly (RFC 3261 8.2.7): its retransmission
  // is processed again, recognised by the binding's branch, and gets the same answer and To tag
  const { text, branch } = p.registerText({ user: 'dave', domain: DOMAIN, cseq: 6, callId: 'another-call' });
  p.sendRaw(text);
  const a = await p.response(branch);
  p.sendRaw(text);
  const b = await p.response(branch);
  t.equal(b.status, 200, 'the retransmission is answered 200, not as a CSeq error');
  t.match(getHeader(a, 'to'), /;tag=\S+/);
  t.equal(getHeader(b, 'to'), getHeader(a, 'to'), 'same To tag');
  t.equal(svc.tx.serverCount, 0, 'nothing kept for it');
  t.equal(svc.tx.stats.retransmissionsAbsorbed, 0);
  // another request gets another tag
  const c = await p.register({ user: 'dave', domain: DOMAIN, cseq: 7, callId: 'another-call' });
  t.not(getHeader(c, 'to'), getHeader(a, 'to'), 'a new request, a new To tag');

  // the wildcard needs Expires: 0 and no other contact
  r = await p.register({ user: 'dave', domain: DOMAIN, contactHeaders: ['*'], cseq: 20 });
  t.equal(r.status, 400, '* without Expires: 0');
  r = await p.register({ user: 'dave', domain: DOMAIN, contactHeaders: ['*', '<sip:dave@10.0.0.9>'], extra: ['Expires: 0'], cseq: 21 });
  t.equal(r.status, 400, '* with another contact');
  r = await p.register({ user: 'dave', domain: DOMAIN, contactHeaders: ['*'], extra: ['Expires: 0'], cseq: 22 });
  t.equal(r.status, 200);
  t.equal(contactsOf(r).length, 0, 'all bindings gone');
  t.equal(svc.registrar.lookup('sip:dave@reg.test').length, 0);
});

t.test('a late retransmission, after its transaction is gone, is still answered 200', async (t) => {
  const { svc, phone } = await service(t, true, { timers: { t1: 10, t2: 40, t4: 50 } });
  const p = await phone();
  const { text, branch } = p.registerText({ user: 'erin', domain: DOMAIN, cseq: 3 });
  p.sendRaw(text);
  t.equal((await p.response(branch)).status, 200);
  await new Promise((r) => setTimeout(r, 1500)); // Timer J (64*T1 = 640 ms) has run out
  t.equal(svc.tx.serverCount, 0, 'transaction gone');
  p.sendRaw(text);
  t.equal((await p.response(branch)).status, 200, 'recognised from the binding, not a CSeq error');
});

t.test('Path (RFC 3327) and outbound (RFC 5626) kept with the binding', async (t) => {
  const { svc, phone } = await service(t, true);
  const p = await phone();
  const inst = '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"';
  let r = await p.register({
    user: 'frank',
    domain: DOMAIN,
    contactHeaders: [`<sip:frank@192.0.2.7:5060>;+sip.instance=${inst};reg-id=1`],
    extra: ['Path: <sip:edge.example.org;lr;ob>', 'Supported: path, outbound'],
  });
  t.equal(r.status, 200);
  t.equal(getHeader(r, 'path'), '<sip:edge.example.org;lr;ob>', 'Path echoed to a UA that supports it');
  t.equal(getHeader(r, 'require'), 'outbound', 'outbound in use');
  const [b] = svc.registrar.lookup('sip:frank@reg.test');
  t.same(b.path, ['<sip:edge.example.org;lr;ob>']);
  t.equal(b.instance, '<urn:uuid:00000000-0000-1000-8000-000A95A0E128>');
  t.equal(b.regId, 1);
  t.match(contactsOf(r)[0], /\+sip\.instance="<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"|\+sip\.instance="<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"/);
  // the same instance and reg-id from a new address replaces the flow
  r = await p.register({
    user: 'frank',
    domain: DOMAIN,
    contactHeaders: [`<sip:frank@192.0.2.99:5062>;+sip.instance=${inst};reg-id=1`],
    extra: ['Path: <sip:edge.example.org;lr;ob>', 'Supported: path, outbound'],
  });
  t.equal(contactsOf(r).length, 1, 'replaced, not added');
  t.match(contactsOf(r)[0], /192\.0\.2\.99:5062/);
  // another reg-id is another flow
  r = await p.register({
    user: 'frank',
    domain: DOMAIN,
    contactHeaders: [`<sip:frank@192.0.2.100:5064>;+sip.instance=${inst};reg-id=2`],
    extra: ['Path: <sip:edge.example.org;lr;ob>', 'Supported: path, outbound'],
  });
  t.equal(contactsOf(r).length, 2);
  // without Supported: path the Path is stored but not echoed
  r = await p.register({ user: 'grace', domain: DOMAIN, extra: ['Path: <sip:edge.example.org;lr>'] });
  t.equal(getHeader(r, 'path'), undefined);
  t.same(svc.registrar.lookup('sip:grace@reg.test')[0].path, ['<sip:edge.example.org;lr>']);
  t.equal(getHeader(r, 'require'), undefined, 'no outbound without instance and reg-id');
});

t.test('digest authentication: MD5, SHA-256, stale and replayed nonces, failures per source', async (t) => {
  const { svc, phone } = await service(t, false, { digest: { maxFailures: 3, failureWindow: 2 } });
  const p = await phone();
  // no credentials: a challenge; a client that names itself gets SHA-256 first (RFC 8760)
  let r = await p.register({ user: 'alice', domain: DOMAIN, userAgent: 'TestPhone/1.0' });
  t.equal(r.status, 401);
  const ch = getHeaders(r, 'www-authenticate');
  t.equal(ch.length, 2);
  t.match(ch[0], /^Digest realm="reg\.test", nonce="[^"]+", algorithm=SHA-256, qop="auth"$/);
  t.match(ch[1], /algorithm=MD5/);
  // clients known to give up on SHA-256 get MD5 alone
  r = await p.register({ user: 'alice', domain: DOMAIN, userAgent: 'baresip v1.0.0 (x86_64/linux)' });
  t.same(getHeaders(r, 'www-authenticate').map((c) => /algorithm=([\w-]+)/.exec(c)?.[1]), ['MD5']);

  r = await p.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland', algorithm: 'SHA-256', userAgent: 'TestPhone/1.0' });
  t.equal(r.status, 200, 'SHA-256 digest');
  r = await p.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland', algorithm: 'MD5' });
  t.equal(r.status, 200, 'MD5 digest');
  t.equal(svc.registrar.lookup('sip:alice@reg.test').length, 1);

  // replay: the same Authorization (same nonce and nc) again is refused as stale
  const first = await p.register({ user: 'alice', domain: DOMAIN });
  const chal = getHeaders(first, 'www-authenticate')[0];
  const authz = authorize(chal, { user: 'alice', password: 'wonderland', method: 'REGISTER', uri: `sip:${DOMAIN}` });
  const signed = p.registerText({ user: 'alice', domain: DOMAIN, authorization: authz });
  p.sendRaw(signed.text);
  const ok = await p.response(signed.branch);
  t.equal(ok.status, 200);
  // its retransmission (same branch) is answered from the transaction, not refused as a replay
  const absorbed = svc.tx.stats.retransmissionsAbsorbed;
  p.sendRaw(signed.text);
  const again = await p.response(signed.branch);
  t.equal(again.status, 200, 'a retransmitted REGISTER with credentials gets its answer again');
  t.equal(getHeader(again, 'to'), getHeader(ok, 'to'), 'the stored response');
  t.equal(svc.tx.stats.retransmissionsAbsorbed, absorbed + 1);
  r = await p.register({ user: 'alice', domain: DOMAIN, authorization: authz });
  t.equal(r.status, 401, 'replayed nonce-count refused');
  t.match(getHeader(r, 'www-authenticate'), /stale=true/);
  // the next nonce-count on the same nonce is fine
  t.equal((await p.register({ user: 'alice', domain: DOMAIN, authorization: authorize(chal, { user: 'alice', password: 'wonderland', method: 'REGISTER', uri: `sip:${DOMAIN}`, nc: 2 }) })).status, 200);

  // an expired nonce with the right password: stale=true, not a failure
  const old = new DigestAuth({ realm: DOMAIN, nonceLifetime: 1 });
  const oldNonce = old.newNonce(Math.floor(Date.now() / 1000) - 1000);
  const forged = `Digest realm="${DOMAIN}", nonce="${oldNonce}", algorithm=MD5, qop="auth"`;
  r = await p.register({ user: 'alice', domain: DOMAIN, authorization: authorize(forged, { user: 'alice', password: 'wonderland', method: 'REGISTER', uri: `sip:${DOMAIN}` }) });
  t.equal(r.status, 401);
  t.match(getHeader(r, 'www-authenticate'), /stale=true/, 'a nonce not issued (or expired) here is stale');

  // an unknown scheme is never taken as authenticated (RFC 4475 3.3.7)
  r = await p.register({ user: 'alice', domain: DOMAIN, authorization: 'NoOneKnowsThisScheme opaque-data=here' });
  t.equal(r.status, 401);
  t.match(getHeader(r, 'www-authenticate'), /^Digest /);

  // bob's credentials cannot register alice's address
  r = await p.registerWithAuth({ user: 'bob', domain: DOMAIN, password: 'builder' });
  t.equal(r.status, 200, 'bob registers himself');
  const bobCh = getHeaders(await p.register({ user: 'alice', domain: DOMAIN }), 'www-authenticate')[0];
  r = await p.register({ user: 'alice', domain: DOMAIN, authorization: authorize(bobCh, { user: 'bob', password: 'builder', method: 'REGISTER', uri: `sip:${DOMAIN}` }) });
  t.equal(r.status, 403, 'third-party registration refused');

  // wrong passwords: challenged each time, then the source is refused for a while
  const q = await phone();
  for (let i = 0; i < 3; i++) {
    r = await q.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wrong' });
    t.equal(r.status, 401, `wrong password ${i + 1}`);
  }
  r = await q.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland' });
  t.equal(r.status, 403, 'too many failures: refused even with the right password');
  t.match(r.reason, /Too many failed/);
  await new Promise((res) => setTimeout(res, 2100));
  r = await q.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland' });
  t.equal(r.status, 200, 'after the window it works again');
  // an unknown user is challenged like any other (no user enumeration)
  r = await q.register({ user: 'mallory', domain: DOMAIN });
  t.equal(r.status, 401);
});

t.test('open registration still checks credentials that are given', async (t) => {
  const { phone } = await service(t, true);
  const p = await phone();
  t.equal((await p.register({ user: 'anyone', domain: DOMAIN })).status, 200, 'no credentials needed');
  t.equal((await p.register({ user: 'alice', domain: DOMAIN, authorization: 'NoOneKnowsThisScheme x=y' })).status, 401);
});

t.test("a user's alias of another domain registers only as that user, always with credentials", async (t) => {
  // alice's account also answers to sip:alice@home.example (her name, delegated to this node)
  const users = { lookup: (u: string) => USERS.get(u), userOfAlias: (n: string) => (n === 'sip:alice@home.example' ? 'alice' : undefined) };
  const { svc, phone } = await service(t, true, { users });
  const p = await phone();
  const first = await p.register({ user: 'alice', domain: 'home.example', expires: 600 });
  t.equal(first.status, 401, 'even with open registration, an alias is challenged');
  const bobAuth = authorize(getHeaders(first, 'www-authenticate')[0], { user: 'bob', password: 'builder', method: 'REGISTER', uri: 'sip:home.example' });
  t.equal((await p.register({ user: 'alice', domain: 'home.example', expires: 600, authorization: bobAuth })).status, 403, "bob's credentials do not register alice's alias");
  t.equal((await p.register({ user: 'bob', domain: 'home.example', expires: 600 })).status, 404, 'a name of that domain that is no alias here is not served');
  t.equal((await p.register({ user: 'alice', domain: 'elsewhere.example', expires: 600 })).status, 404, 'nor another domain');
  t.equal((await p.registerWithAuth({ user: 'alice', domain: 'home.example', password: 'wonderland', expires: 600 })).status, 200, "alice's own credentials do");
  t.equal(svc.registrar.lookup(`sip:alice@${DOMAIN}`).length, 1, 'the contact is kept under her account here');
  t.equal(svc.registrar.lookup('sip:alice@home.example').length, 0, 'not under the alias');
});

t.test('TCP: registration over a stream, framing, CRLF keepalive pong', async (t) => {
  const { svc, phone } = await service(t, true);
  const p = await phone('tcp');
  const r = await p.register({ user: 'heidi', domain: DOMAIN, contact: `sip:heidi@127.0.0.1:${p.port};transport=tcp` });
  t.equal(r.status, 200);
  t.equal(svc.registrar.lookup('sip:heidi@reg.test')[0].flow.proto, 'tcp');
  // two requests in one write, and a CRLFCRLF ping answered with CRLF
  const a = p.registerText({ user: 'heidi', domain: DOMAIN });
  const b = p.registerText({ user: 'heidi', domain: DOMAIN });
  p.sendRaw(a.text + b.text);
  t.equal((await p.response(a.branch)).status, 200);
  t.equal((await p.response(b.branch)).status, 200);
  const raw = connect({ host: '127.0.0.1', port: svc.port });
  await new Promise((res) => raw.once('connect', res));
  const pong = new Promise<string>((res) => raw.once('data', (d: Buffer) => res(d.toString('latin1'))));
  raw.write('\r\n\r\n');
  t.equal(await pong, '\r\n');
  // garbage closes the connection, the node stays up
  const closed = new Promise((res) => raw.once('close', res));
  raw.write('this is not SIP at all\r\n\r\n');
  await closed;
  t.pass('garbage stream closed');
  t.equal((await p.register({ user: 'heidi', domain: DOMAIN })).status, 200, 'other connections unaffected');
});

t.test('requests the node does not serve, and bad input', async (t) => {
  const { svc, phone } = await service(t, false);
  const p = await phone();
  let r: SipResponse = await p.request('OPTIONS', `sip:${DOMAIN}`, ['Max-Forwards: 70']);
  t.equal(r.status, 200, 'OPTIONS to the node');
  t.match(getHeader(r, 'allow'), /REGISTER/);
  r = await p.request('OPTIONS', `sip:${DOMAIN}`, ['Content-Type: application/x-unknown'], 'data');
  t.equal(r.status, 415);
  t.equal(getHeader(r, 'accept'), 'application/sdp');
  r = await p.request('MESSAGE', `sip:${DOMAIN}`);
  t.equal(r.status, 405);
  r = await p.request('FROBNICATE', `sip:${DOMAIN}`);
  t.equal(r.status, 501);
  r = await p.request('OPTIONS', `sip:${DOMAIN}`, ['Require: foo, path']);
  t.equal(r.status, 420);
  t.equal(getHeader(r, 'unsupported'), 'foo');
  r = await p.request('INVITE', 'sip:nobody@reg.test', ['Max-Forwards: 0']);
  t.equal(r.status, 483, 'would be forwarded with no hops left');
  r = await p.request('INVITE', 'sip:nobody@reg.test', ['Max-Forwards: 5']);
  t.equal(r.status, 404);
  r = await p.request('INVITE', 'sip:alice@reg.test', ['Max-Forwards: 5']);
  t.equal(r.status, 404, 'a known user without a phone, asked by a stranger: 404 like an unknown one (no account enumeration)');
  r = await p.request('CANCEL', 'sip:alice@reg.test');
  t.equal(r.status, 481);
  r = await p.request('BYE', 'sip:x@elsewhere.example');
  t.equal(r.status, 404);
  // garbage, truncated and oversized datagrams: dropped or answered 400, never fatal
  const raw = createSocket('udp4');
  await new Promise<void>((res) => raw.bind(0, '127.0.0.1', () => res()));
  for (const junk of ['', 'x', '\x00\x01\x02\x03', 'REGISTER sip:x SIP/2.0\r\n', Buffer.alloc(60000, 0x41).toString('latin1'), 'SIP/2.0 200 OK\r\nVia: x\r\n\r\n']) {
    raw.send(Buffer.from(junk, 'latin1'), svc.port, '127.0.0.1');
  }
  const bad = await new Promise<string>((res) => {
    raw.once('message', (m) => res(m.toString('latin1')));
    raw.send(Buffer.from(`REGISTER sip:${DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nCSeq: 1 REGISTER\r\nContent-Length: 99\r\n\r\n`, 'latin1'), svc.port, '127.0.0.1');
  });
  t.match(bad, /^SIP\/2\.0 400 /, 'malformed request answered 400');
  raw.close();
  // STUN binding request (RFC 5626 keepalive): XOR-MAPPED-ADDRESS comes back
  const stun = createSocket('udp4');
  await new Promise<void>((res) => stun.bind(0, '127.0.0.1', () => res()));
  const req = Buffer.alloc(20);
  req.writeUInt16BE(1, 0);
  req.writeUInt32BE(0x2112a442, 4);
  req.fill(7, 8);
  const resp = await new Promise<Buffer>((res) => {
    stun.once('message', (m) => res(m));
    stun.send(req, svc.port, '127.0.0.1');
  });
  t.equal(resp.readUInt16BE(0), 0x0101, 'binding success');
  t.equal(resp.readUInt16BE(26) ^ 0x2112, stun.address().port, 'XOR-MAPPED-ADDRESS port');
  stun.close();
  t.equal((await p.request('OPTIONS', `sip:${DOMAIN}`)).status, 200, 'still serving');
});

t.test('keepalive: a contact is verified by OPTIONS, and turns dead when it stops answering', async (t) => {
  const { svc, presence, phone } = await service(t, true);
  const p = await phone();
  t.equal((await p.register({ user: 'ivan', domain: DOMAIN, expires: 3600 })).status, 200);
  t.equal(svc.registrar.presence('sip:ivan@reg.test').online, false, 'unverified right after REGISTER');
  await eventually(() => svc.registrar.presence('sip:ivan@reg.test').online, 3000, 20);
  t.equal(svc.registrar.presence('sip:ivan@reg.test').online, true, 'online once it answered OPTIONS');
  t.ok(p.options >= 1);
  t.match(presence.find((x) => x[0] === 'sip:ivan@reg.test' && x[1]), ['sip:ivan@reg.test', true, Number]);
  const before = p.options;
  await new Promise((r) => setTimeout(r, 1000));
  t.ok(p.options > before, 'pinged on a schedule');
  p.answerOptions = false;
  await eventually(() => !svc.registrar.presence('sip:ivan@reg.test').online, 5000, 20);
  t.equal(svc.registrar.presence('sip:ivan@reg.test').online, false, 'dead after failed pings');
  t.same(presence[presence.length - 1].slice(0, 2), ['sip:ivan@reg.test', false]);
  t.equal(svc.registrar.lookup('sip:ivan@reg.test').length, 1, 'still registered, still pinged with backoff');
  // it answers again: alive again
  p.answerOptions = true;
  await eventually(() => svc.registrar.presence('sip:ivan@reg.test').online, 8000, 20);
  t.equal(svc.registrar.presence('sip:ivan@reg.test').online, true, 'back online when it answers');
  // unregistering: offline at once
  t.equal((await p.register({ user: 'ivan', domain: DOMAIN, expires: 0 })).status, 200);
  t.same(presence[presence.length - 1].slice(0, 2), ['sip:ivan@reg.test', false]);
});

t.test('a contact dead for long is removed', async (t) => {
  const { svc, phone } = await service(t, true, { keepalive: { intervalMs: 200, timeoutMs: 150, maxFailures: 1, removeDeadAfterMs: 500 } });
  const p = await phone();
  p.answerOptions = false;
  t.equal((await p.register({ user: 'lena', domain: DOMAIN, expires: 3600 })).status, 200);
  await eventually(() => svc.registrar.lookup('sip:lena@reg.test').length === 0, 5000, 50);
  t.equal(svc.registrar.lookup('sip:lena@reg.test').length, 0, 'removed although its registration has not ended');
});

t.test('registrations expire', async (t) => {
  const { svc, phone } = await service(t, true, { registrar: { minExpires: 1 } });
  const p = await phone();
  t.equal((await p.register({ user: 'judy', domain: DOMAIN, expires: 1 })).status, 200);
  t.equal(svc.registrar.lookup('sip:judy@reg.test').length, 1);
  await new Promise((r) => setTimeout(r, 2300));
  t.equal(svc.registrar.lookup('sip:judy@reg.test').length, 0, 'gone after its expiry');
});

t.test('snapshot and restore of registrations', async (t) => {
  const a = await service(t, true);
  const p = await a.phone();
  await p.register({ user: 'ken', domain: DOMAIN, contactHeaders: ['<sip:ken@127.0.0.1:' + p.port + '>;q=0.5;expires=600'] });
  const snap = a.svc.registrar.snapshot();
  t.equal(snap.length, 1);
  const b = await service(t, true);
  t.equal(b.svc.registrar.restore(JSON.parse(JSON.stringify(snap))), 1);
  const [c] = b.svc.registrar.lookup('sip:ken@reg.test');
  t.equal(c.q, 500);
  t.equal(c.state, 0, 'restored unverified: pinged before it counts');
});

t.test('responseBytes gives the same bytes as buildResponse + serializeMessage', async (t) => {
  const { parseMessage } = await import('../sip/message.ts');
  const { buildResponse, serializeMessage, responseBytes } = await import('../sip/serialize.ts');
  const raw = 'REGISTER sip:reg.test SIP/2.0\r\nv: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKb\r\nVia: SIP/2.0/TCP 192.0.2.3;branch=z9hG4bKc\r\nf: <sip:a@reg.test>;tag=1\r\nt: <sip:a@reg.test>\r\ni: x@y\r\nCSeq: 7 REGISTER\r\nTimestamp: 54\r\nContent-Length: 0\r\n\r\n';
  const r = parseMessage(Buffer.from(raw, 'latin1'));
  if (!r.ok || r.message.kind !== 'request') throw new Error('parse');
  const req = r.message;
  for (const [status, reason, extra, tag] of [
    [200, 'OK', [['Contact', '<sip:a@192.0.2.1>;expires=60'], ['Date', 'Tue, 01 Jan 2030 00:00:00 GMT']], 'abc'],
    [100, 'Trying', undefined, null],
    [423, 'Interval Too Brief', [['Min-Expires', '60']], 'zz'],
  ] as Array<[number, string, Array<[string, string]> | undefined, string | null]>) {
    const a = responseBytes(req, status, reason, extra, tag);
    const b = serializeMessage(buildResponse(req, status, reason, extra, tag === null ? undefined : { toTag: tag }));
    t.equal(a.toString('latin1'), b.toString('latin1'), `${status}`);
  }
});

t.test('a forged source cannot lock a phone out: failures count only where the challenge was received', async (t) => {
  // The forger's wrong digests carry nonces the forger got at its own address; sent "from" the
  // phone's address (what a forged UDP source is), they prove nothing about that address.
  const auth = new DigestAuth({ realm: DOMAIN, maxFailures: 3, failureWindow: 60 });
  const lookup = (u: string): DigestCredentials | undefined => USERS.get(u);
  const nonceOf = (challenge: string): string => /nonce="([^"]+)"/.exec(challenge)?.[1] ?? '';
  const creds = (nonce: string, password: string): string =>
    authorize(`Digest realm="${DOMAIN}", nonce="${nonce}", algorithm=MD5, qop="auth"`, { user: 'alice', password, method: 'REGISTER', uri: `sip:${DOMAIN}` });
  for (let i = 0; i < 10; i++) {
    const forged = nonceOf(auth.challenges(false, ['MD5'], '203.0.113.66')[0]);
    const r = auth.verify([creds(forged, 'guess' + i)], 'REGISTER', `sip:${DOMAIN}`, Buffer.alloc(0), '198.51.100.7', lookup);
    t.match(r, { ok: false, status: 401, failure: false }, `forged attempt ${i + 1}: challenged, not counted`);
  }
  t.notOk(auth.isBlocked('198.51.100.7'), 'the phone\'s address is not refused');
  const own = nonceOf(auth.challenges(false, ['MD5'], '198.51.100.7')[0]);
  t.match(auth.verify([creds(own, 'wonderland')], 'REGISTER', `sip:${DOMAIN}`, Buffer.alloc(0), '198.51.100.7', lookup), { ok: true }, 'the phone, answering its own challenge, gets in');
  // A right digest on a nonce sent elsewhere is not taken either: the client must have seen this challenge.
  const elsewhere = nonceOf(auth.challenges(false, ['MD5'], '203.0.113.66')[0]);
  t.match(auth.verify([creds(elsewhere, 'wonderland')], 'REGISTER', `sip:${DOMAIN}`, Buffer.alloc(0), '198.51.100.7', lookup), { ok: false, status: 401, stale: true });
  // The real source's own failures still count.
  for (let i = 0; i < 3; i++) auth.verify([creds(nonceOf(auth.challenges(false, ['MD5'], '192.0.2.9')[0]), 'nope')], 'REGISTER', `sip:${DOMAIN}`, Buffer.alloc(0), '192.0.2.9', lookup);
  t.ok(auth.isBlocked('192.0.2.9'), 'three proven failures refuse that source');
});

t.test('a nonce is bound to the address it was sent to, whatever the address looks like', async (t) => {
  const auth = new DigestAuth({ realm: DOMAIN });
  const lookup = (u: string): DigestCredentials | undefined => USERS.get(u);
  const nonceOf = (challenge: string): string => /nonce="([^"]+)"/.exec(challenge)?.[1] ?? '';
  const creds = (nonce: string): string =>
    authorize(`Digest realm="${DOMAIN}", nonce="${nonce}", algorithm=MD5, qop="auth"`, { user: 'alice', password: 'wonderland', method: 'REGISTER', uri: `sip:${DOMAIN}` });
  // the MAC covers the address's bytes after the nonce's own 8: near misses, IPv6, and a source
  // longer than the MAC's buffer (its other path) all bind
  const long = 'x'.repeat(300);
  const pairs: Array<[string, string]> = [
    ['192.0.2.1', '192.0.2.10'],
    ['192.0.2.10', '192.0.2.1'],
    ['2001:db8::1', '2001:db8::1:0'],
    ['2001:db8:ffff:ffff:ffff:ffff:255.255.255.255', '2001:db8:ffff:ffff:ffff:ffff:255.255.255.254'],
    [long, long + 'y'],
    [long + 'y', long],
    ['', '0'],
  ];
  for (const [to, other] of pairs) {
    const n = nonceOf(auth.challenges(false, ['MD5'], to)[0]);
    t.match(auth.verify([creds(n)], 'REGISTER', `sip:${DOMAIN}`, Buffer.alloc(0), other, lookup), { ok: false, status: 401, stale: true }, `sent to ${to.slice(0, 40)}: refused from ${other.slice(0, 40)}`);
    t.match(auth.verify([creds(n)], 'REGISTER', `sip:${DOMAIN}`, Buffer.alloc(0), to, lookup), { ok: true }, `and taken from ${to.slice(0, 40)}`);
  }
  const n = nonceOf(auth.challenges(false, ['MD5'], '192.0.2.1')[0]);
  const b = Buffer.from(n, 'base64url');
  b[19] ^= 1;
  t.match(auth.verify([creds(b.toString('base64url'))], 'REGISTER', `sip:${DOMAIN}`, Buffer.alloc(0), '192.0.2.1', lookup), { ok: false, status: 401, stale: true }, 'a nonce with one bit of its MAC changed is not ours');
});

t.test('guessing from many addresses meets a limit per account, which the real phone passes', async (t) => {
  const { svc, phone } = await service(t, false, { digest: { maxFailures: 100, maxAccountFailures: 5, failureWindow: 30 } });
  const real = await phone();
  t.equal((await real.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland' })).status, 200, 'the phone registers from its address');
  // Guessers, each from its own address on this machine (127.0.0.0/8), each answering its own challenge.
  for (let i = 0; i < 5; i++) {
    const g = await phone('udp', `127.0.0.${10 + i}`);
    t.equal((await g.registerWithAuth({ user: 'alice', domain: DOMAIN, password: `guess${i}` })).status, 401, `guess ${i + 1} from 127.0.0.${10 + i}`);
  }
  const lucky = await phone('udp', '127.0.0.40');
  const r = await lucky.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland' });
  t.equal(r.status, 403, 'past the account\'s limit even the right password from a new address is refused');
  t.equal((await real.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland' })).status, 200, 'the phone at its own address still registers');
  const bob = await phone('udp', '127.0.0.41');
  t.equal((await bob.registerWithAuth({ user: 'bob', domain: DOMAIN, password: 'builder' })).status, 200, 'other accounts are untouched');
  t.ok(svc.registrar.lookup('sip:alice@reg.test').length >= 1);
});

t.test('TCP edges a stranger cannot hold: per-address connections, slow messages, silent connections', async (t) => {
  const { svc, phone } = await service(t, false, { transport: { maxConnectionsPerAddress: 3, messageTimeoutMs: 600, firstMessageTimeoutMs: 1200 } });
  const open = (): Promise<{ socket: ReturnType<typeof connect>; closedAfter: Promise<number> }> =>
    new Promise((resolve, reject) => {
      const t0 = Date.now();
      const socket = connect({ host: '127.0.0.1', port: svc.port, localAddress: '127.0.0.20' });
      const closedAfter = new Promise<number>((r) => socket.once('close', () => r(Date.now() - t0)));
      socket.on('error', () => undefined);
      socket.once('connect', () => resolve({ socket, closedAfter }));
      socket.once('error', reject);
    });
  // Silent: never a byte.
  const silent = await open();
  const silentMs = await silent.closedAfter;
  t.ok(silentMs >= 1000 && silentMs < 3000, `a connection that never speaks is closed after the first-message timeout (${silentMs} ms)`);
  // Slowloris: a message begun, a byte every 100 ms, never finished.
  const slow = await open();
  slow.socket.write('OPTIONS sip:reg.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.20:5;branch=z9hG4bKslow\r\n');
  const drip = setInterval(() => slow.socket.write('X'), 100);
  const slowMs = await slow.closedAfter;
  clearInterval(drip);
  t.ok(slowMs < 2500, `a message that trickles in is cut off at the message timeout (${slowMs} ms)`);
  // One address: the fourth connection is refused at once while three are held.
  const held = [await open(), await open(), await open()];
  const fourth = await open();
  t.ok((await fourth.closedAfter) < 300, 'the connection over the per-address cap is closed at once');
  for (const h of held) h.socket.destroy();
  // A phone on TCP from another address is untouched, and keeps its connection while it speaks.
  const p = await phone('tcp');
  t.equal((await p.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland' })).status, 200, 'a TCP phone registers');
  await new Promise((r) => setTimeout(r, 1500));
  t.equal((await p.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'wonderland' })).status, 200, 'and its connection outlives the first-message timeout');
});
