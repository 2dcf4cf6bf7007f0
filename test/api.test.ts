// Every API endpoint against a running node, with good and bad input; the live event stream; the
// metrics; and the OpenAPI document checked against the routes the server really registers.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { DotsNode } from '../node/node.ts';
import { defaultConfig } from '../node/config.ts';
import { buildApi, EventHub } from '../node/api/server.ts';
import { silentLogger } from '../core/log.ts';
import { newKey, openChain } from './helpers.ts';
import { getJson, postJson } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { waitFor } from './util/wait.ts';
import { signRecord, Kind, commitmentOf, type NameCommit, type NameClaim, type NameDelegate, type NodeAnnounce, type Binding, type Transfer } from '../core/records.ts';
import { toHex, fromHex, sha256d, hashToHex } from '../core/hash.ts';
import { encodeAddress, addressOf } from '../core/address.ts';
import { verifyInclusion } from '../core/merkle.ts';
import { publicKeyOf } from '../core/sig.ts';
import { sipMetrics } from '../node/metrics.ts';

type Body = Record<string, unknown>;

/** A Server-Sent Events client on fetch: waits for events by name. */
async function sse(url: string): Promise<{ next(event: string, timeoutMs?: number): Promise<Body>; close(): void }> {
  const ctrl = new AbortController();
  const res = await fetch(url, { signal: ctrl.signal });
  if (res.status !== 200 || res.body === null) throw new Error(`event stream answered ${res.status}`);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const queue: Array<{ event: string; data: Body }> = [];
  let buf = '';
  let done = false;
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += decoder.decode(value, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const chunk = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const event = /^event: (.*)$/m.exec(chunk)?.[1];
          const data = /^data: (.*)$/m.exec(chunk)?.[1];
          if (event !== undefined && data !== undefined) queue.push({ event, data: JSON.parse(data) as Body });
        }
      }
    } catch {
      // aborted
    }
    done = true;
  })();
  return {
    async next(event, timeoutMs = 5000) {
      const found = await waitFor(
        `event ${event}`,
        async () => {
          const i = queue.findIndex((e) => e.event === event);
          if (i >= 0) return queue.splice(0, i + 1)[i].data;
          return done ? Promise.reject(new Error('event stream ended')) : undefined;
        },
        timeoutMs,
        10,
      );
      return found;
    },
    close() {
      ctrl.abort();
      void pump;
    },
  };
}

