// Fork choice and reorganisation: most work wins (not most blocks), state after a switch equals
// state built from scratch on the winner, and records only in the losing branch go back to the pool.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, blockOn, extend, newKey, stateDump } from './helpers.ts';
import { signRecord, Kind, type NodeAnnounce, type NameCommit, type Transfer, type Rec } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { NETWORKS, type NetworkParams } from '../consensus/params.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';

// Regtest with ASERT switched on and a short half-life, so blocks mined ahead of schedule are
// harder and carry more work: a short branch can then outweigh a long one.
const ASERT: NetworkParams = { ...NETWORKS.regtest, noRetarget: false, idealBlockTime: 600, halfLife: 600 };

function announce(seq = 1): Rec {
  const k = newKey();
  return signRecord<NodeAnnounce>('regtest', k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [], p2pAddrs: [], rewardAddress: k.address, seq });
}
function commitRec(): Rec {
  const k = newKey();
  return signRecord<NameCommit>('regtest', k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: randomBytes(32) });
}

async function blocksOf(chain: Chain, tip: IndexEntry): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for (let e: IndexEntry | null = tip; e !== null && e.height > 0; e = e.prev) out.unshift((await chain.getBlockBytes(e.hex)) as Uint8Array);
  return out;
}

/** State built from scratch by a fresh chain that only ever sees the given branch. */
async function scratchState(t: Test, params: NetworkParams, blocks: Uint8Array[]): Promise<Array<[string, string]>> {
  const { chain } = await openChain(t, { params });
  const { decodeBlock } = await import('../core/block.ts');
  for (const b of blocks) {
    const r = await chain.processBlock(decodeBlock(b, params.maxBlockBytes));
    if (r.status !== 'connected') throw new Error(`scratch: ${r.status}`);
  }
  return stateDump(chain);
}

t.test('the branch with more work wins, not the one with more blocks', async (t) => {
  const { chain, pool } = await openChain(t, { params: ASERT });
  const g = chain.tip;
  const onlyA = commitRec();
  const both = announce();
  // Branch A: five slow blocks (behind schedule, so at the easiest target).
  let a = g;
  for (let i = 0; i < 5; i++) {
    const b = blockOn(chain, a, i === 0 ? [both, onlyA] : [], { time: g.header.time + 1200 * (i + 1) });
    const r = await chain.processBlock(b);
    t.equal(r.status, 'connected');
    a = chain.index.get(r.hex) as IndexEntry;
  }
  t.equal(chain.tip, a);
  // Branch B: three fast blocks (ahead of schedule, so each harder than the last).
  let b = g;
  const results: string[] = [];
  for (let i = 0; i < 3; i++) {
    const blk = blockOn(chain, b, i === 0 ? [both] : [], { time: g.header.time + i + 1 });
    const r = await chain.processBlock(blk);
    results.push(r.status);
    b = chain.index.get(r.hex) as IndexEntry;
  }
  t.ok(b.work > a.work, 'B has more work');
  t.ok(b.height < a.height, 'B has fewer blocks');
  t.same(results, ['side', 'side', 'connected'], 'switches when B overtakes A in work');
  t.equal(chain.tip, b);
  t.ok(pool.has(toHex(onlyA.id)), 'record only in A is pending again');
  t.notOk(pool.has(toHex(both.id)), 'record in both branches is not pending');
  t.same(stateDump(chain), await scratchState(t, ASERT, await blocksOf(chain, b)), 'state equals state built from scratch on B');
  t.equal(await chain.locateRecord(toHex(onlyA.id)), undefined, 'A-only record is no longer confirmed');
  t.ok(await chain.locateRecord(toHex(both.id)), 'shared record is confirmed in B');
});

t.test('a deep reorganisation of more than 100 blocks, with balances', async (t) => {
  const { chain, pool } = await openChain(t);
  const g = chain.tip;
  const miner = newKey();
  // Main chain: 120 blocks paying `miner`, then transfers from it.
  let a = await extend(chain, g, 2, { reward: miner.address });
  const transfers: Rec[] = [];
  for (let i = 0; i < 5; i++) {
    transfers.push(signRecord<Transfer>('regtest', miner.secret, { kind: Kind.Transfer, pubkey: miner.pub, to: newKey().address, amount: 1000 + i, fee: 0, nonce: i }));
  }
  const commits = Array.from({ length: 5 }, commitRec);
  a = await extend(chain, a, 1, { recs: [...transfers, ...commits] });
  a = await extend(chain, a, 117);
  t.equal(a.height, 120);
  const stateA = stateDump(chain);
  // A competing branch from genesis with 121 blocks paying someone else.
  const other = newKey();
  let b = g;
  for (let i = 0; i < 121; i++) {
    const r = await chain.processBlock(blockOn(chain, b, [], { reward: other.address, time: g.header.time + 10 + i }));
    b = chain.index.get(r.hex) as IndexEntry;
  }
  t.equal(chain.tip, b, 'switched to the longer branch');
  t.same(stateDump(chain), await scratchState(t, NETWORKS.regtest, await blocksOf(chain, b)), 'state equals scratch build');
  for (const c of commits) t.ok(pool.has(toHex(c.id)), 'commitment back in the pool');
  // Transfers spent coinbase money that no longer exists: they cannot return.
  for (const x of transfers) t.notOk(pool.has(toHex(x.id)), 'transfer of vanished money dropped');
  // And back again: extending A beyond B restores A's state exactly.
  let a2 = a;
  for (let i = 0; i < 2; i++) {
    const r = await chain.processBlock(blockOn(chain, a2, [], { reward: miner.address }));
    a2 = chain.index.get(r.hex) as IndexEntry;
  }
  t.equal(chain.tip, a2, 'back on A');
  const scratchA = await scratchState(t, NETWORKS.regtest, await blocksOf(chain, a2));
  t.same(stateDump(chain), scratchA, 'state equals scratch build of A');
  t.notSame(stateA, stateDump(chain), 'two more blocks changed the miner balance');
});

