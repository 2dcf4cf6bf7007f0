// `dots bench presence`: what presence costs the chain today, the baseline for issue 17's compact
// form. A population of users at one node changes state (online, offline) a few times a day; each
// change is one Binding record signed by the node, as telecom/presence.ts makes them. The
// benchmark claims the users' names on a regtest chain, mines a sample of their changes into
// blocks, and measures the bytes each change takes in the blocks and on disk; from those it
// extrapolates the model (users x changes a day) to the chain and to 10^9 users, against what
// mainnet's blocks can carry.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Miner, chainWork } from '../mining/miner.ts';
import { openChainStack } from '../node/chain-stack.ts';
import { NETWORKS } from '../consensus/params.ts';
import { signRecord, commitmentOf, Kind, type Binding, type Unsigned, type NameClaim, type NameCommit, type NodeAnnounce, type Rec } from '../core/records.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { addressOf } from '../core/address.ts';
import type { BenchOptions } from './index.ts';
import { storedBytes } from './chain.ts';

const DAY = 86_400;

export async function benchPresence(o: BenchOptions & { users?: number; sample?: number; changesPerDay?: number }): Promise<Array<Record<string, string | number>>> {
  const users = o.users ?? 100_000;
  const changesPerDay = o.changesPerDay ?? 4;
  // the sample of users whose changes are really signed, mined and stored; bytes per change do not
  // depend on how many users there are
  const sample = Math.min(users, o.sample ?? 1_000);
  const p = NETWORKS.regtest;
  const root = mkdtempSync(join(tmpdir(), 'dots-bench-presence-'));
  try {
    const stack = await openChainStack(join(root, 'node'), p);
    const { chain, pool, store } = stack;
    const key = generateSecretKey();
    const pub = publicKeyOf(key);
    const nodeId = addressOf(pub);
    const miner = new Miner(chainWork(chain, pool), nodeId);
    const sign = <T extends NameCommit | NameClaim | NodeAnnounce | Binding>(body: Unsigned<T>): Rec => signRecord<T>(p.name, key, body as never, p.minFeeRate);
    const addAll = async (recs: Rec[]): Promise<void> => {
      for (const r of recs) pool.add(r);
      while (pool.size > 0) await miner.mineBlocks(1);
    };
    // the node, its domain and its users' names, as the presence bridge claims them
    const names = ['pres.test', ...Array.from({ length: sample }, (_, i) => `sip:u${i}@pres.test`)];
    const salt = randomBytes(32);
    await addAll([sign<NodeAnnounce>({ kind: Kind.NodeAnnounce, pubkey: pub, sipUris: ['sip:127.0.0.1:5060'], p2pAddrs: [], rewardAddress: nodeId, seq: 1 }), ...names.map((n) => sign<NameCommit>({ kind: Kind.NameCommit, pubkey: pub, commitment: commitmentOf(n, salt, pub) }))]);
    await addAll([sign<NameClaim>({ kind: Kind.NameClaim, name: names[0], pubkey: pub, salt })]);
    await addAll(names.slice(1).map((n) => sign<NameClaim>({ kind: Kind.NameClaim, name: n, pubkey: pub, salt })));

    // the sample's changes over one day: each user online and offline in turn
    // what the chain keeps: the pending pool's copies (P keys, written and deleted as records come
    // and go) would count or not by the moment the store is read
    const chainBytes = async (): Promise<number> => {
      const usage = await store.usage();
      usage.delete('P');
      return storedBytes(usage);
    };
    const before = { height: chain.tip.height, disk: await chainBytes() };
    let blockBytes = 0;
    const now = Math.floor(Date.now() / 1000);
    const changes: Rec[] = [];
    for (let c = 0; c < changesPerDay; c++) {
      for (let u = 0; u < sample; u++) {
        const online = c % 2 === 0;
        changes.push(sign<Binding>({ kind: Kind.Binding, name: names[u + 1], node: nodeId, status: online ? 1 : 0, expires: online ? now + 3600 : now, seq: c + 1, pubkey: pub }));
      }
    }
    const t0 = process.hrtime.bigint();
    // one change of each user per round, as the day goes
    for (let c = 0; c < changesPerDay; c++) await addAll(changes.slice(c * sample, (c + 1) * sample));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    for (let h = before.height + 1; h <= chain.tip.height; h++) blockBytes += ((await chain.getBlockBytes(chain.main[h].hex)) as Uint8Array).length;
    const blocks = chain.tip.height - before.height;
    const n = changes.length;
    const disk = (await chainBytes()) - before.disk;
    await stack.close();

    const perChange = blockBytes / n;
    const recordBytes = changes.reduce((s, r) => s + r.bytes.length, 0) / n;
    const main = NETWORKS.mainnet;
    const perDayCapacity = (DAY / main.idealBlockTime) * main.maxBlockBytes;
    const model = (u: number): { bytes: number; share: number } => ({ bytes: u * changesPerDay * perChange, share: (u * changesPerDay * perChange) / perDayCapacity });
    const pop = model(users);
    const billion = model(1e9);
    const gb = (b: number): string => (b / 1e9).toFixed(b >= 1e11 ? 0 : 2);
    return [
      { metric: 'presence changes mined (a sample)', value: `${n} (${sample} users x ${changesPerDay}) in ${blocks} blocks, ${(n / secs).toFixed(0)}/s` },
      { metric: 'bytes per change in the blocks (Binding record, its id in the Merkle tree aside)', value: perChange.toFixed(1) },
      { metric: '  of which the record itself (signature 64, node key 33, node id 20, name, status, expiry, sequence)', value: recordBytes.toFixed(1) },
      { metric: 'bytes per change on disk (block, record index, state, undo)', value: (disk / n).toFixed(1) },
      { metric: 'changes a 1 MB block carries', value: Math.floor(main.maxBlockBytes / perChange) },
      { metric: 'bytes per user per day on the chain', value: (changesPerDay * perChange).toFixed(0) },
      { metric: `${users.toLocaleString('en-US')} users x ${changesPerDay} changes a day: GB a day on the chain, share of mainnet's capacity (${gb(perDayCapacity)} GB a day)`, value: `${gb(pop.bytes)} GB, ${(100 * pop.share).toFixed(1)}%` },
      { metric: `10^9 users x ${changesPerDay} changes a day: GB a day, times mainnet's capacity`, value: `${gb(billion.bytes)} GB, ${billion.share.toFixed(0)}x` },
      { metric: 'goal (issue 17): bytes per change', value: '<= 16' },
    ];
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

