// Validation and connection speed: builds a regtest chain of blocks full of signed records
// (name commitments and transfers), then times a fresh node processing every block from its
// bytes (decode, PoW, Merkle root, signatures, state, one LevelDB batch per block), and
// measures the bytes on disk per record. The main figure checks signatures the way a syncing node
// does, on the signature workers (every core but the main thread's) and on the main thread while
// it waits for them, as blocks connect; a second pass checks them on the main thread only, for
// comparison; a third times signature checks alone on the same records on every core, what
// validation could at best reach (the faster of a worker on every core and the node's own
// arrangement), with the verifier in use and with OpenSSL (the one before libsecp256k1, when
// signatures were nearly all of validation's cost). The three
// run in rounds after an untimed pass, and each figure is printed as the rounds' median and each
// round's own.
// Every record pays its fee at one unit per byte, as on the public networks (regtest asks none):
// each commitment comes from a key of its own (as before fees), funded by the miner first, so
// each record also moves its signer's balance, which is what fees cost validation; the funding
// transfers are records validated too.
import { mkdtempSync, rmSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Miner, chainWork } from '../mining/miner.ts';
import { openChainStack } from '../node/chain-stack.ts';
import { NETWORKS } from '../consensus/params.ts';
import { decodeBlock, makeBlock, type Block } from '../core/block.ts';
import { checkRecordSignature, signRecord, Kind, type NameCommit, type Transfer } from '../core/records.ts';
import { SigCache, VERIFIER, generateSecretKey, publicKeyOf, type VerifierName } from '../core/sig.ts';
import { SigPool, VERIFIER_ENTRY, defaultSigWorkers } from '../consensus/sigpool.ts';
import { bundleUrl } from '../core/worker-code.ts';
import { bundleDir, cachedBundle } from '../core/bundle.mjs';
import { HASHER } from '../core/hash.ts';
import { median } from './stats.ts';
import { silentLogger } from '../core/log.ts';
import { addressOf } from '../core/address.ts';
import { availableParallelism } from 'node:os';
import type { BenchOptions } from './index.ts';

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    n += f.isDirectory() ? dirBytes(p) : statSync(p).size;
  }
  return n;
}

/** passes of each kind (workers, main thread only, every signature known) and timings of the checks alone */
const ROUNDS = 3;

/** regtest with the public networks' least fee rate */
const P = { ...NETWORKS.regtest, minFeeRate: 1 };

