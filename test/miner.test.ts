import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash } from 'node:crypto';
import { MinerPool, MinerPoolError } from '../mining/miner-pool.ts';
import { Miner, MinerStoppedError, chainWork, type MiningWork } from '../mining/miner.ts';
import { WasmHeaderHasher } from '../mining/wasm-hasher.ts';
import { compactToTarget, hashMeetsTarget, hashToBigInt, sha256d, targetToBytesLE } from '../consensus/pow.ts';
import type { Block, Header } from '../core/block.ts';
import type { ProcessResult } from '../consensus/chain.ts';
import type { Template } from '../mining/template.ts';
import { openChain, readHeaderFixtures, withNonce } from './helpers.ts';
import { eventually } from './util/wait.ts';

const GENESIS_NONCE = 2083236893;
const genesisRow = readHeaderFixtures().find((f) => f.name === 'bitcoin-genesis');
if (genesisRow === undefined) throw new Error('bitcoin-genesis row missing from headers.tsv');
const GENESIS = genesisRow.header;
const GENESIS_TARGET = targetToBytesLE(compactToTarget(0x1d00ffff));
const IMPOSSIBLE = new Uint8Array(32); // only an all-zero hash would meet it


t.test('the worker pool mines the Bitcoin genesis header from a range containing its nonce', async (t) => {
  const range = { start: GENESIS_NONCE - (1 << 21), count: 1 << 22 };
  // The range holds exactly one solution (checked on one thread), so whichever worker finds
  // it, the answer is determined.
  const one = new WasmHeaderHasher(GENESIS);
  t.equal(one.scan(range.start, range.count, GENESIS_TARGET), GENESIS_NONCE, 'one thread: the first solution is the real nonce');
  t.equal(one.scan(GENESIS_NONCE + 1, range.start + range.count - GENESIS_NONCE - 1, GENESIS_TARGET), -1, 'one thread: and the only one');

  const pool = new MinerPool(2);
  t.teardown(() => pool.close());
  const r = await pool.search(GENESIS, GENESIS_TARGET, range).result;
  t.equal(r.status, 'found');
  t.equal(r.nonce, GENESIS_NONCE, 'two workers find exactly the genesis nonce');
  t.ok(r.hashes > 0 && r.hashes <= range.count, `hashes counted (${r.hashes})`);
  t.equal(pool.code, 'bundled', 'the workers ran the miner bundled from the sources (core/worker-code.ts), no TypeScript loader');
  // A range that wraps past 2^32 - 1 into 0, under a target only its best nonce meets.
  let best = -1;
  let bestHash = 1n << 256n;
  for (let i = 0; i < 0x200; i++) {
    const n = (0xffffff00 + i) >>> 0;
    const h = hashToBigInt(sha256d(withNonce(GENESIS, n)));
    if (h < bestHash) [best, bestHash] = [n, h];
  }
  const wrapped = await pool.search(GENESIS, targetToBytesLE(bestHash), { start: 0xffffff00, count: 0x200 }).result;
  t.equal(wrapped.nonce, best, `a range across the 2^32 wrap: its one solution, ${best}`);
});

