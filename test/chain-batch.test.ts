// Connecting many blocks with one store batch (chain.processBlocks, and processBlock's single
// write on the tip): the same results, state and stored data as one block at a time, and the
// first invalid block ends the run with the valid blocks before it connected.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { openChain, blockOn, newKey, stateDump, type TestChain } from './helpers.ts';
import { eventually } from './util/wait.ts';
import { signRecord, Kind, type NameCommit, type Transfer } from '../core/records.ts';
import { decodeBlock, encodeBlock, type Block } from '../core/block.ts';
import { hashToHex, toHex } from '../core/hash.ts';
import type { Chain, IndexEntry, ProcessResult, TipChange } from '../consensus/chain.ts';
import { openChainStack } from '../node/chain-stack.ts';

/** Blocks 1..n of a source chain, every block after the second carrying transfers and commitments. */
async function sourceBlocks(t: Test, n: number): Promise<{ src: TestChain; blocks: Block[] }> {
  const src = await openChain(t);
  const { chain, pool, miner, key } = src;
  await miner.mineBlocks(2);
  let nonce = 0;
  while (chain.tip.height < n) {
    for (let i = 0; i < 3; i++) {
      pool.add(signRecord<Transfer>('regtest', key.secret, { kind: Kind.Transfer, pubkey: key.pub, to: randomBytes(20), amount: 1000 + i, fee: 1, nonce: nonce++ }));
      const k = newKey();
      pool.add(signRecord<NameCommit>('regtest', k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: randomBytes(32) }));
    }
    await miner.mineBlocks(1);
  }
  const blocks: Block[] = [];
  for (let h = 1; h <= n; h++) blocks.push(decodeBlock((await chain.getBlockBytes(chain.main[h].hex)) as Uint8Array, chain.params.maxBlockBytes));
  return { src, blocks };
}

/** Fresh decoded copies, so no two chains share Block objects. */
function copies(blocks: Block[]): Block[] {
  return blocks.map((b) => decodeBlock(encodeBlock(b), 1 << 30));
}

/** Counts store batches and 'tip' events of a chain from now on. */
function watch(c: TestChain): { writes: () => number; tips: TipChange[] } {
  let writes = 0;
  const orig = c.store.write.bind(c.store);
  c.store.write = async (ops) => {
    if (ops.length > 0) writes++;
    return orig(ops);
  };
  const tips: TipChange[] = [];
  c.chain.on('tip', (x) => tips.push(x));
  return { writes: () => writes, tips };
}

async function oneByOne(chain: Chain, blocks: Block[]): Promise<ProcessResult[]> {
  const out: ProcessResult[] = [];
  for (const b of blocks) out.push(await chain.processBlock(b));
  return out;
}

/** Reopens a chain's data directory, as a restarted process would. */
async function reopen(t: Test, c: TestChain): Promise<Chain> {
  await c.close();
  const again = await openChainStack(c.dir, c.chain.params);
  t.teardown(() => again.close());
  return again.chain;
}

/** A stand-in index entry for a block the chain never accepted, so blockOn can build on it. */
function entryOf(b: Block, parent: IndexEntry): IndexEntry {
  return { hash: b.hash, hex: hashToHex(b.hash), header: b.header, headerBytes: b.headerBytes, height: parent.height + 1, work: parent.work, status: 'stored', prev: parent };
}

t.test('a run of blocks connects in one batch and one tip event, with the state of one-by-one processing', async (t) => {
  const { blocks } = await sourceBlocks(t, 12);
  const a = await openChain(t);
  const b = await openChain(t);
  const expected = await oneByOne(a.chain, copies(blocks));
  t.ok(expected.every((r) => r.status === 'connected'));
  const w = watch(b);
  const got = await b.chain.processBlocks(copies(blocks));
  t.same(got, expected, 'same result per block');
  t.equal(w.writes(), 1, 'one store batch for the whole run');
  t.equal(w.tips.length, 1, 'one tip change');
  t.same(
    w.tips[0].connected.map((e) => e.height),
    blocks.map((_, i) => i + 1),
    'the tip event lists every connected block in order',
  );
  t.equal(w.tips[0].disconnected.length, 0);
  t.equal(b.chain.tip.hex, a.chain.tip.hex);
  t.same(stateDump(b.chain), stateDump(a.chain), 'same state');
  t.equal(b.pool.size, 0);
  const rec = blocks[5].records[2];
  const found = await b.chain.locateRecord(toHex(rec.id));
  t.equal(found?.entry.height, 6, 'record index written for the run');

  // What was written is what one-by-one processing writes: a restart sees the same chain.
  const again = await reopen(t, b);
  t.equal(again.tip.hex, a.chain.tip.hex, 'same tip after a restart');
  t.same(stateDump(again), stateDump(a.chain), 'same state after a restart');
  for (let h = 1; h <= 12; h++) t.equal(again.main[h].status, 'valid');
  t.same(await again.getBlockBytes(again.main[7].hex), await a.chain.getBlockBytes(a.chain.main[7].hex), 'block bytes stored');
});

