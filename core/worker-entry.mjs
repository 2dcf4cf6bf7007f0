// What a worker thread's entry (plain JavaScript: a worker thread does not inherit the
// TypeScript loader bin/dots.js registers on the main thread, on Node 20) loads: the bundle its
// pool handed over as workerData (core/worker-code.ts), or without one (esbuild could not build
// it) the TypeScript itself, through tsx, which is slower to start (under tap .ts files already
// load, through tap's own loader).
import { workerData } from 'node:worker_threads';

/** The worker's module: its pool's bundle, else the TypeScript module at `source` (a file: URL). */
export async function loadWorkerModule(source) {
  if (typeof workerData === 'string') return import(workerData);
  try {
    return await import(source.href);
  } catch (e) {
    if (e?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw e;
    const { register } = await import('tsx/esm/api');
    register();
    // A new specifier: the module map remembers the failed import of the plain one.
    return import(`${source.href}?tsx`);
  }
}
