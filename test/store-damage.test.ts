// A stopped node's data directory, damaged in each way a disk, a crash or a careless hand can
// damage it: the node must refuse to start with one line saying what is wrong and how to
// recover, never recreate or repair the store in place (losing more), and never half-start.
import t, { type Test } from 'tap';
import { cpSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { openChain, newKey } from './helpers.ts';
import { tmpDir } from './util/tmp.ts';
import { runDots, startNode } from './util/proc.ts';
import { signRecord, Kind, type NameCommit } from '../core/records.ts';
import { fromHex, toHex } from '../core/hash.ts';
import { STORE_VERSION, Store } from '../core/store.ts';
import { decode, encode } from '../core/encoding.ts';
import { layout } from '../core/layout.ts';
import { keys } from '../core/state.ts';
import { CHAIN_DIR } from '../node/chain-stack.ts';

/** A regtest data directory whose chain has 150 blocks, records in some of them; stopped. */
async function sourceDir(): Promise<{ dir: string; hashes: string[]; recordIds: string[] }> {
  const dir = tmpDir(t, 'dots-damage-src-');
  const c = await openChain(t, { dir });
  const recordIds: string[] = [];
  for (let i = 0; i < 150; i++) {
    if (i % 10 === 5) {
      const k = newKey();
      const rec = signRecord<NameCommit>('regtest', k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: randomBytes(32) });
      c.pool.add(rec);
      recordIds.push(toHex(rec.id));
    }
    await c.miner.mineBlocks(1);
  }
  const hashes = c.chain.main.map((e) => e.hex);
  await c.close();
  return { dir, hashes, recordIds };
}

const src = await sourceDir();

/** A copy of the source directory with `damage` done to its store (opened and closed here). */
async function damaged(damage: (db: Store['db']) => Promise<void>): Promise<string> {
  const dir = tmpDir(t, 'dots-damage-');
  cpSync(src.dir, dir, { recursive: true });
  const store = await Store.open(join(dir, CHAIN_DIR));
  await damage(store.db);
  await store.close();
  return dir;
}

/** Every key and value of the store, hashed: what a refused start must leave as it found it. */
async function contents(dir: string): Promise<string> {
  const store = await Store.open(join(dir, CHAIN_DIR));
  const h = createHash('sha256');
  let n = 0;
  for await (const [k, v] of store.db.iterator()) {
    h.update(k).update('\0').update(v).update('\0');
    n++;
  }
  await store.close();
  return `${n} entries ${h.digest('hex')}`;
}

/** The files that hold the data (tables, log, manifest), for a store that does not open at all. */
function tables(dir: string): string {
  const chain = join(dir, CHAIN_DIR);
  return readdirSync(chain)
    .filter((f) => /\.(ldb|log)$|^MANIFEST-/.test(f))
    .map((f) => `${f}:${statSync(join(chain, f)).size}`)
    .sort()
    .join(' ');
}

