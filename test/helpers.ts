// Shared test fixtures: a chain on regtest (in a temporary directory), keys and records.
import { readFileSync } from 'node:fs';
import type { Test } from 'tap';
import type { Store } from '../core/store.ts';
import type { Mempool } from '../core/mempool.ts';
import type { Chain, ChainOptions } from '../consensus/chain.ts';
import { openChainStack } from '../node/chain-stack.ts';
import { NETWORKS, type NetworkName, type NetworkParams } from '../consensus/params.ts';
import { Miner, chainWork } from '../mining/miner.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { addressOf } from '../core/address.ts';
import { randomBytes } from 'node:crypto';
import { makeBlock, type Block, type Header } from '../core/block.ts';
import { merkleRoot } from '../core/merkle.ts';
import { Kind, makeRec, signRecord, commitmentOf, type NameClaim, type NameCommit, type NodeAnnounce, type Rec } from '../core/records.ts';
import { encodeEntry } from '../core/state.ts';
import { toHex } from '../core/hash.ts';
import { compactToTarget, hashMeetsTarget } from '../consensus/pow.ts';
import { nextBits } from '../consensus/validate.ts';
import type { IndexEntry } from '../consensus/chain.ts';
import { tmpDir } from './util/tmp.ts';

export interface Key {
  secret: Uint8Array;
  pub: Uint8Array;
  address: Uint8Array;
}

export function newKey(): Key {
  const secret = generateSecretKey();
  const pub = publicKeyOf(secret);
  return { secret, pub, address: addressOf(pub) };
}

export interface TestChain {
  chain: Chain;
  store: Store;
  /** the pending pool, following the chain's tip as a node's does */
  pool: Mempool;
  miner: Miner;
  key: Key;
  dir: string;
  close(): Promise<void>;
}

export async function openChain(
  t: { teardown(fn: () => void | Promise<void>): void },
  opts: ChainOptions & { network?: NetworkName; params?: NetworkParams; dir?: string; key?: Key } = {},
): Promise<TestChain> {
  const dir = opts.dir ?? tmpDir(t);
  const stack = await openChainStack(dir, opts.params ?? NETWORKS[opts.network ?? 'regtest'], opts);
  const { chain, store, pool } = stack;
  const key = opts.key ?? newKey();
  const miner = new Miner(chainWork(chain, pool), key.address);
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await miner.stop();
    await stack.close();
  };
  t.teardown(close);
  return { chain, store, pool, miner, key, dir, close };
}

/** Options for hand-built blocks: every field a rule test may want to get wrong. */
export interface BlockOpts {
  time?: number;
  bits?: number;
  merkleRoot?: Uint8Array;
  amount?: number;
  coinbaseHeight?: number;
  /** find a nonce that fails the target instead of one that meets it */
  badPow?: boolean;
  reward?: Uint8Array;
}

/** A block on `parent` with the given records after a fresh coinbase, with its nonce solved. */
export function blockOn(chain: Chain, parent: IndexEntry, recs: Rec[], o: BlockOpts = {}): Block {
  const p = chain.params;
  const height = parent.height + 1;
  const coinbase = makeRec({
    kind: Kind.Coinbase,
    height: o.coinbaseHeight ?? height,
    rewardAddress: o.reward ?? new Uint8Array(20),
    amount: o.amount ?? p.subsidy(height),
    extraNonce: randomBytes(8),
    note: '',
  });
  const records = [coinbase, ...recs];
  const header: Header = {
    version: 1,
    prev: parent.hash,
    merkleRoot: o.merkleRoot ?? merkleRoot(records.map((r) => r.id)),
    time: o.time ?? Math.max(parent.header.time + 1, chain.parentInfo(parent).medianTimePast + 1),
    bits: o.bits ?? nextBits(p, chain.anchor, { height: parent.height, time: parent.header.time }),
    nonce: 0,
  };
  const target = compactToTarget(header.bits);
  for (let nonce = 0; ; nonce++) {
    const b = makeBlock({ ...header, nonce }, records);
    if (hashMeetsTarget(b.hash, target) !== (o.badPow === true)) return b;
  }
}

