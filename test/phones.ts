// Helpers for the tests that drive real phones (baresip, Linphone, SIPp) against `dots node`
// processes: what is on the chain for a name, mining until something holds, re-running a test
// file inside a network namespace of its own, and starting a baresip configured as
// ../shared/phones/README.md says. Processes are only ever signalled through their own
// ChildProcess handles, never by name.
import tap, { type Test } from 'tap';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getJson, has, runDots, stopProcess } from './util/proc.ts';
import type { Teardown } from './util/tmp.ts';
import { sleep, waitFor } from './util/wait.ts';

/** A name's binding on the chain, as GET /api/names/NAME reports it. */
export interface Binding {
  node: string;
  status: string;
  confirmed: boolean;
  seq: number;
}

/** The binding `n` (a node: its API URL) knows for `name`; null when it knows none. */
export async function bindingAt(n: { api: string }, name: string): Promise<Binding | null> {
  const r = await getJson<{ binding: Binding | null }>(`${n.api}/api/names/${encodeURIComponent(name)}`);
  return r.status === 200 ? r.body.binding : null;
}

/** A user's wallet made with `dots wallet new` (regtest): its file, public key and the passphrase environment. */
export async function newWallet(t: Test, file: string): Promise<{ file: string; pub: string; env: Record<string, string>; args: string[] }> {
  const env = { DOTS_PASSPHRASE: 'a user wallet passphrase' };
  const made = await runDots(['wallet', 'new', '--wallet', file, '--network', 'regtest'], 20_000, env);
  t.equal(made.code, 0, made.stderr);
  const pub = /pubkey\s+([0-9a-f]{66})/.exec(made.stdout)?.[1] ?? '';
  t.equal(pub.length, 66, 'the wallet prints its public key');
  return { file, pub, env, args: ['--wallet', file, '--network', 'regtest'] };
}

/** What GET /api/names/NAME says of a name's owner and serving nodes. */
export interface NameView {
  owner: string | null;
  delegates: string[];
  bindings: Array<{ node: string; status: string }>;
}

/** The name as `n` (a node: its API URL) sees it; null when it knows none. */
export async function nameAt(n: { api: string }, name: string): Promise<NameView | null> {
  const r = await getJson<NameView>(`${n.api}/api/names/${encodeURIComponent(name)}`);
  return r.status === 200 ? r.body : null;
}

/** The node id of `n` (by its SIP URI), once its announcement is on the chain `at` follows, mining with `mine` meanwhile. */
export async function nodeIdOf(at: { api: string }, n: { name: string; sip: string }, mine: () => Promise<unknown>): Promise<string> {
  return mineUntil(mine, `${n.name}'s announcement`, async () => {
    const list = (await getJson<{ nodes: Array<{ id: string; sipUris: string[] }> }>(`${at.api}/api/nodes`)).body.nodes;
    return list.find((x) => x.sipUris.some((u) => u.startsWith(n.sip)))?.id;
  }, { timeoutMs: 30_000 });
}

/**
 * Mines one block at a time with `mine` until `fn` holds, waiting `pauseMs` after each block (the
 * bridge batches for 100 ms): the bridge needs blocks for commit, reveal and binding.
 */
export async function mineUntil<T>(
  mine: () => Promise<unknown>,
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  o: { timeoutMs?: number; pauseMs?: number } = {},
): Promise<T> {
  return waitFor(
    what,
    async () => {
      const v = await fn();
      if (v !== undefined && v !== null && v !== false) return v;
      await mine();
      await sleep(o.pauseMs ?? 150);
      return undefined;
    },
    o.timeoutMs ?? 15_000,
    0,
  );
}

/**
 * Runs `body` (which declares the file's tests) inside a network namespace of its own, loopback
 * only (`unshare -n`): phones open DNS and RTP sockets on every interface. Outside one, the test
 * file declares a single test, `title`, that re-runs itself (`file`: its import.meta.url) there,
 * with DOTS_IN_NETNS=1; it is skipped when `needs` (or unshare and ip) are not installed
 * (`install`: the apt package hint) or the namespace cannot be created. `setup`: shell commands
 * run in the namespace after `ip link set lo up`.
 */
