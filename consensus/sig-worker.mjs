// Piscina worker entry. Plain JavaScript, because a worker thread does not inherit the TypeScript
// loader that bin/dots.js registers on the main thread: if .ts files do not load yet, this
// registers tsx here first (under tap they already do, through tap's own loader).
let mod;
try {
  mod = await import('./sig-verify.ts');
} catch (e) {
  if (e?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw e;
  const { register } = await import('tsx/esm/api');
  register();
  // A new specifier: the module map remembers the failed import of the plain one.
  mod = await import('./sig-verify.ts?tsx');
}

export default mod.verifyBatch;
