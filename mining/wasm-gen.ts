// Generator of the WebAssembly SIMD header hasher (mining/wasm-sha256d.wasm).
//
// Why a generator and not hand-written .wat: the kernel is ~6,000 straight-line vector
// instructions (every SHA-256 round and schedule word unrolled, constants folded, dead rounds
// dropped), which nobody can review by hand, and no toolchain that compiles C or Rust to wasm
// can be installed here. So this file builds SHA-256d of an 80-byte header as an expression
// graph, simplifies it, and writes the module's bytes directly. The output is a pure function of
// this source: the install (tools/build-wasm.ts) writes it, test/hasher.test.ts checks the file
// is byte-identical to a fresh build and checks every function against @noble/hashes.
//
// The graph has three levels of values:
//   lit  known now (IV, K[t], padding words): folded away at generation time;
//   hdr  depends on the header only (bytes 0..75: the whole first block, the first three rounds
//        of the second, parts of its schedule): computed once per template by `prep` and kept
//        in memory, splatted over the lanes;
//   loop depends on the nonce: done by `scan` for 4 nonces at a time, one per 32-bit lane.
// `scan` needs only word 7 of the final hash (the hash's most significant 32 bits once read as a
// little-endian number), so the rest of the second hash's last rounds is dead code and dropped:
// the final h is the e of round 60, and rounds 61..63 and the last rounds' `a` disappear. Lanes
// whose top word exceeds the target's are rejected right there; the rare survivors (ties
// included) are settled by the caller with `hash`, the full digest.
//
// Measured on the machine this was written on (Zen 4, V8 11.3 in Node 20), the shape of the
// loop matters as much as the operation count; the defaults in DEFAULT_BUILD are the best of a
// sweep (5.3 M hashes/s as one loop, 7.9 M split in two, 8.4 M with the spills below):
//   - one loop over everything is ~44 KiB of machine code, more than the 32 KiB L1 instruction
//     cache and the op cache, so it runs at decoder speed; two loops (first hash, second hash)
//     over a batch of nonce groups, passing the 8 words between them through memory, each fit;
//   - V8 has only 16 xmm registers and its spill choices are poor for this code; values used
//     long after their definition (the message schedule words) are stored once and reloaded
//     from memory where needed, leaving the registers to the round state;
//   - interleaving two independent vectors per iteration only spills more (3 M/s).

import { K as SHA256_K, IV as SHA256_IV } from './hasher.ts';

/** A build that cannot be laid out (options too large) or a broken invariant of the generator. */
export class WasmGenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WasmGenError';
  }
}

// The SHA-256 constants, shared with the JavaScript hasher.
const K = Array.from(SHA256_K);
const IV = Array.from(SHA256_IV);

// ---------------------------------------------------------------------------------------------
// Expression graph

const LIT = 0;
const HDR = 1;
const LOOP = 2;
type Level = typeof LIT | typeof HDR | typeof LOOP;

type Op = 'lit' | 'in' | 'nonce' | 'add' | 'xor' | 'and' | 'shl' | 'shr';

interface Node {
  op: Op;
  a: number;
  b: number;
  /** literal value, input index, or shift amount */
  imm: number;
  lvl: Level;
  /** longest chain of loop-level operations behind this value (a latency estimate) */
  depth: number;
}

class Graph {
  readonly nodes: Node[] = [];
  private readonly memo = new Map<string, number>();

  private make(op: Op, a: number, b: number, imm: number): number {
    const key = `${op},${a},${b},${imm}`;
    const hit = this.memo.get(key);
    if (hit !== undefined) return hit;
    let lvl: Level = LIT;
    let depth = 0;
    if (op === 'in') lvl = HDR;
    else if (op === 'nonce') lvl = LOOP;
    else if (op !== 'lit') {
      const na = this.nodes[a];
      const nb = b >= 0 ? this.nodes[b] : na;
      lvl = Math.max(na.lvl, nb.lvl) as Level;
      if (lvl === LOOP) depth = 1 + Math.max(na.lvl === LOOP ? na.depth : 0, nb.lvl === LOOP ? nb.depth : 0);
    }
    const id = this.nodes.length;
    this.nodes.push({ op, a, b, imm, lvl, depth });
    this.memo.set(key, id);
    return id;
  }

