// The network the call benchmarks (`dots bench calls`) run on: node A serving a.test and node B
// serving b.test, both `dots node` processes on regtest that know each other only through the peer
// network; the SIPp callee; the users u0..u(N-1)@a.test registered at A with the callee as their
// contact, plus one phone of our own ("late"); and mining at A until B sees every one of them
// online on the chain (commit, reveal, binding). Then "late" unregisters and B sees it offline,
// for the reachability figure. The nodes get --sip-keepalive 60 so OPTIONS pings stay out of
// the way.
//
// CPUs (DOTS_BENCH_CALLS_PIN): by default nothing is pinned, so the two nodes and SIPp share the
// machine's cores as the scheduler sees fit, the conditions of the Kamailio figure in
// shared/phones (7,000 calls/s with Record-Route, SIPp on the same 2 cores). `split` gives the
// nodes one core between them and SIPp the other (a per-core figure, about 60% of the default on
// 2 cores); `each` puts SIPp and node A on one core and node B on the other.
// DOTS_BENCH_CALLS_NODE_ARGS="--trace-gc": flags for the nodes' Node.js.
// DOTS_BENCH_CALLS_LINK=udp: the nodes speak UDP to each other (`--no-tls`) instead of TLS, the
// default, to tell what the TLS link costs a call from what the rest of a node does.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor, sleep } from '../test/util/wait.ts';
import { CAN_PIN, onCpu } from './cpu.ts';
import { BenchNode } from './node.ts';
import { Uas } from './sipp.ts';
import { Ua } from './ua.ts';
import { addUsers } from '../telecom/users.ts';
import { freeUdpPort } from '../test/util/ports.ts';
import { startOperatorKamailio } from '../test/util/kamailio.ts';
import { has } from '../test/util/proc.ts';
import { KAMAILIO_DOMAIN, startKamailio, type Kamailio } from './kamailio.ts';

export const DOMAIN_A = 'a.test';
export const DOMAIN_B = 'b.test';

export type Role = 'sipp' | 'a' | 'b';

/** DOTS_BENCH_CALLS_PIN as asked (none, split or each) */
export const PIN_ASKED = process.env.DOTS_BENCH_CALLS_PIN ?? 'none';
/** what is pinned: nothing on one core or without taskset */
export const PIN_MODE = CAN_PIN ? PIN_ASKED : 'none';
/** the CPU of each role (SIPp caller and callee, node A, node B), null when nothing is pinned */
export const PIN: Record<Role, number> | null = PIN_MODE === 'split' ? { sipp: 0, a: 1, b: 1 } : PIN_MODE === 'each' ? { sipp: 0, a: 0, b: 1 } : null;

/** How a process of `role` is run: on its CPU when pinned. */
export function pinned(role: Role): (cmd: string, args: string[]) => [string, string[]] {
  return (cmd, args) => onCpu(PIN?.[role], cmd, args);
}

/** The network as the measurements use it. */
export interface Ctx {
  dir: string;
  a: BenchNode;
  b: BenchNode;
  /** the SIPp callee every user of A is registered to */
  uas: Uas;
  /** u0, u1, ... */
  users: string[];
  /** the users as a SIPp -inf file */
  usersFile: string;
  /** our own phone, registered at A as `late` once, then unregistered (B has seen it offline) */
  phone: Ua;
  late: string;
  log: (s: string) => void;
}

/** A row of the `dots bench calls` table, before it is formatted. */
export type MetricRow = {
  metric: string;
  value: number;
  unit: string;
  notes: string;
};

/** Something to stop when the benchmark ends. */
export type Closer = { stop(): Promise<unknown> };

/**
 * Starts the network in `dir` with `nUsers` users at A. What it starts is pushed on `open`, for
 * the caller to stop in reverse order whether this succeeds or not.
 */
