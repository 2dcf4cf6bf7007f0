// Our TypeScript sources as one plain-JavaScript module, bundled by esbuild: what worker threads
// run (core/worker-code.ts) and what `dots` runs (bin/dots.js). Plain JavaScript because
// bin/dots.js loads it before any TypeScript loader, to avoid needing one: under tsx every module
// the process loads, libp2p's hundreds included, crosses to tsx's loader thread and back. A
// `dots node` took 1.76-1.91 s from spawn to its addresses through tsx, 1.22-1.56 s from a bundle
// of our sources, 0.83-1.01 s with the ES-module packages bundled too (ad hoc, starts alternating),
// and with the CommonJS packages bundled as well, a median of 720 ms against 840 (ten starts
// alternating; Node had spent about 200 ms resolving, reading and compiling fastify's, ajv's and
// prom-client's files one by one).
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Whether the file at `path` belongs to a package of ES modules (its package.json says type
 * module). An .mjs file of a CommonJS package (ws's wrapper) is not: it imports that package's
 * CommonJS files.
 */
function isEsm(path, cache) {
  if (!path.endsWith('.js') && !path.endsWith('.mjs')) return false;
  for (let dir = dirname(path); ; ) {
    let known = cache.get(dir);
    if (known === undefined) {
      try {
        const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
        // a package.json of a package's sub-folder may say only its type, or nothing
        known = pkg.type === 'module' ? 'esm' : pkg.type !== undefined || pkg.name !== undefined ? 'cjs' : 'none';
      } catch {
        known = 'none';
      }
      cache.set(dir, known);
    }
    if (known !== 'none') return known === 'esm';
    const up = dirname(dir);
    if (up === dir) return false;
    dir = up;
  }
}

/**
 * Packages that stay out of a bundle even with `packages`: those that load files beside their own
 * a bundle cannot hold (native addons; the worker scripts Piscina starts; esbuild's and tsx's
 * own processes).
 */
const KEPT_OUT = /[\\/]node_modules[\\/](classic-level|secp256k1|msgpackr-extract|node-gyp-build[^\\/]*|piscina|esbuild|tsx)[\\/]/;

/**
 * Our TypeScript modules go in, each keeping its own import.meta.url (core/sig.ts and mining/'s
 * hashers load their addons and WebAssembly relative to it). Our own plain-JavaScript modules
 * stay out, imported by absolute URL (they keep their import.meta too). Packages stay out, by
 * absolute URL too (a bundle may run from a data: URL, which cannot resolve a bare name), except
 * with `packages`, where they go in but for KEPT_OUT: a `dots node` otherwise loads hundreds of
 * libp2p's, fastify's and ajv's files, each one resolved, read and compiled on its own. A
 * CommonJS package that goes in keeps its own __dirname and __filename (the paths it was bundled
 * from, on this machine, as the bundle is), so what it finds beside it, it still finds; it runs in
 * strict mode, as the whole bundle (an ES module) does.
 */
function ownSources(packages) {
  const types = new Map();
  return {
    name: 'dots-own-sources',
    setup(b) {
      b.onResolve({ filter: /^[^./]/ }, async (a) => {
        if (a.path.startsWith('node:')) return { path: a.path, external: true };
        if (a.pluginData === 'resolving') return undefined;
        const r = await b.resolve(a.path, { kind: a.kind, importer: a.importer, resolveDir: a.resolveDir, pluginData: 'resolving' });
        if (r.errors.length > 0) return undefined; // esbuild reports it
        // require() takes a path, import a URL
        const out = (url) => ({ path: a.kind === 'require-call' && url.startsWith('file:') ? fileURLToPath(url) : url, external: true });
        if (r.external || !r.path.startsWith('/')) return out(import.meta.resolve(a.path));
        if (packages && (isEsm(r.path, types) || !KEPT_OUT.test(r.path))) return { path: r.path };
        return out(pathToFileURL(r.path).href);
      });
      if (packages) {
        // the text read here is what esbuild compiles (returned, not read again)
        b.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, async (a) => {
          const text = await readFile(a.path, 'utf8');
          if (!/\b__(dirname|filename)\b/.test(text) || /\b(var|let|const)\s+__(dirname|filename)\b/.test(text) || isEsm(a.path, types)) return { contents: text, loader: 'js' };
          // after a hashbang, which must stay first
          const head = /^#![^\n]*\n/.exec(text)?.[0] ?? '';
          const paths = `var __filename = ${JSON.stringify(a.path)}, __dirname = ${JSON.stringify(dirname(a.path))};\n`;
          return { contents: head + paths + text.slice(head.length), loader: 'js' };
        });
      }
      b.onResolve({ filter: /^\.\.?\/.*\.m?js$/ }, (a) => (a.importer.endsWith('.ts') ? { path: pathToFileURL(join(a.resolveDir, a.path)).href, external: true } : undefined));
      b.onLoad({ filter: /\.ts$/ }, async (a) => ({
        contents: (await readFile(a.path, 'utf8')).replaceAll('import.meta.url', JSON.stringify(pathToFileURL(a.path).href)),
        loader: 'ts',
      }));
    },
  };
}