  lit(v: number): number {
    return this.make('lit', -1, -1, v | 0);
  }
  input(i: number): number {
    return this.make('in', -1, -1, i);
  }
  nonce(): number {
    return this.make('nonce', -1, -1, 0);
  }
  private isLit(x: number, v?: number): boolean {
    const n = this.nodes[x];
    return n.op === 'lit' && (v === undefined || n.imm === (v | 0));
  }
  private val(x: number): number {
    return this.nodes[x].imm;
  }

  private bin(op: 'add' | 'xor' | 'and', x: number, y: number): number {
    if (this.isLit(x) && this.isLit(y)) {
      const a = this.val(x);
      const b = this.val(y);
      return this.lit(op === 'add' ? a + b : op === 'xor' ? a ^ b : a & b);
    }
    if (op === 'and') {
      if (this.isLit(x, 0) || this.isLit(y, 0)) return this.lit(0);
      if (this.isLit(x, -1)) return y;
      if (this.isLit(y, -1)) return x;
      if (x === y) return x;
    } else {
      if (this.isLit(x, 0)) return y;
      if (this.isLit(y, 0)) return x;
      if (op === 'xor' && x === y) return this.lit(0);
    }
    // Commutative: a canonical operand order lets the memo find common subexpressions
    // (the xor(b, c) of one round's Maj is the xor(a, b) of the round before).
    return x < y ? this.make(op, x, y, 0) : this.make(op, y, x, 0);
  }
  xor(...xs: number[]): number {
    // Balanced, so six shifted copies cost three levels of latency rather than five.
    if (xs.length === 1) return xs[0];
    const mid = xs.length >> 1;
    return this.bin('xor', this.xor(...xs.slice(0, mid)), this.xor(...xs.slice(mid)));
  }
  and(x: number, y: number): number {
    return this.bin('and', x, y);
  }
  shl(x: number, k: number): number {
    if (this.isLit(x)) return this.lit(this.val(x) << k);
    return this.make('shl', x, -1, k);
  }
  shr(x: number, k: number): number {
    if (this.isLit(x)) return this.lit(this.val(x) >>> k);
    return this.make('shr', x, -1, k);
  }
  /** rotr as two shifts: the bits do not overlap, so the callers can xor them in directly */
  private rot(x: number, k: number): number[] {
    return [this.shr(x, k), this.shl(x, 32 - k)];
  }
  bigSigma0(x: number): number {
    return this.isLit(x) ? this.lit(rotr(this.val(x), 2) ^ rotr(this.val(x), 13) ^ rotr(this.val(x), 22)) : this.xor(...this.rot(x, 2), ...this.rot(x, 13), ...this.rot(x, 22));
  }
  bigSigma1(x: number): number {
    return this.isLit(x) ? this.lit(rotr(this.val(x), 6) ^ rotr(this.val(x), 11) ^ rotr(this.val(x), 25)) : this.xor(...this.rot(x, 6), ...this.rot(x, 11), ...this.rot(x, 25));
  }
  smallSigma0(x: number): number {
    return this.xor(...this.rot(x, 7), ...this.rot(x, 18), this.shr(x, 3));
  }
  smallSigma1(x: number): number {
    return this.xor(...this.rot(x, 17), ...this.rot(x, 19), this.shr(x, 10));
  }

