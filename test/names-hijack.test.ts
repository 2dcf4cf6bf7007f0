// The hijack of issue 14, end to end with three node processes on loopback: node A holds the
// domain a.test and serves alice; a stranger's key, through node B, tries to claim an address
// under a.test and to bind alice's name elsewhere. Both are refused by the rules, and node C, which
// saw everything, still routes alice to A.
import t from 'tap';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Harness, converged, runDots } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { TestPhone } from './sip-client.ts';
import { bindingAt, mineUntil } from './util/names.ts';
import { newKey } from './helpers.ts';
import { Kind, commitmentOf, signRecord, type Binding, type NameClaim, type NameCommit } from '../core/records.ts';
import { toHex } from '../core/hash.ts';

const DOMAIN = 'a.test';

t.test('a stranger cannot take an address under a node\'s domain: the third node still routes alice to A', async (t) => {
  const h = new Harness(t);
  const datadir = join(tmpDir(t, 'dots-hijack-'), 'a');
  t.equal((await runDots(['user', 'add', 'alice', '--password', 'alice-pw', '--datadir', datadir, '--domain', DOMAIN])).code, 0);
  const a = await h.start('A', { datadir, args: ['--domain', DOMAIN, '--sip-keepalive', '1'] });
  const b = await h.start('B', { bootstrap: [a.p2p] });
  const c = await h.start('C', { bootstrap: [a.p2p] });
  const mine = (): Promise<unknown> => a.mine(1);
  const owner = async (name: string): Promise<string | null> => (await a.get<{ owner: string | null }>(`/api/names/${encodeURIComponent(name)}`)).body.owner ?? null;
  await mineUntil(mine, 'A holds its domain and alice', async () => (await owner(DOMAIN)) !== null && (await owner(`sip:alice@${DOMAIN}`)) !== null, { timeoutMs: 30_000 });
  const aId = (await a.get<{ nodes: Array<{ id: string }> }>('/api/nodes')).body.nodes[0].id;

  // alice's phone registers at A and answers its pings: her binding goes online
  const phone = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  t.teardown(() => phone.close());
  t.equal((await phone.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'alice-pw', expires: 600 })).status, 200);
  await waitFor('alice online at A', async () => (await bindingAt(a, `sip:alice@${DOMAIN}`))?.status === 'online' || undefined, 10_000);

  // The stranger: a key that owns nothing, through node B.
  const thief = newKey();
  const salt = randomBytes(32);
  const target = `sip:bob@${DOMAIN}`;
  await b.submit(signRecord<NameCommit>('regtest', thief.secret, { kind: Kind.NameCommit, pubkey: thief.pub, commitment: commitmentOf(target, salt, thief.pub) }));
  await waitFor('the commitment reaches A', async () => ((await a.get<{ total: number }>('/api/pending')).body.total > 0) || undefined, 10_000);
  await mine();
  await mine();
  await converged([a, b, c]);
  const claim = await b.post<{ code?: string }>('/api/records', { record: toHex(signRecord<NameClaim>('regtest', thief.secret, { kind: Kind.NameClaim, name: target, pubkey: thief.pub, salt }).bytes) });
  t.equal(claim.status, 400, 'the claim of an address under a.test is refused');
  t.equal(claim.body.code, 'domain-not-held');
  // and binding alice's name to a node of its own
  const rebind = await b.post<{ code?: string }>('/api/records', {
    record: toHex(signRecord<Binding>('regtest', thief.secret, { kind: Kind.Binding, name: `sip:alice@${DOMAIN}`, node: thief.address, status: 1, expires: Math.floor(Date.now() / 1000) + 600, seq: 1_000_000, pubkey: thief.pub }).bytes),
  });
  t.equal(rebind.status, 400, "a binding of alice's name by the stranger is refused");
  t.equal(rebind.body.code, 'not-authorized');
  await mine();
  await converged([a, b, c]);
  t.equal(await owner(target), null, 'nobody took the address');
  const atC = await bindingAt(c, `sip:alice@${DOMAIN}`);
  t.equal(atC?.node, aId, 'the third node routes alice to A');
  t.equal(atC?.status, 'online');
});
