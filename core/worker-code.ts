// Worker threads' code as one plain-JavaScript module, bundled by esbuild from the TypeScript
// sources this process runs. A worker thread does not inherit the main thread's TypeScript
// loader on Node 20; one that starts tsx itself spends 0.35-0.7 s on it before its first task
// (two at once, on two cores), the bundle loads in a fraction of that. It is built from the
// sources when a pool first starts, never kept on disk: a bundle left over from other sources
// could run rules (a signature check, a proof-of-work target) this process does not.
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, stop, type Plugin } from 'esbuild';

/**
 * Packages stay out of the bundle and are imported from where this module resolves them, by
 * absolute URL (the bundle runs from a data: URL, which cannot resolve a bare name); our own
 * modules go in, each keeping its own import.meta.url (core/sig.ts and mining/'s hashers load
 * their addons and WebAssembly relative to it).
 */
const ownSources: Plugin = {
  name: 'dots-own-sources',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (a) => ({ path: a.path.startsWith('node:') ? a.path : import.meta.resolve(a.path), external: true }));
    b.onLoad({ filter: /\.ts$/ }, async (a) => ({
      contents: (await readFile(a.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(a.path).href)),
      loader: 'ts',
    }));
  },
};

/** Bundles the module at `entry` (a file: URL) and what it imports of ours, as a data: URL; each call builds it again. */
export async function bundleModule(entry: URL): Promise<string> {
  const r = await build({ entryPoints: [fileURLToPath(entry)], bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false, logLevel: 'silent', plugins: [ownSources] });
  const out = r.outputFiles[0];
  if (out === undefined) throw new Error('esbuild produced no output');
  return `data:text/javascript;base64,${Buffer.from(out.contents).toString('base64')}`;
}

const built = new Map<string, Promise<string>>();
let building = 0;

/**
 * The bundle of `entry`, built once per process; rejects when esbuild cannot build it. esbuild's
 * service process is stopped whenever no build is left in flight (the node has nothing else for
 * it; a later build starts it again).
 */
export function workerModuleUrl(entry: URL): Promise<string> {
  let p = built.get(entry.href);
  if (p === undefined) {
    building++;
    p = bundleModule(entry).finally(() => {
      if (--building === 0) void stop().catch(() => undefined);
    });
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
