// SIPp REGISTER scenarios against a running `dots node`: digest authentication (MD5: all SIPp
// does), refresh, unregister, the wildcard, and a too-brief expiry answered 423. Accounts are
// made with `dots user add` as a node runner would.
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { has, runDots, startNode } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';
import { addUsers } from '../telecom/users.ts';

const FIX = fileURLToPath(new URL('./fixtures/sipp/', import.meta.url));
const HAVE_SIPP = has('sipp');

interface SippResult {
  code: number | null;
  out: string;
}

function sipp(port: number, scenario: string, inf: string, extra: string[] = []): Promise<SippResult> {
  return new Promise((resolve) => {
    const args = [`127.0.0.1:${port}`, '-sf', join(FIX, scenario), '-inf', inf, '-i', '127.0.0.1', '-p', '0', '-m', '1', '-nostdin', '-aa', '-timeout', '15', '-timeout_error', ...extra];
    const c = spawn('sipp', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (out += d.toString()));
    c.on('exit', (code) => resolve({ code, out: out.slice(-3000) }));
  });
}

t.test('SIPp REGISTER scenarios against a running node', { skip: HAVE_SIPP ? false : 'sipp is not installed (apt-get install sip-tester)' }, async (t) => {
  const dir = tmpDir(t);
  const datadir = join(dir, 'node');
  const add = await runDots(['user', 'add', 'alice', '--password', 'wonder.land-7', '--datadir', datadir, '--domain', 'sipp.test']);
  t.equal(add.code, 0, add.stderr);
  t.match(add.stdout, /added sip:alice@sipp\.test/);
  const node = await startNode(t, { datadir, args: ['--domain', 'sipp.test'] });
  const m = /sip:\s+sip:127\.0\.0\.1:(\d+) \(UDP [^;]*, TCP; TLS on \d+\) for domain sipp\.test/.exec(node.stdout.join('\n'));
  t.ok(m, 'the node prints its SIP address');
  const port = Number(m?.[1]);
  const inf = join(dir, 'users.csv');
  writeFileSync(inf, 'SEQUENTIAL\nalice;sipp.test;[authentication username=alice password=wonder.land-7];\n');
  const bad = join(dir, 'bad.csv');
  writeFileSync(bad, 'SEQUENTIAL\nalice;sipp.test;[authentication username=alice password=wrong];\n');

  for (const [scenario, what] of [
    ['register-auth.xml', 'digest (MD5) challenge, then 200'],
    ['register-refresh.xml', 'refresh with a new expiry'],
    ['register-unregister.xml', 'unregister with expires=0'],
    ['register-wildcard.xml', 'two contacts, then Contact: * removes both'],
    ['register-brief.xml', '423 Interval Too Brief with Min-Expires'],
  ]) {
    const r = await sipp(port, scenario, inf);
    t.equal(r.code, 0, `${scenario}: ${what}${r.code === 0 ? '' : '\n' + r.out}`);
  }
  const r = await sipp(port, 'register-auth.xml', bad);
  t.not(r.code, 0, 'a wrong password does not get a 200');

  // many users at once: 50 accounts, 50 registrations at 100/s, all 200
  addUsers(datadir, Array.from({ length: 50 }, (_, i) => ({ name: `user${i}`, password: `pw${i}` })), 'sipp.test');
  const many = join(dir, 'many.csv');
  writeFileSync(many, 'SEQUENTIAL\n' + Array.from({ length: 50 }, (_, i) => `user${i};sipp.test;[authentication username=user${i} password=pw${i}];`).join('\n') + '\n');
  const load = await sipp(port, 'register-auth.xml', many, ['-m', '50', '-r', '100']);
  t.equal(load.code, 0, `50 users picked up without a restart, all registered${load.code === 0 ? '' : '\n' + load.out}`);
});
