// Test harness for the peer-to-peer tests: starts real `dots node` processes on loopback (regtest,
// free ports), reads the multiaddr and API URL each prints, drives them over the HTTP API, and
// stops them in teardown. Processes are only ever signalled through their own ChildProcess
// handles (their pid), never by name.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { toHex } from '../core/hash.ts';
import type { Rec } from '../core/records.ts';
import { tmpDir } from './helpers.ts';
import { waitFor } from './proc.ts';

export { waitFor };

const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'dots.js');

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

export interface StartOptions {
  bootstrap?: string[];
  /** reuse a data directory (restart) */
  datadir?: string;
  args?: string[];
}

type Teardown = { teardown(fn: () => void | Promise<void>): void };

export class NodeProc {
  readonly lines: string[] = [];
  p2p = '';
  api = '';
  /** the node's SIP URI, sip:127.0.0.1:PORT */
  sip = '';
  private exited: Promise<number | null>;
  private running = true;

  constructor(
    readonly name: string,
    readonly datadir: string,
    readonly proc: ChildProcess,
  ) {
    this.exited = new Promise((resolve) => proc.once('exit', (code) => {
      this.running = false;
      resolve(code);
    }));
  }

  get alive(): boolean {
    return this.running;
  }

  get sipPort(): number {
    return Number(/:(\d+)$/.exec(this.sip)?.[1] ?? 0);
  }

  get peerId(): string {
    return this.p2p.split('/p2p/')[1] ?? '';
  }

  /** The node's log (stderr), for failure messages. */
  log(last = 40): string {
    return this.lines.slice(-last).join('\n');
  }

  async get<T = Record<string, unknown>>(path: string): Promise<{ status: number; body: T }> {
    const res = await fetch(this.api + path);
    return { status: res.status, body: (await res.json()) as T };
  }

  async post<T = Record<string, unknown>>(path: string, body: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(this.api + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as T };
  }

  async status(): Promise<Status> {
    return (await this.get<Status>('/api/status')).body;
  }

  async mine(count = 1): Promise<{ height: number; tip: string }> {
    const r = await this.post<{ height: number; tip: string; error?: string }>('/api/dev/mine', { count });
    if (r.status !== 200) throw new Error(`${this.name}: mine failed: ${r.body.error}`);
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
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    return Date.now() - t0;
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL');
  }
}

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
    const args = [BIN, 'node', '--network', 'regtest', '--datadir', datadir, '--p2p-port', '0', '--api-port', '0', '--sip-port', '0'];
    for (const b of o.bootstrap ?? []) args.push('--bootstrap', b);
    args.push(...(o.args ?? []));
    const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DOTS_LOG: 'debug' } });
    const node = new NodeProc(name, datadir, proc);
    this.nodes.push(node);
    createInterface({ input: proc.stderr as NodeJS.ReadableStream }).on('line', (l) => {
      node.lines.push(l);
      if (node.lines.length > 5000) node.lines.splice(0, 1000);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start in 30 s:\n${node.log()}`)), 30_000);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${name} exited with ${code} at start:\n${node.log()}`));
      });
      createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on('line', (l) => {
        const m = /^(p2p|api|sip):\s+(\S+)/.exec(l);
        if (m?.[1] === 'sip') node.sip = m[2];
        if (m?.[1] === 'p2p') node.p2p = m[2];
        if (m?.[1] === 'api') node.api = m[2].replace(/\/api\/status$/, '');
        if (node.p2p !== '' && node.api !== '') {
          clearTimeout(timer);
          resolve();
        }
      });
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
