// Digest authentication (sip/digest.ts) as a unit: the credentials' parameters, and a nonce
// answered once, from the address it was sent to.
import t from 'tap';
import { DigestAuth, authorize, credentialsFor, parseAuthParams } from '../sip/digest.ts';

t.test('auth-params: quoted values with and without escapes, tokens, and what is malformed', (t) => {
  const a = parseAuthParams('Digest username="al\\"ice", realm="a.example", nonce="abc", uri="sip:a.example", response="0123", nc=00000001, qop=auth, opaque="x\\\\y"');
  t.ok(a);
  t.equal(a?.scheme, 'Digest');
  t.equal(a?.params.get('username'), 'al"ice', 'an escaped quote is the quote');
  t.equal(a?.params.get('opaque'), 'x\\y', 'an escaped backslash is one backslash');
  t.equal(a?.params.get('realm'), 'a.example');
  t.equal(a?.params.get('nc'), '00000001');
  t.equal(a?.params.get('qop'), 'auth');
  t.equal(parseAuthParams('Digest realm="a.example", nonce="unterminated'), null, 'an unterminated quoted value is malformed');
  t.equal(parseAuthParams('Digest realm="a", realm="b"'), null, 'a repeated directive is malformed');
  t.equal(parseAuthParams('Digest realm'), null, 'a directive without a value is malformed');
  t.equal(parseAuthParams('Digest realm="a\\'), null, 'a trailing backslash leaves it unterminated');
  t.end();
});

t.test('a nonce is good once, and only from the address it was sent to', (t) => {
  const d = new DigestAuth({ realm: 'a.example' });
  const cred = credentialsFor('alice', 'a.example', 'pw');
  const lookup = (u: string) => (u === 'alice' ? cred : undefined);
  const [ch] = d.challenges(false, ['MD5'], '127.0.0.5');
  const authz = authorize(ch, { user: 'alice', password: 'pw', method: 'REGISTER', uri: 'sip:a.example' });
  const verify = (source: string) => d.verify([authz], 'REGISTER', 'sip:a.example', Buffer.alloc(0), source, lookup);
  t.same(verify('127.0.0.6'), { ok: false, status: 401, stale: true, failure: false }, 'from another address: challenged again, not counted');
  t.same(verify('127.0.0.5'), { ok: true, user: 'alice' }, 'from the address it was sent to: accepted');
  t.same(verify('127.0.0.5'), { ok: false, status: 401, stale: true, failure: false }, 'the same nonce count again is a replay: stale');
  const wrong = authorize(ch, { user: 'alice', password: 'guess', method: 'REGISTER', uri: 'sip:a.example', nc: 2 });
  t.same(d.verify([wrong], 'REGISTER', 'sip:a.example', Buffer.alloc(0), '127.0.0.5', lookup), { ok: false, status: 401, stale: false, failure: true }, 'a wrong password from that address is a failure');
  t.end();
});

t.test('a nonce whose slot in the ring a later nonce took is stale; the later one is good', (t) => {
  const d = new DigestAuth({ realm: 'a.example' });
  const cred = credentialsFor('alice', 'a.example', 'pw');
  const lookup = (u: string) => (u === 'alice' ? cred : undefined);
  const source = '127.0.0.5';
  const answer = (nonce: string) => authorize(`Digest realm="a.example", nonce="${nonce}", algorithm=MD5, qop="auth"`, { user: 'alice', password: 'pw', method: 'REGISTER', uri: 'sip:a.example' });
  const verify = (nonce: string) => d.verify([answer(nonce)], 'REGISTER', 'sip:a.example', Buffer.alloc(0), source, lookup);
  const now = Math.floor(Date.now() / 1000);
  const first = d.newNonce(now, source);
  // the ring holds 2^20 nonces (sip/digest.ts, RING): the next 2^20 take every slot, the last the first's
  let last = '';
  for (let i = 0; i < 1 << 20; i++) last = d.newNonce(now, source);
  t.same(verify(first), { ok: false, status: 401, stale: true, failure: false }, 'the first nonce, its slot taken again: stale');
  t.same(verify(last), { ok: true, user: 'alice' }, 'the nonce that took its slot: accepted');
  t.end();
});