async function refused(t: Test, dir: string, reason: RegExp, unopenable = false): Promise<void> {
  const before = unopenable ? tables(dir) : await contents(dir);
  const r = await runDots(['node', '--network', 'regtest', '--datadir', dir, '--api-port', '0'], 30_000);
  t.equal(r.code, 2, 'refused with exit code 2');
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line: ${r.stderr.trim().slice(0, 300)}`);
  t.match(lines[0], /^dots: the chain database in .* is damaged: /, 'says the database is damaged');
  t.match(lines[0], reason, 'says what is wrong');
  t.match(lines[0], /move .* away .* start again: the node syncs the chain from its peers/, 'says how to recover');
  t.notMatch(r.stdout, /api:/, 'never got as far as serving the API');
  t.equal(unopenable ? tables(dir) : await contents(dir), before, 'the store holds what it held');
}

const mid = 70;
const top = src.hashes.length - 1;

t.test('a sound copy starts: the damage below is what the node refuses', async (t) => {
  const dir = await damaged(async () => undefined);
  const node = await startNode(t, { datadir: dir, args: ['--api-port', '0'] });
  t.equal((await node.status()).tip, src.hashes[top], 'the same tip');
  await node.stop();
});

t.test('CURRENT deleted: refused, the tables kept (LevelDB would have started an empty database and deleted them)', async (t) => {
  const dir = tmpDir(t, 'dots-damage-');
  cpSync(src.dir, dir, { recursive: true });
  rmSync(join(dir, CHAIN_DIR, 'CURRENT'));
  t.not(tables(dir), '', 'the tables are there');
  await refused(t, dir, /holds files but no database that opens/, true);
});

t.test('a recent block body deleted', async (t) => {
  await refused(t, await damaged((db) => db.del(layout.block(src.hashes[top - 3]))), new RegExp(`main-chain block ${top - 3} .* has no body`));
});

t.test('a block body overwritten with garbage', async (t) => {
  await refused(t, await damaged((db) => db.put(layout.block(src.hashes[top]), randomBytes(300))), new RegExp(`the body of main-chain block ${top} .* does not read`));
});

t.test('a block body swapped for another block', async (t) => {
  await refused(
    t,
    await damaged(async (db) => db.put(layout.block(src.hashes[top]), (await db.get(layout.block(src.hashes[top - 1]))) as Uint8Array)),
    new RegExp(`the body of main-chain block ${top} .* is not that block`),
  );
});

t.test('an index entry deleted in the middle of the chain', async (t) => {
  await refused(t, await damaged((db) => db.del(layout.index(src.hashes[mid]))), new RegExp(`a hole below block ${mid + 1} `));
});

t.test('an index entry garbled', async (t) => {
  await refused(t, await damaged((db) => db.put(layout.index(src.hashes[mid]), randomBytes(40))), /the block index does not read/);
});

t.test('the undo data of a recent block deleted', async (t) => {
  await refused(t, await damaged((db) => db.del(layout.undo(src.hashes[top - 1]))), new RegExp(`the undo data of main-chain block ${top - 1} .* is missing`));
});

t.test('a state entry garbled', async (t) => {
  await refused(t, await damaged((db) => db.put(layout.state(keys.account(newKey().address)), randomBytes(12))), /the chain state does not read/);
});

t.test('the tip pointer deleted, or pointing nowhere', async (t) => {
  await refused(t, await damaged((db) => db.del(layout.tip)), /it has no chain tip/);
  await refused(t, await damaged((db) => db.put(layout.tip, randomBytes(32))), /is not in the block index/);
});

t.test('the network marker deleted', async (t) => {
  await refused(t, await damaged((db) => db.del(layout.meta)), /a chain tip but no network marker/);
});

t.test('a record location deleted', async (t) => {
  // The records sit in blocks 6, 16, ...: the last ones within the recent blocks checked at every start.
  const id = src.recordIds[src.recordIds.length - 1];
  await refused(t, await damaged((db) => db.del(layout.record(fromHex(id)))), /the record index does not locate record 1 of main-chain block/);
});

t.test('a LevelDB log cut short: the node starts on the shorter chain the store still holds, and says how many blocks it lost', async (t) => {
  const dir = tmpDir(t, 'dots-rollback-');
  const first = await startNode(t, { datadir: dir, args: ['--api-port', '0'] });
  for (let i = 0; i < 6; i++) await first.mine(10);
  const reached = (await first.status()).height;
  await first.stop();
  // LevelDB replays its log at open and stops at the first damaged record: what came after is gone
  const chain = join(dir, CHAIN_DIR);
  const log = readdirSync(chain).filter((f) => f.endsWith('.log')).sort().pop();
  if (log === undefined) throw new Error('no LevelDB log in the store');
  const size = statSync(join(chain, log)).size;
  truncateSync(join(chain, log), Math.floor(size * 0.6));
  const second = await startNode(t, { datadir: dir, args: ['--api-port', '0'] });
  const now = (await second.status()).height;
  t.ok(now < reached, `the store holds a shorter chain (${now} of ${reached} blocks)`);
  const said = second.lines.find((l) => /were lost from the store/.test(l));
  t.ok(said, 'the node says so');
  t.match(said ?? '', new RegExp(`ends at block ${now}, but this node had reached block ${reached} .*: ${reached - now} blocks were lost from the store .* synced from peers again`));
  await second.stop();
  const third = await startNode(t, { datadir: dir, args: ['--api-port', '0'] });
  t.notOk(third.lines.some((l) => /were lost from the store/.test(l)), 'once said, the next start is quiet (the mark follows the chain again)');
  await third.stop();
});

t.test('a data directory of an older store version is refused in one line, left as it was', async (t) => {
  const dir = await damaged(async (db) => {
    const meta = decode((await db.get(layout.meta)) as Uint8Array) as [number, string, string];
    await db.put(layout.meta, encode([STORE_VERSION - 1, meta[1], meta[2]]));
  });
  const before = await contents(dir);
  const r = await runDots(['node', '--network', 'regtest', '--datadir', dir, '--api-port', '0'], 30_000);
  t.equal(r.code, 2, 'refused with exit code 2');
  t.match(r.stderr.trim(), new RegExp(`^dots: data directory .* holds a chain of store version ${STORE_VERSION - 1}, made under rules this node no longer follows .*: start a new chain with another --datadir$`));
  t.equal(await contents(dir), before, 'nothing written');
});
