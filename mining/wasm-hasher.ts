// The WebAssembly SIMD header hasher, the mining loop's hasher: 4 nonces per v128, the midstate
// and every other header-only value computed once per header, early rejection on the hash's top
// word. The module comes from mining/wasm-gen.ts; the install writes it to
// mining/wasm-sha256d.wasm (tools/build-wasm.ts). A checkout without that file still works:
// the module is then built in memory from the same generator, in about a tenth of a second.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { HeaderHasher } from './hasher.ts';
import { hashMeetsTargetBytes } from '../consensus/pow.ts';
import { buildSha256dWasm } from './wasm-gen.ts';
import { NativeHeaderHasher, nativeHasherStatus } from './native-hasher.ts';

// The tsconfig's libraries (ES2023 and @types/node 20) do not declare the WebAssembly global,
// which lives in lib.dom; this is the part of it used here.
declare namespace WebAssembly {
  class Module {
    constructor(bytes: Uint8Array);
  }
  class Instance {
    constructor(module: Module, imports: object);
    readonly exports: object;
  }
  class Memory {
    readonly buffer: ArrayBuffer;
  }
  class Global {
    readonly value: unknown;
  }
}

export const WASM_FILE = fileURLToPath(new URL('./wasm-sha256d.wasm', import.meta.url));

export class WasmHasherError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WasmHasherError';
  }
}

interface Exports {
  memory: WebAssembly.Memory;
  prep: () => void;
  scan: (start: number, iters: number) => number;
  hash: (start: number) => void;
  lanes: WebAssembly.Global;
  inPtr: WebAssembly.Global;
  targetPtr: WebAssembly.Global;
  maskPtr: WebAssembly.Global;
  outPtr: WebAssembly.Global;
}

let compiled: WebAssembly.Module | WasmHasherError | undefined;

/** The compiled module (once per thread): the installed file, else a fresh build. */
function sha256dModule(): WebAssembly.Module {
  if (compiled === undefined) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(WASM_FILE);
    } catch {
      bytes = buildSha256dWasm();
    }
    try {
      compiled = new WebAssembly.Module(bytes);
    } catch (e) {
      compiled = new WasmHasherError(`cannot compile the SIMD hasher (${(e as Error).message}); run "npm run build:wasm"`);
    }
  }
  if (compiled instanceof WasmHasherError) throw compiled;
  return compiled;
}

/** Whether this runtime can run the SIMD hasher (every Node >= 16.4 on x64 and arm64 can). */
export function wasmSimdAvailable(): boolean {
  try {
    sha256dModule();
    return true;
  } catch {
    return false;
  }
}

/** What the miner needs of a hasher; both the SIMD one and the JavaScript one (hasher.ts) have it. */
export interface HeaderScanner {
  setHeader(header80: Uint8Array): void;
  hashNonce(nonce: number, out32: Uint8Array): void;
  scan(startNonce: number, count: number, targetLE32: Uint8Array): number;
}

/** The fastest hasher this machine can run: native SHA-NI, else WebAssembly SIMD, else the allocation-free JavaScript one. */
export function createHeaderScanner(header80: Uint8Array): HeaderScanner {
  if (nativeHasherStatus().available) return new NativeHeaderHasher(header80);
  return wasmSimdAvailable() ? new WasmHeaderHasher(header80) : new HeaderHasher(header80);
}

/** Which hasher createHeaderScanner picks here, and why not the native one (for the node's log and the benchmark). */
export function headerScannerKind(): string {
  const native = nativeHasherStatus();
  if (native.available) return 'native SHA-NI';
  return `${wasmSimdAvailable() ? 'WebAssembly SIMD' : 'JavaScript'} (native SHA-NI: ${native.reason})`;
}

// Iterations per call into `scan`: bounded so a call stays in int32 and returns often enough
// for the JS side to settle candidates; the caller's own slices are smaller anyway.
const MAX_ITERS = 1 << 24;
const U32_SPAN = 0x1_0000_0000;

export class WasmHeaderHasher implements HeaderScanner {
  /** nonces hashed per loop iteration of the kernel */
  readonly lanes: number;
  private readonly x: Exports;
  private readonly mem32: Int32Array;
  private readonly inWord: number;
  private readonly targetWord: number;
  private readonly maskWord: number;
  private readonly outWord: number;
  private readonly check = new Uint8Array(32);

