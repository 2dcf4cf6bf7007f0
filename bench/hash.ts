// Header hash-rate benchmark: how fast can one thread compute SHA-256d over an
// 80-byte header with each available implementation. Used to pick the mining
// hasher and to notice regressions in consensus/hasher.ts.

import * as crypto from 'node:crypto';
import { sha256d } from '../consensus/pow.ts';
import { HeaderHasher } from '../consensus/hasher.ts';

export interface HashBenchResult {
  name: string;
  hashesPerSecond: number;
}

// Bitcoin genesis header: realistic layout, and any fixed input will do.
const GENESIS_HEX =
  '0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c';

/**
 * Run `batch(n)` (which must hash n headers) repeatedly for about `seconds`,
 * after a short warm-up so the JIT has optimized the hot code before timing.
 */
function measure(seconds: number, batchSize: number, batch: (n: number) => void): number {
  const warmEnd = performance.now() + Math.min(200, seconds * 100);
  while (performance.now() < warmEnd) batch(batchSize >> 2 || 1);
  const start = performance.now();
  const end = start + seconds * 1000;
  let hashes = 0;
  let now = start;
  while (now < end) {
    batch(batchSize);
    hashes += batchSize;
    now = performance.now();
  }
  return Math.round((hashes * 1000) / (now - start));
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

export async function benchHash(opts: { seconds: number }): Promise<HashBenchResult[]> {
  const seconds = opts.seconds > 0 ? opts.seconds : 1;
  const header = Uint8Array.from(Buffer.from(GENESIS_HEX, 'hex'));
  const view = new DataView(header.buffer, header.byteOffset, 80);
  const results: HashBenchResult[] = [];
  // Folded into a sink so no engine can decide the hashing is dead code.
  let sink = 0;
  let nonce = 0;

  results.push({
    name: '@noble/hashes sha256d',
    hashesPerSecond: measure(seconds, 2_000, (n) => {
      for (let i = 0; i < n; i++) {
        view.setUint32(76, nonce++, true);
        sink ^= sha256d(header)[31];
      }
    }),
  });
  await yieldToLoop();

  results.push({
    name: 'node:crypto createHash x2',
    hashesPerSecond: measure(seconds, 2_000, (n) => {
      for (let i = 0; i < n; i++) {
        view.setUint32(76, nonce++, true);
        const first = crypto.createHash('sha256').update(header).digest();
        sink ^= crypto.createHash('sha256').update(first).digest()[31];
      }
    }),
  });
  await yieldToLoop();

  // crypto.hash (one-shot, no Hash object) exists from Node 20.12 / 21.7;
  // probe at runtime so older 20.x still runs the rest of the bench.
  const oneShot = (crypto as { hash?: typeof crypto.hash }).hash;
  if (typeof oneShot === 'function') {
    results.push({
      name: 'node:crypto hash() x2',
      hashesPerSecond: measure(seconds, 2_000, (n) => {
        for (let i = 0; i < n; i++) {
          view.setUint32(76, nonce++, true);
          const first = oneShot('sha256', header, 'buffer');
          sink ^= oneShot('sha256', first, 'buffer')[31];
        }
      }),
    });
    await yieldToLoop();
  }

  // Zero target: nothing can meet it, so scan always runs the whole batch and
  // this measures the pure per-nonce cost of the miner's inner loop.
  const hasher = new HeaderHasher(header);
  const impossible = new Uint8Array(32);
  results.push({
    name: 'HeaderHasher.scan (1 thread)',
    hashesPerSecond: measure(seconds, 100_000, (n) => {
      sink ^= hasher.scan(nonce, n, impossible);
      nonce = (nonce + n) >>> 0;
    }),
  });

  if (sink === 0x1234_5678) console.log('');
  return results;
}