export function inNetworkNamespace(o: { file: string; title: string; needs: string[]; install: string; setup?: string[] }, body: () => void): void {
  if (process.env.DOTS_IN_NETNS === '1') {
    body();
    return;
  }
  const missing = [...o.needs, 'unshare', 'ip'].filter((c) => !has(c));
  const canUnshare = missing.length === 0 && spawnSync('unshare', ['-n', 'true'], { stdio: 'ignore' }).status === 0;
  const skip = missing.length > 0 ? `${missing.join(', ')} not installed (apt-get install ${o.install})` : !canUnshare ? 'cannot create a network namespace (unshare -n needs root)' : false;
  tap.test(o.title, { skip }, async (t) => {
    const setup = ['ip link set lo up', ...(o.setup ?? []), 'exec "$@"'].join(' && ');
    await t.spawn('unshare', ['-n', '--', 'sh', '-c', setup, 'sh', process.execPath, ...process.execArgv, fileURLToPath(o.file)], {
      env: { ...process.env, DOTS_IN_NETNS: '1' },
    });
  });
}

export interface BaresipOptions {
  user: string;
  domain: string;
  password: string;
  /** the node's SIP port: the account's outbound proxy */
  nodePort: number;
  /** the phone's own SIP port (it binds TLS on the next one too) */
  sipPort: number;
  /** quit after this many seconds (`-t`; default 120): it unregisters */
  seconds?: number;
  /** print a SIP trace (`-s`) */
  trace?: boolean;
  /** `rtp_ports`, e.g. '30000-30100' */
  rtpPorts?: string;
  /** listen for commands on this TCP port (ctrl_tcp) */
  ctrlPort?: number;
}

export interface Baresip {
  child: ChildProcess;
  /** What baresip printed (the SIP trace included). */
  out: () => string;
  exited: Promise<void>;
  /** SIGTERM, then SIGKILL after 2 s; also done in teardown. */
  stop: () => Promise<void>;
}

/**
 * Writes a config folder (DIR/baresip-USER: `config` and `accounts`) and starts baresip, which
 * registers USER with the node, answers calls by itself (answermode=auto) and requires SRTP.
 */
export function startBaresip(t: Teardown, dir: string, o: BaresipOptions): Baresip {
  const cfg = join(dir, `baresip-${o.user}`);
  mkdirSync(cfg, { recursive: true });
  writeFileSync(
    join(cfg, 'config'),
    [
      'poll_method epoll',
      `sip_listen 127.0.0.1:${o.sipPort}`,
      ...(o.rtpPorts === undefined ? [] : [`rtp_ports ${o.rtpPorts}`]),
      'audio_source ausine,440',
      `audio_player aubridge,${o.user}`,
      'module_path /usr/lib/baresip/modules',
      'module g711.so',
      'module opus.so',
      'module ausine.so',
      'module aubridge.so',
      'module srtp.so',
      'module account.so',
      'module uuid.so',
      'module_app menu.so',
      ...(o.ctrlPort === undefined ? [] : ['module_app ctrl_tcp.so', `ctrl_tcp_listen 127.0.0.1:${o.ctrlPort}`]),
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(cfg, 'accounts'),
    `<sip:${o.user}@${o.domain};transport=udp>;auth_pass=${o.password};outbound="sip:127.0.0.1:${o.nodePort};transport=udp";regint=600;answermode=auto;mediaenc=srtp-mand;audio_codecs=opus/48000/2\n`,
  );
  const child = spawn('baresip', ['-f', cfg, '-n', '127.0.0.1', ...(o.trace === true ? ['-s'] : []), '-t', String(o.seconds ?? 120)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = (): Promise<void> => stopProcess(child, 2000);
  t.teardown(stop);
  return { child, out: () => out, exited, stop };
}