export async function startNetwork(dir: string, nUsers: number, log: (s: string) => void, open: Closer[], o: { trunk?: boolean } = {}): Promise<Ctx> {
  const users = Array.from({ length: nUsers }, (_, i) => `u${i}`);
  // With `trunk`, the users' phones register at the operator's Kamailio, trunked to A
  // (`dots bench trunk`): A knows them as trunk users and checks them through Kamailio.
  const kport = o.trunk === true ? await freeUdpPort() : 0;
  if (o.trunk === true) {
    mkdirSync(join(dir, 'a'), { recursive: true });
    addUsers(join(dir, 'a'), users.map((name) => ({ name, password: null })), DOMAIN_A);
  }
  // DOTS_BENCH_CALLS_NODE_ARGS: flags for the nodes' Node.js (--trace-gc, --cpu-prof, ...)
  const nodeArgs = (process.env.DOTS_BENCH_CALLS_NODE_ARGS ?? '').split(/\s+/).filter((x) => x !== '');
  const node = (name: 'A' | 'B', domain: string, bootstrap: string[]): Promise<BenchNode> =>
    BenchNode.start({
      name,
      datadir: join(dir, name.toLowerCase()),
      logFile: join(dir, `node-${name.toLowerCase()}.log`),
      bootstrap,
      args: [
        '--domain',
        domain,
        '--open-registration',
        ...(name === 'A' && o.trunk === true ? ['--trunk', `sip:127.0.0.1:${kport}`, '--sip-keepalive', '5'] : ['--sip-keepalive', '60']),
        ...(process.env.DOTS_BENCH_CALLS_LINK === 'udp' ? ['--no-tls'] : []),
      ],
      nodeArgs,
      wrap: pinned(name === 'A' ? 'a' : 'b'),
      startMs: 60_000,
    });
  const a = await node('A', DOMAIN_A, []);
  open.push(a);
  const b = await node('B', DOMAIN_B, [a.p2p]);
  open.push(b);
  log(`node A sip:127.0.0.1:${a.sipPort} ${a.api}, node B sip:127.0.0.1:${b.sipPort} ${b.api}`);
  const callee = await Uas.start(dir, pinned('sipp'));
  open.push(callee);
  // the operator's registrar shares node A's core (with its two workers): A and its server are one node's worth
  const k = o.trunk === true ? await startOperatorKamailio({ teardown: (fn) => void open.push({ stop: async () => fn() }) }, { dir, port: kport, domain: DOMAIN_A, node: `127.0.0.1:${a.sipPort}`, wrap: pinned('a'), shmMb: 1024 }) : null;
  if (k !== null) log(`Kamailio sip:127.0.0.1:${kport}, the registrar of ${DOMAIN_A}, trunked to A`);
  const usersFile = join(dir, 'users.csv');
  writeFileSync(usersFile, ['SEQUENTIAL', ...users.map((u) => `${u};`)].join('\n') + '\n');
  const registrar = await new Ua().open();
  open.push({ stop: async () => registrar.close() });
  const phone = await new Ua().open();
  open.push({ stop: async () => phone.close() });
  const late = 'late';
  const regs = await Promise.all(users.map((u) => registrar.register(k === null ? a.sipPort : kport, u, DOMAIN_A, `sip:${u}@127.0.0.1:${callee.port}`, 3600, `reg-${u}`, 1)));
  regs.push(await phone.register(a.sipPort, late, DOMAIN_A, `sip:${late}@127.0.0.1:${phone.port}`, 3600, `reach-${late}`, 1));
  if (!regs.every((s) => s === 200)) throw new Error(`registrations at A: ${regs.filter((s) => s !== 200).length} not answered 200`);
  const names = [...users, late].map((u) => `sip:${u}@${DOMAIN_A}`);
  log(`${names.length} users registered at A; mining at A until B sees them online (commit, reveal, binding)`);
  let blocks = 0;
  await waitFor(
    'B to see every user of A online',
    async () => {
      // a few requests at a time: the API takes at most 64 connections from one address
      const st: string[] = [];
      for (let i = 0; i < names.length; i += 16) st.push(...(await Promise.all(names.slice(i, i + 16).map((n) => b.binding(n)))));
      if (st.every((s) => s === 'online')) return true;
      await a.mine(1);
      blocks++;
      await sleep(250);
      return undefined;
    },
    90_000,
    0,
  );
  log(`bound after ${blocks} blocks; the phone "${late}" unregisters, B must see it offline`);
  await phone.register(a.sipPort, late, DOMAIN_A, `sip:${late}@127.0.0.1:${phone.port}`, 0, `reach-${late}`, 2);
  await waitFor(`B to see ${late} offline`, async () => ((await b.binding(`sip:${late}@${DOMAIN_A}`)) === 'offline' ? true : undefined), 20_000, 50);
  // confirm what is pending, so B's pool is (nearly) empty when the calls start
  await confirmPending(a, b, 10);
  // B originates the calls and pays A for them (receipts settle calls): a block of its own for
  // the coins, mined once both agree on the tip (a block of A's at the same height would orphan it)
  await b.mine(1);
  await waitFor('A to take B\'s block', async () => ((await a.status()).tip === (await b.status()).tip ? true : undefined), 20_000, 50);
  log(`pending records: A ${await a.pending()}, B ${await b.pending()}`);
  return { dir, a, b, uas: callee, users, usersFile, phone, late, log };
}

/** Mines at A (at most `blocks` blocks) until neither node has records pending. */
export async function confirmPending(a: BenchNode, b: BenchNode, blocks: number): Promise<void> {
  for (let i = 0; i < blocks && ((await a.pending()) > 0 || (await b.pending()) > 0); i++) {
    await a.mine(1);
    await sleep(300);
  }
}

/**
 * One Kamailio 5.6 with one worker (test/fixtures/sipp/kamailio-registrar.cfg: lookup,
 * record_route, t_relay) in c.dir/`name`, on `role`'s CPU when pinned, with `users` registered
 * by `ua` to the SIPp callee at KAMAILIO_DOMAIN: the C proxy the call figures are set against.
 * Null, and logged, when it is not installed, does not start or refuses a registration.
 */
export async function kamailioForCallee(c: Ctx, ua: Ua, o: { name: string; users: string[]; role: Role; shmMb: number }): Promise<Kamailio | null> {
  if (!has('kamailio')) {
    c.log('  kamailio is not installed: no comparison');
    return null;
  }
  const dir = join(c.dir, o.name);
  mkdirSync(dir, { recursive: true });
  let k: Kamailio;
  try {
    k = await startKamailio({ dir, port: await freeUdpPort(), children: 1, shmMb: o.shmMb, wrap: pinned(o.role) });
  } catch {
    c.log('  kamailio did not start: no comparison');
    return null;
  }
  const regs = await Promise.all(o.users.map((u) => ua.register(k.port, u, KAMAILIO_DOMAIN, `sip:${u}@127.0.0.1:${c.uas.port}`, 3600, `${o.name}-${u}`, 1)));
  const refused = regs.filter((st) => st !== 200);
  if (refused.length > 0) {
    c.log(`  kamailio answered ${refused.length} REGISTERs with ${refused[0]}: no comparison`);
    await k.stop();
    return null;
  }
  return k;
}
