// Piscina's worker entry for the miner, in plain JavaScript because a worker thread does not
// inherit the TypeScript loader bin/dots.js registers on the main thread (Node 20). The pool
// hands over the worker bundled from this process's sources (core/worker-code.ts) as its
// workerData; without one (esbuild could not build it), the TypeScript is loaded here through
// tsx, which is slower to start (under tap .ts files already load, through tap's own loader).
import { workerData } from 'node:worker_threads';

async function load() {
  if (typeof workerData === 'string') return import(workerData);
  try {
    return await import('./miner-worker.ts');
  } catch (e) {
    if (e?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw e;
    const { register } = await import('tsx/esm/api');
    register();
    // A new specifier: the module map remembers the failed import of the plain one.
    return import('./miner-worker.ts?tsx');
  }
}

export default (await load()).mine;
