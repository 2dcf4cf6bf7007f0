// The signature workers (consensus/sigpool.ts) on real worker threads: what they vouch for, and
// that a block never waits for them to start.
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { SigPool, VERIFIER_ENTRY } from '../consensus/sigpool.ts';
import { packRecords, verifyBatch } from '../consensus/sig-verify.ts';
import { bundleUrl, workerModuleUrl } from '../core/worker-code.ts';
import { bundleDir, cachedBundle } from '../core/bundle.mjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBlock, encodeBlock, makeBlock, type Block } from '../core/block.ts';
import { silentLogger } from '../core/log.ts';
import { Kind, decodeRec, signRecord, type NameCommit, type Rec } from '../core/records.ts';
import { SigCache, generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { NETWORKS } from '../consensus/params.ts';
import { until } from './util/wait.ts';

const P = NETWORKS.regtest;

function commit(): Rec {
  const sk = generateSecretKey();
  return signRecord<NameCommit>(P.name, sk, { kind: Kind.NameCommit, pubkey: publicKeyOf(sk), commitment: randomBytes(32) }, P.minFeeRate);
}

/** A block of `n` records (in no chain: the workers only check signatures), every `bad`-th with one bit of its signature flipped. */
function blockOf(n: number, bad: number): { block: Block; damaged: Set<string> } {
  const damaged = new Set<string>();
  const records = Array.from({ length: n }, (_, i) => {
    const r = commit();
    if (i % bad !== bad - 1) return r;
    const bytes = Uint8Array.from(r.bytes);
    bytes[bytes.length - 7] ^= 1; // inside the signature, the last field of the record
    const d = decodeRec(bytes);
    damaged.add(Buffer.from(d.id).toString('hex'));
    return d;
  });
  return { block: makeBlock({ version: 1, prev: new Uint8Array(32), merkleRoot: new Uint8Array(32), time: 0, bits: 0, nonce: 0 }, [records[0], ...records]), damaged };
}

t.test('a cold pool leaves a block to the main thread; warm, it vouches for the good signatures only', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 2);
  t.teardown(() => pool.close());
  const { block, damaged } = blockOf(64, 8);
  t.equal(damaged.size, 8, 'eight records carry a damaged signature');
  await pool.preverify(block);
  t.equal(block.records.slice(1).filter((r) => cache.has(r.id)).length, 0, 'with no worker up, preverify returned without vouching for any (processBlock checks them all on the main thread)');
  t.equal(pool.started, 0, 'and a block of 64 records started no worker (a sync starts them: warm)');
  await pool.warm();
  t.equal(pool.ready, 2, 'warm started both workers');
  t.equal(pool.code, 'bundled', 'which run the verifier bundled from the sources, not TypeScript through tsx');
  await pool.preverify(block);
  const vouched = block.records.slice(1).filter((r) => cache.has(r.id));
  t.equal(vouched.length, 64 - 8, 'the workers vouched for every good signature');
  t.notOk(vouched.some((r) => damaged.has(Buffer.from(r.id).toString('hex'))), 'and for none of the damaged ones');
});

t.test('records that are views of the message that brought them go to a worker as one packed copy; the message stays whole', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 2);
  t.teardown(() => pool.close());
  await pool.warm();
  // as sync holds them: decoded from the bytes that came, each record a view of those bytes
  const { block: made, damaged } = blockOf(300, 7);
  const message = encodeBlock(made);
  const copy = Uint8Array.from(message);
  const block = decodeBlock(message, P.maxBlockBytes);
  t.equal(block.records[1].bytes.buffer, message.buffer, 'the records are views of the message');
  await pool.preverify(block);
  const vouched = block.records.slice(1).filter((r) => cache.has(r.id));
  t.equal(vouched.length, 300 - damaged.size, 'the workers vouched for every good signature, in two tasks of packed records');
  t.notOk(vouched.some((r) => damaged.has(Buffer.from(r.id).toString('hex'))), 'and for none of the damaged ones (verdicts line up with their records)');
  t.equal(message.byteLength, copy.byteLength, 'the message was not transferred away from the main thread');
  t.same(Buffer.from(message), Buffer.from(copy), 'nor changed');
  const task = packRecords(P.name, block.records.slice(1).map((r) => r.bytes));
  t.equal(task.bytes.buffer.byteLength, task.bytes.byteLength, 'a task holds only its records, in a buffer of their own');
  t.equal(task.ends[task.ends.length - 1], block.records.slice(1).reduce((n, r) => n + r.bytes.length, 0), 'ending where the last record does');
});

