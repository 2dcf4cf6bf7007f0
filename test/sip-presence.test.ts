// The registrar's bridge to the chain, end to end with a `dots node` process on regtest: the
// node announces itself and claims its domain and its users' names (commit, then reveal), a
// phone that answered OPTIONS becomes an online binding (pending at once, confirmed in the next
// block), refreshes write nothing, and a phone that stops answering or unregisters turns offline
// on the chain. Commit-then-reveal resumes after a restart.
import t from 'tap';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, converged, runDots, startNode, getJson, postJson } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { sleep, waitFor } from './util/wait.ts';
import { TestPhone } from './sip-client.ts';
import { bindingAt, mineUntil } from './util/names.ts';

const DOMAIN = 'pres.test';

interface NameView {
  name: string;
  owner: string | null;
  binding: { node: string; status: string; expires: number; seq: number; confirmed: boolean; height: number | null } | null;
}

const name = async (api: string, n: string): Promise<NameView | undefined> => {
  const r = await getJson<NameView>(`${api}/api/names/${encodeURIComponent(n)}`);
  return r.status === 200 ? r.body : undefined;
};
const mine = async (api: string, count = 1): Promise<void> => {
  const r = await postJson(`${api}/api/dev/mine`, { count });
  if (r.status !== 200) throw new Error(`mine: ${r.status}`);
};
const pendingKinds = async (api: string): Promise<string[]> => (await getJson<{ records: Array<{ kind: string }> }>(`${api}/api/pending`)).body.records.map((r) => r.kind);

