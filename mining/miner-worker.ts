// One mining task in a Piscina worker thread (loaded through miner-worker-entry.mjs): search
// one header's nonce range, chunk by chunk, until a nonce meets the target, the range is used
// up, or the search is cancelled.
//
// The workers of a search share a control block (a SharedArrayBuffer) with the main thread:
//   - GEN, the search generation: the main thread bumps it to cancel, and a task gives up as
//     soon as it sees a generation other than its own, which it checks between chunks (a few
//     milliseconds each), so stale work stops within milliseconds without any message;
//   - CURSOR, the next chunk of the range to claim: workers take chunks in turn, so a slow or
//     late-starting worker never leaves a hole and none idles while chunks remain;
//   - HASHES, nonces tried so far (64-bit), which the main thread drains for the hash rate.
import { createHeaderScanner, type HeaderScanner } from './wasm-hasher.ts';

export const CTL_GEN = 0;
export const CTL_CURSOR = 1;
/** byte length of the control block: two int32 words, then the 64-bit hash counter */
export const CTL_BYTES = 16;

export interface MineTask {
  header: Uint8Array;
  /** 32 bytes, little-endian (targetToBytesLE) */
  target: Uint8Array;
  ctl: SharedArrayBuffer;
  generation: number;
  /** first nonce of the range (the range wraps mod 2^32) */
  start: number;
  /** nonces in the range, at most 2^32 */
  count: number;
  /** nonces claimed at a time */
  chunk: number;
}

export type MineStatus = 'found' | 'exhausted' | 'cancelled';

export interface MineResult {
  status: MineStatus;
  /** the nonce found, or -1 */
  nonce: number;
  /** nonces this task tried */
  hashes: number;
}

export function ctlViews(ctl: SharedArrayBuffer): { words: Int32Array; hashes: BigInt64Array } {
  return { words: new Int32Array(ctl, 0, 2), hashes: new BigInt64Array(ctl, 8, 1) };
}

// One hasher per thread: re-targeting it costs one compression, a new instance a wasm
// instantiation.
let scanner: HeaderScanner | undefined;

export function mine(task: MineTask): MineResult {
  const { words, hashes: counter } = ctlViews(task.ctl);
  if (scanner === undefined) scanner = createHeaderScanner(task.header);
  else scanner.setHeader(task.header);
  let hashes = 0;
  for (;;) {
    if (Atomics.load(words, CTL_GEN) !== task.generation) return { status: 'cancelled', nonce: -1, hashes };
    const offset = Atomics.add(words, CTL_CURSOR, 1) * task.chunk;
    if (offset >= task.count) return { status: 'exhausted', nonce: -1, hashes };
    const n = Math.min(task.chunk, task.count - offset);
    const start = (task.start + offset) >>> 0;
    const found = scanner.scan(start, n, task.target);
    const tried = found < 0 ? n : ((found - start) >>> 0) + 1;
    hashes += tried;
    Atomics.add(counter, 0, BigInt(tried));
    if (found >= 0) return { status: 'found', nonce: found, hashes };
  }
}

export default mine;
