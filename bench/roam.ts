// `dots bench roam`: how soon a phone registered at two serving nodes is reachable again when the
// node a call goes to first dies (issue 14, point 4). Three `dots node` processes on regtest:
// alice's name (sip:alice@a.test, owned by her wallet key) is served by A and B, and her phone
// (the benchmarks' UA) is registered at both, as baresip is with two registrars (outbound,
// outbound2, sipnat=outbound): each node has checked it with OPTIONS and bound it on the chain. A
// caller registered at C calls her. One try: the node C would call through first is killed
// (SIGKILL), a call from C is placed at once and timed until its INVITE reaches the phone, then a
// second call right after it; the killed node is started again on its data directory and port,
// the phone registers there again, and blocks are mined until C sees both bindings online.
//
// The phone is registered at both nodes before the death, so no re-registration is on the path:
// what the figure measures is C's failover. The nodes speak TLS to each other, so C's connection
// to the dead node is refused at once; a node whose host is gone costs instead the 1.5 s a node
// hop may stay silent (sip/proxy.ts, nodeTryingMs) when another serving node is left to try.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Harness, runDots, type NodeProc } from '../test/util/proc.ts';
import { freePort } from '../test/util/ports.ts';
import { mineUntil, nameAt, nodeIdOf } from '../test/util/names.ts';
import { fixed, quantile } from './stats.ts';
import { Ua, call } from './ua.ts';

type Row = Record<string, string | number>;

const NAME = 'sip:alice@a.test';
const PASSWORD = 'alice-pw';