/**
 * Where bundles are kept: DOTS_BUNDLE_DIR, else the package's own node_modules/.cache/dots (where
 * npm keeps tools' caches).
 */
export function bundleDir() {
  return process.env.DOTS_BUNDLE_DIR || join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '.cache', 'dots');
}

/** Our packages: where a bare name resolves when the importer's own folders do not have it (sources outside this repository, in tests). */
const OUR_PACKAGES = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules');

let building = 0;

/**
 * Bundles the module at `entry` (a file: URL) and what it imports of ours (and, with `packages`,
 * the packages it imports, but for KEPT_OUT): the code, and the files it was built from.
 */
export async function bundleModule(entry, packages = false) {
  const { build, stop } = await import('esbuild');
  building++;
  try {
    // The CommonJS packages' require(): of Node's modules, of those kept out, and of optional ones
    // they try (ws's bufferutil), from our node_modules.
    const banner = packages ? { js: `import { createRequire as __dotsCreateRequire } from 'node:module'; const require = __dotsCreateRequire(${JSON.stringify(join(OUR_PACKAGES, 'bundle.js'))});` } : {};
    const r = await build({ entryPoints: [fileURLToPath(entry)], bundle: true, format: 'esm', platform: 'node', target: 'node20', write: false, metafile: true, logLevel: 'silent', conditions: [], nodePaths: [OUR_PACKAGES], banner, plugins: [ownSources(packages)] });
    const out = r.outputFiles[0];
    if (out === undefined) throw new Error('esbuild produced no output');
    const cwd = process.cwd();
    return { code: out.contents, inputs: Object.keys(r.metafile.inputs).map((p) => (p.startsWith('/') ? p : join(cwd, p))) };
  } finally {
    // esbuild's service process is stopped whenever no build is left in flight (the process has
    // nothing else for it; a later build starts it again)
    if (--building === 0) await stop().catch(() => undefined);
  }
}

/** Bumped when what a bundle holds changes without its sources changing (the build's options). */
const FORMAT = 4;

/** What the bundle's sources look like on disk now: each one's path, size and modification time. */
function sourcesKey(inputs) {
  const h = createHash('sha256').update(`${FORMAT}\0${process.version}\0`);
  for (const p of inputs) {
    // statSync: a bundle with libp2p in it is built from about 900 files, 10 ms synchronously
    const s = statSync(p);
    h.update(`${p}\0${s.size}\0${s.mtimeMs}\0`);
  }
  return h.digest('hex');
}

/**
 * The bundle of `entry` as a file in `dir`, built again whenever a file it was built from has
 * changed on disk (size or modification time), else the one built before: a bundle left over from
 * other sources could run rules (a signature check, a proof-of-work target) the sources do not.
 * Writes are atomic (another process may be starting from the same folder); bundles of older
 * sources, and files left half-written, are removed once they are ten minutes old (a process
 * starting from one has loaded it long before). Rejects when esbuild cannot build the sources or the folder cannot be written.
 */
export async function cachedBundle(entry, dir) {
  const name = fileURLToPath(entry).replace(/^.*[\\/]/, '').replace(/\.ts$/, '');
  const manifestFile = join(dir, `${name}-${createHash('sha256').update(entry.href).digest('hex').slice(0, 12)}.json`);
  try {
    const m = JSON.parse(await readFile(manifestFile, 'utf8'));
    if (typeof m.file === 'string' && Array.isArray(m.inputs) && m.key === sourcesKey(m.inputs)) {
      const file = join(dir, m.file);
      await stat(file);
      return pathToFileURL(file).href;
    }
  } catch {
    // no manifest yet, a source gone, or a bundle removed: build one
  }
  const { code, inputs } = await bundleModule(entry, true);
  const key = sourcesKey(inputs);
  const fileName = `${name}-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`;
  await mkdir(dir, { recursive: true });
  const tmp = (f) => join(dir, `.${f}.${process.pid}.${randomBytes(4).toString('hex')}`);
  const t1 = tmp(fileName);
  await writeFile(t1, code);
  await rename(t1, join(dir, fileName));
  const t2 = tmp('manifest');
  await writeFile(t2, JSON.stringify({ key, inputs, file: fileName }));
  await rename(t2, manifestFile);
  const old = Date.now() - 10 * 60_000;
  for (const f of await readdir(dir)) {
    // older bundles of this entry, and files a process died before renaming
    if (f === fileName || !(f.startsWith(`${name}-`) && f.endsWith('.mjs')) && !f.startsWith('.')) continue;
    const p = join(dir, f);
    if ((await stat(p).catch(() => null))?.mtimeMs < old) await unlink(p).catch(() => undefined);
  }
  return pathToFileURL(join(dir, fileName)).href;
}
