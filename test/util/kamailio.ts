// Kamailio 5.6 as an operator's own registrar, for the trunk tests: test/fixtures/kamailio/
// operator.cfg with its listening address, its domain and the DOTS node it trunks to filled in,
// run in the foreground in a directory of the test's, stopped by the test that started it.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stopProcess } from './proc.ts';
import { waitFor } from './wait.ts';
import { TestPhone } from '../sip-client.ts';
import type { Teardown } from './tmp.ts';

const CONFIG = new URL('../fixtures/kamailio/operator.cfg', import.meta.url);

export interface OperatorKamailio {
  port: number;
  child: ChildProcess;
  /** what it logged (stderr), the last few thousand characters */
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts Kamailio for `domain` on 127.0.0.1:port, trunked to the node at `node` (host:port), with
 * DMQ to `dmqPeer` (host:port of another instance) when given; resolves once it answers OPTIONS.
 */
export async function startOperatorKamailio(t: Teardown, o: { dir: string; port: number; domain: string; node: string; dmqPeer?: string }): Promise<OperatorKamailio> {
  const cfg = readFileSync(CONFIG, 'utf8')
    .replaceAll('@LISTEN@', `127.0.0.1:${o.port}`)
    .replaceAll('@DOMAIN@', o.domain)
    .replaceAll('@NODE@', o.node)
    .replaceAll('@RUNDIR@', o.dir)
    .replaceAll('@DMQ_PEER@', o.dmqPeer ?? '');
  // one folder per instance: its configuration and pid file
  const file = join(o.dir, `kamailio-${o.port}.cfg`);
  writeFileSync(file, cfg);
  const args = ['-f', file, '-DD', '-E', '-m', '64', '-M', '8', '-P', join(o.dir, `kamailio-${o.port}.pid`), '-Y', o.dir, ...(o.dmqPeer === undefined ? [] : ['-A', 'WITH_DMQ'])];
  const child = spawn('kamailio', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-8000)));
  const k: OperatorKamailio = { port: o.port, child, log: () => err, stop: () => stopProcess(child, 5000) };
  t.teardown(() => k.stop());
  const probe = await new TestPhone({ host: '127.0.0.1', port: o.port }).open();
  try {
    await waitFor(
      'kamailio to answer OPTIONS',
      async () => {
        if (child.exitCode !== null) throw new Error(`kamailio exited (${child.exitCode}): ${err}`);
        const r = await probe.request('OPTIONS', `sip:127.0.0.1:${o.port}`, [], '', 300).catch(() => undefined);
        return r !== undefined && r.status === 200 ? true : undefined;
      },
      15_000,
      100,
    );
  } finally {
    probe.close();
  }
  return k;
}
