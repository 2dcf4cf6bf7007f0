// The folders are the architecture: each has one job and may import only the folders below it
// (docs/design.md, "Layout"). This test reads every import of every source file (static, dynamic,
// type-only, re-exports and worker URLs) and fails on any arrow that points the wrong way, so the
// direction stays true as the code grows.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What each folder may import besides itself. A folder not listed, or an arrow not listed, is refused. */
const ALLOWED: Record<string, readonly string[]> = {
  core: [],
  consensus: ['core'],
  mining: ['core', 'consensus'],
  p2p: ['core', 'consensus'],
  sip: ['core'],
  wallet: ['core'],
  telecom: ['core', 'consensus', 'sip', 'p2p'],
  node: ['core', 'consensus', 'mining', 'p2p', 'sip', 'telecom', 'wallet'],
  bench: ['core', 'consensus', 'mining', 'p2p', 'sip', 'telecom', 'wallet', 'node', 'test/util'],
  cli: ['core', 'consensus', 'telecom', 'wallet', 'node', 'bench'],
  // the executable: the CLI, run from core/bundle.mjs's bundle of it
  bin: ['cli', 'core'],
  // build steps: the genesis, the SHA-256 addon core/ loads, the WASM and native hashers mining/
  // loads, the datagram addon sip/ loads, the JsSIP bundle node/phone/ serves, and the bundles
  // bin/ and the workers run (of the CLI, named as bin/dots.js names it; nothing imports tools/)
  tools: ['core', 'consensus', 'mining', 'sip', 'node', 'cli'],
  'test/util': ['core', 'consensus', 'mining', 'p2p', 'sip', 'telecom', 'wallet', 'node', 'cli', 'bin'],
};

/** sip/ takes its error classes from core/ and nothing else: the chain comes through injected interfaces. */
const SIP_MAY_USE_FROM_CORE = new Set(['core/errors.ts']);

const SOURCE = /\.(ts|mts|mjs|js)$/;
// import ... from '...', export ... from '...', import '...', import('...'), new URL('...', import.meta.url)
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)['"](\.{1,2}\/[^'"?]*)/g;

/** The folder a repository path belongs to, as ALLOWED names it ('test/util' before 'test'). */
function folderOf(rel: string): string {
  if (rel.startsWith('test/util/')) return 'test/util';
  return rel.split('/')[0];
}

/** The arrows of one file that point where its folder may not import, each said in one line. */
function wrongArrows(rel: string, text: string): string[] {
  const own = folderOf(rel);
  if (own === 'test') return []; // tests may reach anything they test
  const allowed = ALLOWED[own];
  const wrong: string[] = [];
  for (const m of text.matchAll(SPECIFIER)) {
    const to = join(dirname(rel), m[1]);
    const target = folderOf(to);
    if (target === own) continue;
    if (allowed === undefined) wrong.push(`${rel} imports ${to} (${own}/ is not a folder of the layout)`);
    else if (!allowed.includes(target)) wrong.push(`${rel} imports ${to} (${own}/ may import ${allowed.join(', ') || 'nothing above it'})`);
    else if (own === 'sip' && target === 'core' && !SIP_MAY_USE_FROM_CORE.has(to)) wrong.push(`${rel} imports ${to} (sip/ takes only ${[...SIP_MAY_USE_FROM_CORE].join(', ')} from core/)`);
  }
  return wrong;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'fixtures' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (SOURCE.test(name)) out.push(p);
  }
  return out;
}

const folders = Object.keys(ALLOWED).filter((f) => !f.includes('/'));

t.test('every folder imports only the folders below it', async (t) => {
  const files = [...folders, 'test/util'].flatMap((f) => {
    try {
      return sourceFiles(join(ROOT, f));
    } catch {
      return [];
    }
  });
  const wrong = files.flatMap((f) => wrongArrows(relative(ROOT, f), readFileSync(f, 'utf8')));
  t.ok(files.length > 100, `read every source file (${files.length})`);
  t.same(wrong, [], 'no import points the wrong way');
});

t.test('the check refuses each kind of wrong arrow', async (t) => {
  t.same(wrongArrows('core/records.ts', "import { Chain } from '../consensus/chain.ts';"), ['core/records.ts imports consensus/chain.ts (core/ may import nothing above it)'], 'a static import');
  t.equal(wrongArrows('core/state.ts', "import type { Chain } from '../consensus/chain.ts';").length, 1, 'a type-only import');
  t.equal(wrongArrows('core/x.ts', "const m = await import('../p2p/network.ts');").length, 1, 'a dynamic import');
  t.equal(wrongArrows('consensus/x.ts', "export { Miner } from '../mining/miner.ts';").length, 1, 'a re-export');
  t.equal(wrongArrows('p2p/x.ts', "new URL('../telecom/worker.mjs', import.meta.url)").length, 1, 'a worker URL');
  t.equal(wrongArrows('sip/x.ts', "import { keys } from '../core/state.ts';").length, 1, 'sip/ reaching into core/ beyond its errors');
  t.equal(wrongArrows('bench/x.ts', "import { tmpDir } from '../test/helpers.ts';").length, 1, 'bench/ importing a test file');
  t.same(wrongArrows('bench/x.ts', "import { waitFor } from '../test/util/wait.ts';"), [], 'bench/ may use test/util/');
  t.same(wrongArrows('node/x.ts', "import { Chain } from '../consensus/chain.ts';\nimport './api/server.ts';"), [], 'downward and same-folder arrows pass');
  t.same(wrongArrows('test/x.test.ts', "import { DotsNode } from '../node/node.ts';"), [], 'tests reach anything');
});

t.test('every folder says its job and what it may import', async (t) => {
  for (const f of [...folders.filter((f) => f !== 'bin'), 'test/util']) {
    let readme = '';
    try {
      readme = readFileSync(join(ROOT, f, 'README.md'), 'utf8');
    } catch {
      // reported below
    }
    t.ok(readme.length > 0, `${f}/README.md exists`);
    t.match(readme, /may import/i, `${f}/README.md says what the folder may import`);
  }
});
