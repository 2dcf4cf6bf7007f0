// SIPp for the benchmarks: the flags every load run shares, its -trace_stat file read back, and
// the SIPp callee of the call benchmarks (`Uas`). The scenarios are test/fixtures/sipp/*.xml
// (read as files) and bench/sipp/*.xml.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopProcess } from '../test/util/proc.ts';
import { freeUdpPort } from '../test/util/ports.ts';
import { untilSipAnswers } from '../test/util/sip-ping.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** SIPp scenarios and the Kamailio configuration the tests use too */
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'sipp');
/** the scenarios only the benchmarks use */
export const BENCH_SCENARIOS = join(ROOT, 'bench', 'sipp');

/**
 * Flags of a SIPp under load: no keyboard, large socket buffers, no cap on the messages it reads
 * or schedules per loop, and cumulative statistics written to `stats` every second.
 */
export function loadFlags(stats: string): string[] {
  return ['-nostdin', '-buff_size', '8388608', '-max_recv_loops', '100000', '-max_sched_loops', '100000', '-trace_stat', '-stf', stats, '-fd', '1'];
}

/** The last line of a SIPp -trace_stat file as numbers by column (cumulative columns end in (C)). */
export function lastStats(file: string): Record<string, number> | null {
  if (!existsSync(file)) return null;
  const lines = readFileSync(file, 'utf8').trim().split('\n');
  if (lines.length < 2) return null;
  const head = lines[0].split(';');
  const last = lines[lines.length - 1].split(';');
  const out: Record<string, number> = {};
  head.forEach((h, i) => (out[h] = Number(last[i])));
  return out;
}

/** The SIPp callee: answers calls (uas-call.xml copies Record-Route) and the nodes' OPTIONS (-aa). */
export class Uas {
  private constructor(
    readonly port: number,
    readonly proc: ChildProcess,
    private readonly stats: string,
  ) {}

  /** Starts it in `dir` (its statistics file), run through `wrap` (pinning); ready once it answers OPTIONS. */
  static async start(dir: string, wrap: (cmd: string, args: string[]) => [string, string[]]): Promise<Uas> {
    const port = await freeUdpPort();
    const stats = join(dir, 'uas-stats.csv');
    // no -m: SIPp counts every OPTIONS ping as a call of its own
    const args = ['-sf', join(FIXTURES, 'uas-call.xml'), '-i', '127.0.0.1', '-p', String(port), '-aa', ...loadFlags(stats)];
    const [cmd, argv] = wrap('sipp', args);
    const proc = spawn(cmd, argv, { stdio: 'ignore' });
    const u = new Uas(port, proc, stats);
    try {
      await untilSipAnswers('the SIPp callee', proc, port);
    } catch (e) {
      await u.stop();
      throw e;
    }
    return u;
  }

  /** Cumulative retransmissions and failed "calls" (its own count) so far. */
  counters(): { retransmissions: number; failed: number } {
    const s = lastStats(this.stats);
    return { retransmissions: s?.['Retransmissions(C)'] ?? 0, failed: s?.['FailedCall(C)'] ?? 0 };
  }

  async stop(): Promise<void> {
    await stopProcess(this.proc, 5000, 'SIGINT');
  }
}
