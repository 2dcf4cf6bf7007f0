// Shared test fixtures: temporary data directories, a chain on regtest, keys and records.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Store } from '../core/store.ts';
import { Chain, type ChainOptions } from '../consensus/chain.ts';
import { NETWORKS, type NetworkName } from '../consensus/params.ts';
import { Miner } from '../consensus/miner.ts';
import { generateSecretKey, publicKeyOf } from '../core/sig.ts';
import { addressOf } from '../core/address.ts';

export function tmpDir(t: { teardown(fn: () => void): void }, prefix = 'dots-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export interface Key {
  secret: Uint8Array;
  pub: Uint8Array;
  address: Uint8Array;
}

export function newKey(): Key {
  const secret = generateSecretKey();
  const pub = publicKeyOf(secret);
  return { secret, pub, address: addressOf(pub) };
}

export interface TestChain {
  chain: Chain;
  store: Store;
  miner: Miner;
  key: Key;
  dir: string;
  close(): Promise<void>;
}

export async function openChain(
  t: { teardown(fn: () => void | Promise<void>): void },
  opts: ChainOptions & { network?: NetworkName; dir?: string; key?: Key } = {},
): Promise<TestChain> {
  const dir = opts.dir ?? tmpDir(t);
  const store = await Store.open(join(dir, 'chain'));
  const chain = await Chain.open(store, NETWORKS[opts.network ?? 'regtest'], opts);
  const key = opts.key ?? newKey();
  const miner = new Miner(chain, key.address);
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await miner.stop();
    await store.close();
  };
  t.teardown(close);
  return { chain, store, miner, key, dir, close };
}
