// Worker threads' code as one plain-JavaScript module, bundled by esbuild from the TypeScript
// sources this process runs. A worker thread does not inherit the main thread's TypeScript
// loader on Node 20; one that starts tsx itself spends 0.35-0.7 s on it before its first task
// (two at once, on two cores), the bundle loads in a fraction of that. The bundle is kept on disk
// beside the one `dots` runs (core/bundle.mjs, cachedBundle), and built again whenever a file it
// was built from has changed: a bundle of other sources could run rules (a signature check, a
// proof-of-work target) this process does not. Built at each start instead, it cost a sync's
// first blocks 0.1-0.3 s of waiting (esbuild on the cores the starting node needs). The workers
// get its code in memory, read once: idle workers exit and start again later, and by then the file
// may be gone (a newer version's node, started beside this one, removes bundles of other sources
// after ten minutes).
import { readFile } from 'node:fs/promises';
import { bundleDir, bundleModule, cachedBundle } from './bundle.mjs';

function dataUrl(code: Uint8Array): string {
  return `data:text/javascript;base64,${Buffer.from(code.buffer, code.byteOffset, code.byteLength).toString('base64')}`;
}

/** Bundles the module at `entry` (a file: URL) and what it imports of ours, as a data: URL; each call builds it again. */
export async function bundleUrl(entry: URL): Promise<string> {
  return dataUrl((await bundleModule(entry)).code);
}

const built = new Map<string, Promise<string>>();

/**
 * The bundle of `entry` as a data: URL, looked up once per process: the one kept in the bundle
 * folder, or, where that cannot be written, one built in memory; rejects when esbuild cannot build it.
 */
export function workerModuleUrl(entry: URL): Promise<string> {
  let p = built.get(entry.href);
  if (p === undefined) {
    p = cachedBundle(entry, bundleDir())
      .then(async (file) => dataUrl(await readFile(new URL(file))))
      .catch(() => bundleUrl(entry));
    built.set(entry.href, p);
  }
  return p;
}

/** What a pool's workers run: `entry` bundled, or the TypeScript through tsx when it cannot be built. */
export interface WorkerCode {
  source: 'bundled' | 'typescript';
  /** Piscina options that hand each worker the bundle (the worker entries load it: core/worker-entry.mjs) */
  options: { workerData?: string; execArgv?: string[] };
}

/**
 * The code for a pool's workers. When esbuild cannot build the bundle, `warn` hears why and the
 * workers load the TypeScript (slower to start). A bundle needs no loader, so its workers start
 * none (not even one inherited, as under tap).
 */
export async function workerCode(entry: URL, warn: (why: string) => void): Promise<WorkerCode> {
  try {
    return { source: 'bundled', options: { workerData: await workerModuleUrl(entry), execArgv: [] } };
  } catch (e) {
    warn((e as Error).message);
    return { source: 'typescript', options: {} };
  }
}
