// Kamailio 5.6 for the tests and benchmarks: one configuration file of test/fixtures with its
// placeholders filled in, run in the foreground in a directory of the caller's, stopped by whoever
// started it. `startOperatorKamailio` is an operator's own registrar trunked to a DOTS node
// (test/fixtures/kamailio/operator.cfg); the benchmarks' plain registrar (bench/kamailio.ts) runs
// through `runKamailio` too.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stopProcess } from './proc.ts';
import { untilSipAnswers } from './sip-ping.ts';
import type { Teardown } from './tmp.ts';

const OPERATOR_CONFIG = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'kamailio', 'operator.cfg');

export interface RunningKamailio {
  port: number;
  child: ChildProcess;
  /** what it logged (stderr), the last few thousand characters */
  log(): string;
  stop(): Promise<void>;
}

export interface KamailioRun {
  /** its run directory: configuration and pid file */
  dir: string;
  /** where it listens (UDP on 127.0.0.1), which the configuration names */
  port: number;
  /** shared memory, MB (-m; default 64) */
  shmMb?: number;
  /** how the command is run, e.g. pinned: gets and returns [command, arguments] */
  wrap?: (cmd: string, args: string[]) => [string, string[]];
  /** more command-line arguments (-A DEFINE) */
  args?: string[];
}

/** Runs Kamailio on the configuration text `cfg`; resolves once it answers OPTIONS (15 s at most). */
export async function runKamailio(cfg: string, o: KamailioRun): Promise<RunningKamailio> {
  // one file per instance: its configuration and pid file
  const file = join(o.dir, `kamailio-${o.port}.cfg`);
  writeFileSync(file, cfg);
  const args = ['-f', file, '-DD', '-E', '-m', String(o.shmMb ?? 64), '-M', '16', '-P', join(o.dir, `kamailio-${o.port}.pid`), '-Y', o.dir, ...(o.args ?? [])];
  const [cmd, argv] = o.wrap?.('kamailio', args) ?? ['kamailio', args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  const k: RunningKamailio = { port: o.port, child, log: () => err, stop: () => stopProcess(child, 5000) };
  try {
    await untilSipAnswers('kamailio', child, o.port, 15_000, () => err);
  } catch (e) {
    await k.stop();
    throw e;
  }
  return k;
}

/**
 * Starts Kamailio as the registrar of `domain` on 127.0.0.1:port, trunked to the node at `node`
 * (host:port), with DMQ to `dmqPeer` (host:port of another instance) when given; stopped at the
 * test's teardown.
 */
export async function startOperatorKamailio(t: Teardown, o: KamailioRun & { domain: string; node: string; dmqPeer?: string }): Promise<RunningKamailio> {
  const cfg = readFileSync(OPERATOR_CONFIG, 'utf8')
    .replaceAll('@LISTEN@', `127.0.0.1:${o.port}`)
    .replaceAll('@DOMAIN@', o.domain)
    .replaceAll('@NODE@', o.node)
    .replaceAll('@RUNDIR@', o.dir)
    .replaceAll('@DMQ_PEER@', o.dmqPeer ?? '');
  const k = await runKamailio(cfg, { ...o, args: o.dmqPeer === undefined ? [] : ['-A', 'WITH_DMQ'] });
  t.teardown(() => k.stop());
  return k;
}
