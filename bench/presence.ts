// `dots bench presence`: what presence costs the chain, as a population model (issue 17). One node
// serves a population of users (100,000 by default) that change state (online, offline) a few
// times a day (4); on mainnet's one block a minute that is users x changes / 1,440 changes a block.
// The benchmark claims every user's name on a regtest chain, then lets the node's real presence
// bridge (telecom/presence.ts) turn the changes into records, each change arriving on its own
// (as phones come and go, one bridge pass each: the costliest way for the record count), and
// mines a block after each block's worth of changes. It prints the bytes the blocks took per
// change, per user per day, the presence records per block, what the state and undo data add on
// disk, and the extrapolation to 10^9 users (the same changes with the users' numbers spread over
// a billion names, so each number takes the bytes it would).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Miner, chainWork } from '../mining/miner.ts';
import { openChainStack } from '../node/chain-stack.ts';
import { NETWORKS } from '../consensus/params.ts';
import { signRecord, commitmentOf, packEntries, Kind, type NameClaim, type NameCommit, type NodeAnnounce, type Presence, type Rec, type Unsigned } from '../core/records.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { addressOf } from '../core/address.ts';
import { silentLogger } from '../core/log.ts';
import { PresenceBridge } from '../telecom/presence.ts';
import { UserStore, addUsers } from '../telecom/users.ts';
import { decodeBlock } from '../core/block.ts';
import type { BenchOptions } from './index.ts';
import { storedBytes } from './chain.ts';

const DAY = 86_400;
const DOMAIN = 'pres.test';

