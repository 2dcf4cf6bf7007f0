// Rebuilds every network's genesis block from consensus/params.ts: finds the first nonce whose
// hash meets the network's proof-of-work limit and prints it; with --write it records the nonces
// in params.ts. Run with `npm run genesis [-- --write]`; the output is the same on every machine.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { encodeHeader } from '../core/block.ts';
import { hashToHex } from '../core/hash.ts';
import { genesisHeader } from '../consensus/genesis.ts';
import { NETWORKS, NETWORK_NAMES } from '../consensus/params.ts';
import { HeaderHasher } from '../mining/hasher.ts';
import { compactToTarget, targetToBytesLE } from '../consensus/pow.ts';

export function findGenesisNonce(name: (typeof NETWORK_NAMES)[number]): number {
  const p = NETWORKS[name];
  const { header } = genesisHeader(p, 0);
  const hasher = new HeaderHasher(encodeHeader(header));
  const nonce = hasher.scan(0, 0xffffffff, targetToBytesLE(compactToTarget(p.powLimitBits)));
  if (nonce < 0) throw new Error(`no genesis nonce for ${name}: change its time or note`);
  return nonce;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = fileURLToPath(new URL('../consensus/params.ts', import.meta.url));
  let src = readFileSync(file, 'utf8');
  for (const name of NETWORK_NAMES) {
    const nonce = findGenesisNonce(name);
    const { block } = genesisHeader(NETWORKS[name], nonce);
    console.log(`${name.padEnd(8)} nonce ${String(nonce).padStart(10)} hash ${hashToHex(block.hash)}`);
    const note = NETWORKS[name].genesis.note;
    src = src.replace(new RegExp(`(genesis: \\{ time: \\d+, nonce: )\\d+(, note: '${note}' \\})`), `$1${nonce}$2`);
  }
  if (process.argv.includes('--write')) {
    writeFileSync(file, src);
    console.log(`wrote the nonces to ${file}`);
  }
}
