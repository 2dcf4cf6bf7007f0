// What worker threads run (core/worker-code.ts, core/worker-entry.mjs): the code bundled from the
// sources, or, when esbuild cannot build it, the TypeScript through tsx. The fallback is what a
// node runs on a machine where the bundle fails, so it is tested in a plain Node.js process with
// no loader of its own (under tap the TypeScript would load through tap's).
import t from 'tap';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { workerCode } from '../core/worker-code.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

t.test('a bundle that cannot be built: the workers are told to load the TypeScript, and the log hears why', async (t) => {
  const heard: string[] = [];
  const code = await workerCode(new URL('./no-such-module.ts', import.meta.url), (why) => heard.push(why));
  t.equal(code.source, 'typescript');
  t.same(code.options, {}, 'no workerData: the entry loads the TypeScript itself');
  t.equal(heard.length, 1, 'one warning');
  t.match(heard[0], /no-such-module/, 'naming what failed');
});

// Run in a child: both entries with no bundle, a task each. The miner's control block is two
// int32 words (generation, cursor) then the 64-bit hash counter (mining/miner-worker.ts).
const CHILD = `
import { Piscina } from '${import.meta.resolve('piscina')}';
const sig = new Piscina({ filename: '${new URL('../consensus/sig-worker.mjs', import.meta.url).href}', maxThreads: 1 });
const verdicts = await sig.run({ network: 'regtest', bytes: new Uint8Array(0), ends: new Uint32Array(0) });
const miner = new Piscina({ filename: '${new URL('../mining/miner-worker-entry.mjs', import.meta.url).href}', maxThreads: 1 });
const ctl = new SharedArrayBuffer(16);
Atomics.store(new Int32Array(ctl, 0, 2), 0, 1);
const found = await miner.run({ header: new Uint8Array(80), target: new Uint8Array(32).fill(255), ctl, generation: 1, start: 0, count: 16, chunk: 16 });
console.log(JSON.stringify({ verdicts: verdicts.length, status: found.status, nonce: found.nonce }));
await sig.destroy();
await miner.destroy();
`;

t.test('without a bundle, the signature and mining entries load the TypeScript through tsx in a process that has no loader', async (t) => {
  const env = { ...process.env };
  delete env.NODE_OPTIONS; // tap's loader, which would load the TypeScript for them
  // a file, not -e: workers inherit the process's flags, and --input-type would refuse their entries
  const script = join(t.testdir(), 'child.mjs');
  writeFileSync(script, CHILD);
  const child = spawn(process.execPath, [script], { cwd: ROOT, env });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0, `the process ends cleanly${err === '' ? '' : `: ${err.slice(0, 400)}`}`);
  t.same(JSON.parse(out.trim()), { verdicts: 0, status: 'found', nonce: 0 }, 'the verifier answered, and the miner found the first nonce under an all-ones target');
});