  /**
   * Sum of terms mod 2^32. Literals fold into one constant, header-level terms into one hoisted
   * value, and the loop-level terms are added in order of readiness so the latest-computed one
   * comes last and the others' additions overlap with its computation.
   */
  sum(...terms: number[]): number {
    let litSum = 0;
    const hdr: number[] = [];
    const loop: number[] = [];
    for (const x of terms) {
      const n = this.nodes[x];
      if (n.lvl === LIT) litSum = (litSum + n.imm) | 0;
      else if (n.lvl === HDR) hdr.push(x);
      else loop.push(x);
    }
    let acc = this.lit(litSum);
    for (const x of hdr) acc = this.bin('add', acc, x);
    loop.sort((x, y) => this.nodes[x].depth - this.nodes[y].depth || x - y);
    for (const x of loop) acc = this.bin('add', acc, x);
    return acc;
  }
}

function rotr(x: number, k: number): number {
  return (x >>> k) | (x << (32 - k));
}

/** One SHA-256 compression of block `w` (16 words) into `state` (8 words); returns the new state. */
function compress(g: Graph, state: number[], block: number[]): number[] {
  const w = block.slice();
  let [a, b, c, d, e, f, gg, h] = state;
  for (let t = 0; t < 64; t++) {
    if (t >= 16) w[t] = g.sum(g.smallSigma1(w[t - 2]), w[t - 7], g.smallSigma0(w[t - 15]), w[t - 16]);
    // Ch before Sigma1: both wait on e, Ch is the shorter, so it is added first.
    const ch = g.xor(gg, g.and(e, g.xor(f, gg)));
    const t1 = g.sum(h, g.lit(K[t]), w[t], ch, g.bigSigma1(e));
    const maj = g.xor(b, g.and(g.xor(a, b), g.xor(b, c)));
    const t2 = g.sum(g.bigSigma0(a), maj);
    h = gg;
    gg = f;
    f = e;
    e = g.sum(d, t1);
    d = c;
    c = b;
    b = a;
    a = g.sum(t1, t2);
  }
  return [a, b, c, d, e, f, gg, h].map((x, i) => g.sum(state[i], x));
}

interface Sha256dGraph {
  g: Graph;
  /** the 8 words of SHA-256d(header), big-endian words as SHA-256 defines them */
  digest: number[];
}

/**
 * Inputs: 0..15 the big-endian words of header bytes 0..63, 16..18 those of bytes 64..75;
 * the nonce word (bytes 76..79 read big-endian) is the loop value.
 */
function buildSha256d(): Sha256dGraph {
  const g = new Graph();
  const lits = (xs: number[]): number[] => xs.map((x) => g.lit(x));
  const first = Array.from({ length: 16 }, (_, i) => g.input(i));
  const mid = compress(g, lits(IV), first);
  const second = [g.input(16), g.input(17), g.input(18), g.nonce(), g.lit(0x80000000), ...lits(new Array<number>(10).fill(0)), g.lit(80 * 8)];
  const inner = compress(g, mid, second);
  const outer = compress(g, lits(IV), [...inner, g.lit(0x80000000), ...lits(new Array<number>(6).fill(0)), g.lit(32 * 8)]);
  return { g, digest: outer };
}

// ---------------------------------------------------------------------------------------------
// Memory layout of the module (4 pages). The runtime reads the addresses it needs from exported
// globals, so only this file knows the layout.

const IN_PTR = 0x400; // 19 i32 words: the header's big-endian words 0..18
const TARGET_PTR = 0x480; // v128: the target's top 32 bits (as a u32) in every lane
const MASK_PTR = 0x490; // v128: lanes that passed the early test in the last `scan` hit
const OUT_PTR = 0x500; // v128 x 8: `hash` output, word-major
const HDR_PTR = 0x1000; // v128 slots of the per-template (header-level) values
const CONST_PTR = 0x4000; // v128 slots of the literals, filled by the data segment
const SPILL_PTR = 0x5000; // v128 slots of long-lived loop values (see emitNodes)
const SCRATCH_PTR = 0x8000; // per-group records passed from one stage's loop to the next
const SCRATCH_END = 0x40000;

// ---------------------------------------------------------------------------------------------
// Binary encoding

