// Kamailio 5.6 as the benchmarks' point of comparison: test/fixtures/sipp/kamailio-registrar.cfg
// (an in-memory registrar that record-routes and relays to registered contacts), with the given
// number of workers, on a given port, in its own run directory.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runKamailio, type KamailioRun } from '../test/util/kamailio.ts';
import { childrenOf } from './cpu.ts';
import { FIXTURES } from './sipp.ts';

/** the domain kamailio-registrar.cfg serves (its alias) */
export const KAMAILIO_DOMAIN = 'bench.local';

export interface Kamailio {
  port: number;
  /** the main process and its workers, whose CPU time counts */
  pids(): number[];
  stop(): Promise<void>;
}

/** Starts Kamailio with `children` UDP workers and resolves once it answers OPTIONS (15 s at the most). */
export async function startKamailio(o: KamailioRun & { children: number; shmMb: number }): Promise<Kamailio> {
  const cfg = readFileSync(join(FIXTURES, 'kamailio-registrar.cfg'), 'utf8')
    .replaceAll('@CHILDREN@', String(o.children))
    .replaceAll('@RUNDIR@', o.dir)
    .replaceAll('127.0.0.1:5070', `127.0.0.1:${o.port}`);
  const k = await runKamailio(cfg, o);
  return { port: k.port, pids: () => [k.child.pid as number, ...childrenOf(k.child.pid as number)], stop: k.stop };
}
