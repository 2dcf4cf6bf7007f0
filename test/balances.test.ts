// Balances follow mining, transfers and fees exactly, and across a reorganisation.
import t from 'tap';
import { openChain, blockOn, newKey } from './helpers.ts';
import { signRecord, Kind, type Transfer } from '../core/records.ts';
import { getAccount } from '../core/state.ts';
import type { IndexEntry } from '../consensus/chain.ts';
import { Miner, chainWork } from '../mining/miner.ts';
import { blockTemplate } from '../mining/template.ts';

t.test('balances across a reorganisation', async (t) => {
  const { chain, pool } = await openChain(t);
  const p = chain.params;
  const g = chain.tip;
  const alice = newKey();
  const bob = newKey();
  const minerA = newKey();
  const minerB = newKey();
  const bal = (k: { address: Uint8Array }): number => getAccount(chain.state, k.address).balance;
  const connect = async (parent: IndexEntry, ...args: Parameters<typeof blockOn> extends [unknown, unknown, ...infer R] ? R : never): Promise<IndexEntry> => {
    const r = await chain.processBlock(blockOn(chain, parent, ...args));
    return chain.index.get(r.hex) as IndexEntry;
  };
  // Branch A: alice mines block 1, pays bob 1,000 with a fee of 7 in block 2 (mined by minerA).
  const a1 = await connect(g, [], { reward: alice.address });
  t.equal(bal(alice), p.subsidy(1));
  const pay = signRecord<Transfer>('regtest', alice.secret, { kind: Kind.Transfer, pubkey: alice.pub, to: bob.address, amount: 1000, fee: 7, nonce: 0 });
  const a2 = await connect(a1, [pay], { reward: minerA.address, amount: p.subsidy(2) + 7 });
  t.equal(chain.tip, a2);
  t.equal(bal(alice), p.subsidy(1) - 1007, 'alice paid amount and fee');
  t.equal(bal(bob), 1000, 'bob got the amount');
  t.equal(bal(minerA), p.subsidy(2) + 7, 'miner got subsidy and fee');
  t.equal(getAccount(chain.state, alice.address).nonce, 1);
  // Branch B: alice mines block 1 again (another block), minerB mines 2 and 3 without the transfer.
  const b1 = await connect(g, [], { reward: alice.address, time: g.header.time + 50 });
  const b2 = await connect(b1, [], { reward: minerB.address });
  t.equal(chain.tip, a2, 'equal work: A stays');
  const b3 = await connect(b2, [], { reward: minerB.address });
  t.equal(chain.tip, b3, 'B has more work');
  t.equal(bal(alice), p.subsidy(1), 'alice has her B coinbase, the payment is undone');
  t.equal(bal(bob), 0);
  t.equal(bal(minerA), 0, 'minerA lost its block');
  t.equal(bal(minerB), p.subsidy(2) + p.subsidy(3));
  t.equal(getAccount(chain.state, alice.address).nonce, 0, 'nonce rolled back');
  t.ok(pool.has(Buffer.from(pay.id).toString('hex')), 'the payment is pending again (alice still has the money)');
  // It gets mined on B: same totals as before, fee to B's miner.
  const tpl = blockTemplate(chain, pool, minerB.address, new Uint8Array(4));
  t.equal(tpl.records.length, 2);
  const mined = await new Miner(chainWork(chain, pool), minerB.address).mineBlocks(1);
  t.equal(mined[0].status, 'connected');
  t.equal(bal(bob), 1000, 'bob paid on the new branch');
  t.equal(bal(alice), p.subsidy(1) - 1007);
  t.equal(bal(minerB), p.subsidy(2) + p.subsidy(3) + p.subsidy(4) + 7);
  let supply = 0;
  for (const [k, v] of chain.state.map) if (k.startsWith('a:') && v.t === 'account') supply += v.balance;
  let subsidies = 0;
  for (let h = 1; h <= 4; h++) subsidies += p.subsidy(h);
  t.equal(supply, subsidies, 'no unit created or lost: the sum of balances is the sum of subsidies');
});
