// Builds the native addons with g++ and the Node-API and libuv headers that ship with Node (no
// node-gyp, nothing downloaded): core/native/sha256.node, validation's SHA-256 (core/hash.ts);
// mining/native/sha256d.node, the SHA-NI header hasher
// (mining/native-hasher.ts), and sip/native/udp.node, the SIP socket's datagram path
// (sip/udp.ts). Run by the install (package.json "postinstall") and by `npm run build:native`;
// the files are not committed. Where one cannot be built it says so in one line and succeeds:
// validation then hashes with node:crypto, the miner uses the WebAssembly hasher, the SIP socket
// node:dgram.
import { execFileSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NATIVE_FILE } from '../mining/native-hasher.ts';
import { NATIVE_UDP_FILE } from '../sip/udp.ts';
import { NATIVE_HASH_FILE } from '../core/hash.ts';

// Node's headers: beside the running node (…/bin/node -> …/include/node), as Debian and the
// official tarballs install them.
const include = [join(dirname(process.execPath), '..', 'include', 'node'), '/usr/include/node', '/usr/local/include/node'].find((d) => existsSync(join(d, 'node_api.h')));

interface Addon {
  source: string;
  out: string;
  what: string;
  /** what is used without it */
  fallback: string;
  /** why this machine cannot run it, or null */
  unsupported: string | null;
}

const ADDONS: Addon[] = [
  {
    source: fileURLToPath(new URL('../core/native/sha256.cc', import.meta.url)),
    out: NATIVE_HASH_FILE,
    what: 'SHA-256 for validation, SHA-NI where the CPU has it',
    fallback: 'validation hashes with node:crypto',
    unsupported: null,
  },
  {
    source: fileURLToPath(new URL('../mining/native/sha256d.cc', import.meta.url)),
    out: NATIVE_FILE,
    what: 'SHA-NI header hasher',
    fallback: 'mining uses the WebAssembly hasher',
    unsupported: arch() === 'x64' ? null : `SHA-NI is x86-64, this is ${arch()}`,
  },
  {
    source: fileURLToPath(new URL('../sip/native/udp.cc', import.meta.url)),
    out: NATIVE_UDP_FILE,
    what: 'SIP datagram path, recvmmsg and sendmmsg',
    fallback: 'the SIP socket uses node:dgram',
    unsupported: platform() === 'linux' ? null : `recvmmsg and sendmmsg are Linux's, this is ${platform()}`,
  },
];

for (const a of ADDONS) {
  const skip = (why: string): void => {
    rmSync(a.out, { force: true });
    console.log(`${relative(process.cwd(), a.out)} not built (${why}): ${a.fallback}`);
  };
  if (a.unsupported !== null) skip(a.unsupported);
  else if (include === undefined || !existsSync(join(include, 'uv.h'))) skip("Node's headers (node_api.h, uv.h) not found");
  else {
    try {
      execFileSync('g++', ['-O3', '-std=c++17', '-fPIC', '-shared', '-fvisibility=hidden', '-I', include, a.source, '-o', a.out], { stdio: ['ignore', 'ignore', 'pipe'] });
      console.log(`wrote ${relative(process.cwd(), a.out)} (${a.what}, g++ with ${include})`);
    } catch (e) {
      const err = e as { code?: string; stderr?: Buffer };
      skip(err.code === 'ENOENT' ? 'no g++: apt-get install g++' : `g++ failed: ${(err.stderr?.toString() ?? '').split('\n')[0]}`);
    }
  }
}