  /** `wasmBytes`: another build of the module (tests of the generator's options) */
  constructor(header80: Uint8Array, wasmBytes?: Uint8Array) {
    const instance = new WebAssembly.Instance(wasmBytes === undefined ? sha256dModule() : new WebAssembly.Module(wasmBytes), {});
    this.x = instance.exports as unknown as Exports;
    this.lanes = this.x.lanes.value as number;
    this.mem32 = new Int32Array(this.x.memory.buffer);
    this.inWord = (this.x.inPtr.value as number) >> 2;
    this.targetWord = (this.x.targetPtr.value as number) >> 2;
    this.maskWord = (this.x.maskPtr.value as number) >> 2;
    this.outWord = (this.x.outPtr.value as number) >> 2;
    this.setHeader(header80);
  }

  /** Re-target the hasher at a new header (new time, merkle root...); the nonce bytes are ignored. */
  setHeader(header80: Uint8Array): void {
    if (header80.length !== 80) throw new RangeError(`header must be 80 bytes, got ${header80.length}`);
    const m = this.mem32;
    for (let i = 0; i < 19; i++) {
      const o = 4 * i;
      m[this.inWord + i] = (header80[o] << 24) | (header80[o + 1] << 16) | (header80[o + 2] << 8) | header80[o + 3];
    }
    this.x.prep();
  }

  /** Digest word `j` of lane `lane` after a `hash` call. */
  private outWordOf(lane: number, j: number): number {
    return this.mem32[this.outWord + (((lane >> 2) * 8 + j) << 2) + (lane & 3)];
  }

  /** SHA-256d of the header with this nonce, in raw (internal) byte order, into out32. */
  hashNonce(nonce: number, out32: Uint8Array): void {
    if (out32.length < 32) throw new RangeError('output buffer must hold 32 bytes');
    this.x.hash(nonce | 0);
    this.digestOf(0, out32);
  }

  private digestOf(lane: number, out32: Uint8Array): void {
    for (let j = 0; j < 8; j++) {
      const v = this.outWordOf(lane, j);
      const o = 4 * j;
      out32[o] = v >>> 24;
      out32[o + 1] = (v >>> 16) & 0xff;
      out32[o + 2] = (v >>> 8) & 0xff;
      out32[o + 3] = v & 0xff;
    }
  }

  /**
   * Try `count` nonces from `startNonce` (wrapping mod 2^32) and return the first whose hash is
   * <= the target (32 bytes, little-endian, as targetToBytesLE gives), or -1.
   */
  scan(startNonce: number, count: number, targetLE32: Uint8Array): number {
    if (targetLE32.length !== 32) throw new RangeError('target must be 32 little-endian bytes');
    if (!Number.isInteger(count) || count < 0) throw new RangeError('count must be a non-negative integer');
    const total = Math.min(count, U32_SPAN);
    const top = (targetLE32[31] << 24) | (targetLE32[30] << 16) | (targetLE32[29] << 8) | targetLE32[28];
    const m = this.mem32;
    for (let l = 0; l < 4; l++) m[this.targetWord + l] = top;
    const lanes = this.lanes;
    let done = 0; // nonces [0, done) of the range are settled
    while (done < total) {
      const start = (startNonce + done) >>> 0;
      const iters = Math.min(Math.ceil((total - done) / lanes), MAX_ITERS);
      const hit = this.x.scan(start | 0, iters);
      if (hit < 0) {
        done += iters * lanes;
        continue;
      }
      // A lane passed the top-word test: compute the iteration's full digests and settle the
      // passing lanes in nonce order (ties on the top word need the rest of the hash).
      const groupStart = (start + hit * lanes) >>> 0;
      const offset = done + hit * lanes;
      const passed: number[] = [];
      for (let lane = 0; lane < lanes; lane++) {
        if (m[this.maskWord + lane] !== 0 && offset + lane < total) passed.push(lane);
      }
      if (passed.length > 0) {
        this.x.hash(groupStart | 0);
        for (const lane of passed) {
          this.digestOf(lane, this.check);
          if (hashMeetsTargetBytes(this.check, targetLE32)) return (groupStart + lane) >>> 0;
        }
      }
      done = offset + lanes;
    }
    return -1;
  }
}
