// The folders are the architecture: each has one job and may import only the folders below it
// (docs/design.md, "Layout"). This test reads every import of every source file (static, dynamic,
// re-exports and worker URLs) and fails on any arrow that points the wrong way, so the direction
// stays true as the code grows.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** What each folder may import besides itself. Anything not listed is refused. */
export const ALLOWED: Record<string, readonly string[]> = {
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
  bin: ['cli'],
  tools: ['core', 'consensus', 'mining'],
  'test/util': ['core', 'consensus', 'mining', 'p2p', 'sip', 'telecom', 'wallet', 'node', 'cli', 'bin'],
};

/** sip/ reaches the core for its error classes only: everything else comes through injected interfaces. */
const SIP_MAY_USE_FROM_CORE = new Set(['core/errors.ts']);

const SOURCE = /\.(ts|mts|mjs|js)$/;
// import ... from '...', export ... from '...', import '...', import('...'), new URL('...', import.meta.url)
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|new URL\(\s*)['"](\.{1,2}\/[^'"?]*)/g;

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

/** The folder a repository path belongs to, as named in ALLOWED ('test/util' before 'test'). */
function folderOf(rel: string): string {
  if (rel.startsWith('test/util/')) return 'test/util';
  return rel.split('/')[0];
}

interface Arrow {
  from: string;
  to: string;
}

function importsOf(file: string): Arrow[] {
  const text = readFileSync(file, 'utf8');
  const from = relative(ROOT, file);
  const out: Arrow[] = [];
  for (const m of text.matchAll(SPECIFIER)) out.push({ from, to: relative(ROOT, resolve(dirname(file), m[1])) });
  return out;
}

const folders = Object.keys(ALLOWED).filter((f) => !f.includes('/'));
const files = [...folders, 'test'].flatMap((f) => sourceFiles(join(ROOT, f)));

t.test('every folder imports only the folders below it', async (t) => {
  const wrong: string[] = [];
  let arrows = 0;
  for (const file of files) {
    const rel = relative(ROOT, file);
    const own = folderOf(rel);
    if (own === 'test') continue; // tests may reach anything they test
    for (const a of importsOf(file)) {
      arrows++;
      const target = folderOf(a.to);
      if (target === own) continue;
      if (!ALLOWED[own].includes(target)) wrong.push(`${a.from} imports ${a.to} (${own}/ may import ${ALLOWED[own].join(', ') || 'nothing above it'})`);
      else if (own === 'sip' && target === 'core' && !SIP_MAY_USE_FROM_CORE.has(a.to)) wrong.push(`${a.from} imports ${a.to} (sip/ takes only ${[...SIP_MAY_USE_FROM_CORE].join(', ')} from core/)`);
    }
  }
  t.ok(arrows > 300, `read the imports of the source tree (${arrows} arrows in ${files.length} files)`);
  t.same(wrong, [], 'no import points the wrong way');
});

t.test('every folder says its job and what it may import', async (t) => {
  for (const f of folders.filter((f) => f !== 'bin')) {
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

t.test('the check itself refuses a wrong arrow', async (t) => {
  // A stand-in for a core module that reaches into consensus: the same rule must flag it.
  const own = folderOf('core/records.ts');
  const target = folderOf(relative(ROOT, resolve(ROOT, 'core', '../consensus/chain.ts')));
  t.equal(own, 'core');
  t.equal(target, 'consensus');
  t.notOk(ALLOWED[own].includes(target), 'core may not import consensus');
  t.equal(folderOf('test/util/harness.ts'), 'test/util', 'test/util is a folder of its own');
});