t.test('processBlock on the tip stores and connects a block with one write', async (t) => {
  const { blocks } = await sourceBlocks(t, 4);
  const c = await openChain(t);
  const w = watch(c);
  for (const b of copies(blocks)) t.equal((await c.chain.processBlock(b)).status, 'connected');
  t.equal(w.writes(), 4, 'one batch per block');
  t.equal(w.tips.length, 4);
  const again = await reopen(t, c);
  t.equal(again.tip.height, 4);
});

t.test('the first invalid block (by state) ends the run; the blocks before it stay connected', async (t) => {
  const { src, blocks } = await sourceBlocks(t, 6);
  const tip = src.chain.tip;
  const bad = blockOn(src.chain, tip, [], { amount: src.chain.params.subsidy(tip.height + 1) + 1 });
  const after = blockOn(src.chain, entryOf(bad, tip), []);
  const a = await openChain(t);
  const b = await openChain(t);
  const expected = await oneByOne(a.chain, [...copies(blocks), bad]);
  t.match(expected[6], { status: 'invalid', code: 'bad-coinbase-amount' });
  const w = watch(b);
  const got = await b.chain.processBlocks([...copies(blocks), bad, after]);
  t.equal(got.length, 7, 'no result for the block after the invalid one');
  t.same(got, expected, 'results as processBlock gives them');
  t.equal(w.writes(), 1, 'prefix and the invalid block in one batch');
  t.equal(w.tips.length, 1);
  t.equal(w.tips[0].connected.length, 6);
  t.equal(b.chain.tip.height, 6, 'valid prefix connected');
  t.same(stateDump(b.chain), stateDump(a.chain), 'state as one-by-one');
  t.equal(b.chain.index.get(hashToHex(bad.hash))?.status, 'invalid', 'the invalid block is remembered');
  t.equal(b.chain.index.has(hashToHex(after.hash)), false, 'the block after it was not processed');
  t.same(await b.chain.processBlock(after), await a.chain.processBlock(after), 'its child is refused later as with processBlock');
  t.same(await b.chain.processBlocks([bad]), [{ status: 'invalid', hex: hashToHex(bad.hash), code: 'known-invalid', message: 'block was found invalid before' }]);

  const again = await reopen(t, b);
  t.equal(again.tip.height, 6);
  t.equal(again.index.get(hashToHex(bad.hash))?.status, 'invalid', 'invalid status persisted');
  t.same(stateDump(again), stateDump(a.chain));
});

t.test('a block failing the stateless or header checks ends the run too', async (t) => {
  const { src, blocks } = await sourceBlocks(t, 5);
  const at3 = src.chain.main[3];
  // A forged Merkle root on a copy of block 4 (sanity), then a header older than median time (context).
  const badRoot = blockOn(src.chain, at3, [], { merkleRoot: randomBytes(32) });
  const tooOld = blockOn(src.chain, at3, [], { time: src.chain.parentInfo(at3).medianTimePast });
  for (const [bad, code] of [
    [badRoot, 'bad-merkle-root'],
    [tooOld, 'time-too-old'],
  ] as const) {
    const a = await openChain(t);
    const b = await openChain(t);
    const input = [...copies(blocks.slice(0, 3)), bad, ...copies(blocks.slice(3))];
    const expected = await oneByOne(a.chain, input.slice(0, 4));
    t.match(expected[3], { status: 'invalid', code });
    const got = await b.chain.processBlocks(input);
    t.same(got, expected, `${code}: results as processBlock gives them, nothing after`);
    t.equal(b.chain.tip.height, 3, `${code}: prefix connected`);
    t.equal(b.chain.index.has(hashToHex(bad.hash)), false, `${code}: not stored, as with processBlock`);
    t.same(stateDump(b.chain), stateDump(a.chain));
  }
  // An invalid first block: nothing connected, nothing written.
  const c = await openChain(t);
  const w = watch(c);
  const first = blockOn(c.chain, c.chain.tip, [], { merkleRoot: randomBytes(32) });
  t.match(await c.chain.processBlocks([first, ...copies(blocks)]), [{ status: 'invalid', code: 'bad-merkle-root' }]);
  t.equal(c.chain.tip.height, 0);
  t.equal(w.writes(), 0);
  t.equal(w.tips.length, 0);
});

