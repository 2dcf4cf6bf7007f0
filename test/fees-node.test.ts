// A node pays for its own records from its key: with --fee-rate 2 on regtest (which asks no fee
// itself), a node without coins says once that its records are refused and what to do; once it
// has mined, its announcement, names and a phone's presence binding go to the chain, each paying
// two units per byte of its encoding.
import t from 'tap';
import { join } from 'node:path';
import { Harness, runDots, getJson, postJson } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { TestPhone } from './sip-client.ts';
import { bindingAt, mineUntil, nameAt } from './util/names.ts';
import { newKey } from './helpers.ts';
import { signRecord, Kind, type NameCommit } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { randomBytes } from 'node:crypto';

const DOMAIN = 'fee.test';

t.test('a node pays its records\' fees at its --fee-rate, from its own key', async (t) => {
  const h = new Harness(t);
  const datadir = join(tmpDir(t), 'node');
  t.equal((await runDots(['user', 'add', 'alice', '--password', 'alice-secret', '--datadir', datadir, '--domain', DOMAIN])).code, 0);
  const a = await h.start('A', { datadir, args: ['--domain', DOMAIN, '--fee-rate', '2'] });
  const warning = await waitFor('the warning that the node lacks coins', async () => a.lines.find((l) => /not accepted: .*fee.*mine \(--mine\) or send coins to its address/.test(l)), 15_000);
  t.pass(`the node says what to do: ${warning.replace(/^.*presence: /, '')}`);
  t.equal(a.lines.filter((l) => /mine \(--mine\) or send coins/.test(l)).length, 1, 'once');
  const pendingNow = (await getJson<{ total: number }>(`${a.api}/api/pending`)).body.total;
  t.equal(pendingNow, 0, 'nothing it cannot pay for is pending');

  const aor = `sip:alice@${DOMAIN}`;
  await mineUntil(
    async () => {
      const r = await postJson(`${a.api}/api/dev/mine`, { count: 1 });
      if (r.status !== 200) throw new Error(`mine: ${r.status}`);
    },
    'alice\'s name claimed',
    async () => (await getJson<{ owner: string | null }>(`${a.api}/api/names/${encodeURIComponent(aor)}`)).body.owner ?? undefined,
    { timeoutMs: 60_000 },
  );
  const phone = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  t.teardown(() => phone.close());
  t.equal((await phone.registerWithAuth({ user: 'alice', domain: DOMAIN, password: 'alice-secret', expires: 600 })).status, 200, 'alice registered');
  type Pending = { records: Array<{ id: string; kind: string; entries?: Array<{ name: string | null }>; fee: number }> };
  const binding = await waitFor('alice\'s binding pending', async () => (await getJson<Pending>(`${a.api}/api/pending`)).body.records.find((r) => r.kind === 'presence' && r.entries?.some((e) => e.name === aor)), 20_000);
  const rec = (await getJson<{ bytes: string; record: { fee: number } }>(`${a.api}/api/records/${binding.id}`)).body;
  const size = rec.bytes.length / 2;
  t.ok(rec.record.fee >= 2 * size && rec.record.fee <= 2 * (size + 4), `the binding pays 2 units per byte: ${rec.record.fee} for ${size} bytes`);
  const nodes = (await getJson<{ nodes: Array<{ id: string }> }>(`${a.api}/api/nodes`)).body.nodes;
  t.equal(nodes.length, 1, 'the node announced itself once it had coins');
});

t.test('a key flooding a node\'s pending pool with least-fee records does not keep its phone\'s presence out', async (t) => {
  const h = new Harness(t);
  const datadir = join(tmpDir(t), 'node');
  t.equal((await runDots(['user', 'add', 'alice', '--password', 'alice-secret', '--datadir', datadir, '--domain', 'flood.test'])).code, 0);
  const a = await h.start('A', { datadir, args: ['--domain', 'flood.test', '--max-pending', '100'] });
  const aor = 'sip:alice@flood.test';
  await mineUntil(() => a.mine(1), 'alice\'s name claimed', async () => (await nameAt(a, aor))?.owner ?? undefined, { timeoutMs: 30_000 });
  // one key, 150 commitments at the least fee (regtest's: none) through the API
  const flooder = newKey();
  const codes = new Map<string, number>();
  for (let i = 0; i < 150; i++) {
    const rec = signRecord<NameCommit>('regtest', flooder.secret, { kind: Kind.NameCommit, pubkey: flooder.pub, commitment: randomBytes(32) });
    const r = await postJson<{ code?: string }>(`${a.api}/api/records`, { record: toHex(rec.bytes) });
    const c = r.status === 202 ? 'pending' : (r.body.code ?? String(r.status));
    codes.set(c, (codes.get(c) ?? 0) + 1);
  }
  t.same(Object.fromEntries(codes), { pending: 100, 'pool-full': 50 }, 'the pool took 100, then refused the same key at the same fee rate (pool-full)');
  const phone = await new TestPhone({ host: '127.0.0.1', port: a.sipPort }).open();
  t.teardown(() => phone.close());
  t.equal((await phone.registerWithAuth({ user: 'alice', domain: 'flood.test', password: 'alice-secret', expires: 600 })).status, 200, 'alice registered');
  type Pending = { records: Array<{ kind: string; entries?: Array<{ name: string | null }> }>; total: number };
  await waitFor('alice\'s binding pending in the full pool', async () => (await getJson<Pending>(`${a.api}/api/pending?limit=200`)).body.records.find((r) => r.kind === 'presence' && r.entries?.some((e) => e.name === aor)), 20_000);
  t.equal((await getJson<Pending>(`${a.api}/api/pending`)).body.total, 100, 'in place of the flooder\'s last record: the pool holds 100');
  await mineUntil(() => a.mine(1), 'alice online on the chain', async () => ((await bindingAt(a, aor))?.status === 'online' ? true : undefined), { timeoutMs: 20_000 });
  t.pass('the binding was mined: the flood did not freeze presence');
});