t.test('the blocks of one sync response share tasks: blocks too small to go to a worker alone go together', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 2);
  t.teardown(() => pool.close());
  await pool.warm();
  const small = Array.from({ length: 6 }, () => blockOf(10, 4));
  await pool.preverify(small[0].block);
  t.equal(small[0].block.records.slice(1).filter((r) => cache.has(r.id)).length, 0, 'a block of 10 records alone is left to the main thread');
  await pool.preverify(...small.map((s) => s.block));
  for (const [i, { block, damaged }] of small.entries()) {
    const vouched = block.records.slice(1).filter((r) => cache.has(r.id));
    t.equal(vouched.length, 10 - damaged.size, `block ${i}: every good signature vouched for, with the others'`);
    t.notOk(vouched.some((r) => damaged.has(Buffer.from(r.id).toString('hex'))), `block ${i}: none of its damaged ones`);
  }
});

t.test('blocks queued together are checked in the order they came, so the next one to connect is ready first', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 2);
  t.teardown(() => pool.close());
  await pool.warm();
  // as a sync queues them: 30 blocks at once, each of two tasks (a share for each worker)
  const blocks = Array.from({ length: 30 }, () => blockOf(32, 1000).block);
  const done: number[] = [];
  await Promise.all(blocks.map((b, i) => pool.preverify(b).then(() => done.push(i))));
  t.equal(blocks.flatMap((b) => b.records.slice(1)).filter((r) => cache.has(r.id)).length, 30 * 32, 'every signature vouched for');
  const place = (i: number): number => done.indexOf(i);
  // Piscina's default moved a queued task to the back each time a worker finished: the first
  // blocks' second tasks ran after nearly every other block's
  t.ok([0, 1, 2, 3, 4].every((i) => place(i) < 10), `the first five blocks were among the first ten done (order done: ${done.join(' ')})`);
  t.ok(place(0) < place(29), 'the first block before the last');
});

t.test('a thread waiting for a block (settle) checks queued tasks no worker has taken, and vouches for good signatures only', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 1);
  t.teardown(() => pool.close());
  await pool.warm();
  // as a sync queues them: 16 blocks at once, more than the one worker holds
  const blocks = Array.from({ length: 16 }, () => blockOf(128, 8));
  const verified = blocks.map(({ block }) => pool.preverify(block));
  for (const [i, { block, damaged }] of blocks.entries()) {
    await pool.settle(verified[i]);
    const vouched = block.records.slice(1).filter((r) => cache.has(r.id));
    t.equal(vouched.length, 128 - damaged.size, `block ${i}: every good signature vouched for once it settled`);
    t.notOk(vouched.some((r) => damaged.has(Buffer.from(r.id).toString('hex'))), `block ${i}: none of its damaged ones`);
  }
  t.ok(pool.checkedHere > 0 && pool.checkedHere < 16 * 128, `the waiting thread checked ${pool.checkedHere} of the ${16 * 128} records, the worker the rest`);
  // with nothing queued, settle is a plain wait
  const before = pool.checkedHere;
  const { block } = blockOf(64, 1000);
  await pool.settle(pool.preverify(block));
  t.equal(block.records.slice(1).filter((r) => cache.has(r.id)).length, 64, 'a block the worker took whole is vouched for');
  t.ok(pool.checkedHere - before <= 64, 'and checked once');
});

t.test('a thread waiting with nothing queued takes the checks queued after it began; a wait already over checks nothing', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 1);
  t.teardown(() => pool.close());
  await pool.warm();
  // a block the one worker takes whole (its tasks all handed to it), so nothing stays queued
  const first = blockOf(256, 1000).block;
  const firstDone = pool.preverify(first);
  const waiting = pool.settle(firstDone);
  // as a sync's next response comes while the main thread waits for the one before
  const later = Array.from({ length: 8 }, () => blockOf(128, 1000).block);
  const laterDone = pool.preverify(...later);
  await waiting;
  t.ok(pool.checkedHere > 0, `while it waited for the first block, the thread checked ${pool.checkedHere} records queued after its wait began`);
  t.equal(first.records.slice(1).filter((r) => cache.has(r.id)).length, 256, 'and the first block is vouched for');
  await pool.settle(laterDone);
  t.equal(later.flatMap((b) => b.records.slice(1)).filter((r) => cache.has(r.id)).length, 8 * 128, 'as are the later ones');
  // a wait already over returns without checking what is queued (a sync response's promise, for its second block on)
  const more = Array.from({ length: 8 }, () => blockOf(128, 1000).block);
  const moreDone = pool.preverify(...more);
  const before = pool.checkedHere;
  await pool.settle(firstDone);
  t.equal(pool.checkedHere, before, 'settling a wait that is over checked nothing');
  await pool.settle(moreDone);
});

