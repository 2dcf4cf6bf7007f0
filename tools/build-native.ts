// Builds mining/native/sha256d.node, the SHA-NI header hasher (mining/native-hasher.ts), with g++
// and the Node-API headers that ship with Node (no node-gyp, nothing downloaded). Run by the
// install (package.json "postinstall") and by `npm run build:native`; the file is not committed.
// Without g++ or on another architecture it says so in one line and succeeds: the miner then
// uses the WebAssembly hasher.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { arch } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATIVE_FILE } from '../mining/native-hasher.ts';

const SOURCE = fileURLToPath(new URL('../mining/native/sha256d.cc', import.meta.url));

function skip(why: string): void {
  rmSync(NATIVE_FILE, { force: true });
  console.log(`native hasher not built (${why}): mining uses the WebAssembly hasher`);
}

// Node's headers: beside the running node (…/bin/node -> …/include/node), as Debian and the
// official tarballs install them.
const include = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'].find((d) => existsSync(join(d, 'node_api.h')));
if (arch() !== 'x64') skip(`SHA-NI is x86-64, this is ${arch()}`);
else if (include === undefined) skip("Node's headers (node_api.h) not found");
else {
  try {
    execFileSync('g++', ['-O3', '-std=c++17', '-fPIC', '-shared', '-fvisibility=hidden', '-I', include, SOURCE, '-o', NATIVE_FILE], { stdio: ['ignore', 'ignore', 'pipe'] });
    console.log(`wrote ${relative(process.cwd(), NATIVE_FILE)} (SHA-NI header hasher, g++ with ${include})`);
  } catch (e) {
    const err = e as { code?: string; stderr?: Buffer };
    skip(err.code === 'ENOENT' ? 'no g++: apt-get install g++' : `g++ failed: ${(err.stderr?.toString() ?? '').split('\n')[0]}`);
  }
}