t.test('duplicates, side branches, reorganisations and orphans inside a list behave as with processBlock', async (t) => {
  const { src, blocks } = await sourceBlocks(t, 6);
  // A competing branch from height 2 that outgrows the main one (7 blocks against 4 above the fork).
  const fork: Block[] = [];
  let parent = src.chain.main[2];
  for (let i = 0; i < 7; i++) {
    const blk = blockOn(src.chain, parent, [], { time: parent.header.time + 1 });
    fork.push(blk);
    parent = entryOf(blk, parent);
  }
  const input = (): Block[] => [...copies(blocks.slice(0, 5)), ...copies(blocks.slice(2, 4)), ...copies(blocks.slice(5)), ...copies(fork)];
  const a = await openChain(t);
  const b = await openChain(t);
  const expected = await oneByOne(a.chain, input());
  const statuses = expected.map((r) => r.status);
  t.same(statuses.slice(0, 8), ['connected', 'connected', 'connected', 'connected', 'connected', 'duplicate', 'duplicate', 'connected']);
  t.ok(statuses.includes('side') && expected.some((r) => r.status === 'connected' && r.disconnected > 0), `a side branch then a reorganisation: ${statuses.join(' ')}`);
  const got = await b.chain.processBlocks(input());
  t.same(got, expected, 'same results');
  t.equal(b.chain.tip.hex, a.chain.tip.hex);
  t.equal(b.chain.tip.height, 9);
  t.same(stateDump(b.chain), stateDump(a.chain));
  const again = await reopen(t, b);
  t.equal(again.tip.hex, a.chain.tip.hex, 'same tip after a restart');
  t.same(stateDump(again), stateDump(a.chain), 'same state after a restart');

  // An orphan waiting for a block that a run connects is adopted right after.
  const c = await openChain(t);
  const list = copies(blocks);
  t.equal((await c.chain.processBlock(list[5])).status, 'orphan');
  t.same(
    (await c.chain.processBlocks(list.slice(0, 5))).map((r) => r.status),
    ['connected', 'connected', 'connected', 'connected', 'connected'],
  );
  t.equal(c.chain.tip.height, 6, 'orphan adopted once the run connected its parent');
  t.same(stateDump(c.chain), stateDump(src.chain));
});

t.test('sync hands runs of bodies to processBlocks and stops at an invalid one, charging the source', async (t) => {
  const { Synchronizer } = await import('../p2p/sync.ts');
  const { silentLogger } = await import('../core/log.ts');
  const { blocks, src } = await sourceBlocks(t, 40);
  const tip = src.chain.tip;
  const bad = blockOn(src.chain, tip, [], { amount: src.chain.params.subsidy(tip.height + 1) + 1 });
  const after = blockOn(src.chain, entryOf(bad, tip), []);
  const served = [...blocks, bad, after];
  const byHex = new Map(served.map((b) => [hashToHex(b.hash), encodeBlock(b)]));
  const dst = await openChain(t);
  const w = watch(dst);
  const peer = { id: 'peer-1', bestWork: tip.work * 2n, bestHeight: 42, inflight: 0, retryAt: 0 };
  const penalties: string[] = [];
  const sync = new Synchronizer({
    chain: dst.chain,
    log: silentLogger,
    readyPeers: () => [peer],
    fromPeers: () => undefined,
    penalize: (id, offence, why) => void penalties.push(`${id} ${offence} ${why}`),
    request: async (_p, req) => {
      if (req.type === 'headers') {
        // Everything after the newest locator entry we serve (genesis when none).
        const known = new Set(req.locator.map((h) => hashToHex(h)));
        let from = 0;
        for (let i = served.length - 1; i >= 0; i--) {
          if (known.has(hashToHex(served[i].hash))) {
            from = i + 1;
            break;
          }
        }
        return { type: 'headers', headers: served.slice(from, from + req.max).map((b) => b.headerBytes) };
      }
      if (req.type === 'blocks') return { type: 'blocks', blocks: req.hashes.map((h) => byHex.get(hashToHex(h)) ?? new Uint8Array(0)) };
      return null;
    },
  });
  sync.start();
  t.teardown(() => sync.stop());
  sync.wake();
  await eventually(() => penalties.length > 0, 20_000, 10);
  t.match(penalties[0], /^peer-1 invalidBlock headers lead to invalid block .*bad-coinbase-amount/, 'source charged for the invalid body');
  t.equal(dst.chain.tip.hex, tip.hex, 'every valid block before it connected');
  t.same(stateDump(dst.chain), stateDump(src.chain));
  t.equal(dst.chain.index.get(hashToHex(bad.hash))?.status, 'invalid');
  t.equal(dst.chain.index.has(hashToHex(after.hash)), false, 'nothing after it processed');
  t.ok(w.writes() < 40, `fewer store batches than blocks (${w.writes()} for 41)`);
});
