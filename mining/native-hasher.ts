// The native hasher: mining/native/sha256d.cc, a Node-API addon that hashes headers with the x86
// SHA extensions (SHA-NI), built at install by tools/build-native.ts where g++ and Node's headers
// are. Absent (no compiler, another architecture) or on a CPU without SHA-NI, the miner keeps the
// WebAssembly hasher: `nativeHasherStatus` says which and why, for the node's log and
// `dots bench hash`.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { HeaderScanner } from './wasm-hasher.ts';

export const NATIVE_FILE = fileURLToPath(new URL('./native/sha256d.node', import.meta.url));

interface Addon {
  supported(): boolean;
  hashNonce(header80: Uint8Array, nonce: number, out32: Uint8Array): void;
  scan(header80: Uint8Array, start: number, count: number, targetLE32: Uint8Array): number;
}

let loaded: Addon | string | undefined;

/** The addon, or why there is none (loaded once per thread). */
function addon(): Addon | string {
  if (loaded === undefined) {
    try {
      const a = createRequire(import.meta.url)(NATIVE_FILE) as Addon;
      loaded = a.supported() ? a : 'this CPU has no SHA extensions';
    } catch (e) {
      loaded = (e as { code?: string }).code === 'MODULE_NOT_FOUND' ? 'not built (npm run build:native needs g++)' : `cannot load it: ${(e as Error).message.split('\n')[0]}`;
    }
  }
  return loaded;
}

/** Whether the native hasher runs here; else the reason. */
export function nativeHasherStatus(): { available: true } | { available: false; reason: string } {
  const a = addon();
  return typeof a === 'string' ? { available: false, reason: a } : { available: true };
}

export class NativeHeaderHasher implements HeaderScanner {
  private readonly header = new Uint8Array(80);
  private readonly x: Addon;

  constructor(header80: Uint8Array) {
    const a = addon();
    if (typeof a === 'string') throw new Error(`the native hasher is not available: ${a}`);
    this.x = a;
    this.setHeader(header80);
  }

  /** Re-target the hasher at a new header; the nonce bytes are ignored. */
  setHeader(header80: Uint8Array): void {
    if (header80.length !== 80) throw new RangeError(`header must be 80 bytes, got ${header80.length}`);
    this.header.set(header80);
  }

  /** SHA-256d of the header with this nonce, in raw (internal) byte order, into out32. */
  hashNonce(nonce: number, out32: Uint8Array): void {
    this.x.hashNonce(this.header, nonce >>> 0, out32);
  }

  /** The first of `count` nonces from `startNonce` (mod 2^32) whose hash is <= the target, or -1. */
  scan(startNonce: number, count: number, targetLE32: Uint8Array): number {
    if (targetLE32.length !== 32) throw new RangeError('target must be 32 little-endian bytes');
    if (!Number.isInteger(count) || count < 0) throw new RangeError('count must be a non-negative integer');
    return this.x.scan(this.header, startNonce >>> 0, Math.min(count, 0x1_0000_0000), targetLE32);
  }
}