export async function extend(chain: Chain, parent: IndexEntry, n: number, o: BlockOpts & { recs?: Rec[] } = {}): Promise<IndexEntry> {
  let e = parent;
  for (let i = 0; i < n; i++) {
    const b = blockOn(chain, e, i === 0 ? (o.recs ?? []) : [], o.time !== undefined ? { ...o, time: o.time + i } : o);
    const r = await chain.processBlock(b);
    if (r.status === 'invalid' || r.status === 'orphan') throw new Error(`extend: block rejected: ${r.code}`);
    e = chain.index.get(r.hex) as IndexEntry;
  }
  return e;
}

/** The state as comparable JSON-safe pairs. */
export function stateDump(chain: Chain): Array<[string, string]> {
  return [...chain.state.map.entries()].map(([k, v]): [string, string] => [k, toHex(encodeEntry(v))]).sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** The real Bitcoin headers of test/fixtures/headers.tsv, with their display hashes. */
export function readHeaderFixtures(): Array<{ name: string; header: Uint8Array; display: string }> {
  const text = readFileSync(new URL('./fixtures/headers.tsv', import.meta.url), 'utf8');
  const rows = text
    .split(/\r?\n/)
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => l.split('\t'));
  if (rows.length === 0) throw new Error('headers.tsv: no rows parsed');
  return rows.map(([name, hex, display]) => ({ name, header: Uint8Array.from(Buffer.from(hex, 'hex')), display }));
}

/** A copy of an 80-byte header with another nonce. */
export function withNonce(header: Uint8Array, nonce: number): Uint8Array {
  const h = header.slice();
  new DataView(h.buffer, h.byteOffset, 80).setUint32(76, nonce >>> 0, true);
  return h;
}

// Names on a regtest chain, for the rule tests: a commitment, its reveal, a node's announcement.
export function commitRec(k: Key, name: string, salt: Uint8Array): Rec {
  return signRecord<NameCommit>('regtest', k.secret, { kind: Kind.NameCommit, pubkey: k.pub, commitment: commitmentOf(name, salt, k.pub) });
}
export function claimRec(k: Key, name: string, salt: Uint8Array): Rec {
  return signRecord<NameClaim>('regtest', k.secret, { kind: Kind.NameClaim, name, pubkey: k.pub, salt });
}
export function announceRec(k: Key): Rec {
  return signRecord<NodeAnnounce>('regtest', k.secret, { kind: Kind.NodeAnnounce, pubkey: k.pub, sipUris: [`sip:${k.address[0]}.node.test`], p2pAddrs: [], rewardAddress: k.address, seq: 1 });
}

/** Commits to every (key, name) pair in one block and reveals them in the next, in order, with `more` records beside the reveals. */
export async function claimAll(chain: Chain, parent: IndexEntry, claims: Array<[Key, string]>, more: Rec[] = []): Promise<IndexEntry> {
  const salt = randomBytes(32);
  const tip = await extend(chain, parent, 1, { recs: claims.map(([k, n]) => commitRec(k, n, salt)) });
  return extend(chain, tip, 1, { recs: [...claims.map(([k, n]) => claimRec(k, n, salt)), ...more] });
}

/** Asserts that a block of `recs` on `parent` is refused with `code`, the tip unchanged. */
export async function refusesBlock(t: Test, chain: Chain, parent: IndexEntry, recs: Rec[], code: string, why: string): Promise<void> {
  const before = chain.tip.hex;
  const r = await chain.processBlock(blockOn(chain, parent, recs));
  t.equal((r as { code?: string }).code, code, `${why}: refused with ${code}`);
  t.equal(chain.tip.hex, before, `${why}: tip unchanged`);
}
