// A `dots node` process for the call benchmarks: test/util's NodeProc whose whole log (stderr, and
// stdout with a time stamp) goes to a file, with its warn and error lines counted by kind for the
// report, and what the benchmarks ask a node (a name's binding, pending records, event loop delay
// and GC from /metrics).
import { createWriteStream, type WriteStream } from 'node:fs';
import { NodeProc, type NodeOptions } from '../test/util/proc.ts';
import { sleep } from '../test/util/wait.ts';

export interface BenchNodeOptions extends NodeOptions {
  /** where its log is written */
  logFile: string;
}

export class BenchNode extends NodeProc {
  /** log lines by level since start */
  readonly counts = { warn: 0, error: 0, other: 0 };
  /** the last warn/error lines, for the report */
  readonly problems: string[] = [];
  /** warn/error lines by what they say (hex ids, peer ids and numbers blanked) */
  readonly kinds = new Map<string, number>();
  /** resolves once the log file is complete (the node's stderr closed) */
  readonly logged: Promise<void>;
  private readonly file: WriteStream;

  constructor(o: BenchNodeOptions) {
    super(o);
    this.file = createWriteStream(o.logFile);
    this.file.on('error', () => undefined);
    this.logged = new Promise((resolve) => this.file.once('close', () => resolve()));
    void this.logClosed.then(() => this.file.end());
  }

  private write(l: string): void {
    if (!this.file.writableEnded) this.file.write(l + '\n');
  }

  // what the node prints on stdout goes to its log file too (addresses; --trace-gc lines)
  protected override onStdout(l: string): void {
    this.write(`${new Date().toISOString()} stdout ${l}`);
  }

  protected override onLog(l: string): void {
    this.write(l);
    const lv = / (warn|error) /.exec(l.slice(0, 40))?.[1];
    if (lv === 'warn' || lv === 'error') {
      this.counts[lv]++;
      this.problems.push(l);
      if (this.problems.length > 50) this.problems.shift();
      const kind = l
        .replace(/^\S+\s+/, '')
        .replace(/12D3KooW[.\w]*/g, 'PEER')
        .replace(/[0-9a-f]{8,}/g, 'ID')
        .replace(/\d+/g, 'N');
      this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
    } else this.counts.other++;
  }

  /** The status of `name`'s binding as this node sees it: online, offline, unbound or unknown. */
  async binding(name: string): Promise<string> {
    const r = await this.get<{ binding: { status: string } | null }>(`/api/names/${encodeURIComponent(name)}`);
    return r.status === 200 ? (r.body.binding?.status ?? 'unbound') : 'unknown';
  }

  async pending(): Promise<number> {
    return (await this.status()).pending;
  }

  /**
   * The node's own view of a window, from GET /metrics (prom-client resets the event loop
   * histogram at each scrape, so a scrape before the window and one after bracket it): the
   * longest event loop delay, its p99, and seconds spent in GC so far.
   */
  async health(): Promise<{ lagMaxMs: number; lagP99Ms: number; gcSeconds: number }> {
    try {
      const text = await (await fetch(this.api + '/metrics', { signal: AbortSignal.timeout(5000) })).text();
      const one = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      let gc = 0;
      for (const m of text.matchAll(/^nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm)) gc += Number(m[1]);
      return { lagMaxMs: one('nodejs_eventloop_lag_max_seconds') * 1000, lagP99Ms: one('nodejs_eventloop_lag_p99_seconds') * 1000, gcSeconds: gc };
    } catch {
      return { lagMaxMs: NaN, lagP99Ms: NaN, gcSeconds: NaN };
    }
  }

  /** Stops it (SIGTERM, SIGKILL after `graceMs`) and waits (2 s at the most) for its log file. */
  override async stop(graceMs = 10_000): Promise<number> {
    const ms = await super.stop(graceMs);
    await Promise.race([this.logged, sleep(2000)]);
    return ms;
  }
}
