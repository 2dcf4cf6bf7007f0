// The explorer's history index follows the main chain exactly: it catches up from genesis on
// start, and a reorganisation takes the refs of disconnected blocks away and adds the new ones.
import t from 'tap';
import { History, historyKey } from '../node/api/history.ts';
import { openChain, extend, newKey } from './helpers.ts';
import { toHex } from '../core/hash.ts';
import { signRecord, Kind, type NodeAnnounce } from '../core/records.ts';
import { addressOf } from '../core/address.ts';
import { decodeBlock, type Block } from '../core/block.ts';
import type { Chain } from '../consensus/chain.ts';

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

  // Blocks the tip events bring are indexed from them, not read back from the store.
  let reads = 0;
  const counted = Object.create(chain) as Chain;
  counted.getBlock = (hex) => {
    reads++;
    return chain.getBlock(hex);
  };
  const live = new History(counted);
  live.start();
  t.teardown(() => live.stop());
  await live.settled();
  const before = reads;
  t.equal(before, 5, 'catching up from genesis read the five blocks there were');
  await extend(chain, chain.tip, 3, { reward: a.address });
  await live.settled();
  t.equal(live.height, 7, 'the new blocks are indexed');
  t.equal(reads, before, 'without a read of their bodies');

  // A heavier branch from block 1 replaces blocks 2..4.
  await extend(chain, b1, 7, { reward: b.address });
  t.equal(chain.tip.height, 8);
  await h.settled();
  t.equal(h.height, 8);
  t.same(h.all(keyA).map((r) => r.height), [1], 'refs of disconnected blocks are gone');
  t.same(h.all(keyB).map((r) => r.height), [2, 3, 4, 5, 6, 7, 8]);
  await live.settled();
  t.same(live.all(keyB).map((r) => r.height), [2, 3, 4, 5, 6, 7, 8], 'the index fed by tip events agrees');
  t.same(live.all(keyA).map((r) => r.height), [1]);
  t.same(h.all(historyKey.node(toHex(addressOf(n.pub)))), [], 'including the announcement');
  for (const r of h.all(keyB)) t.equal(r.block, chain.main[r.height].hex, `height ${r.height} points at the main-chain block`);
});

t.test('a block body the store lost or cannot read stops the index with a warning, not the node', async (t) => {
  const { chain } = await openChain(t);
  await extend(chain, chain.tip, 5);
  const warnings: string[] = [];
  const log = { debug() {}, info() {}, error() {}, warn: (m: string) => void warnings.push(m) };
  // Damage after the start-up check, as the chain's reads would meet it: block 3's body is gone,
  // then block 4's does not decode. (The chain keeps recent bodies in memory, so the damage is
  // put where its reads happen: a view of the chain whose getBlock meets it.)
  let damage: (height: number) => Promise<Block | undefined> = async () => undefined;
  const view = Object.create(chain) as Chain;
  view.getBlock = (hex) => {
    const e = chain.index.get(hex);
    return e !== undefined && e.height >= 3 ? damage(e.height) : chain.getBlock(hex);
  };
  const lost = new History(view, log);
  lost.start();
  t.teardown(() => lost.stop());
  await lost.settled();
  t.equal(lost.height, 2, 'indexed up to the lost block');
  t.match(lost.failure, /block 3 .* has no body/);
  t.match(warnings, [/history index stopped at height 2: block 3/]);
  damage = async (h) => (h === 3 ? chain.getBlock(chain.main[3].hex) : decodeBlock(Uint8Array.of(1, 2, 3), 1000));
  const garbled = new History(view, log);
  garbled.start();
  t.teardown(() => garbled.stop());
  await garbled.settled();
  t.equal(garbled.height, 3, 'indexed up to the unreadable block');
  t.match(garbled.failure, /reading the chain failed/, 'the reason is kept');
  // A new tip tries again, and once the store reads, the index catches up.
  damage = (h) => chain.getBlock(chain.main[h].hex);
  await extend(chain, chain.tip, 1);
  await garbled.settled();
  t.equal(garbled.height, 6, 'caught up after the next tip');
  t.equal(garbled.failure, null);
});