t.test('an exhausted range, cancellation, and close', async (t) => {
  const pool = new MinerPool(2);
  t.teardown(() => pool.close());
  pool.drainHashes();
  const r = await pool.search(GENESIS, GENESIS_TARGET, { start: GENESIS_NONCE + 1, count: 300_001 }).result;
  t.same(r, { status: 'exhausted', nonce: -1, hashes: 300_001 }, 'every nonce of the range tried once, none found');
  t.equal(pool.drainHashes(), 300_001, 'the shared counter saw every hash');

  const s = pool.search(GENESIS, IMPOSSIBLE);
  await sleep(300);
  s.cancel();
  const c = await s.result;
  t.equal(c.status, 'cancelled', 'cancel ends a full-range search');
  t.ok(c.hashes > 0, 'it had been hashing');

  // A new search cancels the running one and then runs.
  const first = pool.search(GENESIS, IMPOSSIBLE);
  const second = pool.search(GENESIS, GENESIS_TARGET, { start: GENESIS_NONCE - 1000, count: 2000 });
  t.equal((await first.result).status, 'cancelled', 'the earlier search is cancelled');
  t.equal((await second.result).nonce, GENESIS_NONCE, 'the later one runs');
  second.cancel(); // after the end: no effect on anything else
  t.equal((await pool.search(GENESIS, GENESIS_TARGET, { start: GENESIS_NONCE, count: 1 }).result).nonce, GENESIS_NONCE, 'a stale cancel does not touch later searches');

  t.throws(() => pool.search(GENESIS, GENESIS_TARGET, { start: 0, count: 0 }), RangeError);
  t.throws(() => pool.search(GENESIS.subarray(1), GENESIS_TARGET), RangeError);
  const running = pool.search(GENESIS, IMPOSSIBLE);
  await pool.close();
  t.equal((await running.result).status, 'cancelled', 'close cancels the running search');
  t.throws(() => pool.search(GENESIS, GENESIS_TARGET), MinerPoolError, 'a closed pool refuses searches');
  t.throws(() => new MinerPool(0), RangeError);

  // closed while its workers are still being built and started
  const early = new MinerPool(1);
  const pending = early.search(GENESIS, IMPOSSIBLE);
  await early.close();
  t.equal((await pending.result).status, 'cancelled', 'a pool closed before its workers started ends its search');
});

/**
 * Work for the miner without a chain: templates whose target is chosen per template by
 * `bitsFor`, and blocks collected instead of validated.
 */
class FakeWork implements MiningWork {
  current = { height: 0 };
  records = 0;
  made: Array<{ extra: number; tip: object; bits: number }> = [];
  blocks: Block[] = [];
  constructor(private readonly bitsFor: (i: number) => number) {}

  tip(): object {
    return this.current;
  }

  version(): number {
    return this.records;
  }

  template(_reward: Uint8Array, extraNonce: Uint8Array): Template {
    const i = this.made.length;
    const bits = this.bitsFor(i);
    this.made.push({ extra: new DataView(extraNonce.buffer, extraNonce.byteOffset).getUint32(0, true), tip: this.current, bits });
    const header: Header = {
      version: 1,
      prev: new Uint8Array(32),
      merkleRoot: createHash('sha256').update(extraNonce).digest(),
      time: 1_700_000_000,
      bits,
      nonce: 0,
    };
    return { header, records: [], height: 1, fees: 0 };
  }
  async submit(b: Block): Promise<ProcessResult> {
    this.blocks.push(b);
    return { status: 'connected', hex: '', height: 1, disconnected: 0 };
  }
}

const IMPOSSIBLE_BITS = 0x03000000; // target 0
const WORK_2_17_BITS = 0x1e7fffff; // about 2^17 hashes a block: above the event-loop threshold

t.test('extra-nonce rollover when a template’s nonce space is used up', async (t) => {
  // Three templates nobody can solve, then ones that are easy within 2^20 nonces.
  const chain = new FakeWork((i) => (i < 3 ? IMPOSSIBLE_BITS : WORK_2_17_BITS));
  const miner = new Miner(chain, new Uint8Array(20), {}, { threads: 2, nonceSpace: 1 << 20 });
  t.teardown(() => miner.stop());
  const [r] = await miner.mineBlocks(1);
  t.equal(r.status, 'connected');
  t.ok(chain.made.length >= 4, `rolled over to a fourth template (${chain.made.length} built)`);
  t.same(
    chain.made.map((m) => m.extra),
    chain.made.map((_, i) => i),
    'each template carries the next extra nonce',
  );
  t.equal(chain.blocks.length, 1);
  const b = chain.blocks[0];
  t.ok(hashMeetsTarget(b.hash, compactToTarget(b.header.bits)), 'the block meets its target');
  t.ok(b.header.nonce < 1 << 20, 'its nonce lies in the searched space');
  t.equal(b.header.bits, WORK_2_17_BITS, 'found on a solvable template');
});

