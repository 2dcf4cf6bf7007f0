// `dots bench trunk`: an operator's own SIP network joined through a node (issue 18), measured
// as a whole.
//
// 1. REGISTER/s the shape sustains with the node's chain work included: Kamailio 5.6 (the
//    operator's registrar, two workers, test/fixtures/kamailio/operator.cfg) trunked to a dots
//    node that knows its 10,000 users as trunk users: the node claims their names (signing the
//    commitments as the warm-up registers them), checks every user through Kamailio every 10 s
//    (1,000 OPTIONS/s, which Kamailio hands to SIPp's phones, -aa), and binds the ones online,
//    blocks mined at the node meanwhile. SIPp refreshes the registrations at Kamailio; the rate
//    search is `dots bench sip`'s (under 1% failed in a window). Kamailio and the node share one
//    core (SIPp has the other) where taskset can pin them, so the figure is the shape's per core.
// 2. calls/s from another node into the operator's phones: `dots bench calls`' rate search on its
//    network, with the 100 callees registered at a Kamailio trunked to node A instead of at A
//    (calls go B -> A -> Kamailio -> the SIPp callee and back; Kamailio on A's core).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../core/errors.ts';
import { addUsers } from '../telecom/users.ts';
import { has, NodeProc } from '../test/util/proc.ts';
import { freePort, freeUdpPort } from '../test/util/ports.ts';
import { sleep } from '../test/util/wait.ts';
import { startOperatorKamailio } from '../test/util/kamailio.ts';
import { bindingAt } from '../test/util/names.ts';
import { childrenOf, onCpu } from './cpu.ts';
import { DOMAIN, PIN, USERS, search, type Target } from './sip.ts';
import { FIXTURES } from './sipp.ts';
import { startNetwork, type Closer } from './calls-net.ts';
import { measureRate, rateRows } from './calls-rate.ts';

type Row = Record<string, string | number>;

/** The node checks each user behind the trunk this often, s. */
const CHECK_EVERY = 10;

async function shapeTarget(dir: string, log: (s: string) => void): Promise<Target & { node: NodeProc }> {
  const kport = await freeUdpPort();
  const d = join(dir, 'node-trunk');
  mkdirSync(d, { recursive: true });
  addUsers(d, Array.from({ length: USERS }, (_, i) => ({ name: `u${i}`, password: null })), DOMAIN);
  const wrap = (cmd: string, args: string[]): [string, string[]] => onCpu(PIN?.[1], cmd, args);
  const node = await NodeProc.start({ datadir: d, sipPort: await freePort(), args: ['--domain', DOMAIN, '--trunk', `sip:127.0.0.1:${kport}`, '--sip-keepalive', String(CHECK_EVERY)], wrap, startMs: 60_000 });
  const stops: Array<() => unknown> = [];
  const k = await startOperatorKamailio({ teardown: (fn) => void stops.push(fn) }, { dir, port: kport, domain: DOMAIN, node: `127.0.0.1:${node.sipPort}`, wrap, shmMb: 1024 }).catch(async (e: unknown) => {
    await node.stop();
    throw e;
  });
  log(`Kamailio sip:127.0.0.1:${kport} trunked to a node at sip:127.0.0.1:${node.sipPort} with ${USERS} trunk users`);
  return {
    name: `Kamailio 5.6 (2 workers) + a dots node checking its ${USERS.toLocaleString('en-US')} users every ${CHECK_EVERY} s and binding them`,
    node,
    sippPort: await freePort(),
    // the warm-up registered every user: mine until the node's claims and bindings are on the chain
    settle: async () => {
      const t0 = Date.now();
      let quiet = 0;
      for (let i = 0; i < 120 && quiet < 3; i++) {
        await node.mine(1);
        await sleep(500);
        quiet = (await node.status()).pending === 0 ? quiet + 1 : 0;
      }
      log(`  the node's chain work settled in ${((Date.now() - t0) / 1000).toFixed(0)} s (claims, then bindings of the users its checks found online)`);
    },
    port: kport,
    scenario: join(FIXTURES, 'register.xml'),
    inf: '',
    txPerReg: 1,
    pids: () => [k.child.pid as number, ...childrenOf(k.child.pid as number), node.pid as number],
    stop: async () => {
      for (const s of stops) await s();
      await node.stop();
    },
  };
}

export async function benchTrunk(o: { seconds: number; json?: boolean; verbose?: boolean }): Promise<Row[]> {
  if (!has('sipp')) throw new UserError('dots bench trunk needs SIPp: apt-get install sip-tester');
  if (!has('kamailio')) throw new UserError('dots bench trunk needs Kamailio: apt-get install kamailio');
  const t0 = Date.now();
  const log = (s: string): void => {
    if (o.verbose !== false) process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(3)} s] ${s}\n`);
  };
  const only = process.env.DOTS_BENCH_TRUNK_ONLY?.split(',');
  const want = (part: string): boolean => only === undefined || only.includes(part);
  const rows: Row[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'dots-bench-trunk-'));
  try {
    if (want('register')) {
      const t = await shapeTarget(join(dir, 'register'), log).catch((e: unknown) => {
        throw new Error(`the trunk shape did not start: ${(e as Error).message}`);
      });
      try {
        t.inf = join(dir, 'users.csv');
        writeFileSync(t.inf, ['SEQUENTIAL', ...Array.from({ length: USERS }, (_, i) => `u${i};${DOMAIN};`)].join('\n') + '\n');
        const best = await search(t, dir, Math.max(o.seconds, 10), log);
        const s = await t.node.status();
        // how many of the users the chain has online, from a sample of 50
        let online = 0;
        for (let i = 0; i < USERS; i += USERS / 50) if ((await bindingAt(t.node, `sip:u${i}@${DOMAIN}`))?.status === 'online') online++;
        rows.push({
          metric: 'REGISTER/s at Kamailio with the node\'s chain work, < 1% failed',
          value: best === null ? 0 : best.rate,
          unit: 'REGISTER/s',
          notes: `${t.name}; Kamailio and the node ${PIN === null ? 'unpinned' : `on cpu ${PIN[1]}, SIPp on cpu ${PIN[0]}`}; they used ${best === null ? '?' : best.cores.toFixed(2)} cores; chain height ${s.height}, ${online} of a sample of 50 users online on it`,
        });
      } finally {
        await t.stop();
      }
    }
    if (want('calls')) {
      const open: Closer[] = [];
      try {
        mkdirSync(join(dir, 'calls'), { recursive: true });
        const c = await startNetwork(join(dir, 'calls'), 100, log, open, { trunk: true });
        const sr = await measureRate(c, Math.max(o.seconds, 10), 0, 300);
        for (const r of rateRows(sr, { seconds: Math.max(o.seconds, 10), users: 100, callMs: 0, startRate: 300 })) {
          rows.push({ ...r, metric: r.metric.replace('through B and A', 'from node B through A and its Kamailio into the operator\'s phones') });
        }
      } finally {
        for (const s of open.reverse()) await s.stop().catch(() => undefined);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (o.json === true) return rows;
  return rows.map((r) => ({ metric: String(r.metric), value: `${Number(r.value).toLocaleString('en-US')} ${String(r.unit)}`, notes: String(r.notes) }));
}