export async function benchChain(o: BenchOptions & { records?: number; perBlock?: number }): Promise<Array<Record<string, string | number>>> {
  const total = o.records ?? 10_000;
  const perBlock = o.perBlock ?? 200;
  const p = P;
  const root = mkdtempSync(join(tmpdir(), 'dots-bench-chain-'));
  try {
    const srcStack = await openChainStack(join(root, 'src'), p);
    const { chain: src, pool } = srcStack;
    const minerKey = generateSecretKey();
    const minerPub = publicKeyOf(minerKey);
    const miner = new Miner(chainWork(src, pool), addressOf(minerPub));
    await miner.mineBlocks(2); // funds for transfers
    let nonce = 0;
    // the signers of the commitments, each funded for its fees
    const signers = Array.from({ length: Math.ceil(total / 2) }, () => generateSecretKey());
    for (let i = 0; i < signers.length; i += perBlock) {
      for (const sk of signers.slice(i, i + perBlock)) pool.add(signRecord<Transfer>(p.name, minerKey, { kind: Kind.Transfer, pubkey: minerPub, to: addressOf(publicKeyOf(sk)), amount: 100_000, nonce: nonce++ }, p.minFeeRate));
      await miner.mineBlocks(1);
    }
    let made = 0;
    while (made < total) {
      const n = Math.min(perBlock, total - made);
      for (let i = 0; i < n; i++, made++) {
        if (i % 2 === 0) {
          const sk = signers[made / 2];
          pool.add(signRecord<NameCommit>(p.name, sk, { kind: Kind.NameCommit, pubkey: publicKeyOf(sk), commitment: randomBytes(32) }, p.minFeeRate));
        } else {
          pool.add(signRecord<Transfer>(p.name, minerKey, { kind: Kind.Transfer, pubkey: minerPub, to: randomBytes(20), amount: 1000, nonce: nonce++ }, p.minFeeRate));
        }
      }
      await miner.mineBlocks(1);
    }
    const blocks: Uint8Array[] = [];
    for (let h = 1; h <= src.tip.height; h++) blocks.push((await src.getBlockBytes(src.main[h].hex)) as Uint8Array);
    await srcStack.close();

    // the funding transfers are records to validate too
    const records = total + signers.length;
    // Each pass takes about a second, and this machine's speed moves by a fifth from one second to
    // the next: the passes run in rounds, each round all three one after another, and the table
    // gives each figure's median with every round's. An untimed pass comes first: the first run of
    // the main thread's code is V8's unoptimized one (a first round timed it at 0.54 of the bound
    // where the next two gave 0.67), and a sync runs that code for hours, warm.
    await replay(join(root, 'dst-warm-up'), blocks, true);
    // every record's id, for the pass that finds each signature checked already
    const ids = blocks.flatMap((bytes) => decodeBlock(bytes, p.maxBlockBytes).records.map((r) => r.id));
    const rounds: Array<{ workers: Replay; mainOnly: Replay; known: Replay; alone: VerifyRates; bound: number }> = [];
    for (let i = 0; i < ROUNDS; i++) {
      const workers = await replay(join(root, `dst-${i}`), blocks, true);
      const mainOnly = await replay(join(root, `dst-main-thread-${i}`), blocks, false);
      const known = await replay(join(root, `dst-known-${i}`), blocks, false, ids);
      const alone = await verifyRates(blocks);
      rounds.push({ workers, mainOnly, known, alone, bound: Math.max(alone.workers, alone.node) });
    }
    const cores = availableParallelism();
    const workers = rounds[0].workers;
    const opensslBound = VERIFIER === 'openssl' ? median(rounds.map((r) => r.bound)) : await workersRate(blocks, 'openssl');
    const cold = await coldBlock();
    const t0 = process.hrtime.bigint();
    await bundleUrl(VERIFIER_ENTRY);
    const bundleMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const t1 = process.hrtime.bigint();
    await cachedBundle(VERIFIER_ENTRY, bundleDir());
    const keptMs = Number(process.hrtime.bigint() - t1) / 1e6;
    const rate = (r: Replay): number => records / r.secs;
    /** the median of the rounds' figures, then each round's */
    const each = (f: (r: (typeof rounds)[number]) => number, digits = 0): string => {
      const v = rounds.map(f);
      const fmt = (x: number): string => (digits === 0 ? Math.round(x).toString() : x.toFixed(digits));
      return `${fmt(median(v))} (${v.map(fmt).join(', ')})`;
    };
    return [
      { metric: 'signature verifier', value: VERIFIER },
      { metric: 'SHA-256 (record ids, Merkle trees, signed digests)', value: HASHER },
      { metric: 'blocks', value: blocks.length },
      { metric: 'records', value: records },
      { metric: `rounds (the median, then each round's)`, value: ROUNDS },
      { metric: 'seconds', value: each((r) => r.workers.secs, 2) },
      { metric: 'blocks/s', value: each((r) => blocks.length / r.workers.secs) },
      { metric: 'records/s', value: each((r) => rate(r.workers)) },
      { metric: 'records/s, signatures on the main thread only', value: each((r) => rate(r.mainOnly)) },
      { metric: `signature checks/s alone, a worker on each of the ${cores} cores`, value: each((r) => r.alone.workers) },
      { metric: `signature checks/s alone, as the node checks: ${defaultSigWorkers()} worker(s) and the main thread`, value: each((r) => r.alone.node) },
      { metric: 'signature checks/s, the bound (the faster of the two)', value: each((r) => r.bound) },
      { metric: 'records/s / the bound', value: each((r) => rate(r.workers) / r.bound, 2) },
      // What decides that ratio: the node's own work per record (decoding, state, undo data,
      // LevelDB), which takes CPU the checks need: the main thread's, and LevelDB's and the
      // collector's threads beside it. With every core checking at the bound's rate and that
      // work added, validation can at best reach cores / (cores / bound + 1 / own) records a
      // second, `own` being records per CPU-second of that work.
      { metric: 'records/s, the main thread alone with every signature already checked', value: each((r) => rate(r.known)) },
      { metric: '  records per CPU-second of that pass (every thread of the process)', value: each((r) => records / r.known.cpuSecs) },
      { metric: `  so at best, on ${cores} cores: records/s / the bound`, value: each((r) => ceiling(cores, r.bound, records / r.known.cpuSecs), 2) },
      { metric: `  records per CPU-second of it that 0.9 of the bound would need`, value: each((r) => needed(cores, r.bound, 0.9)) },
      ...(VERIFIER === 'openssl'
        ? []
        : [
            { metric: `signature checks/s alone with OpenSSL (the verifier before libsecp256k1), a worker on each of the ${cores} cores`, value: Math.round(opensslBound) },
            { metric: 'records/s / the OpenSSL bound', value: (median(rounds.map((r) => rate(r.workers))) / opensslBound).toFixed(2) },
          ]),
      { metric: 'a gossiped block of 64 new records, no signature worker up: ms to check them', value: cold.checkMs.toFixed(1) },
      { metric: 'starting the signature workers (what that block waited for before): ms', value: cold.startMs.toFixed(0) },
      { metric: 'their code, kept in the bundle folder: ms to find it (once per process, before the first start)', value: keptMs.toFixed(0) },
      { metric: 'building their code from the sources (after a source changed): ms', value: bundleMs.toFixed(0) },
      { metric: 'bytes on disk per record', value: Math.round(workers.disk / records) },
      // undo data is kept for the last undoDepth blocks only: a chain many times longer keeps all
      // the rest per record, and its undo data per record tends to nothing
      { metric: `bytes on disk per record, a chain long past the ${p.undoDepth} blocks of undo data`, value: Math.round((workers.disk - partBytes(workers.usage, 'U')) / records) },
      // where they go: keys and values as LevelDB is handed them, per record, largest first; the
      // rest of the files is LevelDB's own (its log, table indexes and per-entry overhead)
      ...[...workers.usage]
        .map(([part, u]) => ({ part, bytes: u.keyBytes + u.valueBytes, u }))
        .sort((a, b) => b.bytes - a.bytes)
        .map(({ part, bytes, u }) => ({ metric: `  of which ${PARTS[part] ?? `state ${part.slice(1)}`} (${u.entries} ${u.entries === 1 ? "entry" : "entries"}; keys ${(u.keyBytes / records).toFixed(1)}, values ${(u.valueBytes / records).toFixed(1)})`, value: (bytes / records).toFixed(1) })),
      { metric: '  of which LevelDB\'s own', value: ((workers.disk - storedBytes(workers.usage)) / records).toFixed(1) },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Signature checks a second of the same records, two ways of using every core. */
export interface VerifyRates {
  /** a worker on every core, the main thread only handing out the work (Piscina alone) */
  workers: number;
  /** as a node checks them (defaultSigWorkers: a worker on every core but one, and the main thread) */
  node: number;
}

/**
 * The signature bound of the same records on this machine: every block's signatures checked and
 * nothing else done, in records a second, the faster of the two ways of using every core
 * (verifyRates). Validation can at best reach it, since every record carries one signature.
 */
export async function verifyBound(blocks: Uint8Array[]): Promise<number> {
  const r = await verifyRates(blocks);
  return Math.max(r.workers, r.node);
}

/** Both ways of checking every block's signatures on every core, each timed alone. */
export async function verifyRates(blocks: Uint8Array[]): Promise<VerifyRates> {
  const decoded = decodeAll(blocks);
  return { workers: await checkRate(decoded, availableParallelism(), false), node: await checkRate(decoded, defaultSigWorkers(), true) };
}

function decodeAll(blocks: Uint8Array[]): Block[] {
  return blocks.map((bytes) => decodeBlock(bytes, P.maxBlockBytes));
}

/**
 * A worker on every core checking with `verifier` (DOTS_VERIFIER, which workers read when they
 * start), to compare with the one in use. The main thread's verifier is fixed when the process
 * starts, so the node's way (where it checks too) cannot be timed with another one.
 */
async function workersRate(blocks: Uint8Array[], verifier: VerifierName): Promise<number> {
  const before = process.env.DOTS_VERIFIER;
  process.env.DOTS_VERIFIER = verifier;
  try {
    return await checkRate(decodeAll(blocks), availableParallelism(), false);
  } finally {
    if (before === undefined) delete process.env.DOTS_VERIFIER;
    else process.env.DOTS_VERIFIER = before;
  }
}

/**
 * Signature checks a second with `threads` workers, the main thread checking too where `settle`.
 * Each timing has a signature cache of its own, so the blocks are shared, decoded once.
 */
async function checkRate(decoded: readonly Block[], threads: number, settle: boolean): Promise<number> {
  const p = P;
  const signedRecords = (cached: (id: Uint8Array) => boolean): number => decoded.reduce((n, b) => n + b.records.slice(1).filter((r) => !cached(r.id)).length, 0);
  if (threads === 0) {
    // one core: the main thread alone, as processBlock checks
    const t0 = process.hrtime.bigint();
    for (const b of decoded) for (const r of b.records.slice(1)) checkRecordSignature(p.name, r.body);
    return signedRecords(() => false) / (Number(process.hrtime.bigint() - t0) / 1e9);
  }
  const cache = new SigCache(1_000_000);
  const pool = new SigPool(p.name, cache, silentLogger, threads);
  try {
    // the workers started, then a warm-up block per worker at once, so starting them (and
    // building their code) is not counted
    await pool.warm();
    await Promise.all(decoded.slice(-threads).map((b) => pool.preverify(b)));
    // what the warm-up checked is cached and skipped: count only what is left
    const signed = signedRecords((id) => cache.has(id));
    const t0 = process.hrtime.bigint();
    const verified = decoded.map((b) => pool.preverify(b));
    if (settle) for (const v of verified) await pool.settle(v);
    else await Promise.all(verified);
    return signed / (Number(process.hrtime.bigint() - t0) / 1e9);
  } finally {
    await pool.close();
  }
}

/**
 * A block of 64 records none of which the node has seen, finding the signature workers down (they
 * exit when idle, and blocks come a minute apart): the time to check its signatures, preverify
 * and then what it left to the main thread, as network.ts does with a gossiped block; and the time
 * the workers take to start, which the block waited for until preverify left cold blocks alone.
 */
async function coldBlock(): Promise<{ checkMs: number; startMs: number }> {
  const block = warmupBlock();
  const cache = new SigCache();
  const pool = new SigPool(P.name, cache, silentLogger, Math.max(1, defaultSigWorkers()));
  try {
    const t0 = process.hrtime.bigint();
    await pool.preverify(block);
    for (const r of block.records.slice(1)) if (!cache.has(r.id)) checkRecordSignature(P.name, r.body);
    const checkMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const t1 = process.hrtime.bigint();
    await pool.warm();
    return { checkMs, startMs: Number(process.hrtime.bigint() - t1) / 1e6 };
  } finally {
    await pool.close();
  }
}

/** Records signed by fresh keys, in a block that is no chain's: enough of them to go to a worker. */
function warmupBlock(): Block {
  const records = Array.from({ length: 64 }, () => {
    const sk = generateSecretKey();
    return signRecord<NameCommit>(P.name, sk, { kind: Kind.NameCommit, pubkey: publicKeyOf(sk), commitment: randomBytes(32) }, P.minFeeRate);
  });
  return makeBlock({ version: 1, prev: new Uint8Array(32), merkleRoot: new Uint8Array(32), time: 0, bits: 0, nonce: 0 }, [records[0], ...records]);
}

/** Keys and values one part of the store (a layout prefix) holds. */
function partBytes(usage: ReadonlyMap<string, { keyBytes: number; valueBytes: number }>, part: string): number {
  const u = usage.get(part);
  return u === undefined ? 0 : u.keyBytes + u.valueBytes;
}

/** Keys and values a store holds in all, as LevelDB is handed them (Store.usage summed). */
export function storedBytes(usage: ReadonlyMap<string, { keyBytes: number; valueBytes: number }>): number {
  let n = 0;
  for (const u of usage.values()) n += u.keyBytes + u.valueBytes;
  return n;
}

/** What each part of the store holds, per record: the layout's prefixes by name. */
const PARTS: Record<string, string> = { B: 'block bodies', H: 'block index', U: 'undo data', R: 'record index (id -> block, position)', T: 'tip', V: 'store version', P: 'pending pool' };

/**
 * The best validation can do against the bound (records/s over `bound`) when the checks
 * take `cores / bound` CPU-seconds a record and the node's own work `1 / main` more.
 */
export function ceiling(cores: number, bound: number, main: number): number {
  return cores / (cores / bound + 1 / main) / bound;
}

/** The node's own records per CPU-second at which `ceiling` reaches `ratio` (Infinity at 1 or more). */
export function needed(cores: number, bound: number, ratio: number): number {
  return ratio >= 1 ? Infinity : 1 / (cores / (ratio * bound) - cores / bound);
}

/** What one pass of a fresh node over every block took and left. */
interface Replay {
  secs: number;
  /** CPU-seconds the process spent meanwhile, every thread of it (LevelDB's and the collector's too) */
  cpuSecs: number;
  disk: number;
  usage: Map<string, { entries: number; keyBytes: number; valueBytes: number }>;
}

/**
 * A fresh node in `dir` processes every block in order; seconds taken, bytes on disk, and what the
 * store holds. The records with `known` ids are in the chain's signature cache first (as if
 * checked elsewhere): with every id, the node's own work alone.
 */
async function replay(dir: string, blocks: Uint8Array[], sigWorkers: boolean, known: readonly Uint8Array[] = []): Promise<Replay> {
  const p = P;
  const { chain, store, close } = await openChainStack(dir, p, { sigWorkers: sigWorkers ? defaultSigWorkers() : 0 });
  for (const id of known) chain.sigs.add(id);
  let secs: number;
  let cpuSecs: number;
  let usage: Awaited<ReturnType<typeof store.usage>>;
  try {
    // the workers started, as during a sync (each compiles the verifier once at start), then a
    // block of records that are in no chain for each
    if (sigWorkers) {
      await chain.warmVerifier();
      await Promise.all(Array.from({ length: availableParallelism() }, () => chain.settle(chain.preverify(warmupBlock()))));
    }
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    // As sync does: each block's signatures go to the workers as soon as it is decoded (a sync
    // response's blocks as the response comes), and each block connects when its own are done, so
    // connecting overlaps the checks of the blocks after it.
    const decoded: Block[] = [];
    const verified: Array<Promise<void>> = [];
    for (const bytes of blocks) {
      const b = decodeBlock(bytes, p.maxBlockBytes);
      decoded.push(b);
      verified.push(chain.preverify(b));
    }
    for (let i = 0; i < decoded.length; i++) {
      await chain.settle(verified[i]);
      const r = await chain.processBlock(decoded[i]);
      if (r.status !== 'connected') throw new Error(`bench block not connected: ${JSON.stringify(r)}`);
    }
    secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    cpuSecs = (cpu.user + cpu.system) / 1e6;
    usage = await store.usage();
  } finally {
    await close();
  }
  return { secs, cpuSecs, disk: dirBytes(dir), usage };
}