t.test('HTTP API', async (t) => {
  const cfg = { ...defaultConfig('regtest'), datadir: tmpDir(t), apiPort: 0, p2pPort: 0 };
  const node = await DotsNode.start(cfg, silentLogger);
  t.teardown(() => node.stop());
  const api = node.apiUrl;
  const mine = async (count = 1): Promise<void> => {
    const r = await postJson(`${api}/api/dev/mine`, { count });
    t.equal(r.status, 200);
  };
  const post = (rec: { bytes: Uint8Array }): Promise<{ status: number; body: Body }> => postJson(`${api}/api/records`, { record: toHex(rec.bytes) });
  const status = async (path: string): Promise<number> => (await fetch(`${api}${path}`)).status;

  let s = await getJson<Body>(`${api}/api/status`);
  t.equal(s.status, 200);
  t.match(s.body, { network: 'regtest', height: 0, peers: 0, pending: 0, syncing: false, difficulty: 1, idealBlockTime: 1 });
  t.type(s.body.hashrate, 'number');
  t.type(s.body.networkHashrate, 'number');
  t.match(s.body.tip, /^[0-9a-f]{64}$/);
  t.match(s.body.work, /^[0-9]+$/);

  // The live stream: a hello with the status, then a tip event for each block mined.
  const events = await sse(`${api}/api/events`);
  t.teardown(() => events.close());
  t.match(await events.next('hello'), { network: 'regtest', height: 0 });

  await mine(3);
  s = await getJson(`${api}/api/status`);
  t.equal(s.body.height, 3);
  const tip = await events.next('tip');
  t.match(tip, { network: 'regtest', connectedCount: 1, disconnectedCount: 0 });
  t.match((tip.connected as Body[])[0], { height: 1, records: 1, hash: /^[0-9a-f]{64}$/ });
  await events.next('tip');
  t.match(await events.next('tip'), { height: 3 }, 'tip events arrive in chain order');

  // Blocks by height and by hash, and the list.
  const b2 = await getJson<Body>(`${api}/api/blocks/2`);
  t.equal(b2.status, 200);
  t.match(b2.body, { height: 2, header: /^[0-9a-f]{160}$/, prev: /^[0-9a-f]{64}$/, merkleRoot: /^[0-9a-f]{64}$/, mainChain: true, confirmations: 2, recordCount: 1 });
  t.equal(hashToHex(sha256d(fromHex(b2.body.header as string))), b2.body.hash, 'header hashes to the block hash');
  const byHash = await fetch(`${api}/api/blocks/${String(b2.body.hash)}`);
  t.equal(byHash.status, 200);
  const etag = byHash.headers.get('etag');
  t.ok(etag, 'a block by hash carries an ETag');
  t.same((await byHash.json()) as unknown, b2.body);
  const again = await fetch(`${api}/api/blocks/${String(b2.body.hash)}`, { headers: { 'if-none-match': String(etag) } });
  t.equal(again.status, 304, 'unchanged block revalidates to 304');
  const upper = await getJson<Body>(`${api}/api/blocks/${String(b2.body.hash).toUpperCase()}`);
  t.equal(upper.body.height, 2, 'hashes are case-insensitive');
  const raw = await fetch(`${api}/api/blocks/${String(b2.body.hash)}/raw`);
  t.equal(raw.status, 200);
  t.match(raw.headers.get('cache-control'), /immutable/, 'block bytes by hash are cacheable for good');
  t.equal(raw.headers.get('content-type'), 'application/octet-stream');
  t.equal((await raw.arrayBuffer()).byteLength, b2.body.size);
  const rawByHeight = await fetch(`${api}/api/blocks/2/raw`);
  t.equal(rawByHeight.headers.get('cache-control'), 'no-cache', 'by height the answer may change');
  t.equal(await status(`/api/blocks/xyz/raw`), 400);
  t.equal(await status(`/api/blocks/${'ab'.repeat(32)}/raw`), 404);
  const list = await getJson<{ blocks: Array<{ height: number; records: number; size: number }>; next: number | null }>(`${api}/api/blocks?limit=2`);
  t.same(list.body.blocks.map((b) => b.height), [3, 2]);
  t.equal(list.body.blocks[0].records, 1, 'list entries count their records');
  t.equal(list.body.next, 2);
  const page2 = await getJson<{ blocks: Array<{ height: number }>; next: number | null }>(`${api}/api/blocks?limit=10&before=2`);
  t.same(page2.body.blocks.map((b) => b.height), [1, 0]);
  t.equal(page2.body.next, null, 'no page after genesis');
  t.equal(await status('/api/blocks?limit=0'), 400, 'limit 0');
  t.equal(await status('/api/blocks?limit=abc'), 400, 'limit not a number');
  t.equal(await status('/api/blocks?limit=1000'), 400, 'limit too large');
  t.equal(await status('/api/blocks?before=-1'), 400, 'negative before');
  t.equal(await status('/api/blocks?limit=1.5'), 400, 'fractional limit');
  t.equal(await status('/api/blocks/999'), 404);
  t.equal(await status('/api/blocks/99999999999'), 400, 'height too long');
  t.equal(await status(`/api/blocks/${'ab'.repeat(32)}`), 404);
  const bad = await getJson<Body>(`${api}/api/blocks/xyz`);
  t.equal(bad.status, 400);
  t.match(bad.body.error, /height or a 64-hex-digit hash/, 'a 400 says what was wrong');

  // Chart data.
  const stats = await getJson<{ blocks: Array<{ height: number; interval: number | null; difficulty: number }>; averageBlockTime: number | null }>(`${api}/api/stats?blocks=3`);
  t.equal(stats.status, 200);
  t.same(stats.body.blocks.map((b) => b.height), [1, 2, 3]);
  t.equal(stats.body.blocks[0].interval, null, 'no interval from the fixed genesis time');
  t.equal(stats.body.blocks[2].difficulty, 1);
  t.type(stats.body.averageBlockTime, 'number');
  t.equal((await getJson<{ blocks: unknown[] }>(`${api}/api/stats`)).body.blocks.length, 4, 'default window holds the whole short chain');
  t.equal(await status('/api/stats?blocks=1'), 400);
  t.equal(await status('/api/stats?blocks=x'), 400);
  t.equal(await status('/api/stats?blocks=100000'), 400);

  // Records: a name claimed end to end, a node, a binding, a transfer.
  const owner = newKey();
  const nodeKey = newKey();
  const nodeId = toHex(addressOf(nodeKey.pub));
  const salt = randomBytes(32);
  const name = 'sip:alice@dots.test';
  const commit = signRecord<NameCommit>('regtest', owner.secret, { kind: Kind.NameCommit, pubkey: owner.pub, commitment: commitmentOf(name, salt, owner.pub) });
  const ann = signRecord<NodeAnnounce>('regtest', nodeKey.secret, { kind: Kind.NodeAnnounce, pubkey: nodeKey.pub, sipUris: ['sip:dots.test'], p2pAddrs: [], rewardAddress: nodeKey.address, seq: 1 });
  let r = await post(commit);
  t.equal(r.status, 202);
  t.equal(r.body.id, toHex(commit.id));
  t.match(await events.next('record'), { id: toHex(commit.id), kind: 'name-commit', pending: 1 }, 'a pending record is announced live');
  t.equal((await post(commit)).body.code, 'already-pending');
  t.equal((await post(ann)).status, 202);
  const pending = await getJson<{ records: Array<{ id: string; kind: string }>; total: number; next: number | null }>(`${api}/api/pending`);
  t.same(pending.body.records.map((x) => x.kind).sort(), ['name-commit', 'node-announce']);
  t.equal(pending.body.total, 2);
  const pendingPage = await getJson<{ records: Array<{ id: string }>; next: number | null }>(`${api}/api/pending?limit=1`);
  t.equal(pendingPage.body.records.length, 1);
  t.equal(pendingPage.body.next, 1);
  t.equal((await getJson<{ records: Array<{ id: string }> }>(`${api}/api/pending?limit=1&offset=1`)).body.records[0].id, toHex(ann.id));
  t.equal(await status('/api/pending?limit=0'), 400);
  t.equal(await status('/api/pending?offset=-1'), 400);
  const pend = await getJson<{ confirmed: boolean; kind: string }>(`${api}/api/records/${toHex(commit.id)}`);
  t.equal(pend.body.confirmed, false, 'pending record is found, unconfirmed');
  t.equal(pend.body.kind, 'name-commit');
  t.match((await getJson<Body>(`${api}/api/search?q=${toHex(commit.id)}`)).body, { results: [{ type: 'record', confirmed: false }] }, 'search finds a pending record');
  // the address is handed out by its domain's owner: the owner holds dots.test too
  t.equal((await post(signRecord<NameCommit>('regtest', owner.secret, { kind: Kind.NameCommit, pubkey: owner.pub, commitment: commitmentOf('dots.test', salt, owner.pub) }))).status, 202);
  const stranger = newKey();
  t.equal((await post(signRecord<NameCommit>('regtest', stranger.secret, { kind: Kind.NameCommit, pubkey: stranger.pub, commitment: commitmentOf('sip:bob@dots.test', salt, stranger.pub) }))).status, 202);
  await mine(1);
  const early = await post(signRecord<NameClaim>('regtest', owner.secret, { kind: Kind.NameClaim, name, pubkey: owner.pub, salt }));
  t.match(early, { status: 400, body: { code: 'domain-unclaimed' } }, 'an address under a domain nobody holds (yet) is refused');
  t.equal((await post(signRecord<NameClaim>('regtest', owner.secret, { kind: Kind.NameClaim, name: 'dots.test', pubkey: owner.pub, salt }))).status, 202);
  const claim = signRecord<NameClaim>('regtest', owner.secret, { kind: Kind.NameClaim, name, pubkey: owner.pub, salt });
  t.equal((await post(claim)).status, 202, 'after its domain, even while both are pending');
  const hijack = await post(signRecord<NameClaim>('regtest', stranger.secret, { kind: Kind.NameClaim, name: 'sip:bob@dots.test', pubkey: stranger.pub, salt }));
  t.match(hijack, { status: 400, body: { code: 'domain-not-held' } }, "a stranger's address under a domain it does not hold is refused");
  await mine(1);
  // the owner's key is no node: it names the node that serves the name, which then may be bound there
  const early2 = await post(signRecord<Binding>('regtest', owner.secret, { kind: Kind.Binding, name, node: addressOf(nodeKey.pub), status: 1, expires: Math.floor(Date.now() / 1000) + 3600, seq: 1, pubkey: owner.pub }));
  t.match(early2, { status: 400, body: { code: 'not-serving' } }, 'a binding to a node that does not serve the name is refused');
  t.equal((await post(signRecord<NameDelegate>('regtest', owner.secret, { kind: Kind.NameDelegate, name, pubkey: owner.pub, nodes: [addressOf(nodeKey.pub)], nameSeq: 0 }))).status, 202);
  await mine(1);
  const expires = Math.floor(Date.now() / 1000) + 3600;
  const bind = signRecord<Binding>('regtest', owner.secret, { kind: Kind.Binding, name, node: addressOf(nodeKey.pub), status: 1, expires, seq: 1, pubkey: owner.pub });
  t.equal((await post(bind)).status, 202);
  let n = await getJson<{ binding: Body; owner: string; online: boolean }>(`${api}/api/names/${encodeURIComponent(name)}`);
  t.equal(n.status, 200);
  t.equal(n.body.owner, toHex(owner.pub));
  t.equal(n.body.online, true);
  t.match(n.body.binding, { node: nodeId, status: 'online', seq: 1, confirmed: false, expires });
  let nh = await getJson<{ total: number; items: Array<{ kind: string }>; pending: Array<{ kind: string }> }>(`${api}/api/names/${encodeURIComponent(name)}/history`);
  t.equal(nh.status, 200);
  t.same(nh.body.pending.map((x) => x.kind), ['binding'], 'a pending binding shows in the history');
  await mine(1);
  n = await getJson(`${api}/api/names/${encodeURIComponent(name)}`);
  t.match(n.body, { binding: { status: 'online', confirmed: true, height: 7 }, delegates: [toHex(addressOf(nodeKey.pub))], expired: false, since: 5, ownerAddress: encodeAddress('rdots', owner.address) });
  t.equal((await getJson(`${api}/api/names/${encodeURIComponent('SIP:Alice@DOTS.test')}`)).status, 200, 'names are case-insensitive');
  t.equal(await status(`/api/names/${encodeURIComponent('sip:nobody@dots.test')}`), 404);
  t.equal(await status(`/api/names/${encodeURIComponent('not a name')}`), 400);
  t.equal(await status(`/api/names/${encodeURIComponent(`sip:${'a'.repeat(50)}@${'b'.repeat(60)}.test`)}`), 404, 'a long name reaches the handler (no 404 for a missing route)');

  // Name history: claim, delegation, binding, newest first, with records and pages.
  nh = await getJson(`${api}/api/names/${encodeURIComponent(name)}/history`);
  t.equal(nh.body.total, 3);
  t.same(nh.body.items.map((x) => x.kind), ['binding', 'name-delegate', 'name-claim']);
  t.same(nh.body.pending, []);
  const nh1 = await getJson<{ items: Array<{ kind: string; height: number; record: Body }>; next: number | null }>(`${api}/api/names/${encodeURIComponent(name)}/history?limit=1&offset=2`);
  t.match(nh1.body, { items: [{ kind: 'name-claim', height: 5, record: { name } }], next: null });
  t.equal(await status(`/api/names/${encodeURIComponent(name)}/history?limit=0`), 400);
  t.equal(await status(`/api/names/${encodeURIComponent(name)}/history?limit=101`), 400);
  t.equal(await status(`/api/names/${encodeURIComponent('sip:nobody@dots.test')}/history`), 404);
  t.equal(await status(`/api/names/${encodeURIComponent('bad name')}/history`), 400);

  // The record page data: confirmed, with an inclusion proof that verifies up to the header.
  const rc = await getJson<{ confirmed: boolean; height: number; header: string; block: string; proof: { leafIndex: number; treeSize: number; path: string[]; merkleRoot: string } }>(`${api}/api/records/${toHex(bind.id)}`);
  t.equal(rc.body.confirmed, true);
  t.equal(rc.body.height, 7);
  const pr = rc.body.proof;
  t.ok(verifyInclusion(bind.id, pr.leafIndex, pr.treeSize, pr.path.map(fromHex), fromHex(pr.merkleRoot)), 'inclusion proof verifies');
  t.notOk(verifyInclusion(commit.id, pr.leafIndex, pr.treeSize, pr.path.map(fromHex), fromHex(pr.merkleRoot)), 'and not for another record');
  t.equal(toHex(fromHex(rc.body.header).subarray(36, 68)), pr.merkleRoot, 'the header carries the root');
  t.equal(hashToHex(sha256d(fromHex(rc.body.header))), rc.body.block, 'and hashes to the block');
  t.equal(await status(`/api/records/${'00'.repeat(32)}`), 404);
  t.equal(await status('/api/records/zz'), 400);
  t.equal((await getJson(`${api}/api/records/${toHex(bind.id).toUpperCase()}`)).status, 200, 'record ids are case-insensitive');

  // Nodes: list with pages, detail with what it serves, history.
  const nodes = await getJson<{ nodes: Array<{ id: string }>; total: number; next: number | null }>(`${api}/api/nodes`);
  t.same(nodes.body.nodes.map((x) => x.id), [nodeId]);
  t.equal(nodes.body.total, 1);
  t.equal(nodes.body.next, null);
  t.equal(await status('/api/nodes?limit=0'), 400);
  t.equal(await status('/api/nodes?limit=5000'), 400);
  const nd = await getJson<Body>(`${api}/api/nodes/${nodeId}`);
  t.equal(nd.status, 200);
  t.match(nd.body, { id: nodeId, sipUris: ['sip:dots.test'], connected: false, serves: [{ name, status: 'online', seq: 1, height: 7 }], earned: { balance: 0, blocksMined: 0, mined: 0 } });
  const ndh = await getJson<{ items: Array<{ kind: string }>; total: number }>(`${api}/api/nodes/${nodeId}/history`);
  t.same(ndh.body.items.map((x) => x.kind), ['binding', 'name-delegate', 'node-announce'], 'a delegation to the node is in its history');
  t.equal(await status(`/api/nodes/${'00'.repeat(20)}`), 404);
  t.equal(await status(`/api/nodes/${'00'.repeat(20)}/history`), 404);
  t.equal(await status('/api/nodes/bad'), 400);
  t.equal(await status('/api/nodes/bad/history'), 400);

  // Accounts: the node mined every block, so it has the rewards; a transfer moves some.
  const nodeAddr = encodeAddress('rdots', node.rewardAddress);
  const acct = await getJson<{ balance: number; nonce: number }>(`${api}/api/accounts/${nodeAddr}`);
  t.equal(acct.body.balance, 7 * node.params.subsidy(1));
  t.equal(await status('/api/accounts/notanaddress'), 400);
  t.equal(await status(`/api/accounts/${encodeAddress('dots', node.rewardAddress)}`), 400, 'address of another network');
  const payee = newKey();
  const payeeAddr = encodeAddress('rdots', payee.address);
  const tx = signRecord<Transfer>('regtest', node.secret, { kind: Kind.Transfer, pubkey: publicKeyOf(node.secret), to: payee.address, amount: 12345, fee: 5, nonce: 0 });
  t.equal((await post(tx)).status, 202);
  await mine(1);
  t.equal((await getJson<{ balance: number }>(`${api}/api/accounts/${payeeAddr}`)).body.balance, 12345);
  const ah = await getJson<{ total: number; items: Array<{ kind: string; delta: number }> }>(`${api}/api/accounts/${nodeAddr}/history?limit=3`);
  t.equal(ah.body.total, 9, 'eight coinbases and one transfer');
  // Newest first: in one block, later records before earlier ones.
  t.match(ah.body.items[0], { kind: 'transfer', delta: -12350 });
  t.match(ah.body.items[1], { kind: 'coinbase', delta: node.params.subsidy(7) + 5 }, 'the coinbase of that block includes the fee');
  const ph = await getJson<{ items: Array<{ kind: string; delta: number }> }>(`${api}/api/accounts/${payeeAddr}/history`);
  t.match(ph.body.items, [{ kind: 'transfer', delta: 12345 }]);
  t.same((await getJson<{ items: unknown[] }>(`${api}/api/accounts/${encodeAddress('rdots', newKey().address)}/history`)).body.items, [], 'an unused address has an empty history');
  t.equal(await status('/api/accounts/notanaddress/history'), 400);
  t.equal(await status(`/api/accounts/${payeeAddr}/history?offset=x`), 400);

  // Search: every kind of thing, as people type them.
  const search = async (q: string): Promise<{ status: number; body: { results: Array<{ type: string; id: string }>; error?: string } }> =>
    getJson(`${api}/api/search?q=${encodeURIComponent(q)}`);
  t.match((await search('2')).body.results, [{ type: 'block', id: b2.body.hash }], 'a height');
  t.match((await search(String(b2.body.hash))).body.results, [{ type: 'block', id: b2.body.hash }], 'a block hash');
  t.match((await search(toHex(bind.id))).body.results, [{ type: 'record', id: toHex(bind.id) }], 'a record id');
  t.match((await search(name)).body.results, [{ type: 'name', id: name }], 'a SIP name');
  t.match((await search(' Alice@dots.test ')).body.results, [{ type: 'name', id: name }], 'a bare user@host');
  t.match((await search(nodeId)).body.results, [{ type: 'node', id: nodeId }], 'a node id');
  t.match((await search(payeeAddr)).body.results, [{ type: 'address', id: payeeAddr }], 'an address');
  t.match((await search(toHex(payee.address))).body.results, [{ type: 'address', id: payeeAddr }], 'an address in hex');
  t.equal((await search('+1 555 000-0000')).status, 404, 'a phone number nobody claimed');
  t.equal((await search(`${'ab'.repeat(32)}`)).status, 404, 'an unknown hash');
  t.equal((await search('9999')).status, 404, 'a height above the tip');
  t.equal((await search(encodeAddress('dots', payee.address))).status, 400, 'an address of another network');
  const junk = await search('!!nonsense??');
  t.equal(junk.status, 400);
  t.match(junk.body.error, /block height or hash/);
  t.equal(await status('/api/search'), 400, 'q is required');
  t.equal(await status('/api/search?q='), 400);
  t.equal(await status(`/api/search?q=${'a'.repeat(300)}`), 400);

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
  const big = await fetch(`${api}/api/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ record: 'ab'.repeat(200_000) }) });
  t.equal(big.status, 413, 'oversized body');

  // Development mining: bad counts.
  t.equal((await postJson(`${api}/api/dev/mine`, { count: 0 })).status, 400);
  t.equal((await postJson(`${api}/api/dev/mine`, { count: 'x' })).status, 400);
  t.equal((await postJson(`${api}/api/dev/mine`, { count: 5000 })).status, 400);

  t.same((await getJson(`${api}/api/peers`)).body, { peers: [] });

  // Metrics: chain gauges, per-route request counts and latencies, the SIP hooks.
  sipMetrics.calls.inc({ result: 'answered' });
  const metrics = await (await fetch(`${api}/metrics`)).text();
  t.match(metrics, /^dots_height 8$/m);
  t.match(metrics, /^dots_pending_records 0$/m);
  t.match(metrics, /^dots_peers 0$/m);
  t.match(metrics, /^dots_difficulty 1$/m);
  t.match(metrics, /^dots_explorer_sse_clients 1$/m);
  t.match(metrics, /^dots_blocks_connected_total 8$/m);
  t.match(metrics, /^dots_http_requests_total\{method="GET",route="\/api\/blocks\/:id",status="404"\} \d+$/m, 'requests counted by route pattern');
  t.match(metrics, /^dots_http_request_duration_seconds_count\{method="GET",route="\/api\/status"\} \d+$/m);
  t.match(metrics, /^dots_sip_registrations 0$/m);
  t.match(metrics, /^dots_sip_calls_total\{result="answered"\} \d+$/m);
  t.match(metrics, /^process_cpu_seconds_total /m);
  t.equal((await getJson(`${api}/api/nope`)).status, 404);

  // Malformed URLs and repeated parameters: a 400 in the same {error} shape, never a 500.
  for (const path of ['/api/names/%E0%A4%A', '/api/blocks/%', `/api/nodes/${'a'.repeat(2000)}`, '/api/blocks?limit=1&limit=2', '/api/search?q=a&q=b']) {
    const r = await getJson<Body>(`${api}${path}`);
    t.ok(r.status >= 400 && r.status < 500, `${path.slice(0, 40)}: ${r.status}`);
    t.type(r.body.error, 'string');
  }
  t.equal((await fetch(`${api}/api/events`, { method: 'HEAD' })).status, 200, 'HEAD on the stream does not hang');

  // Closing the stream frees its slot.
  events.close();
  await waitFor('stream cleanup', async () => /^dots_explorer_sse_clients 0$/m.test(await (await fetch(`${api}/metrics`)).text()));
});

t.test('the page and the OpenAPI document', async (t) => {
  const { chain, pool } = await openChain(t);
  const routes: Array<[string, string]> = [];
  const app = await buildApi({ chain, pool, hashrate: () => 0, peers: () => [], syncing: () => false, mine: async () => [] }, { onRoute: (m, u) => routes.push([m, u]) });
  t.teardown(() => app.close());
  await app.ready();

  const home = await app.inject({ url: '/' });
  t.equal(home.statusCode, 200);
  t.match(home.headers['content-type'], /text\/html/);
  t.match(home.headers['content-security-policy'], /default-src 'self'/);
  t.match(home.body, /<script type="module" src="\/app.js">/);
  for (const f of ['/app.js', '/verify.js', '/chart.js']) {
    const r = await app.inject({ url: f });
    t.equal(r.statusCode, 200, f);
    t.match(r.headers['content-type'], /javascript/, `${f} is served as JavaScript (module scripts need it)`);
  }
  t.equal((await app.inject({ url: '/style.css' })).statusCode, 200);
  t.equal((await app.inject({ url: '/../package.json' })).statusCode, 404, 'nothing outside the explorer folder');

  const doc = await app.inject({ url: '/api/openapi.json' });
  t.equal(doc.statusCode, 200);
  const spec = JSON.parse(doc.body) as { openapi: string; paths: Record<string, Record<string, { responses: Record<string, unknown> }>>; components: { schemas: Record<string, unknown> } };
  t.match(spec.openapi, /^3\./);
  // Every route the server has is documented with its method, and every documented one exists.
  const toOpenApi = (u: string): string => u.replace(/:([a-z]+)/g, '{$1}');
  const served = routes.filter(([m, u]) => m !== 'HEAD' && (u.startsWith('/api') || u === '/metrics' || u === '/'));
  t.ok(served.length >= 20);
  for (const [m, u] of served) t.ok(spec.paths[toOpenApi(u)]?.[m.toLowerCase()], `${m} ${u} is documented`);
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const m of Object.keys(ops)) t.ok(served.some(([sm, su]) => sm === m.toUpperCase() && toOpenApi(su) === path), `documented ${m} ${path} exists`);
  }
  // Every $ref points at a schema or response that exists.
  const refs = [...doc.body.matchAll(/"\$ref": "#\/components\/(schemas|responses)\/([A-Za-z]+)"/g)];
  t.ok(refs.length > 10);
  const comps = spec.components as unknown as Record<string, Record<string, unknown>>;
  for (const [, kind, name] of refs) t.ok(comps[kind][name], `${kind}/${name} exists`);
});

t.test('event stream limits', async (t) => {
  // A client that cannot keep up is dropped once its queue passes the bound; the others go on.
  const hub = new EventHub({ maxClients: 3, maxPerAddress: 2, maxBuffer: 100, heartbeatMs: 60_000, maxStreamMs: 3_600_000 });
  t.teardown(() => hub.close());
  const fake = (): { res: ServerResponse; written: string[]; destroyed: () => boolean; close: () => void } => {
    const written: string[] = [];
    let destroyed = false;
    let onClose = (): void => {};
    const res = {
      writableLength: 0,
      write(s: string) {
        written.push(s);
        return true;
      },
      destroy() {
        destroyed = true;
      },
      end() {},
      on(ev: string, fn: () => void) {
        if (ev === 'close') onClose = fn;
      },
    };
    return { res: res as unknown as ServerResponse, written, destroyed: () => destroyed, close: () => onClose() };
  };
  const fast = fake();
  const slow = fake();
  t.equal(hub.refuse('10.0.0.1'), null);
  hub.add(fast.res, '10.0.0.1', 'hello\n\n');
  hub.add(slow.res, '10.0.0.1', 'hello\n\n');
  t.equal(hub.size, 2);
  t.match(hub.refuse('10.0.0.1'), /at most 2 event streams per client address/, 'one address gets its share, no more');
  t.equal(hub.refuse('10.0.0.2'), null, 'another address still gets a slot');
  const other = fake();
  hub.add(other.res, '10.0.0.2', 'hello\n\n');
  t.match(hub.refuse('10.0.0.3'), /too many event stream clients/, 'and the total is bounded');
  other.close();
  hub.send('tip', { height: 1 });
  t.equal(fast.written.length, 2);
  t.match(fast.written[1], /^id: \d+\nevent: tip\ndata: \{"height":1\}\n\n$/);
  (slow.res as unknown as { writableLength: number }).writableLength = 101;
  hub.send('tip', { height: 2 });
  t.ok(slow.destroyed(), 'the slow client is dropped');
  t.equal(hub.size, 1);
  t.equal(fast.written.length, 3, 'the fast one still gets events');
  fast.close();
  t.equal(hub.size, 0, 'a disconnect frees the slot');

  // Over HTTP: a full hub answers 503.
  const { chain, pool } = await openChain(t);
  // the pool follows the chain already; the API must add listeners and take them all back
  const before = { tip: chain.listenerCount('tip'), record: pool.listenerCount('record') };
  const app = await buildApi({ chain, pool, hashrate: () => 0, peers: () => [], syncing: () => false }, { maxEventClients: 1 });
  t.teardown(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const url = `http://127.0.0.1:${typeof addr === 'object' && addr !== null ? addr.port : 0}/api/events`;
  const first = await sse(url);
  await first.next('hello');
  const second = await fetch(url);
  t.equal(second.status, 503);
  t.ok(second.headers.get('retry-after'));
  first.close();
  await waitFor('slot freed', async () => {
    const r = await fetch(url);
    if (r.status !== 200) return false;
    await r.body?.cancel();
    return true;
  });
  t.ok(chain.listenerCount('tip') > before.tip, 'the API follows the tip');
  t.ok(pool.listenerCount('record') > before.record, 'and the pending records');
  await app.close();
  t.equal(chain.listenerCount('tip'), before.tip, 'closing the API leaves no chain listeners');
  t.equal(pool.listenerCount('record'), before.record, 'nor pool listeners');
});