t.test('presence on the chain follows the phone', async (t) => {
  const dir = tmpDir(t);
  const datadir = join(dir, 'node');
  for (const u of ['alice', 'bob']) {
    const r = await runDots(['user', 'add', u, '--password', `${u}-secret`, '--datadir', datadir, '--domain', DOMAIN]);
    t.equal(r.code, 0, r.stderr);
  }
  t.equal(statSync(join(datadir, 'users.json')).mode & 0o777, 0o600, 'users file is owner-only');
  const users = JSON.parse(readFileSync(join(datadir, 'users.json'), 'utf8')) as { users: Record<string, Record<string, string>> };
  t.notMatch(JSON.stringify(users), /alice-secret/, 'no password on disk, only HA1 values');
  t.match(users.users.alice, { realm: DOMAIN, md5: /^[0-9a-f]{32}$/, sha256: /^[0-9a-f]{64}$/ });

  const node = await startNode(t, { datadir, args: ['--domain', DOMAIN, '--sip-keepalive', '1'] });
  const api = node.api;
  // first start: the node announces itself and commits to its domain and users' names
  await waitFor('announcement and commitments pending', async () => {
    const k = await pendingKinds(api);
    return k.filter((x) => x === 'name-commit').length === 3 && k.includes('node-announce');
  });
  // commitments confirmed, then the reveals, then the names are the node's
  const owned = await mineUntil(() => mine(api), 'names claimed', async () => {
    const [d, a, b] = await Promise.all([name(api, DOMAIN), name(api, `sip:alice@${DOMAIN}`), name(api, `sip:bob@${DOMAIN}`)]);
    return d?.owner && a?.owner && b?.owner ? [d, a, b] : undefined;
  });
  t.equal(owned[0].owner, owned[1].owner, 'domain and users claimed by one key: the node');
  const nodes = await getJson<{ nodes: Array<{ id: string; pubkey: string; sipUris: string[] }> }>(`${api}/api/nodes`);
  t.equal(nodes.body.nodes.length, 1);
  const me = nodes.body.nodes[0];
  t.equal(me.pubkey, owned[0].owner, 'the node announced itself with that key');
  t.equal(me.sipUris[0], `sip:127.0.0.1:${node.sipPort}`, 'with its SIP URI');
  t.match(me.sipUris[1], new RegExp(`^sip:127\\.0\\.0\\.1:${node.tlsPort};transport=tls;spki=[0-9a-f]{64}$`), 'and its TLS URI, naming its certificate key');
  t.equal((await name(api, `sip:alice@${DOMAIN}`))?.binding, null, 'no binding before any phone registers');

  // a phone registers with digest credentials; it answers the registrar's OPTIONS only once it
  // has been pinged, so the order is seen: no binding while the ping is unanswered
  const phone = await new TestPhone({ host: '127.0.0.1', port: node.sipPort }).open();
  t.teardown(() => phone.close());
  phone.answerOptions = false;
  const r = await phone.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'alice-secret', expires: 600 });
  t.equal(r.status, 200);
  await waitFor('the first ping', async () => phone.options >= 1 || undefined, 5000);
  t.equal((await name(api, `sip:alice@${DOMAIN}`))?.binding, null, 'pinged, not yet answered: no binding');
  phone.answerOptions = true;
  const pending = await waitFor('binding pending once a ping is answered', async () => {
    const n = await name(api, `sip:alice@${DOMAIN}`);
    return n?.binding?.status === 'online' ? n.binding : undefined;
  }, 8000);
  t.match(pending, { node: me.id, status: 'online', confirmed: false, height: null });
  const now = Math.floor(Date.now() / 1000);
  t.ok(pending.expires > now + 500 && pending.expires <= now + 601, 'expires with the registration');
  await mine(api);
  const confirmed = await waitFor('binding confirmed', async () => {
    const n = await name(api, `sip:alice@${DOMAIN}`);
    return n?.binding?.confirmed === true ? n.binding : undefined;
  });
  t.match(confirmed, { status: 'online', seq: pending.seq, confirmed: true, height: Number });
  const record = (await getJson<{ records: Array<{ records: Array<Record<string, unknown>> }> }>(`${api}/api/blocks/${confirmed.height}`)).body as unknown as { records: Array<Record<string, unknown>> };
  // the node's presence record: one per block for all its users' changes, each name by its number
  const rec = record.records.find((x) => x.kind === 'presence') as { node: string; seq: number; entries: Array<{ name: string | null; ref: number; status: number; expires: number }> } | undefined;
  t.ok(rec, 'the binding is in the block, in the node\'s presence record');
  t.equal(rec?.node, me.id, 'signed by the node');
  t.equal(rec?.seq, pending.seq, 'its sequence is the binding\'s');
  t.match(rec?.entries, [{ name: `sip:alice@${DOMAIN}`, status: 1, expires: pending.expires }], 'alice online, her name by its number');
  t.notMatch(JSON.stringify(rec), /127\.0\.0\.1|\b\d+\.\d+\.\d+\.\d+\b/, "the phone's address is not on the chain");

  // refreshes write nothing to the chain
  for (let i = 0; i < 3; i++) t.equal((await phone.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'alice-secret', expires: 600 })).status, 200);
  await sleep(600);
  t.notOk((await pendingKinds(api)).includes('presence'), 'no new binding for a refresh');
  t.equal((await name(api, `sip:alice@${DOMAIN}`))?.binding?.seq, pending.seq);

  // bob registers, then unregisters: offline
  const bobPhone = await new TestPhone({ host: '127.0.0.1', port: node.sipPort }).open();
  t.teardown(() => bobPhone.close());
  t.equal((await bobPhone.registerWithAuth({ user: 'bob', domain: DOMAIN, password: 'bob-secret', expires: 600 })).status, 200);
  await waitFor('bob online', async () => (await name(api, `sip:bob@${DOMAIN}`))?.binding?.status === 'online');
  t.equal((await bobPhone.registerWithAuth({ user: 'bob', domain: DOMAIN, password: 'bob-secret', expires: 0 })).status, 200);
  const bobOff = await waitFor('bob offline after unregistering', async () => {
    const n = await name(api, `sip:bob@${DOMAIN}`);
    return n?.binding?.status === 'offline' ? n.binding : undefined;
  }, 5000);
  t.equal(bobOff.confirmed, false, 'pending at once');

  // alice's phone stops answering OPTIONS: offline on the chain, confirmed in a block
  phone.answerOptions = false;
  const off = await waitFor('alice offline after failed pings', async () => {
    const n = await name(api, `sip:alice@${DOMAIN}`);
    return n?.binding?.status === 'offline' ? n.binding : undefined;
  }, 15_000, 200);
  t.ok(off.seq > pending.seq, 'a new binding record, higher sequence');
  // bob online, bob offline, alice offline: one presence record pending, grown by each change
  type Pending = { records: Array<{ kind: string; entries?: Array<{ name: string | null; status: number }> }> };
  const held = (await getJson<Pending>(`${api}/api/pending`)).body.records.filter((x) => x.kind === 'presence');
  t.equal(held.length, 1, 'one presence record pending for every change since the last block');
  t.same(held[0]?.entries?.map((e) => `${e.name} ${e.status}`).sort(), [`sip:alice@${DOMAIN} 0`, `sip:bob@${DOMAIN} 0`], 'carrying what is true now of both users');
  await mine(api);
  const offConfirmed = await waitFor('offline confirmed', async () => {
    const n = await name(api, `sip:alice@${DOMAIN}`);
    return n?.binding?.confirmed === true && n.binding.status === 'offline' ? n.binding : undefined;
  });
  t.equal(offConfirmed.node, me.id);
  t.equal((await name(api, `sip:bob@${DOMAIN}`))?.binding?.status, 'offline', 'bob offline confirmed too');

  // an account added while the node runs is claimed without a restart
  const before = (await pendingKinds(api)).filter((k) => k === 'name-commit').length;
  const add = await runDots(['user', 'add', 'carol', '--password', 'carol-secret', '--datadir', datadir, '--domain', DOMAIN]);
  t.equal(add.code, 0);
  await waitFor('commitment for the new account', async () => (await pendingKinds(api)).filter((k) => k === 'name-commit').length === before + 1, 8000);
  const carol = await new TestPhone({ host: '127.0.0.1', port: node.sipPort }).open();
  t.teardown(() => carol.close());
  t.equal((await carol.registerWithAuth({ user: 'carol', domain: DOMAIN, password: 'carol-secret' })).status, 200, 'and can register');
});