export async function benchRoam(o: { json: boolean; tries?: number }): Promise<Row[]> {
  const tries = o.tries ?? 20;
  const say = (s: string): void => {
    if (!o.json) console.error(s);
  };
  const root = mkdtempSync(join(tmpdir(), 'dots-bench-roam-'));
  const cleanups: Array<() => void | Promise<void>> = [];
  const h = new Harness({ teardown: (fn) => void cleanups.push(fn) });
  const phone = await new Ua().open();
  const caller = await new Ua().open();
  try {
    const env = { DOTS_PASSPHRASE: 'a bench wallet passphrase' };
    const wallet = ['--wallet', join(root, 'alice.key'), '--network', 'regtest'];
    const made = await runDots(['wallet', 'new', ...wallet], 20_000, env);
    const pub = /pubkey\s+([0-9a-f]{66})/.exec(made.stdout)?.[1];
    if (made.code !== 0 || pub === undefined) throw new Error(`dots wallet new failed: ${made.stderr}`);
    const dirs = { A: join(root, 'A'), B: join(root, 'B') };
    for (const args of [
      ['alice', '--password', PASSWORD, '--owner', pub, '--datadir', dirs.A, '--domain', 'a.test'],
      ['alice', '--password', PASSWORD, '--alias', NAME, '--datadir', dirs.B, '--domain', 'b.test'],
    ]) {
      const r = await runDots(['user', 'add', ...args]);
      if (r.code !== 0) throw new Error(`dots user add failed: ${r.stderr}`);
    }
    const c = await h.start('C', { args: ['--domain', 'c.test', '--open-registration'] });
    const mine = (): Promise<unknown> => c.mine(1);
    // A and B, each started again on its data directory and SIP port after it is killed
    const startServing = async (label: 'A' | 'B', sipPort: number): Promise<NodeProc> => h.start(label, { datadir: dirs[label], sipPort, bootstrap: [c.p2p], args: ['--domain', `${label.toLowerCase()}.test`, '--sip-keepalive', '1'] });
    const serving = new Map<string, { label: 'A' | 'B'; node: NodeProc }>();
    const nodes: Record<'A' | 'B', NodeProc> = { A: await startServing('A', await freePort()), B: await startServing('B', await freePort()) };
    let cseq = 1;
    const register = async (n: NodeProc): Promise<void> => {
      const st = await phone.registerWithDigest(n.sipPort, 'alice', 'a.test', PASSWORD, 600, `roam-${n.name}`, (cseq += 2), 5000);
      if (st !== 200) throw new Error(`alice's REGISTER at ${n.name} got ${st}`);
    };
    await register(nodes.A);
    for (const label of ['A', 'B'] as const) serving.set(await nodeIdOf(c, nodes[label], mine), { label, node: nodes[label] });
    await mineUntil(mine, 'alice to own her name', async () => (await nameAt(c, NAME))?.owner === pub, { timeoutMs: 60_000 });
    const del = await runDots(['name', 'delegate', NAME, [...serving.keys()].join(','), ...wallet, '--api', c.api], 20_000, env);
    if (del.code !== 0) throw new Error(`dots name delegate failed: ${del.stderr}`);
    await register(nodes.B);
    const st = await caller.register(c.sipPort, 'bob', 'c.test', `sip:bob@127.0.0.1:${caller.port}`, 3600, 'roam-bob', 1);
    if (st !== 200) throw new Error(`bob's REGISTER at C got ${st}`);

    let arrived: bigint | null = null;
    phone.onRequest = (req, at, from) => {
      if (req.method !== 'INVITE') return;
      arrived ??= at;
      phone.respond(req, 486, 'Busy Here', from);
    };
    /** one call from C; ms from `t0` until its INVITE reached the phone (NaN: it did not) */
    const timedCall = async (t0: bigint): Promise<{ ms: number; status: number }> => {
      arrived = null;
      const r = await call(caller, c.sipPort, NAME, 'bob', 'c.test', 15_000);
      const got = arrived as bigint | null;
      return { ms: got === null ? NaN : Number(got - t0) / 1e6, status: r.status };
    };
    const first: number[] = [];
    const next: number[] = [];
    let failed = 0;
    for (let i = 0; i < tries; i++) {
      const view = await mineUntil(mine, 'C to see alice online at A and B', async () => {
        const v = await nameAt(c, NAME);
        return v !== null && v.bindings.length === 2 && v.bindings.every((x) => x.status === 'online') ? v : undefined;
      }, { timeoutMs: 60_000 });
      const dead = serving.get(view.bindings[0].node);
      if (dead === undefined) throw new Error(`C calls through a node that does not serve alice: ${view.bindings[0].node}`);
      await dead.node.kill();
      const died = process.hrtime.bigint();
      const one = await timedCall(died);
      const two = await timedCall(process.hrtime.bigint());
      if (Number.isNaN(one.ms) || Number.isNaN(two.ms)) failed++;
      else {
        first.push(one.ms);
        next.push(two.ms);
      }
      say(`  try ${i + 1}: ${dead.label} killed; the first call reached the phone after ${fixed(one.ms, 0)} ms (${one.status}), the next call after ${fixed(two.ms, 0)} ms (${two.status})`);
      // the node comes back on its data directory and port; the phone registers there again
      const back = await startServing(dead.label, dead.node.sipPort);
      dead.node = back;
      await register(back);
    }
    const f = [...first].sort((x, y) => x - y);
    const n = [...next].sort((x, y) => x - y);
    return [
      { metric: 'node death to a call reaching the phone: median', value: fixed(quantile(f, 0.5), 0), unit: 'ms', notes: `${f.length} tries${failed > 0 ? ` (${failed} failed)` : ''}; min ${fixed(f[0], 0)}, max ${fixed(f[f.length - 1], 0)}` },
      { metric: 'node death to a call reaching the phone: p99', value: fixed(quantile(f, 0.99), 0), unit: 'ms', notes: 'goal: under the phone\'s re-registration interval (600 s in the baresip test) + 1 s' },
      { metric: 'the next call, placed right after: median', value: fixed(quantile(n, 0.5), 0), unit: 'ms', notes: `p99 ${fixed(quantile(n, 0.99), 0)} ms: every call tries the dead node first while its binding says online` },
    ];
  } finally {
    phone.close();
    caller.close();
    for (const fn of cleanups.reverse()) await fn();
    rmSync(root, { recursive: true, force: true, maxRetries: 5 });
  }
}
