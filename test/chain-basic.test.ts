import t from 'tap';
import { openChain } from './helpers.ts';

t.test('mines blocks on regtest and reopens at the same tip', async (t) => {
  const tc = await openChain(t);
  const res = await tc.miner.mineBlocks(5);
  t.same(res.map((r) => r.status), ['connected', 'connected', 'connected', 'connected', 'connected']);
  t.equal(tc.chain.tip.height, 5);
  const tip = tc.chain.tip.hex;
  await tc.close();
  const again = await openChain(t, { dir: tc.dir });
  t.equal(again.chain.tip.hex, tip);
  t.equal(again.chain.tip.height, 5);
  t.same([...again.chain.state.map.keys()].sort(), [...tc.chain.state.map.keys()].sort());
});