t.test('commit-then-reveal resumes after a restart', async (t) => {
  const dir = tmpDir(t);
  const datadir = join(dir, 'node');
  t.equal((await runDots(['user', 'add', 'dora', '--password', 'pw', '--datadir', datadir, '--domain', DOMAIN])).code, 0);
  let node = await startNode(t, { datadir, args: ['--domain', DOMAIN] });
  await waitFor('commitments pending', async () => (await pendingKinds(node.api)).filter((k) => k === 'name-commit').length === 2);
  const salts = JSON.parse(readFileSync(join(datadir, 'presence.json'), 'utf8')) as { claims: Record<string, { salt: string; commit: string }> };
  t.same(Object.keys(salts.claims).sort(), [DOMAIN, `sip:dora@${DOMAIN}`], 'salts saved before the commitments were sent');
  t.equal(statSync(join(datadir, 'presence.json')).mode & 0o777, 0o600);
  node.child.kill('SIGTERM');
  t.equal(await node.exited, 0);
  // the pending commitments were lost with the process: the restarted node sends the same ones
  node = await startNode(t, { datadir, args: ['--domain', DOMAIN] });
  await waitFor('commitments pending again', async () => (await pendingKinds(node.api)).filter((k) => k === 'name-commit').length === 2);
  const pend = await getJson<{ records: Array<{ id: string; kind: string }> }>(`${node.api}/api/pending`);
  t.same(pend.body.records.filter((r) => r.kind === 'name-commit').map((r) => r.id).sort(), Object.values(salts.claims).map((c) => c.commit).sort(), 'the same commitments, from the saved salts');
  await mine(node.api);
  await waitFor('commitments confirmed', async () => (await pendingKinds(node.api)).filter((k) => k === 'name-commit').length === 0);
  // stop between commitment and reveal
  node.child.kill('SIGTERM');
  await node.exited;
  node = await startNode(t, { datadir, args: ['--domain', DOMAIN] });
  const api = node.api;
  const owned = await mineUntil(() => mine(api), 'claims revealed after the restart', async () => {
    const n = await name(api, `sip:dora@${DOMAIN}`);
    return n?.owner ? n : undefined;
  });
  t.ok(owned.owner);
  t.same(JSON.parse(readFileSync(join(datadir, 'presence.json'), 'utf8')).claims, {}, 'salts dropped once the names are owned');
});

