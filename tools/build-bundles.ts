// Builds the bundles `dots` and its worker threads run (core/bundle.mjs) into the bundle folder,
// so that the first `dots` command after an install does not wait for them (about 4 s on this
// project's machine), and processes started together (a test run) do not each build them. Run by
// the install (package.json "postinstall") and by `npm run build:bundles`. A bundle that does not
// build only warns: `dots` builds it when it first runs, or runs the sources through tsx.
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bundleDir, cachedBundle } from '../core/bundle.mjs';
import { VERIFIER_ENTRY } from '../consensus/sigpool.ts';
import { MINER_WORKER } from '../mining/miner-pool.ts';

/** What runs from a bundle: the command line (as bin/dots.js names it), the signature workers, the mining workers. */
const ENTRIES = [new URL('../cli/main.ts', import.meta.url), VERIFIER_ENTRY, MINER_WORKER];

const dir = bundleDir();
for (const entry of ENTRIES) {
  const name = relative(fileURLToPath(new URL('..', import.meta.url)), fileURLToPath(entry));
  const t0 = performance.now();
  try {
    await cachedBundle(entry, dir);
    console.log(`bundled ${name} into ${dir} (${Math.round(performance.now() - t0)} ms)`);
  } catch (e) {
    console.warn(`dots: no bundle of ${name} now (${(e as Error).message.split('\n')[0]}); dots builds it when it first runs`);
  }
}
