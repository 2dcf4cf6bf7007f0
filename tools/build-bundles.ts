// Builds the bundles `dots` and its worker threads run (core/bundle.mjs) into the bundle folder,
// so that the first `dots` command after an install does not wait for them (about 4 s on this
// project's machine), and processes started together (a test run) do not each build them. Run by
// the install (package.json "postinstall") and by `npm run build:bundles`. A bundle that does not
// build only warns: `dots` builds it when it first runs, or runs the sources through tsx.
import { bundleDir, cachedBundle } from '../core/bundle.mjs';

/** What runs from a bundle: the command line, the signature workers, the mining workers. */
const ENTRIES = ['../cli/main.ts', '../consensus/sig-verify.ts', '../mining/miner-worker.ts'];

const dir = bundleDir();
for (const entry of ENTRIES) {
  const t0 = performance.now();
  try {
    await cachedBundle(new URL(entry, import.meta.url), dir);
    console.log(`bundled ${entry.slice(3)} into ${dir} (${Math.round(performance.now() - t0)} ms)`);
  } catch (e) {
    console.warn(`dots: no bundle of ${entry.slice(3)} now (${(e as Error).message.split('\n')[0]}); dots builds it when it first runs`);
  }
}
