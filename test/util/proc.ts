// Real `dots` processes for tests and benchmarks. `NodeProc.start` runs `dots node` on loopback
// (regtest, free ports), reads the p2p, sip and api lines it prints, keeps its log (stderr) for
// failure messages, talks to its HTTP API, and stops it. `startNode` does that for one test and
// kills the node at its end; `Harness` keeps the nodes of a network test and stops them all at its
// end; `runDots` runs a one-shot command (`dots user add`, `dots wallet ...`). Processes are only
// ever signalled through their own ChildProcess handles (their pid), never by name.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { toHex } from '../../core/hash.ts';
import type { Rec } from '../../core/records.ts';
import { tmpDir, type Teardown } from './tmp.ts';
import { waitFor } from './wait.ts';

export const DOTS_BIN = fileURLToPath(new URL('../../bin/dots.js', import.meta.url));

/** The Node.js flags the first line of bin/dots.js gives: processes started here run as `npx dots` runs them. */
export const NODE_FLAGS: readonly string[] = (/^#!\S*env -S node(.*)$/m.exec(readFileSync(DOTS_BIN, 'utf8').split('\n', 1)[0])?.[1] ?? '').split(/\s+/).filter((x) => x !== '');

/** Whether `cmd` is on the PATH. */
export const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

/** Runs `dots ARGS` to its end (SIGKILL after `timeoutMs`); its exit code and output. */
export function runDots(args: string[], timeoutMs = 20_000, env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [...NODE_FLAGS, DOTS_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      c.kill('SIGKILL');
      reject(new Error(`dots ${args.join(' ')} timed out`));
    }, timeoutMs);
    c.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Resolves once `c` has exited; with `killAfterMs`, sends it SIGKILL if it has not by then. */
export function waitExit(c: ChildProcess, killAfterMs?: number): Promise<void> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve();
    const timer = killAfterMs === undefined ? undefined : setTimeout(() => c.kill('SIGKILL'), killAfterMs);
    c.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Sends `signal` (SIGTERM) to `c` unless it has exited, then SIGKILL if it has not within `graceMs`; resolves once it has. */
export async function stopProcess(c: ChildProcess, graceMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  c.kill(signal);
  await waitExit(c, graceMs);
}

export async function getJson<T = Record<string, unknown>>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

export async function postJson<T = Record<string, unknown>>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}

export interface Status {
  network: string;
  height: number;
  tip: string;
  work: string;
  bits: number;
  time: number;
  peers: number;
  pending: number;
  syncing: boolean;
  genesis: string;
}

export interface NodeOptions {
  /** the data directory */
  datadir: string;
  /** for messages (default "node") */
  name?: string;
  /** --network (default regtest) */
  network?: string;
  /** --sip-port (default 0: a free port, printed) */
  sipPort?: number;
  bootstrap?: string[];
  /** more flags for `dots node` */
  args?: string[];
  /** flags for Node.js itself, before the script (--trace-gc, --cpu-prof) */
  nodeArgs?: string[];
  /** added to the environment (e.g. DOTS_LOG=debug) */
  env?: Record<string, string>;
  /** how the command is run, e.g. under taskset: gets and returns [command, arguments] */
  wrap?: (cmd: string, args: string[]) => [string, string[]];
  /** how long it may take to print its addresses (default 30 s; then it is killed) */
  startMs?: number;
}

/** One `dots node` process; see `NodeProc.start`. */
export class NodeProc {
  /** the log (stderr), the last few thousand lines */
  readonly lines: string[] = [];
  /** what it printed on stdout, line by line */
  readonly stdout: string[] = [];
  /** its libp2p multiaddr */
  p2p = '';
  /** its HTTP base URL, http://127.0.0.1:PORT */
  api = '';
  /** the node's SIP URI, sip:127.0.0.1:PORT */
  sip = '';
  readonly name: string;
  readonly datadir: string;
  readonly child: ChildProcess;
  /** its exit code (null when a signal ended it) */
  readonly exited: Promise<number | null>;
  /** resolves once its log (stderr) has closed, every line read */
  readonly logClosed: Promise<void>;
  private running = true;
  private addressed: () => void = () => undefined;

