// The signature workers' code as one plain-JavaScript module, bundled by esbuild from the
// TypeScript sources this process runs. A worker that loads TypeScript through tsx spends
// 0.35-0.7 s starting its loader before its first task (two workers at once, on two cores);
// the bundle loads in a fraction of that. It is built from the sources when the workers are
// first started, never kept on disk: a bundle left over from other sources could vouch for a
// signature the rules this process runs would refuse.
import { readFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build, stop, type Plugin } from 'esbuild';

const ENTRY = fileURLToPath(new URL('./sig-verify.ts', import.meta.url));

/**
 * Packages stay out of the bundle and are imported from where this module resolves them, by
 * absolute URL (the bundle runs from a data: URL, which cannot resolve a bare name); our own
 * modules go in, each keeping its own import.meta.url (core/sig.ts loads libsecp256k1's addon
 * relative to it).
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

/** Builds the workers' module as a data: URL (each call builds it again: verifierModuleUrl keeps one). */
export async function buildVerifierModule(): Promise<string> {
  const r = await build({ entryPoints: [ENTRY], bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false, logLevel: 'silent', plugins: [ownSources] });
  const out = r.outputFiles[0];
  if (out === undefined) throw new Error('esbuild produced no output');
  return `data:text/javascript;base64,${Buffer.from(out.contents).toString('base64')}`;
}

let built: Promise<string> | null = null;

/**
 * The workers' module, built once per process; rejects when esbuild cannot build it. esbuild's
 * service process is stopped once it is built: the node has nothing else for it.
 */
export function verifierModuleUrl(): Promise<string> {
  built ??= buildVerifierModule().finally(() => stop().catch(() => undefined));
  return built;
}
