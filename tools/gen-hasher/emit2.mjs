import { makeGen } from './gen.mjs';
const ind = (lines, n) => lines.map((l) => ' '.repeat(n) + l).join('\n');
const CTX_HOIST = 11;

// ---- first hash (second block; the first block is the per-header midstate)
const G1 = makeGen();
{
  const M = [0,1,2,3,4,5,6,7].map((i) => G1.ref(`ms${i}`, 1));
  const w = [G1.ref('x0', 1), G1.ref('x1', 1), G1.ref('x2', 1), G1.ref('w3', 2), G1.lit(0x80000000),
    ...Array(10).fill(0).map(() => G1.lit(0)), G1.lit(640)];
  const r = G1.compress('f', M, w).st;
  G1.outs = r.map((x, i) => G1.str(G1.add([M[i], x], `d${i}`)));
}
const bodyText = G1.body.join('\n');
const used = (n) => new RegExp(`\\b${n}\\b`).test(bodyText);
const preNames = G1.pre.map((l) => /^const (\w+) =/.exec(l)[1]);
const hoisted = [...[0,1,2,3,4,5,6,7].map((i) => `ms${i}`), 'x0', 'x1', 'x2', ...preNames].filter(used);
// ms/x are already in ctx[0..10]; the rest get slots after them.
const slot = new Map();
[0,1,2,3,4,5,6,7].forEach((i) => slot.set(`ms${i}`, i));
['x0','x1','x2'].forEach((n, i) => slot.set(n, 8 + i));
let next = CTX_HOIST;
for (const n of preNames.filter(used)) slot.set(n, next++);

function second(kind) {
  const G = makeGen();
  const inp = [0,1,2,3,4,5,6,7].map((i) => G.ref(`i${i}`, 2));
  const w = [...inp, G.lit(0x80000000), ...Array(6).fill(0).map(() => G.lit(0)), G.lit(256)];
  const IV = G.IV.map((v) => G.lit(v));
  let outs;
  if (kind === 'top') {
    const r = G.compress('s', IV, w, 61, true);
    outs = [G.str(G.add([G.lit(G.IV[7]), r.e], 'o7'))];
  } else {
    const r = G.compress('s', IV, w).st;
    outs = r.map((x, i) => G.str(G.add([G.lit(G.IV[i]), x], `o${i}`)));
  }
  if (G.pre.length) throw new Error('second hash should have nothing to hoist');
  return { body: G.body, outs };
}
const sTop = second('top');
const sFull = second('full');
const loadIn = `  const i0 = d[0], i1 = d[1], i2 = d[2], i3 = d[3], i4 = d[4], i5 = d[5], i6 = d[6], i7 = d[7];`;

let s = `// ---- BEGIN GENERATED KERNELS (see header comment; do not edit by hand) ----\n`;
s += `// Split into separate functions because V8 refuses to optimize any function\n`;
s += `// over 60 KiB of bytecode; a single fused double-hash kernel is ~68 KiB and\n`;
s += `// would run ~75x slower in the interpreter.\n\n`;
s += `/** Slots in ctx: [0..10] set by setHeader, then header-only values hoisted out of the nonce loop. */\n`;
s += `const CTX_SIZE = ${next};\n\n`;
s += `/** Compute everything in the first hash that does not depend on the nonce (rounds 0..2 and more). */\n`;
s += `function kernelPrep(ctx: Int32Array): void {\n`;
s += `  const ms0 = ctx[0], ms1 = ctx[1], ms2 = ctx[2], ms3 = ctx[3], ms4 = ctx[4], ms5 = ctx[5], ms6 = ctx[6], ms7 = ctx[7];\n`;
s += `  const x0 = ctx[8], x1 = ctx[9], x2 = ctx[10];\n`;
s += ind(G1.pre, 2) + '\n';
for (const n of preNames.filter(used)) s += `  ctx[${slot.get(n)}] = ${n};\n`;
s += `}\n\n`;
s += `/** First SHA-256 (block 2 from the midstate) for nonce word w3 (big-endian view); digest words to d. */\n`;
s += `function kernelFirst(ctx: Int32Array, w3: number, d: Int32Array): void {\n`;
s += ind(hoisted.map((n) => `const ${n} = ctx[${slot.get(n)}];`), 2) + '\n';
s += ind(G1.body, 2) + '\n';
G1.outs.forEach((x, i) => { s += `  d[${i}] = ${x};\n`; });
s += `}\n\n`;
s += `/** Second SHA-256 over the 32-byte digest in d; writes the final state words to o. */\n`;
s += `function kernelSecond(d: Int32Array, o: Int32Array): void {\n${loadIn}\n${ind(sFull.body, 2)}\n`;
sFull.outs.forEach((x, i) => { s += `  o[${i}] = ${x};\n`; });
s += `}\n\n`;
s += `/** Second SHA-256 over d, returning only final state word 7 (rounds 62..64 skipped). */\n`;
s += `function kernelSecondWord7(d: Int32Array): number {\n${loadIn}\n${ind(sTop.body, 2)}\n  return ${sTop.outs[0]};\n}\n`;
s += `// ---- END GENERATED KERNELS ----\n`;
process.stdout.write(s);