  /** Spawns the node; `NodeProc.start` (or a subclass's) also waits until it listens. */
  constructor(o: NodeOptions) {
    this.name = o.name ?? 'node';
    this.datadir = o.datadir;
    const args = [...NODE_FLAGS, ...(o.nodeArgs ?? []), DOTS_BIN, 'node', '--network', o.network ?? 'regtest', '--datadir', o.datadir, '--p2p-port', '0', '--api-port', '0', '--sip-port', String(o.sipPort ?? 0)];
    for (const b of o.bootstrap ?? []) args.push('--bootstrap', b);
    args.push(...(o.args ?? []));
    const [cmd, argv] = o.wrap?.(process.execPath, args) ?? [process.execPath, args];
    this.child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => {
      this.running = false;
      resolve(code);
    }));
    const log = createInterface({ input: this.child.stderr as NodeJS.ReadableStream });
    this.logClosed = new Promise((resolve) => log.once('close', () => resolve()));
    log.on('line', (l) => {
      this.lines.push(l);
      if (this.lines.length > 5000) this.lines.splice(0, 1000);
      this.onLog(l);
    });
    createInterface({ input: this.child.stdout as NodeJS.ReadableStream }).on('line', (l) => {
      this.stdout.push(l);
      this.onStdout(l);
      // it prints p2p, sip, explorer and api, in that order
      const m = /^(p2p|api|sip):\s+(\S+)/.exec(l);
      if (m?.[1] === 'sip') this.sip = m[2];
      if (m?.[1] === 'p2p') this.p2p = m[2];
      if (m?.[1] === 'api') {
        this.api = m[2].replace(/\/api\/status$/, '');
        this.addressed();
      }
    });
  }

  /**
   * Starts `dots node` (regtest, free ports on 127.0.0.1 unless told otherwise) and resolves once
   * it has printed its addresses; a node that exits first, or does not print them within
   * `startMs`, is an error (and is killed).
   */
  static async start<T extends NodeProc, O extends NodeOptions>(this: new (o: O) => T, o: O): Promise<T> {
    const node = new this(o);
    const startMs = o.startMs ?? 30_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        void node.kill();
        reject(new Error(`${node.name} did not start in ${startMs / 1000} s:\n${node.log()}`));
      }, startMs);
      void node.exited.then((code) => {
        clearTimeout(timer);
        reject(new Error(`${node.name} exited with ${code} at start:\n${node.log()}`));
      });
      node.addressed = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    return node;
  }

  /** A log line (stderr) as it comes; for subclasses. */
  protected onLog(_line: string): void {}

  /** A line of stdout as it comes; for subclasses. */
  protected onStdout(_line: string): void {}

  get alive(): boolean {
    return this.running;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get sipPort(): number {
    return Number(/:(\d+)$/.exec(this.sip)?.[1] ?? 0);
  }

  /** its SIP over TLS port, from what it printed (0: no TLS) */
  get tlsPort(): number {
    const line = this.stdout.find((l) => l.startsWith('sip:')) ?? '';
    return Number(/TLS on (\d+)/.exec(line)?.[1] ?? 0);
  }

  /** its SIP over WebSocket port, from what it printed (0: none) */
  get wsPort(): number {
    const line = this.stdout.find((l) => l.startsWith('sip:')) ?? '';
    return Number(/wss? on (\d+)/.exec(line)?.[1] ?? 0);
  }

  get peerId(): string {
    return this.p2p.split('/p2p/')[1] ?? '';
  }

  /** The node's log (stderr), for failure messages. */
  log(last = 40): string {
    return this.lines.slice(-last).join('\n');
  }

  get<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }> {
    return getJson<T>(this.api + path);
  }

  post<T = Record<string, unknown>>(path: string, body: unknown): Promise<{ status: number; body: T }> {
    return postJson<T>(this.api + path, body);
  }

  async status(): Promise<Status> {
    return (await this.get<Status>('/api/status')).body;
  }

  async mine(count = 1): Promise<{ height: number; tip: string }> {
    const r = await this.post<{ height: number; tip: string; error?: string }>('/api/dev/mine', { count });
    if (r.status !== 200) throw new Error(`${this.name}: mine failed (${r.status}): ${r.body.error}`);
    return r.body;
  }

  /** POSTs a signed record; returns its id. */
  async submit(rec: Rec): Promise<string> {
    const r = await this.post<{ id?: string; error?: string }>('/api/records', { record: toHex(rec.bytes) });
    if (r.status !== 202) throw new Error(`${this.name}: record refused (${r.status}): ${r.body.error}`);
    return r.body.id as string;
  }

  /** A record as the node knows it: confirmed (with height), pending, or unknown (undefined). */
  async record(id: string): Promise<{ confirmed: boolean; height?: number } | undefined> {
    const r = await this.get<{ confirmed: boolean; height?: number }>(`/api/records/${id}`);
    return r.status === 200 ? r.body : undefined;
  }

  async peers(): Promise<Array<{ id: string; addrs: string[] }>> {
    return (await this.get<{ peers: Array<{ id: string; addrs: string[] }> }>('/api/peers')).body.peers;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`; returns ms taken to exit. */
  async stop(graceMs = 10_000): Promise<number> {
    const t0 = Date.now();
    if (!this.running) return 0;
    await stopProcess(this.child, graceMs);
    return Date.now() - t0;
  }

  /** SIGKILL; resolves once it has exited. */
  async kill(): Promise<void> {
    if (this.running) this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Starts a node (`NodeProc.start`) that is killed (SIGKILL) when `t` ends, if still running. */
export async function startNode(t: Teardown, o: NodeOptions): Promise<NodeProc> {
  const node = await NodeProc.start(o);
  t.teardown(() => node.kill());
  return node;
}

export interface StartOptions {
  bootstrap?: string[];
  /** reuse a data directory (restart) */
  datadir?: string;
  /** --sip-port (default 0: a free one); a node restarted on its old port keeps its phones' registrations and its announcement */
  sipPort?: number;
  args?: string[];
}

/** The nodes of a network test: each with a fresh data directory and debug logs, all stopped (SIGTERM) when the test ends. */
export class Harness {
  readonly nodes: NodeProc[] = [];

  constructor(private readonly t: Teardown) {
    t.teardown(async () => {
      await Promise.all(this.nodes.map((n) => n.stop(3000)));
    });
  }

  /** Starts `dots node` on regtest with free ports and waits until it prints its addresses. */
  async start(name: string, o: StartOptions = {}): Promise<NodeProc> {
    const datadir = o.datadir ?? tmpDir(this.t, `dots-p2p-${name}-`);
    const node = await NodeProc.start({ name, datadir, sipPort: o.sipPort, bootstrap: o.bootstrap, args: o.args, env: { DOTS_LOG: 'debug' } });
    this.nodes.push(node);
    // tap runs teardowns last-registered first: this one stops the node before its data
    // directory (registered above) is removed, never while it still writes there
    this.t.teardown(async () => {
      await node.stop(3000);
    });
    return node;
  }

  /** Stops a node and starts it again on the same data directory. */
  async restart(node: NodeProc, o: Omit<StartOptions, 'datadir'> = {}): Promise<NodeProc> {
    await node.stop();
    return this.start(node.name, { ...o, datadir: node.datadir });
  }
}

/** Waits until every node reports the same tip; returns it. */
export async function converged(nodes: NodeProc[], timeoutMs = 20_000): Promise<Status> {
  return waitFor(
    `${nodes.map((n) => n.name).join(', ')} to agree on one tip`,
    async () => {
      const s = await Promise.all(nodes.map((n) => n.status()));
      return s.every((x) => x.tip === s[0].tip) ? s[0] : undefined;
    },
    timeoutMs,
  ).catch(async (e: unknown) => {
    const s = await Promise.all(nodes.map((n) => n.status().catch(() => undefined)));
    throw new Error(`${(e as Error).message}: ${nodes.map((n, i) => `${n.name}@${s[i]?.height}:${s[i]?.tip.slice(0, 12)}`).join(' ')}\n${nodes.map((n) => `--- ${n.name}\n${n.log(15)}`).join('\n')}`);
  });
}