export async function benchPresence(o: BenchOptions & { users?: number; blocks?: number; changesPerDay?: number }): Promise<Array<Record<string, string | number>>> {
  const users = o.users ?? Number(process.env.DOTS_BENCH_PRESENCE_USERS ?? 100_000);
  const changesPerDay = o.changesPerDay ?? 4;
  const blocks = o.blocks ?? Number(process.env.DOTS_BENCH_PRESENCE_BLOCKS ?? 20);
  const main = NETWORKS.mainnet;
  const blocksPerDay = DAY / main.idealBlockTime;
  const perBlock = Math.max(1, Math.round((users * changesPerDay) / blocksPerDay));
  const p = NETWORKS.regtest;
  const root = mkdtempSync(join(tmpdir(), 'dots-bench-presence-'));
  const datadir = join(root, 'node');
  const stack = await openChainStack(datadir, p);
  const { chain, pool, store } = stack;
  let bridge: PresenceBridge | null = null;
  let store2: UserStore | null = null;
  try {
    const key = generateSecretKey();
    const pub = publicKeyOf(key);
    const nodeId = addressOf(pub);
    const miner = new Miner(chainWork(chain, pool), nodeId);
    const sign = <T extends NameCommit | NameClaim | NodeAnnounce>(body: Unsigned<T>): Rec => signRecord<T>(p.name, key, body as never, p.minFeeRate);
    const mineAll = async (recs: Rec[]): Promise<void> => {
      for (let i = 0; i < recs.length; i += 20_000) {
        for (const r of recs.slice(i, i + 20_000)) {
          pool.signaturesChecked(r.id); // signed here, by this key
          pool.add(r);
        }
        while (pool.size > 0) await miner.mineBlocks(1);
      }
    };

    // the node, its domain and its users' names, claimed by the node's key as its bridge does
    const t0 = Date.now();
    const userNames = Array.from({ length: users }, (_, i) => `u${i}`);
    const names = [DOMAIN, ...userNames.map((u) => `sip:${u}@${DOMAIN}`)];
    const salt = randomBytes(32);
    await mineAll([sign<NodeAnnounce>({ kind: Kind.NodeAnnounce, pubkey: pub, sipUris: ['sip:127.0.0.1:5060'], p2pAddrs: [], rewardAddress: nodeId, seq: 1 }), ...names.map((n) => sign<NameCommit>({ kind: Kind.NameCommit, pubkey: pub, commitment: commitmentOf(n, salt, pub) }))]);
    await mineAll([sign<NameClaim>({ kind: Kind.NameClaim, name: names[0], pubkey: pub, salt })]);
    await mineAll(names.slice(1).map((n) => sign<NameClaim>({ kind: Kind.NameClaim, name: n, pubkey: pub, salt })));
    // the users as the node's accounts (trunk users: no credentials to derive), and its bridge
    addUsers(datadir, userNames.map((name) => ({ name, password: null })), DOMAIN);
    store2 = new UserStore(datadir, DOMAIN);
    bridge = new PresenceBridge({ chain, pool, secret: key, datadir, domain: DOMAIN, sipUris: () => ['sip:127.0.0.1:5060'], users: store2, openRegistration: false, log: silentLogger, checkEveryMs: 3_600_000 });
    bridge.start();
    const setupSecs = (Date.now() - t0) / 1000;

    const chainBytes = async (): Promise<number> => {
      const usage = await store.usage();
      usage.delete('P'); // the pending pool's copies come and go with the moment the store is read
      return storedBytes(usage);
    };
    const before = { height: chain.tip.height, disk: await chainBytes() };
    const online = new Uint8Array(users);
    let changes = 0;
    const t1 = Date.now();
    const settle = async (target: number): Promise<void> => {
      const b = bridge as PresenceBridge;
      for (let i = 0; b.stats.bindings < target; i++) {
        if (i > 5000) throw new Error(`the presence bridge sent ${b.stats.bindings} of ${target} changes`);
        await new Promise((r) => setTimeout(r, 1));
      }
    };
    for (let blk = 0; blk < blocks; blk++) {
      const touched = new Set<number>();
      for (let c = 0; c < perBlock; c++) {
        // a user not yet changed in this block (one who flaps twice within a minute is rare, and its
        // two changes would be one entry)
        let u = Math.floor(Math.random() * users);
        while (touched.has(u)) u = (u + 1) % users;
        touched.add(u);
        online[u] ^= 1;
        const now = chain.clock();
        bridge.presence(`sip:u${u}@${DOMAIN}`, online[u] === 1, now + 3600);
        changes++;
        // each change its own bridge pass, as when phones come and go seconds apart
        await settle(changes);
      }
      await miner.mineBlocks(1);
      while (pool.size > 0) await miner.mineBlocks(1);
    }
    const simSecs = (Date.now() - t1) / 1000;

    // what the blocks took
    let blockBytes = 0;
    let recBytes = 0;
    let recs = 0;
    let entries = 0;
    let spreadBytes = 0; // the same records with the users' numbers spread over 10^9 names
    const scale = Math.floor(1e9 / (users + 1));
    for (let h = before.height + 1; h <= chain.tip.height; h++) {
      const bytes = (await chain.getBlockBytes(chain.main[h].hex)) as Uint8Array;
      blockBytes += bytes.length;
      for (const r of decodeBlock(bytes, p.maxBlockBytes).records) {
        if (r.body.kind !== Kind.Presence) continue;
        const b: Presence = r.body;
        recs++;
        recBytes += r.bytes.length;
        entries += b.entries.length;
        const blob = packEntries(b.base, b.entries).length;
        spreadBytes += r.bytes.length - blob + packEntries(b.base, b.entries.map((e) => ({ ...e, ref: e.ref * scale }))).length;
      }
    }
    const mined = chain.tip.height - before.height;
    const disk = (await chainBytes()) - before.disk;
    const perChange = blockBytes / changes;
    // at 10^9 users a block's header and coinbase are shared by many nodes' records: the records alone
    const billionPerChange = spreadBytes / changes;
    const perDayCapacity = blocksPerDay * main.maxBlockBytes;
    const gb = (b: number): string => (b / 1e9).toFixed(b >= 1e11 ? 0 : 2);
    const size = (b: number): string => (b >= 1e9 ? `${gb(b)} GB` : `${(b / 1e6).toFixed(1)} MB`);
    const popDay = users * changesPerDay * perChange;
    const billionDay = 1e9 * changesPerDay * billionPerChange;
    return [
      { metric: `population: ${users.toLocaleString('en-US')} users at one node x ${changesPerDay} changes a day, mainnet's ${blocksPerDay} blocks a day`, value: `${perBlock} changes a block` },
      { metric: 'setup: names claimed on a regtest chain', value: `${setupSecs.toFixed(0)} s` },
      { metric: 'changes sent by the node\'s presence bridge, each on its own pass', value: `${changes} in ${mined} blocks, ${(changes / simSecs).toFixed(0)}/s` },
      { metric: 'presence records per block (a record takes new changes until the pool\'s 32 versions)', value: (recs / blocks).toFixed(1) },
      { metric: 'entries per record', value: (entries / recs).toFixed(1) },
      { metric: 'bytes per change in the blocks (whole blocks: header, coinbase and records)', value: perChange.toFixed(2) },
      { metric: '  of which the presence records', value: (recBytes / changes).toFixed(2) },
      { metric: 'bytes per change on disk (blocks, record index, state, undo)', value: (disk / changes).toFixed(1) },
      { metric: 'bytes per user per day on the chain', value: (changesPerDay * perChange).toFixed(1) },
      { metric: `${users.toLocaleString('en-US')} users: a day on the chain, share of mainnet's capacity (${gb(perDayCapacity)} GB a day)`, value: `${size(popDay)}, ${((100 * popDay) / perDayCapacity).toFixed(2)}%` },
      { metric: '10^9 users, 100,000 a node (numbers spread over 10^9 names): bytes per change in the records', value: billionPerChange.toFixed(2) },
      { metric: `10^9 users x ${changesPerDay} changes a day: GB a day, times mainnet's capacity`, value: `${gb(billionDay)} GB, ${(billionDay / perDayCapacity).toFixed(1)}x` },
      { metric: 'goal (issue 17): bytes per change on the chain', value: '<= 16' },
    ];
  } finally {
    await bridge?.stop();
    store2?.stop();
    await stack.close();
    rmSync(root, { recursive: true, force: true });
  }
}
