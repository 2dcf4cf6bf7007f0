// `dots bench receipts`: what each receipt costs two nodes, at the rate the call log keeps to
// (100 receipts a second, telecom/calls.ts). Two nodes in this process, each with its own chain (LevelDB in a temporary
// folder), P2PNetwork (real libp2p on 127.0.0.1, so gossip carries each record to the other
// node), ReceiptExchange and CallLog, wired as node/node.ts wires them. Both are announced and
// the originating node is funded, so the chain would pay every call. Then `calls` calls of a
// minute each end: the terminating node's log hears of each (as its proxy would report it), then
// the originating node's, which asks for the countersignatures; at most `window` calls wait for
// their outcome at a time (under the log's 1,000 in flight, so none is skipped as busy). The
// clock runs from the first call's end to the last outcome.
//
// Both nodes share this process's one event loop, so the CPU figure is the two nodes' work per
// receipt together on one core: signing, verifying, the wire, the pool and gossip. The event
// loop's longest stall is what SIP traffic on that thread would have waited.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openChainStack } from '../node/chain-stack.ts';
import { NETWORKS } from '../consensus/params.ts';
import type { CallEnd } from '../telecom/calls.ts';
import { signRecord, Kind, type NodeAnnounce, type Rec } from '../core/records.ts';
import type { Chain } from '../consensus/chain.ts';
import { Miner, chainWork } from '../mining/miner.ts';
import type { Mempool } from '../core/mempool.ts';
import { sleep } from '../test/util/wait.ts';
import { startReceiptNode, type ReceiptNode } from '../test/util/receipt-node.ts';
import type { BenchOptions } from './index.ts';

type Row = Record<string, string | number>;

const P = NETWORKS.regtest;

interface Side extends ReceiptNode {
  chain: Chain;
  pool: Mempool;
  close(): Promise<void>;
}

async function side(dir: string): Promise<Side> {
  const stack = await openChainStack(dir, P, {});
  const node = await startReceiptNode({ chain: stack.chain, pool: stack.pool, dir });
  return {
    ...node,
    chain: stack.chain,
    pool: stack.pool,
    close: async () => {
      await node.stop();
      await stack.close();
    },
  };
}

/** Mines `n` blocks at `from` (its pool's records in the first), paying `from`, and connects them at `to` too. */
async function mine(from: Side, to: Side, n: number): Promise<void> {
  const miner = new Miner(chainWork(from.chain, from.pool), from.key.address);
  try {
    for (const r of await miner.mineBlocks(n)) {
      if (r.status !== 'connected') throw new Error(`block not connected: ${r.status}`);
      const b = await from.chain.getBlock(r.hex);
      if (b === undefined) throw new Error('mined block not found');
      const at = await to.chain.processBlock(b);
      if (at.status !== 'connected') throw new Error(`block not connected at the other node: ${at.status}`);
    }
  } finally {
    await miner.stop();
  }
}

export async function benchReceipts(o: BenchOptions & { calls?: number; window?: number }): Promise<Row[]> {
  // the call log starts 100 receipts a second (telecom/calls.ts): calls for about 10 s at least
  const n = o.calls ?? 100 * Math.max(10, Math.round(o.seconds));
  const window = o.window ?? 800;
  const root = mkdtempSync(join(tmpdir(), 'dots-bench-receipts-'));
  const sides: Side[] = [];
  try {
    const orig = await side(join(root, 'orig'));
    sides.push(orig);
    const term = await side(join(root, 'term'));
    sides.push(term);
    const announce = (s: Side): Rec => signRecord<NodeAnnounce>(P.name, s.key.secret, { kind: Kind.NodeAnnounce, pubkey: s.key.pub, sipUris: [], p2pAddrs: s.net.multiaddrs(), rewardAddress: s.key.address, seq: 1 });
    orig.pool.add(announce(orig));
    orig.pool.add(announce(term));
    // the originating node pays for its calls: its blocks fund it
    await mine(orig, term, 4);
    await orig.ex.start(orig.net.libp2p);
    await term.ex.start(term.net.libp2p);
    await sleep(500);

    const ended = Math.floor(Date.now() / 1000) - 3;
    const stamp = Date.now();
    const event = (i: number): { term: CallEnd; orig: CallEnd } => {
      const base = { callId: `bench-${stamp}-${i}@127.0.0.1`, fromTag: `f${i}`, toTag: `t${i}`, answered: ended - 60, ended };
      return { term: { ...base, role: 'term', peerNodeId: orig.key.address }, orig: { ...base, role: 'orig', peerNodeId: term.key.address } };
    };
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    let sent = 0;
    let shown = Date.now();
    let progress = { at: Date.now(), n: 0 };
    while (orig.outcomes.length < n) {
      if (orig.outcomes.length > progress.n) progress = { at: Date.now(), n: orig.outcomes.length };
      // a receipt that fails is retried after 5 s, 30 s and 2 min: a minute without an outcome is a fault
      if (Date.now() - progress.at > 60_000) throw new Error(`no receipt settled for 60 s (${orig.outcomes.length} of ${n} done)`);
      if (Date.now() - shown > 5000) {
        shown = Date.now();
        process.stderr.write(`  ${orig.outcomes.length} of ${n} calls settled, ${sent - orig.outcomes.length} waiting\n`);
      }
      while (sent < n && sent - orig.outcomes.length < window) {
        const e = event(sent++);
        term.calls.callEnded(e.term);
        orig.calls.callEnded(e.orig);
      }
      await sleep(5);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    lag.disable();
    const receipted = orig.outcomes.filter((x) => x.status === 'receipted').length;
    const other = new Map<string, number>();
    for (const x of orig.outcomes) {
      if (x.status === 'receipted') continue;
      const k = x.status === 'skipped' ? `skipped ${x.reason}` : `failed ${x.code}`;
      other.set(k, (other.get(k) ?? 0) + 1);
    }
    const cpuUs = (cpu.user + cpu.system) / receipted;
    return [
      {
        metric: 'calls receipted per second (two nodes, one event loop)',
        value: Math.round(receipted / seconds).toLocaleString('en-US'),
        notes: `${receipted.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} calls in ${seconds.toFixed(1)} s${other.size > 0 ? `; ${[...other].map(([k, v]) => `${v} ${k}`).join(', ')}` : ''}`,
      },
      { metric: 'receipts per request', value: (orig.ex.stats.receiptsSent / Math.max(1, orig.ex.stats.requestsSent)).toFixed(1), notes: `${orig.ex.stats.requestsSent.toLocaleString('en-US')} requests on /dots/receipt` },
      { metric: 'CPU per receipt, both nodes', value: `${Math.round(cpuUs)} us`, notes: `${((cpu.user + cpu.system) / 1e6 / seconds).toFixed(2)} cores while it ran` },
      { metric: 'longest event-loop stall', value: `${(lag.max / 1e6).toFixed(1)} ms`, notes: `p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms: what SIP on that thread waits` },
    ];
  } finally {
    for (const s of sides.reverse()) await s.close().catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
  }
}
