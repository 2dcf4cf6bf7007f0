// Every API endpoint against a running node, with good and bad input.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { DotsNode, defaultConfig } from '../core/node.ts';
import { silentLogger } from '../core/log.ts';
import { tmpDir, newKey } from './helpers.ts';
import { getJson, postJson } from './proc.ts';
import { signRecord, Kind, commitmentOf, type NameCommit, type NameClaim, type NodeAnnounce, type Binding, type Transfer } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { encodeAddress, addressOf } from '../core/address.ts';
import { verifyInclusion } from '../core/merkle.ts';
import { fromHex } from '../core/hash.ts';
import { publicKeyOf } from '../core/sig.ts';

t.test('HTTP API', async (t) => {
  const cfg = { ...defaultConfig('regtest'), datadir: tmpDir(t), apiPort: 0 };
  const node = await DotsNode.start(cfg, silentLogger);
  t.teardown(() => node.stop());
  const api = node.apiUrl;
  const mine = async (count = 1): Promise<void> => {
    const r = await postJson(`${api}/api/dev/mine`, { count });
    t.equal(r.status, 200);
  };
  const post = (rec: { bytes: Uint8Array }): Promise<{ status: number; body: Record<string, unknown> }> => postJson(`${api}/api/records`, { record: toHex(rec.bytes) });

  let s = await getJson<Record<string, unknown>>(`${api}/api/status`);
  t.equal(s.status, 200);
  t.match(s.body, { network: 'regtest', height: 0, peers: 0, pending: 0, hashrate: 0, syncing: false });
  t.match(s.body.tip, /^[0-9a-f]{64}$/);
  t.match(s.body.work, /^[0-9]+$/);

  await mine(3);
  s = await getJson(`${api}/api/status`);
  t.equal(s.body.height, 3);

  // Blocks by height and by hash, and the list.
  const b2 = await getJson<Record<string, unknown>>(`${api}/api/blocks/2`);
  t.equal(b2.status, 200);
  t.match(b2.body, { height: 2, header: /^[0-9a-f]{160}$/, prev: /^[0-9a-f]{64}$/, merkleRoot: /^[0-9a-f]{64}$/ });
  const byHash = await fetch(`${api}/api/blocks/${String(b2.body.hash)}`);
  t.equal(byHash.status, 200);
  t.match(byHash.headers.get('cache-control'), /immutable/, 'blocks by hash are cacheable');
  t.same((await byHash.json()) as unknown, b2.body);
  const list = await getJson<{ blocks: Array<{ height: number }>; next: number | null }>(`${api}/api/blocks?limit=2`);
  t.same(list.body.blocks.map((b) => b.height), [3, 2]);
  t.equal(list.body.next, 2);
  const page2 = await getJson<{ blocks: Array<{ height: number }> }>(`${api}/api/blocks?limit=10&before=2`);
  t.same(page2.body.blocks.map((b) => b.height), [1, 0]);
  t.equal((await getJson(`${api}/api/blocks?limit=0`)).status, 400, 'limit 0');
  t.equal((await getJson(`${api}/api/blocks?limit=abc`)).status, 400, 'limit not a number');
  t.equal((await getJson(`${api}/api/blocks?limit=1000`)).status, 400, 'limit too large');
  t.equal((await getJson(`${api}/api/blocks/999`)).status, 404);
  t.equal((await getJson(`${api}/api/blocks/${'ab'.repeat(32)}`)).status, 404);
  t.equal((await getJson(`${api}/api/blocks/xyz`)).status, 400);

  // Records: a name claimed end to end, a node, a binding, a transfer.
  const owner = newKey();
  const nodeKey = newKey();
  const salt = randomBytes(32);
  const name = 'sip:alice@dots.test';
  const commit = signRecord<NameCommit>('regtest', owner.secret, { kind: Kind.NameCommit, pubkey: owner.pub, commitment: commitmentOf(name, salt, owner.pub) });
  const ann = signRecord<NodeAnnounce>('regtest', nodeKey.secret, { kind: Kind.NodeAnnounce, pubkey: nodeKey.pub, sipUris: ['sip:dots.test'], p2pAddrs: [], rewardAddress: nodeKey.address, seq: 1 });
  let r = await post(commit);
  t.equal(r.status, 202);
  t.equal(r.body.id, toHex(commit.id));
  t.equal((await post(commit)).body.code, 'already-pending');
  t.equal((await post(ann)).status, 202);
  const pending = await getJson<{ records: Array<{ id: string; kind: string }> }>(`${api}/api/pending`);
  t.same(pending.body.records.map((x) => x.kind).sort(), ['name-commit', 'node-announce']);
  const pend = await getJson<{ confirmed: boolean }>(`${api}/api/records/${toHex(commit.id)}`);
  t.equal(pend.body.confirmed, false, 'pending record is found, unconfirmed');
  await mine(1);
  const claim = signRecord<NameClaim>('regtest', owner.secret, { kind: Kind.NameClaim, name, pubkey: owner.pub, salt });
  t.equal((await post(claim)).status, 202);
  await mine(1);
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const bind = signRecord<Binding>('regtest', owner.secret, { kind: Kind.Binding, name, node: addressOf(nodeKey.pub), status: 1, expires, seq: 1, pubkey: owner.pub });
  t.equal((await post(bind)).status, 202);
  let n = await getJson<{ binding: Record<string, unknown>; owner: string }>(`${api}/api/names/${encodeURIComponent(name)}`);
  t.equal(n.status, 200);
  t.equal(n.body.owner, toHex(owner.pub));
  t.match(n.body.binding, { node: toHex(addressOf(nodeKey.pub)), status: 'online', seq: 1, confirmed: false, expires });
  await mine(1);
  n = await getJson(`${api}/api/names/${encodeURIComponent(name)}`);
  t.match(n.body.binding, { status: 'online', confirmed: true, height: 6 });
  t.equal((await getJson(`${api}/api/names/${encodeURIComponent('sip:nobody@dots.test')}`)).status, 404);
  t.equal((await getJson(`${api}/api/names/${encodeURIComponent('not a name')}`)).status, 400);

  // The record page data: confirmed, with an inclusion proof that verifies.
  const rc = await getJson<{ confirmed: boolean; height: number; proof: { leafIndex: number; treeSize: number; path: string[]; merkleRoot: string } }>(`${api}/api/records/${toHex(bind.id)}`);
  t.equal(rc.body.confirmed, true);
  t.equal(rc.body.height, 6);
  const pr = rc.body.proof;
  t.ok(verifyInclusion(bind.id, pr.leafIndex, pr.treeSize, pr.path.map(fromHex), fromHex(pr.merkleRoot)), 'inclusion proof verifies');
  t.notOk(verifyInclusion(commit.id, pr.leafIndex, pr.treeSize, pr.path.map(fromHex), fromHex(pr.merkleRoot)), 'and not for another record');
  t.equal((await getJson(`${api}/api/records/${'00'.repeat(32)}`)).status, 404);
  t.equal((await getJson(`${api}/api/records/zz`)).status, 400);

  // Nodes.
  const nodes = await getJson<{ nodes: Array<{ id: string }> }>(`${api}/api/nodes`);
  t.same(nodes.body.nodes.map((x) => x.id), [toHex(addressOf(nodeKey.pub))]);
  t.equal((await getJson(`${api}/api/nodes/${toHex(addressOf(nodeKey.pub))}`)).status, 200);
  t.equal((await getJson(`${api}/api/nodes/${'00'.repeat(20)}`)).status, 404);
  t.equal((await getJson(`${api}/api/nodes/bad`)).status, 400);

  // Accounts: the node mined every block, so it has the rewards; a transfer moves some.
  const nodeAddr = encodeAddress('rdots', node.rewardAddress);
  const acct = await getJson<{ balance: number; nonce: number }>(`${api}/api/accounts/${nodeAddr}`);
  t.equal(acct.body.balance, 6 * node.params.subsidy(1));
  t.equal((await getJson(`${api}/api/accounts/notanaddress`)).status, 400);
  t.equal((await getJson(`${api}/api/accounts/${encodeAddress('dots', node.rewardAddress)}`)).status, 400, 'address of another network');
  const payee = newKey();
  const tx = signRecord<Transfer>('regtest', node.secret, { kind: Kind.Transfer, pubkey: publicKeyOf(node.secret), to: payee.address, amount: 12345, fee: 5, nonce: 0 });
  t.equal((await post(tx)).status, 202);
  await mine(1);
  t.equal((await getJson<{ balance: number }>(`${api}/api/accounts/${encodeAddress('rdots', payee.address)}`)).body.balance, 12345);

  // Bad submissions.
  r = await postJson(`${api}/api/records`, { record: 'zz' });
  t.equal(r.status, 400);
  r = await postJson(`${api}/api/records`, { record: toHex(randomBytes(40)) });
  t.equal(r.status, 400);
  t.match(r.body.code, /bad-encoding|non-canonical/);
  r = await postJson(`${api}/api/records`, {});
  t.equal(r.status, 400);
  const badSig = Uint8Array.from(commit.bytes);
  badSig[badSig.length - 3] ^= 1;
  r = await postJson(`${api}/api/records`, { record: toHex(badSig) });
  t.equal(r.body.code, 'bad-signature');
  const res = await fetch(`${api}/api/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' });
  t.equal(res.status, 400, 'malformed JSON body');

  t.same((await getJson(`${api}/api/peers`)).body, { peers: [] });
  const metrics = await (await fetch(`${api}/metrics`)).text();
  t.match(metrics, /dots_height 7/);
  t.equal((await getJson(`${api}/api/nope`)).status, 404);
});