const enc = {
  u32(n: number): number[] {
    const out: number[] = [];
    let v = n >>> 0;
    do {
      let byte = v & 0x7f;
      v >>>= 7;
      if (v !== 0) byte |= 0x80;
      out.push(byte);
    } while (v !== 0);
    return out;
  },
  i32(n: number): number[] {
    const out: number[] = [];
    let v = n | 0;
    for (;;) {
      const byte = v & 0x7f;
      v >>= 7;
      if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) {
        out.push(byte);
        return out;
      }
      out.push(byte | 0x80);
    }
  },
  str(s: string): number[] {
    const b = [...Buffer.from(s, 'utf8')];
    return [...enc.u32(b.length), ...b];
  },
  vec(items: number[][]): number[] {
    return [...enc.u32(items.length), ...items.flat()];
  },
  section(id: number, body: number[]): number[] {
    return [id, ...enc.u32(body.length), ...body];
  },
};

const T_I32 = 0x7f;
const T_V128 = 0x7b;

const OP = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  end: 0x0b,
  br_if: 0x0d,
  return: 0x0f,
  localGet: 0x20,
  localSet: 0x21,
  i32Const: 0x41,
  i32Ne: 0x47,
  i32GtU: 0x4b,
  i32Add: 0x6a,
  i32Sub: 0x6b,
  select: 0x1b,
  localTee: 0x22,
};
// SIMD instructions: prefix 0xfd, then the opcode as LEB128.
const SIMD = {
  load: 0x00,
  load32Splat: 0x09,
  store: 0x0b,
  shuffle: 0x0d,
  splat32: 0x11,
  i32x4LeU: 0x3e,
  and: 0x4e,
  or: 0x50,
  xor: 0x51,
  anyTrue: 0x53,
  shl: 0xab,
  shrU: 0xad,
  add: 0xae,
};

// Reverses the bytes of every 32-bit lane (big-endian words <-> little-endian numbers).
const BSWAP_LANES = [3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12];