t.test('a new tip or new records restart the search; the hash rate shows; stop ends it all', async (t) => {
  const chain = new FakeWork(() => IMPOSSIBLE_BITS);
  const rates: number[] = [];
  const miner = new Miner(chain, new Uint8Array(20), { onHashrate: (h) => rates.push(h) }, { threads: 2, templateMaxAgeMs: 3_600_000 });
  t.teardown(() => miner.stop());
  t.equal(miner.hashrate, 0, 'no hash rate before mining');
  miner.start();
  t.ok(miner.mining);
  t.ok(await eventually(() => chain.made.length === 1 && miner.hashrate > 0), `hash rate reported while mining (${miner.hashrate}/s)`);
  t.equal(chain.made.length, 1, 'one template while nothing changes');

  chain.current = { height: 1 };
  t.ok(await eventually(() => chain.made.length === 2), 'a new tip brings a new template');
  t.equal(chain.made[1].tip, chain.current, 'built on the new tip');
  chain.records++;
  t.ok(await eventually(() => chain.made.length === 3), 'new pending records bring a new template');

  await miner.stop();
  t.notOk(miner.mining);
  t.equal(miner.hashrate, 0, 'hash rate back to 0');
  const built = chain.made.length;
  await sleep(50);
  t.equal(chain.made.length, built, 'no template after stop');
  t.ok(rates.length <= 1, 'rate reports are sparse');
});

t.test('stop() interrupts mineBlocks', async (t) => {
  const chain = new FakeWork(() => IMPOSSIBLE_BITS);
  const miner = new Miner(chain, new Uint8Array(20), {}, { threads: 1 });
  const p = miner.mineBlocks(1);
  t.ok(await eventually(() => chain.made.length > 0));
  await sleep(100);
  const rejected = t.rejects(p, MinerStoppedError);
  const t0 = performance.now();
  await miner.stop();
  t.comment(`stop() took ${(performance.now() - t0).toFixed(0)} ms`);
  await rejected;
});

t.test('mining a real chain: event loop on regtest, worker pool on devnet, mineBlocks beside start()', async (t) => {
  const reg = await openChain(t);
  reg.miner.start();
  const res = await reg.miner.mineBlocks(3);
  t.same(res.map((r) => r.status), ['connected', 'connected', 'connected'], 'mineBlocks while the background loop runs');
  t.ok(await eventually(() => reg.chain.tip.height >= 4), 'the background loop mines too');
  await reg.miner.stop();
  const h = reg.chain.tip.height;
  await sleep(50);
  t.equal(reg.chain.tip.height, h, 'nothing mined after stop');

  t.equal(reg.miner.found.pool, 0, 'regtest templates are too easy for the worker pool');
  t.ok(reg.miner.found.eventLoop >= 4, 'they are searched on the event loop');

  // Devnet's limit (bits 0x1e010000: target 2^232, so about 2^24 = 16.8 M hashes a block) is
  // above the event-loop threshold: the blocks must come from the worker threads. Should the
  // pool fail, the miner would fall back to the event loop and report it; both would show here.
  const dev = await openChain(t, { network: 'devnet' });
  const errors: Error[] = [];
  const miner = new Miner(chainWork(dev.chain, dev.pool), dev.key.address, { onError: (e) => errors.push(e) }, { threads: 2 });
  t.teardown(() => miner.stop());
  const blocks = await miner.mineBlocks(2);
  t.same(blocks.map((r) => r.status), ['connected', 'connected'], 'two devnet blocks');
  t.equal(dev.chain.tip.height, 2);
  t.same(miner.found, { pool: 2, eventLoop: 0 }, 'both found by the worker pool, none on the event loop');
  t.same(errors.map((e) => e.message), [], 'the pool never failed');
  t.throws(() => new Miner(chainWork(dev.chain, dev.pool), dev.key.address, {}, { threads: -1 }), RangeError);
  t.throws(() => new Miner(chainWork(dev.chain, dev.pool), dev.key.address, {}, { nonceSpace: 0 }), RangeError);
});
