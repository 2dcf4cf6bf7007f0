// The explorer's history index follows the main chain exactly: it catches up from genesis on
// start, and a reorganisation takes the refs of disconnected blocks away and adds the new ones.
import t from 'tap';
import { History, historyKey } from '../node/api/history.ts';
import { openChain, extend, newKey } from './helpers.ts';
import { toHex } from '../core/hash.ts';
import { signRecord, Kind, type NodeAnnounce } from '../core/records.ts';
import { addressOf } from '../core/address.ts';

t.test('history index: catch-up, live blocks and reorganisations', async (t) => {
  const { chain } = await openChain(t);
  const a = newKey();
  const b = newKey();
  const keyA = historyKey.address(toHex(a.address));
  const keyB = historyKey.address(toHex(b.address));
  const b1 = await extend(chain, chain.tip, 1, { reward: a.address });
  await extend(chain, b1, 2, { reward: a.address });

  // Started on an existing chain: it reads it from genesis.
  const h = new History(chain);
  h.start();
  t.teardown(() => h.stop());
  await h.settled();
  t.equal(h.height, 3);
  t.ok(h.complete);
  t.same(h.all(keyA).map((r) => r.height), [1, 2, 3]);

  // Live: a node announcement in a new block shows under the node and its key's address.
  const n = newKey();
  const ann = signRecord<NodeAnnounce>('regtest', n.secret, { kind: Kind.NodeAnnounce, pubkey: n.pub, sipUris: [], p2pAddrs: [], rewardAddress: n.address, seq: 1 });
  await extend(chain, chain.tip, 1, { reward: a.address, recs: [ann] });
  await h.settled();
  t.same(h.all(historyKey.node(toHex(addressOf(n.pub)))).map((r) => [r.height, r.index, r.kind]), [[4, 1, Kind.NodeAnnounce]]);
  t.same(h.page(keyA, 0, 2).items.map((r) => r.height), [4, 3], 'pages are newest first');
  t.same(h.page(keyA, 2, 2).items.map((r) => r.height), [2, 1]);
  t.equal(h.page(keyA, 0, 2).total, 4);

  // A heavier branch from block 1 replaces blocks 2..4.
  await extend(chain, b1, 4, { reward: b.address });
  t.equal(chain.tip.height, 5);
  await h.settled();
  t.equal(h.height, 5);
  t.same(h.all(keyA).map((r) => r.height), [1], 'refs of disconnected blocks are gone');
  t.same(h.all(keyB).map((r) => r.height), [2, 3, 4, 5]);
  t.same(h.all(historyKey.node(toHex(addressOf(n.pub)))), [], 'including the announcement');
  for (const r of h.all(keyB)) t.equal(r.block, chain.main[r.height].hex, `height ${r.height} points at the main-chain block`);
});
