#!/usr/bin/env -S node --max-semi-space-size=32
// The `dots` executable: runs the CLI from a bundle of the TypeScript sources (core/bundle.mjs,
// rebuilt whenever a source changed), or through tsx when no bundle can be built or written, or
// when DOTS_TSX=1 asks for it (stack traces then name the sources' own lines).
// The first line gives V8 a young generation of up to 64 MB (32 by default): a busy node makes
// short-lived objects for every SIP message, and with the default they were collected, and the
// survivors promoted, twice as often; `dots bench sip` measured 36,000 REGISTER/s with it against
// 30,000 without (two runs each), and 0.45-0.47 of a core at 16,000/s against 0.52-0.60.
// Started as `node bin/dots.js`, the flag is not applied: give it to node yourself
// (test/util/proc.ts reads it from here).
async function loadCli() {
  const entry = new URL('../cli/main.ts', import.meta.url);
  if (process.env.DOTS_TSX !== '1') {
    try {
      const { cachedBundle, bundleDir } = await import('../core/bundle.mjs');
      return await import(await cachedBundle(entry, bundleDir()));
    } catch (e) {
      if (process.env.DOTS_LOG === 'debug') console.error(`dots: no bundle (${e?.message ?? e}), running the TypeScript through tsx`);
    }
  }
  const { register } = await import('tsx/esm/api');
  register();
  return import(entry.href);
}

const { main } = await loadCli();
process.exitCode = await main(process.argv.slice(2));
