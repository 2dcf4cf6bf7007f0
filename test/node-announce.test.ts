// A node put where others reach it by a name rather than by what it listens on (issue 16, point
// 4): `--sip-announce HOST[:PORT]` and `--p2p-announce MULTIADDR`. Node A listens on 127.0.0.1
// and announces itself by the host name `localhost` (a DNS name resolved through the system
// resolver, as a public name would be): its announcement on the chain carries sip:localhost:PORT
// and /dns4/localhost/tcp/PORT, node C joins it by that multiaddr, and a message from a phone
// at C reaches alice's phone at A through the announced name, with A's Via naming it too.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { selfSignedCertificate } from '../node/certificate.ts';
import { spkiFingerprint } from '../sip/tls.ts';
import { Harness, getJson, runDots } from './util/proc.ts';
import { freePort } from './util/ports.ts';
import { tmpDir } from './util/tmp.ts';
import { mineUntil, nodeIdOf } from './util/names.ts';
import { getHeaders } from '../sip/message.ts';
import { TestPhone } from './sip-client.ts';

t.test('a node announced by a DNS name is joined and called by that name', async (t) => {
  const dir = tmpDir(t, 'dots-announce-');
  const h = new Harness(t);
  const datadirA = join(dir, 'A');
  t.equal((await runDots(['user', 'add', 'alice', '--password', 'alice-pw', '--datadir', datadirA, '--domain', 'a.test'])).code, 0, 'alice has an account at A');
  const [sipPort, p2pPort] = [await freePort(), await freePort()];
  // A's certificate is given to it, as a certificate from a CA would be (--tls-cert, --tls-key)
  const given = selfSignedCertificate('localhost', ['localhost']);
  writeFileSync(join(dir, 'cert.pem'), given.cert);
  writeFileSync(join(dir, 'key.pem'), given.key);
  const a = await h.start('A', {
    datadir: datadirA,
    sipPort,
    args: ['--domain', 'a.test', '--sip-keepalive', '1', '--sip-announce', `localhost:${sipPort}`, '--p2p-port', String(p2pPort), '--p2p-announce', `/dns4/localhost/tcp/${p2pPort}`, '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')],
  });
  t.match(a.stdout.join('\n'), new RegExp(`^sip:\\s+sip:localhost:${sipPort} \\(UDP [^;]*, TCP, listening on 127\\.0\\.0\\.1:${sipPort}; TLS on \\d+\\)`, 'm'), 'A says where it is announced and where it listens');
  t.match(a.p2p, new RegExp(`^/dns4/localhost/tcp/${p2pPort}/p2p/`), 'and gives its announced p2p address');
  const c = await h.start('C', { bootstrap: [a.p2p], args: ['--domain', 'c.test', '--open-registration'] });
  const mine = (): Promise<unknown> => c.mine(1);

  const alice = await new TestPhone({ host: '127.0.0.1', port: sipPort }).open();
  t.teardown(() => alice.close());
  t.equal((await alice.registerWithAuth({ user: 'alice', domain: 'a.test', password: 'alice-pw', expires: 600 })).status, 200, 'alice registered at A');
  const aId = await nodeIdOf(c, { name: 'A', sip: 'sip:localhost' }, mine);
  const nodes = (await getJson<{ nodes: Array<{ id: string; sipUris: string[]; p2pAddrs: string[] }> }>(`${c.api}/api/nodes`)).body.nodes;
  const atC = nodes.find((n) => n.id === aId);
  t.equal(atC?.sipUris[0], `sip:localhost:${sipPort}`, "A's announcement on the chain names it by its DNS name");
  t.equal(atC?.sipUris[1], `sip:localhost:${a.tlsPort};transport=tls;spki=${spkiFingerprint(given.cert)}`, 'its TLS URI too, with the key of the certificate it was given');
  const shown = await new TestPhone({ host: '127.0.0.1', port: a.tlsPort }, 'tls').open();
  t.teardown(() => shown.close());
  const x = shown.peerCertificate();
  t.ok(x !== undefined && spkiFingerprint(x) === spkiFingerprint(given.cert), 'and its TLS port shows that certificate');
  t.ok(atC?.p2pAddrs.some((x) => x.startsWith(`/dns4/localhost/tcp/${p2pPort}`)), 'with the p2p address it announced');
  t.ok((await c.peers()).some((p) => p.id === a.peerId), 'C joined A through the announced multiaddr');
  await mineUntil(mine, 'C to see alice online', async () => {
    const r = await getJson<{ binding: { status: string } | null }>(`${c.api}/api/names/${encodeURIComponent('sip:alice@a.test')}`);
    return r.body.binding?.status === 'online';
  }, { timeoutMs: 60_000 });

  const bob = await new TestPhone({ host: '127.0.0.1', port: c.sipPort }).open();
  t.teardown(() => bob.close());
  t.equal((await bob.register({ user: 'bob', domain: 'c.test', expires: 600 })).status, 200, 'bob registered at C');
  const sent = bob.request('MESSAGE', 'sip:alice@a.test', ['From: <sip:bob@c.test>;tag=dns1', 'Max-Forwards: 70', 'Content-Type: text/plain'], 'found you by name', 10_000);
  const got = await alice.incoming('MESSAGE', 8000);
  t.equal(got.body.toString('utf8'), 'found you by name', "C resolved A's announced name and the message reached alice");
  t.match(getHeaders(got, 'via')[0], new RegExp(`^SIP/2\\.0/UDP localhost:${sipPort};`), "A's Via names it as announced");
  alice.answer(got, 200);
  t.equal((await sent).status, 200, 'bob hears it was delivered');
});
