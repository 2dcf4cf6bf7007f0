// What `dots` runs (bin/dots.js, core/bundle.mjs): a bundle of the TypeScript sources, kept on
// disk and built again whenever a source it was built from changed, so it never runs code the
// sources no longer hold; tsx when no bundle can be made.
import t from 'tap';
import { mkdirSync, readFileSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { cachedBundle } from '../core/bundle.mjs';
import { VERIFIER_ENTRY } from '../consensus/sigpool.ts';
import { runDots } from './util/proc.ts';
import { tmpDir } from './util/tmp.ts';

/** A two-file TypeScript project in `dir`: a.ts imports b.ts and a package, and says where it runs from. */
function project(dir: string, value: string): URL {
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(join(dir, 'src', 'b.ts'), `export const value: string = ${JSON.stringify(value)};\n`);
  writeFileSync(
    join(dir, 'src', 'a.ts'),
    "import { value } from './b.ts';\nimport { pack } from 'msgpackr';\nexport const here: string = import.meta.url;\nexport const out = (): string => value + pack(1).length;\n",
  );
  return pathToFileURL(join(dir, 'src', 'a.ts'));
}

interface Mod {
  here: string;
  out(): string;
}

t.test('a bundle is built once, used while its sources stay as they were, and built again when one changes', async (t) => {
  const dir = tmpDir(t, 'bundle-');
  const cache = join(dir, 'cache');
  const entry = project(dir, 'first');
  const url1 = await cachedBundle(entry, cache);
  const m1 = (await import(url1)) as Mod;
  t.equal(m1.out(), 'first1', 'the bundle runs the sources, the package imported from node_modules');
  t.equal(m1.here, entry.href, 'a bundled module keeps its own import.meta.url (addons and WebAssembly load relative to it)');
  const file1 = new URL(url1);
  const mtime = statSync(file1).mtimeMs;

  t.equal(await cachedBundle(entry, cache), url1, 'unchanged sources: the same bundle');
  t.equal(statSync(file1).mtimeMs, mtime, 'not written again');

  writeFileSync(join(dir, 'src', 'b.ts'), 'export const value: string = "second, longer";\n');
  const url2 = await cachedBundle(entry, cache);
  t.not(url2, url1, 'an imported source changed: a new bundle');
  t.equal(((await import(url2)) as Mod).out(), 'second, longer1', 'which runs the new source');

  // the same size, only the modification time tells it apart
  writeFileSync(join(dir, 'src', 'b.ts'), 'export const value: string = "second, LONGER";\n');
  utimesSync(join(dir, 'src', 'b.ts'), new Date(), new Date(Date.now() + 5000));
  const url3 = await cachedBundle(entry, cache);
  t.equal(((await import(url3)) as Mod).out(), 'second, LONGER1', 'a change of the same size is seen too');

  // bundles of older sources go once they are ten minutes old
  const old = new Date(Date.now() - 11 * 60_000);
  utimesSync(file1, old, old);
  const halfWritten = '.main-0123.mjs.999.abcd';
  writeFileSync(join(cache, halfWritten), 'export const x =');
  utimesSync(join(cache, halfWritten), old, old);
  writeFileSync(join(dir, 'src', 'b.ts'), 'export const value: string = "third";\n');
  const url4 = await cachedBundle(entry, cache);
  const left = readdirSync(cache).filter((f) => f.endsWith('.mjs'));
  t.notOk(left.includes(file1.pathname.replace(/^.*\//, '')), 'a bundle of old sources, ten minutes old, removed');
  t.notOk(readdirSync(cache).includes(halfWritten), 'so is a file a process died before renaming');
  t.ok(left.includes(new URL(url4).pathname.replace(/^.*\//, '')), 'the new one kept');
  t.ok(left.includes(new URL(url2).pathname.replace(/^.*\//, '')), 'a younger old one kept (a process may be starting from it)');
});

t.test('packages go into the bundle, CommonJS ones with their own __dirname, and a change to one makes a new bundle; native addons stay out', async (t) => {
  const dir = tmpDir(t, 'bundle-');
  const cache = join(dir, 'cache');
  const pkg = join(dir, 'node_modules', 'esm-pkg');
  mkdirSync(pkg, { recursive: true });
  writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: 'esm-pkg', type: 'module', exports: './index.js' }));
  writeFileSync(join(pkg, 'index.js'), "export const word = 'one';\n");
  // a CommonJS package that reads a file beside it and requires an addon's package
  const cjs = join(dir, 'node_modules', 'cjs-pkg');
  mkdirSync(cjs, { recursive: true });
  writeFileSync(join(cjs, 'package.json'), JSON.stringify({ name: 'cjs-pkg', main: 'index.js' }));
  writeFileSync(join(cjs, 'data.txt'), 'beside');
  writeFileSync(
    join(cjs, 'index.js'),
    "#!/usr/bin/env node\n'use strict';\nconst { readFileSync } = require('node:fs');\nconst { join } = require('node:path');\nexports.data = () => readFileSync(join(__dirname, 'data.txt'), 'utf8');\nexports.file = __filename;\nexports.addon = typeof require('secp256k1').publicKeyCreate;\n",
  );
  mkdirSync(join(dir, 'src'), { recursive: true });
  writeFileSync(
    join(dir, 'src', 'a.ts'),
    "import { word } from 'esm-pkg';\nimport cjs from 'cjs-pkg';\nimport { WebSocketServer } from 'ws';\nexport const out = (): string => word + typeof WebSocketServer;\nexport const c = cjs as { data(): string; file: string; addon: string };\n",
  );
  const entry = pathToFileURL(join(dir, 'src', 'a.ts'));
  const url1 = await cachedBundle(entry, cache);
  const code = readFileSync(new URL(url1), 'utf8');
  t.match(code, /word = "one"|word = 'one'/, 'the ES-module package is inside the bundle');
  t.notMatch(code, /from\s+["'][^"']*esm-pkg/, 'not imported');
  t.notMatch(code, /(from\s+|require\()"(file:\/\/)?\/[^"]*\/node_modules\/(ws|cjs-pkg)\//, 'ws and cjs-pkg (CommonJS) are inside too, neither imported nor required by path');
  t.match(code, /require\("\/[^"]*\/node_modules\/secp256k1\/[^"]*"\)/, 'secp256k1 (a native addon) is required from node_modules by absolute path');
  const m1 = (await import(url1)) as { out(): string; c: { data(): string; file: string; addon: string } };
  t.equal(m1.out(), 'onefunction', 'and the bundle runs');
  t.equal(m1.c.data(), 'beside', 'the CommonJS package finds the file beside it (its own __dirname)');
  t.equal(m1.c.file, join(cjs, 'index.js'), 'and its own __filename');
  t.equal(m1.c.addon, 'function', 'the addon it requires loads');
  writeFileSync(join(pkg, 'index.js'), "export const word = 'two!';\n");
  const url2 = await cachedBundle(entry, cache);
  t.not(url2, url1, 'a file of the package changed: a new bundle');
  t.equal(((await import(url2)) as { out(): string }).out(), 'two!function', 'with the package as it is now');
});

t.test('processes starting at once from an empty cache each get a whole bundle', async (t) => {
  const dir = tmpDir(t, 'bundle-');
  const cache = join(dir, 'cache');
  const entry = project(dir, 'x');
  const urls = await Promise.all([cachedBundle(entry, cache), cachedBundle(entry, cache), cachedBundle(entry, cache)]);
  for (const u of urls) t.equal(((await import(u)) as Mod).out(), 'x1', 'a bundle that runs');
  t.same(readdirSync(cache).filter((f) => f.startsWith('.')), [], 'no half-written file left');
});

t.test('sources that do not compile: no bundle', async (t) => {
  const dir = tmpDir(t, 'bundle-');
  const entry = project(dir, 'x');
  writeFileSync(join(dir, 'src', 'b.ts'), 'export const value: string = ;\n');
  await t.rejects(cachedBundle(entry, join(dir, 'cache')), 'rejected (bin/dots.js then runs the sources through tsx)');
});

t.test('dots runs from a bundle, and through tsx when none can be written or when asked', async (t) => {
  const dir = tmpDir(t, 'bundle-');
  const cache = join(dir, 'cache');
  const bundled = await runDots(['--help'], 30_000, { DOTS_BUNDLE_DIR: cache });
  t.equal(bundled.code, 0, 'dots --help from a bundle');
  t.match(bundled.stdout, /Usage:/, 'prints its usage');
  t.equal(readdirSync(cache).filter((f) => /^main-[0-9a-f]+\.mjs$/.test(f)).length, 1, 'one bundle of cli/main.ts in the folder');

  const asked = await runDots(['--help'], 30_000, { DOTS_BUNDLE_DIR: join(dir, 'unused'), DOTS_TSX: '1' });
  t.equal(asked.code, 0, 'DOTS_TSX=1: dots --help through tsx');
  t.throws(() => readdirSync(join(dir, 'unused')), 'and no bundle made');

  writeFileSync(join(dir, 'file'), '');
  const unwritable = await runDots(['--help'], 30_000, { DOTS_BUNDLE_DIR: join(dir, 'file', 'cache'), DOTS_LOG: 'debug' });
  t.equal(unwritable.code, 0, 'a cache folder that cannot be made: dots --help still runs, through tsx');
  t.match(unwritable.stderr, /^dots: no bundle \(.*\), running the TypeScript through tsx$/m, 'and says why when asked for debug output');
  t.match(unwritable.stdout, /Usage:/, 'with the same usage');
});

t.test("the install's tool builds the bundles dots and its workers run, and dots starts from them without building", async (t) => {
  const dir = tmpDir(t, 'bundle-');
  const cache = join(dir, 'cache');
  // as the install runs it (package.json "postinstall")
  const tool = spawnSync(fileURLToPath(new URL('../node_modules/.bin/tsx', import.meta.url)), [fileURLToPath(new URL('../tools/build-bundles.ts', import.meta.url))], { env: { ...process.env, DOTS_BUNDLE_DIR: cache }, encoding: 'utf8', timeout: 120_000 });
  t.equal(tool.status, 0, `the tool ends cleanly ${tool.stderr}`);
  t.match(tool.stdout, /bundled cli\/main\.ts into/, 'and says what it built');
  const built = readdirSync(cache).filter((f) => f.endsWith('.mjs')).sort();
  t.same(built.map((f) => f.replace(/-[0-9a-f]+\.mjs$/, '')), ['main', 'miner-worker', 'sig-verify'], 'the command line, the mining workers and the signature workers');
  const stamps = built.map((f) => statSync(join(cache, f)).mtimeMs);
  const help = await runDots(['--help'], 30_000, { DOTS_BUNDLE_DIR: cache });
  t.equal(help.code, 0, 'dots --help runs');
  t.same(readdirSync(cache).filter((f) => f.endsWith('.mjs')).sort(), built, 'from the bundle the tool built: no other');
  t.same(built.map((f) => statSync(join(cache, f)).mtimeMs), stamps, 'none written again');
  const verifier = await cachedBundle(VERIFIER_ENTRY, cache);
  t.equal(verifier, pathToFileURL(join(cache, built[2])).href, "the signature workers' module is the one built");
});