t.test('closing the pool ends the waits of checks still queued (processBlock then checks them)', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 1);
  await pool.warm();
  const blocks = Array.from({ length: 12 }, () => blockOf(128, 1000).block);
  const verified = blocks.map((b) => pool.preverify(b));
  await pool.close();
  await Promise.all(verified);
  t.ok(blocks.flatMap((b) => b.records.slice(1)).filter((r) => cache.has(r.id)).length < 12 * 128, 'every wait ended, with checks left undone');
});

t.test('a big block finding no worker up starts them for the blocks after it, without waiting for them', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 2);
  t.teardown(() => pool.close());
  const { block } = blockOf(600, 1000);
  await pool.preverify(block);
  t.equal(block.records.slice(1).filter((r) => cache.has(r.id)).length, 0, 'preverify returned before any worker had loaded');
  t.ok(pool.warming, 'and it started the workers');
  await pool.warm();
  t.equal(pool.ready, 2, 'which come up');
});

t.test('a block that comes while the workers start (a sync has begun) waits for them, and they check it', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 2);
  t.teardown(() => pool.close());
  const starting = pool.warm();
  t.ok(pool.warming, 'the workers are starting');
  const { block, damaged } = blockOf(64, 8);
  await pool.preverify(block);
  t.ok(pool.ready > 0, 'preverify returned once a worker was up');
  t.equal(block.records.slice(1).filter((r) => cache.has(r.id)).length, 64 - 8, 'and the workers vouched for every good signature (none left to the main thread)');
  t.equal(damaged.size, 8);
  await starting;
});

t.test('workers that exited idle count as down again: the next block is not held for their start', async (t) => {
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, 2, 200);
  t.teardown(() => pool.close());
  await pool.warm();
  t.ok(pool.ready > 0, 'the workers came up');
  await until('the idle workers exit', () => pool.started === 0, 10_000);
  t.equal(pool.ready, 0, 'after their idle timeout they exited, and none counts as up');
  const { block } = blockOf(64, 1000);
  await pool.preverify(block);
  t.equal(block.records.slice(1).filter((r) => cache.has(r.id)).length, 0, 'a block after that is left to the main thread');
});

t.test('the bundled verifier is built from the sources this process runs, kept in the bundle folder, and judges as they do', async (t) => {
  const kept = await cachedBundle(VERIFIER_ENTRY, bundleDir());
  t.ok(fileURLToPath(kept).startsWith(bundleDir()), `kept in the bundle folder (${bundleDir()}), the one built from the sources as they are now (core/bundle.mjs rebuilds it when one changes: test/bundle.test.ts)`);
  const code = readFileSync(fileURLToPath(kept), 'utf8');
  const url = await workerModuleUrl(VERIFIER_ENTRY);
  t.match(url, /^data:text\/javascript;base64,/, 'the workers get it in memory (idle workers start again later, when the file may be gone)');
  t.equal(Buffer.from(url.slice(url.indexOf(',') + 1), 'base64').toString('utf8'), code, 'the kept bundle, byte for byte');
  t.notOk(/from\s+["'][^"']*\.ts["']/.test(code), 'it imports no TypeScript');
  t.notOk(/from\s+["'](?![a-z]+:)/.test(code), 'and nothing by a bare or relative name (a data: URL cannot resolve one)');
  const { block, damaged } = blockOf(32, 4);
  const task = packRecords(P.name, block.records.slice(1).map((r) => r.bytes));
  for (const [what, module] of [['the kept bundle', url], ['a bundle built in memory (where the folder cannot be written)', await bundleUrl(VERIFIER_ENTRY)]] as const) {
    const bundled = (await import(module)) as { verifyBatch: typeof verifyBatch };
    const verdicts = bundled.verifyBatch(task);
    t.same(verdicts, verifyBatch(task), `${what}: the same verdicts as consensus/sig-verify.ts on the same records`);
    t.equal(verdicts.reduce((n, v) => n + v, 0), 32 - damaged.size, `${what}: every good signature passes, no damaged one`);
  }
});

t.test('where the bundle folder cannot be written, the workers get a bundle built in memory', async (t) => {
  const before = process.env.DOTS_BUNDLE_DIR;
  const notADir = join(t.testdir({ file: 'not a folder' }), 'file');
  process.env.DOTS_BUNDLE_DIR = notADir;
  t.teardown(() => {
    if (before === undefined) delete process.env.DOTS_BUNDLE_DIR;
    else process.env.DOTS_BUNDLE_DIR = before;
  });
  // an entry no pool of this process has asked for yet (each is looked up once per process)
  const entry = new URL('../consensus/pow.ts', import.meta.url);
  const url = await workerModuleUrl(entry);
  t.equal(url, await bundleUrl(entry), 'a module built from the sources in memory');
  const mod = (await import(url)) as Record<string, unknown>;
  t.equal((mod.compactToTarget as (bits: number) => bigint)(0x1d00ffff), 0xffffn << 208n, 'which loads and runs');
});
