// Block locators (as in Bitcoin): the hashes of the last ten blocks of a chain, then of blocks
// ever further back (steps doubling), ending at genesis. A peer answers with the headers after the
// newest locator hash that is on its main chain, so one round trip finds the fork point however
// long the two chains have been apart.
import { hashToHex } from '../core/hash.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';
import { MAX_LOCATOR } from './messages.ts';

export function locatorHeights(top: number): number[] {
  const out: number[] = [];
  let step = 1;
  for (let h = top; h > 0; h -= step) {
    out.push(h);
    if (out.length >= 10) step *= 2;
    if (out.length >= MAX_LOCATOR - 1) break;
  }
  out.push(0);
  return out;
}

/** Locator of a chain given by `hashAt(height)` for heights 0..top. */
export function locatorOf(top: number, hashAt: (height: number) => Uint8Array): Uint8Array[] {
  return locatorHeights(top).map(hashAt);
}

export function mainLocator(chain: Chain): Uint8Array[] {
  return locatorOf(chain.tip.height, (h) => chain.main[h].hash);
}

/** The newest locator entry on our main chain (genesis if none is). */
export function forkPoint(chain: Chain, locator: Uint8Array[]): IndexEntry {
  for (const hash of locator) {
    const e = chain.index.get(hashToHex(hash));
    if (e !== undefined && chain.isMain(e)) return e;
  }
  return chain.genesis;
}

/** Up to `max` main-chain headers after the fork point of `locator`. */
export function headersAfter(chain: Chain, locator: Uint8Array[], max: number): Uint8Array[] {
  const fork = forkPoint(chain, locator);
  const out: Uint8Array[] = [];
  for (let h = fork.height + 1; h <= chain.tip.height && out.length < max; h++) out.push(chain.main[h].headerBytes);
  return out;
}