t.test('a phone that registers but never answers the pings never becomes an online binding, on its node or any other', async (t) => {
  const h = new Harness(t);
  const datadir = tmpDir(t, 'dots-silent-');
  t.equal((await runDots(['user', 'add', 'mute', '--password', 'mute-secret', '--datadir', datadir, '--domain', DOMAIN])).code, 0);
  const a = await h.start('A', { datadir, args: ['--domain', DOMAIN, '--sip-keepalive', '1'] });
  const b = await h.start('B', { bootstrap: [a.p2p] });
  const aor = `sip:mute@${DOMAIN}`;
  await mineUntil(() => mine(a.api), 'the name claimed', async () => (await name(a.api, aor))?.owner ?? undefined);
  const phone = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  t.teardown(() => phone.close());
  phone.answerOptions = false;
  t.equal((await phone.registerWithAuth({ user: 'mute', domain: DOMAIN, password: 'mute-secret', expires: 600 })).status, 200, 'the registration itself succeeds');
  // pings come every second; three unanswered make the contact dead
  await waitFor('five pings', async () => phone.options >= 5 || undefined, 20_000);
  for (let i = 0; i < 3; i++) {
    await mine(a.api);
    await sleep(300);
  }
  await converged([a, b]);
  for (const n of [a, b]) {
    const binding = await bindingAt(n, aor);
    t.ok(binding === null || binding.status !== 'online', `${n.name}: no online binding (${binding === null ? 'none' : binding.status})`);
  }
  t.equal((await name(a.api, aor))?.binding ?? null, null, 'the node never wrote one');
});

t.test("a node's presence record grows with each change, and its peers hold the same last version", async (t) => {
  const h = new Harness(t);
  const datadir = tmpDir(t, 'dots-versions-');
  const users = ['ann', 'ben', 'cy'];
  for (const u of users) t.equal((await runDots(['user', 'add', u, '--password', `${u}-secret`, '--datadir', datadir, '--domain', DOMAIN])).code, 0);
  const a = await h.start('A', { datadir, args: ['--domain', DOMAIN] });
  const b = await h.start('B', { bootstrap: [a.p2p] });
  await mineUntil(() => mine(a.api), 'the names claimed', async () => {
    for (const u of users) if ((await name(a.api, `sip:${u}@${DOMAIN}`))?.owner == null) return undefined;
    return true;
  });
  await converged([a, b]);
  type Pending = { records: Array<{ id: string; kind: string; node?: string; seq?: number; entries?: Array<{ name: string | null; status: number }> }> };
  const presenceAt = async (api: string): Promise<Pending['records']> => (await getJson<Pending>(`${api}/api/pending`)).body.records.filter((r) => r.kind === 'presence');
  // the phones come one after another, each change its own version of A's one pending record
  for (const [i, u] of users.entries()) {
    const phone = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
    t.teardown(() => phone.close());
    t.equal((await phone.registerWithAuth({ user: u, domain: DOMAIN, password: `${u}-secret`, expires: 600 })).status, 200, `${u} registered`);
    const held = await waitFor(`${u} in A's pending presence record`, async () => {
      const list = await presenceAt(a.api);
      return list.length === 1 && list[0].entries?.length === i + 1 ? list : undefined;
    }, 10_000);
    const atB = await waitFor(`the same version at B`, async () => {
      const list = await presenceAt(b.api);
      return list.length === 1 && list[0].id === held[0].id ? list : undefined;
    }, 10_000);
    t.same(atB[0].entries?.map((e) => e.name), users.slice(0, i + 1).map((x) => `sip:${x}@${DOMAIN}`), `B holds A's version ${i + 1} alone, naming ${i + 1} user(s)`);
    const at = await bindingAt(b, `sip:${u}@${DOMAIN}`);
    t.match(at, { status: 'online', confirmed: false }, `B routes ${u} to A while pending`);
  }
  await mine(a.api);
  await converged([a, b]);
  for (const u of users) t.match(await bindingAt(b, `sip:${u}@${DOMAIN}`), { status: 'online', confirmed: true }, `${u} online at B, confirmed`);
  t.same(await presenceAt(b.api), [], "nothing of A's presence left pending at B");
});