t.test('undo data is kept for undoDepth blocks; a deeper reorganisation rebuilds the state at the fork from the blocks', async (t) => {
  const { chain, store } = await openChain(t);
  const depth = chain.params.undoDepth;
  const miner = newKey();
  // state before the fork: coins, transfers to new accounts, commitments
  let a = await extend(chain, chain.tip, 3, { reward: miner.address });
  const transfers = Array.from({ length: 4 }, (_, i) => signRecord<Transfer>('regtest', miner.secret, { kind: Kind.Transfer, pubkey: miner.pub, to: newKey().address, amount: 500 + i, fee: 0, nonce: i }));
  a = await extend(chain, a, 1, { recs: [...transfers, commitRec(), commitRec()] });
  const fork = a;
  a = await extend(chain, a, depth + 20, { reward: miner.address });
  t.equal(await store.undo(chain.main[a.height - depth - 5].hex), undefined, `no undo data ${depth + 5} blocks down`);
  t.ok(await store.undo(chain.main[a.height - depth + 1].hex), `undo data ${depth - 1} blocks down`);
  // a heavier branch from the fork, deeper than the undo data reaches
  const other = newKey();
  let b = fork;
  for (let i = 0; i < depth + 21; i++) {
    const r = await chain.processBlock(blockOn(chain, b, i === 0 ? [commitRec()] : [], { reward: other.address, time: fork.header.time + 7 + i }));
    b = chain.index.get(r.hex) as IndexEntry;
  }
  t.equal(chain.tip, b, `switched to the heavier branch, ${depth + 20} blocks disconnected`);
  t.same(stateDump(chain), await scratchState(t, NETWORKS.regtest, await blocksOf(chain, b)), 'state equals a scratch build of the branch');
  t.ok(await store.undo(b.hex), 'the new tip has undo data');
  t.equal(await store.undo(chain.main[b.height - depth - 1].hex), undefined, 'the new chain keeps undoDepth blocks of it too');
  // a shallow one after it goes through undo data as always
  const c = await extend(chain, chain.main[b.height - 2], 3, { reward: miner.address, time: b.header.time + 1 });
  t.equal(chain.tip, c, 'a two-block reorganisation on top');
  t.same(stateDump(chain), await scratchState(t, NETWORKS.regtest, await blocksOf(chain, c)), 'state equals a scratch build again');
});

t.test('a branch with an invalid block is abandoned, the valid part kept if it has more work', async (t) => {
  const { chain } = await openChain(t);
  const g = chain.tip;
  const a = await extend(chain, g, 2);
  // B: 2 good blocks, then one with a transfer from an empty account (fails only in state).
  const b2 = await (async (): Promise<IndexEntry> => {
    let e = g;
    for (let i = 0; i < 2; i++) {
      const r = await chain.processBlock(blockOn(chain, e, [], { time: g.header.time + 100 + i }));
      e = chain.index.get(r.hex) as IndexEntry;
    }
    return e;
  })();
  t.equal(chain.tip, a, 'equal work: the first seen stays');
  const poor = newKey();
  const bad = signRecord<Transfer>('regtest', poor.secret, { kind: Kind.Transfer, pubkey: poor.pub, to: poor.address, amount: 5, fee: 0, nonce: 0 });
  const r = await chain.processBlock(blockOn(chain, b2, [bad]));
  t.equal(r.status, 'invalid');
  t.equal((r as { code: string }).code, 'insufficient-funds');
  t.equal(chain.tip, a, 'still on A');
  t.equal(chain.index.get(r.hex)?.status, 'invalid', 'bad block marked invalid');
  const child = await chain.processBlock(blockOn(chain, chain.index.get(r.hex) as IndexEntry, []));
  t.equal((child as { code: string }).code, 'bad-parent', 'children of an invalid block are refused');
});