class Code {
  readonly bytes: number[] = [];
  private readonly v128Locals: number;
  private freeLocals: number[] = [];
  private nextLocal: number;
  constructor(
    readonly params: number,
    readonly i32Locals: number,
  ) {
    this.nextLocal = params + i32Locals;
    this.v128Locals = this.nextLocal;
  }
  op(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  simd(code: number, ...imm: number[]): this {
    return this.op(0xfd, ...enc.u32(code), ...imm);
  }
  /** v128.load / v128.store at a constant address (an immediate offset from address 0) */
  load(addr: number): this {
    return this.op(OP.i32Const, 0).simd(SIMD.load, 4, ...enc.u32(addr));
  }
  storeTo(addr: number, pushValue: () => void): this {
    this.op(OP.i32Const, 0);
    pushValue();
    return this.simd(SIMD.store, 4, ...enc.u32(addr));
  }
  get(l: number): this {
    return this.op(OP.localGet, ...enc.u32(l));
  }
  set(l: number): this {
    return this.op(OP.localSet, ...enc.u32(l));
  }
  tee(l: number): this {
    return this.op(OP.localTee, ...enc.u32(l));
  }
  i32(v: number): this {
    return this.op(OP.i32Const, ...enc.i32(v));
  }
  allocV128(): number {
    return this.freeLocals.pop() ?? this.nextLocal++;
  }
  release(l: number): void {
    this.freeLocals.push(l);
  }
  /** The function body: locals declaration, code, end. */
  finish(): number[] {
    const decls: number[][] = [];
    if (this.i32Locals > 0) decls.push([...enc.u32(this.i32Locals), T_I32]);
    const nV = this.nextLocal - this.v128Locals;
    if (nV > 0) decls.push([...enc.u32(nV), T_V128]);
    const body = [...enc.vec(decls), ...this.bytes, OP.end];
    return [...enc.u32(body.length), ...body];
  }
}

class Slots {
  readonly index = new Map<number, number>();
  constructor(readonly base: number) {}
  addr(node: number): number {
    let i = this.index.get(node);
    if (i === undefined) {
      i = this.index.size;
      this.index.set(node, i);
    }
    return this.base + 16 * i;
  }
}

/** Loop-level (or, for prep, header-level) nodes needed for `roots`, in dependency order. */
function needed(g: Graph, roots: number[], level: Level): number[] {
  const seen = new Set<number>();
  const stack = [...roots];
  while (stack.length > 0) {
    const x = stack.pop() as number;
    const n = g.nodes[x];
    if (seen.has(x) || n.lvl !== level || n.op === 'nonce' || n.op === 'in') continue;
    seen.add(x);
    if (n.a >= 0) stack.push(n.a);
    if (n.b >= 0) stack.push(n.b);
  }
  return [...seen].sort((x, y) => x - y);
}

interface Emitter {
  g: Graph;
  consts: Slots;
  hdr: Slots;
  spills: Slots;
  spillDistance: number;
}

/**
 * Emits the computation of `nodes` (all of level `level`, in dependency order). Values of lower
 * levels are loaded from their memory slot at each use (V8 hoists such loads out of the loop
 * itself); anything else not computed here comes from `pushLeaf`. Returns a function that pushes
 * a computed node's value and one that frees the locals of `keep`, the nodes used afterwards.
 */
function emitNodes(
  c: Code,
  e: Emitter,
  nodes: number[],
  keep: number[],
  level: Level,
  pushLeaf: (node: number) => void,
): { push: (node: number) => void; release: () => void } {
  const { g } = e;
  const pos = new Map(nodes.map((x, i) => [x, i] as const));
  // Position of each computed value's last use that keeps it in a local; uses further than
  // `spillDistance` after its definition reload it from a spill slot instead.
  const nearLast = new Map<number, number>();
  const spilled = new Set<number>();
  nodes.forEach((x, i) => {
    const n = g.nodes[x];
    for (const arg of n.b >= 0 ? [n.a, n.b] : [n.a]) {
      const d = pos.get(arg);
      if (d === undefined) continue;
      if (i - d > e.spillDistance) spilled.add(arg);
      else nearLast.set(arg, i);
    }
  });
  for (const r of keep) {
    nearLast.set(r, Infinity);
    spilled.delete(r);
  }
  const locals = new Map<number, number>();
  const push = (x: number): void => {
    const n = g.nodes[x];
    const l = locals.get(x);
    if (l !== undefined) c.get(l);
    else if (spilled.has(x)) c.load(e.spills.addr(x));
    else if (n.lvl === LIT) c.load(e.consts.addr(x));
    else if (n.lvl === HDR && level === LOOP) c.load(e.hdr.addr(x));
    else pushLeaf(x);
  };
  nodes.forEach((x, i) => {
    const n = g.nodes[x];
    push(n.a);
    switch (n.op) {
      case 'add':
      case 'xor':
      case 'and':
        push(n.b);
        c.simd(n.op === 'add' ? SIMD.add : n.op === 'xor' ? SIMD.xor : SIMD.and);
        break;
      case 'shl':
      case 'shr':
        c.i32(n.imm).simd(n.op === 'shl' ? SIMD.shl : SIMD.shrU);
        break;
      default:
        throw new WasmGenError(`cannot emit ${n.op}`);
    }
    const l = c.allocV128();
    c.set(l);
    if (spilled.has(x)) c.storeTo(e.spills.addr(x), () => c.get(l));
    if (nearLast.has(x)) locals.set(x, l);
    else c.release(l);
    for (const arg of [n.a, n.b]) {
      const al = locals.get(arg);
      if (al !== undefined && nearLast.get(arg) === i) {
        c.release(al);
        locals.delete(arg);
      }
    }
  });
  const release = (): void => {
    for (const r of keep) {
      const l = locals.get(r);
      if (l !== undefined) c.release(l);
      locals.delete(r);
    }
  };
  return { push, release };
}

export interface WasmBuildOptions {
  /** loops the per-nonce work is split into (so each loop's code fits the CPU's op cache) */
  stages?: number;
  /** nonce groups (of 4) per batch: each stage runs over a batch before the next one starts */
  batch?: number;
  /** values used more than this many operations after their definition go through memory */
  spill?: number;
}

export const DEFAULT_BUILD: Required<WasmBuildOptions> = { stages: 2, batch: 128, spill: 100 };

function bswapLanes(c: Code, pushValue: () => void): void {
  pushValue();
  pushValue();
  c.simd(SIMD.shuffle, ...BSWAP_LANES);
}

/**
 * Splits the loop-level nodes (in dependency order) into `stages` consecutive runs of about equal
 * size, each cut placed where the fewest values cross it (they go through memory).
 */
function splitStages(g: Graph, nodes: number[], stages: number): number[][] {
  const pos = new Map(nodes.map((x, i) => [x, i] as const));
  const lastUse = new Array<number>(nodes.length).fill(-1);
  nodes.forEach((x, i) => {
    const n = g.nodes[x];
    for (const a of [n.a, n.b]) {
      const p = pos.get(a);
      if (p !== undefined) lastUse[p] = Math.max(lastUse[p], i);
    }
  });
  // crossing[k]: values defined before position k and used at or after it
  const crossing = (k: number): number => {
    let c = 0;
    for (let i = 0; i < k; i++) if (lastUse[i] >= k) c++;
    return c;
  };
  const cuts: number[] = [];
  for (let s = 1; s < stages; s++) {
    const ideal = Math.round((nodes.length * s) / stages);
    const span = Math.round(nodes.length / stages / 8);
    let best = ideal;
    let bestCost = Infinity;
    for (let k = ideal - span; k <= ideal + span; k++) {
      const cost = crossing(k);
      if (cost < bestCost) [best, bestCost] = [k, cost];
    }
    cuts.push(best);
  }
  const out: number[][] = [];
  let from = 0;
  for (const k of [...cuts, nodes.length]) {
    out.push(nodes.slice(from, k));
    from = k;
  }
  return out;
}


/** The wasm module's bytes. Deterministic: the same source always gives the same bytes. */
export function buildSha256dWasm(opts: WasmBuildOptions = {}): Uint8Array {
  const { stages, batch, spill } = { ...DEFAULT_BUILD, ...opts };
  if (!Number.isInteger(stages) || stages < 1 || stages > 8) throw new RangeError('stages must be 1..8');
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError('batch must be a positive integer');
  const { g, digest } = buildSha256d();
  const e: Emitter = { g, consts: new Slots(CONST_PTR), hdr: new Slots(HDR_PTR), spills: new Slots(SPILL_PTR), spillDistance: spill };
  const nonceNode = g.nonce();
  // Lane offsets [0, 1, 2, 3]: the one constant that is not a splat; just below the literals.
  const OFFSETS_ADDR = CONST_PTR - 16;
  const splatAddr = (k: number): number => e.consts.addr(g.lit(k));

  // ---- scan(start: i32, groups: i32) -> i32 ----------------------------------------------------
  // Hashes nonces start .. start + 4 * groups - 1 (groups >= 1); returns the index of the first
  // group with a lane whose top word is <= the target's (the lanes' masks in MASK), or -1.
  // The work is done batch by batch; within a batch, stage by stage, each stage a loop over the
  // batch's groups that passes the values later stages need through the scratch area.
  const scan = new Code(2, 4);
  {
    const c = scan;
    const P_START = 0;
    const P_GROUPS = 1;
    const L_DONE = 2; // groups finished before this batch
    const L_B = 3; // groups in this batch
    const L_J = 4; // group within the batch
    const L_P = 5; // this group's scratch record
    const base = c.allocV128(); // the first 4 (little-endian) nonces of the batch
    const cur = c.allocV128();
    const roots = [digest[7]];
    const all = needed(g, roots, LOOP);
    const parts = splitStages(g, [nonceNode, ...all], stages);
    const stageOf = new Map<number, number>();
    parts.forEach((p, s) => p.forEach((x) => stageOf.set(x, s)));
    // Values used by a later stage than their own get a slot in the group's scratch record.
    const record = new Slots(0);
    for (const [s, p] of parts.entries()) {
      for (const x of p) {
        const n = g.nodes[x];
        for (const a of [n.a, n.b]) {
          const sa = stageOf.get(a);
          if (sa !== undefined && sa < s) record.addr(a);
        }
      }
    }
    if (stageOf.get(digest[7]) !== stages - 1) record.addr(digest[7]);
    const stride = 16 * record.index.size;
    if (stages > 1 && SCRATCH_PTR + stride * batch > SCRATCH_END) throw new WasmGenError(`batch too large for the scratch area (${stride} bytes a group)`);

    c.get(P_START).simd(SIMD.splat32).load(OFFSETS_ADDR).simd(SIMD.add).set(base);
    c.i32(0).set(L_DONE);
    c.op(OP.block, 0x40).op(OP.loop, 0x40); // per batch
    // b = min(batch, groups - done)
    c.get(P_GROUPS).get(L_DONE).op(OP.i32Sub).set(L_B);
    c.i32(batch).get(L_B).get(L_B).i32(batch).op(OP.i32GtU).op(OP.select).set(L_B);
    for (const [s, part] of parts.entries()) {
      const last = s === stages - 1;
      c.i32(0).set(L_J);
      c.i32(SCRATCH_PTR).set(L_P);
      if (s === 0) c.get(base).set(cur);
      c.op(OP.block, 0x40).op(OP.loop, 0x40); // per group
      const fromRecord = (x: number): void => {
        if (!record.index.has(x)) throw new WasmGenError(`value ${x} (${g.nodes[x].op}) missing from the record`);
        c.get(L_P).simd(SIMD.load, 4, ...enc.u32(record.addr(x)));
      };
      const computed = part.filter((x) => x !== nonceNode);
      const keep = part.filter((x) => record.index.has(x) || (last && x === digest[7]));
      let nonceLocal = -1;
      if (s === 0) {
        nonceLocal = c.allocV128();
        bswapLanes(c, () => c.get(cur));
        c.set(nonceLocal);
      }
      const em = emitNodes(c, e, computed, keep.filter((x) => x !== nonceNode), LOOP, (x) => {
        if (x === nonceNode && nonceLocal >= 0) c.get(nonceLocal);
        else fromRecord(x);
      });
      const pushAny = (x: number): void => {
        if (x === nonceNode) c.get(nonceLocal);
        else em.push(x);
      };
      if (!last) {
        for (const x of keep) if (record.index.has(x)) {
          c.get(L_P);
          pushAny(x);
          c.simd(SIMD.store, 4, ...enc.u32(record.addr(x)));
        }
      }
      if (last) {
        const h7 = c.allocV128();
        const mask = c.allocV128();
        if (stageOf.get(digest[7]) === s) em.push(digest[7]);
        else fromRecord(digest[7]);
        c.set(h7);
        bswapLanes(c, () => c.get(h7));
        c.load(TARGET_PTR).simd(SIMD.i32x4LeU).set(mask);
        c.get(mask).simd(SIMD.anyTrue).op(OP.if, 0x40);
        c.storeTo(MASK_PTR, () => c.get(mask));
        c.get(L_DONE).get(L_J).op(OP.i32Add).op(OP.return);
        c.op(OP.end);
        c.release(h7);
        c.release(mask);
      }
      em.release();
      if (nonceLocal >= 0) c.release(nonceLocal);
      if (s === 0) c.get(cur).load(splatAddr(4)).simd(SIMD.add).set(cur);
      c.get(L_P).i32(stride).op(OP.i32Add).set(L_P);
      c.get(L_J).i32(1).op(OP.i32Add).tee(L_J).get(L_B).op(OP.i32Ne).op(OP.br_if, 0);
      c.op(OP.end).op(OP.end);
    }
    c.get(cur).set(base);
    c.get(L_DONE).get(L_B).op(OP.i32Add).tee(L_DONE).get(P_GROUPS).op(OP.i32Ne).op(OP.br_if, 0);
    c.op(OP.end).op(OP.end);
    c.i32(-1);
  }

  // ---- hash(start: i32): the full digests of nonces start .. start + 3 into OUT ----------------
  const hash = new Code(1, 0);
  {
    const c = hash;
    const words = c.allocV128();
    c.get(0).simd(SIMD.splat32).load(OFFSETS_ADDR).simd(SIMD.add).set(words);
    bswapLanes(c, () => c.get(words));
    c.set(words);
    const em = emitNodes(c, e, needed(g, digest, LOOP), digest, LOOP, (x) => {
      if (x !== nonceNode) throw new WasmGenError(`unexpected leaf ${g.nodes[x].op}`);
      c.get(words);
    });
    for (let j = 0; j < 8; j++) c.storeTo(OUT_PTR + 16 * j, () => em.push(digest[j]));
  }

  // ---- prep(): the header-level values the kernels load, from the words at IN ----------------
  const prep = new Code(0, 0);
  {
    const c = prep;
    const roots = [...e.hdr.index.keys()];
    const em = emitNodes(c, e, needed(g, roots, HDR), roots, HDR, (x) => {
      const n = g.nodes[x];
      if (n.op !== 'in') throw new WasmGenError(`unexpected leaf ${n.op}`);
      c.i32(0).simd(SIMD.load32Splat, 2, ...enc.u32(IN_PTR + 4 * n.imm));
    });
    for (const r of roots) c.storeTo(e.hdr.addr(r), () => em.push(r));
  }
  if (HDR_PTR + 16 * e.hdr.index.size > OFFSETS_ADDR) throw new WasmGenError('header slots overflow');
  if (SPILL_PTR + 16 * e.spills.index.size > SCRATCH_PTR) throw new WasmGenError('spill slots overflow');

  // ---- the module ----------------------------------------------------------------------------
  const data: number[] = [];
  const le32 = (v: number): number[] => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  data.push(...le32(0), ...le32(1), ...le32(2), ...le32(3));
  for (const x of e.consts.index.keys()) for (let l = 0; l < 4; l++) data.push(...le32(g.nodes[x].imm));
  if (OFFSETS_ADDR + data.length > SPILL_PTR) throw new WasmGenError('constants overflow into the spill area');

  const globals: Array<[string, number]> = [
    ['lanes', 4],
    ['inPtr', IN_PTR],
    ['targetPtr', TARGET_PTR],
    ['maskPtr', MASK_PTR],
    ['outPtr', OUT_PTR],
  ];
  const bytes = [
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...enc.section(1, enc.vec([
      [0x60, 0, 0],
      [0x60, 2, T_I32, T_I32, 1, T_I32],
      [0x60, 1, T_I32, 0],
    ])),
    ...enc.section(3, enc.vec([[0], [1], [2]])),
    ...enc.section(5, enc.vec([[0x00, SCRATCH_END >>> 16]])),
    ...enc.section(6, enc.vec(globals.map(([, v]) => [T_I32, 0x00, OP.i32Const, ...enc.i32(v), OP.end]))),
    ...enc.section(7, enc.vec([
      [...enc.str('memory'), 0x02, 0],
      [...enc.str('prep'), 0x00, 0],
      [...enc.str('scan'), 0x00, 1],
      [...enc.str('hash'), 0x00, 2],
      ...globals.map(([name], i) => [...enc.str(name), 0x03, i]),
    ])),
    ...enc.section(10, enc.vec([prep.finish(), scan.finish(), hash.finish()])),
    ...enc.section(11, enc.vec([[0x00, OP.i32Const, ...enc.i32(OFFSETS_ADDR), OP.end, ...enc.u32(data.length), ...data]])),
  ];
  return Uint8Array.from(bytes);
}
