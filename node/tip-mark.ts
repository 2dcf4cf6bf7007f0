// The tip the node last had, kept in a small file beside the store (DATADIR/tip), so that a store
// that comes back without it is said at start instead of passing silently. LevelDB replays its
// log at open and stops at the first damaged record: everything written after it is gone, and
// the store opens as a sound, shorter chain (a damaged log rolled one back by 50 to 2,482
// blocks without a word). A disk that lost its last writes in a power failure does the same. The
// blocks are not lost to the network: the node syncs them from peers again, so this warns and
// goes on rather than refusing to start.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../core/log.ts';
import { writeOwnerOnly } from '../core/files.ts';

export const TIP_FILE = 'tip';

interface Mark {
  height: number;
  hash: string;
}

/** What the chain must answer for the check and for following its tip. */
export interface MarkedChain {
  readonly tip: { readonly height: number; readonly hex: string };
  readonly index: { has(hex: string): boolean };
  on(event: 'tip', fn: () => void): unknown;
  off(event: 'tip', fn: () => void): unknown;
}

function read(file: string): Mark | null {
  try {
    const m = /^(\d+) ([0-9a-f]{64})\n?$/.exec(readFileSync(file, 'latin1'));
    return m === null ? null : { height: Number(m[1]), hash: m[2] };
  } catch {
    return null; // none yet (a new directory, or one from before this file existed)
  }
}

/**
 * Warns when the store lacks the tip the node last wrote down, then keeps the file in step with
 * the chain (at most once a second, written atomically, so it is never half-written).
 * Returns the function that stops following and writes the last tip.
 */
export function followTip(datadir: string, chain: MarkedChain, log: Logger): () => void {
  const file = join(datadir, TIP_FILE);
  const mark = read(file);
  if (mark !== null && !chain.index.has(mark.hash)) {
    const lost = mark.height - chain.tip.height;
    log.warn(
      `the chain in ${datadir} ends at block ${chain.tip.height}, but this node had reached block ${mark.height} (${mark.hash.slice(0, 16)}...)` +
        `${lost > 0 ? `: ${lost} blocks` : ': blocks'} were lost from the store (a damaged LevelDB log, or writes a power failure took); they are synced from peers again`,
    );
  }
  let timer: NodeJS.Timeout | null = null;
  const write = (): void => {
    timer = null;
    try {
      writeOwnerOnly(file, `${chain.tip.height} ${chain.tip.hex}\n`);
    } catch (e) {
      log.warn(`cannot write ${file}: ${(e as Error).message}`);
    }
  };
  const onTip = (): void => {
    timer ??= setTimeout(write, 1000);
  };
  chain.on('tip', onTip);
  write();
  return () => {
    chain.off('tip', onTip);
    if (timer !== null) clearTimeout(timer);
    write();
  };
}
