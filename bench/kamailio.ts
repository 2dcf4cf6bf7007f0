// Kamailio 5.6 as the benchmarks' point of comparison: test/fixtures/sipp/kamailio-registrar.cfg
// (an in-memory registrar that record-routes and relays to registered contacts), with the given
// number of workers, on a given port, in its own run directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopProcess } from '../test/util/proc.ts';
import { childrenOf } from './cpu.ts';
import { FIXTURES } from './sipp.ts';
import { untilAnswering } from './ua.ts';

export interface Kamailio {
  port: number;
  child: ChildProcess;
  /** the main process and its workers, whose CPU time counts */
  pids(): number[];
  stop(): Promise<void>;
}

export interface KamailioOptions {
  /** its run directory: configuration, pid file, control socket */
  dir: string;
  port: number;
  /** UDP worker processes */
  children: number;
  /** shared memory, MB (-m) */
  shmMb: number;
  /** how the command is run, e.g. pinned: gets and returns [command, arguments] */
  wrap?: (cmd: string, args: string[]) => [string, string[]];
}

/** Starts Kamailio and resolves once it answers OPTIONS (15 s at the most). */
export async function startKamailio(o: KamailioOptions): Promise<Kamailio> {
  const cfg = readFileSync(join(FIXTURES, 'kamailio-registrar.cfg'), 'utf8')
    .replaceAll('@CHILDREN@', String(o.children))
    .replaceAll('@RUNDIR@', o.dir)
    .replaceAll('127.0.0.1:5070', `127.0.0.1:${o.port}`);
  const file = join(o.dir, 'kamailio.cfg');
  writeFileSync(file, cfg);
  const args = ['-f', file, '-DD', '-E', '-m', String(o.shmMb), '-M', '16', '-P', join(o.dir, 'kamailio.pid')];
  const [cmd, argv] = o.wrap?.('kamailio', args) ?? ['kamailio', args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
  const k: Kamailio = {
    port: o.port,
    child,
    pids: () => [child.pid as number, ...childrenOf(child.pid as number)],
    stop: () => stopProcess(child, 5000),
  };
  try {
    await untilAnswering('kamailio', child, o.port);
  } catch (e) {
    await k.stop();
    throw new Error(`${(e as Error).message}: ${err}`);
  }
  return k;
}
