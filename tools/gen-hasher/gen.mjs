// Generator for the unrolled SHA-256d header kernels in mining/hasher.ts.
// Values carry a "level": lit (known at generation time, folded), hdr (depends
// only on the header: hoisted out of the nonce loop), loop (depends on nonce).
const K = [0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2].map(x=>x|0);
const IV = [0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19].map(x=>x|0);
const LV = { lit: 0, hdr: 1, loop: 2 };
const lit = (v) => ({ lvl: 0, v: v | 0 });
const ref = (name, lvl) => ({ lvl, name });
const fmt = (v) => (v < 0 ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);
const rotr = (x, n) => (x >>> n) | (x << (32 - n));

export function makeGen() {
  const pre = [];
  const body = [];
  let tmp = 0;
  const emit = (lvl, name, expr) => { (lvl <= 1 ? pre : body).push(`const ${name} = ${expr};`); return ref(name, lvl); };
  const str = (x) => (x.lvl === 0 ? fmt(x.v) : x.name);
  // Bind a (non-literal) compound expression to a fresh const at its level.
  const bind = (lvl, expr, hint) => emit(lvl, `${hint}${tmp++}`, expr);

  function add(terms, name) {
    let litSum = 0;
    const hdr = [], loop = [];
    for (const x of terms) {
      if (x.lvl === 0) litSum = (litSum + x.v) | 0;
      else if (x.lvl === 1) hdr.push(x); else loop.push(x);
    }
    if (hdr.length === 0 && loop.length === 0) return lit(litSum);
    if (loop.length === 0) {
      if (hdr.length === 1 && litSum === 0 && !name) return hdr[0];
      const parts = hdr.map(str); if (litSum) parts.push(fmt(litSum));
      return emit(1, name ?? `p${tmp++}`, `(${parts.join(' + ')}) | 0`);
    }
    // Fold header-only terms into one hoisted constant so the loop does one add.
    let hpart = null;
    if (hdr.length + (litSum ? 1 : 0) > 1) {
      const parts = hdr.map(str); if (litSum) parts.push(fmt(litSum));
      hpart = emit(1, `p${tmp++}`, `(${parts.join(' + ')}) | 0`);
    } else if (hdr.length === 1) hpart = hdr[0]; else if (litSum) hpart = lit(litSum);
    const parts = loop.map(str); if (hpart) parts.push(str(hpart));
    if (parts.length === 1 && !name) return loop[0];
    return emit(2, name ?? `l${tmp++}`, `(${parts.join(' + ')}) | 0`);
  }
  function un(x, f, tmpl, hint) {
    if (x.lvl === 0) return lit(f(x.v));
    return bind(x.lvl, tmpl(x.name), hint);
  }
  const S0 = (x) => un(x, (v) => rotr(v,2)^rotr(v,13)^rotr(v,22), (n) => `(${n} >>> 2 | ${n} << 30) ^ (${n} >>> 13 | ${n} << 19) ^ (${n} >>> 22 | ${n} << 10)`, 'S0_');
  const S1 = (x) => un(x, (v) => rotr(v,6)^rotr(v,11)^rotr(v,25), (n) => `(${n} >>> 6 | ${n} << 26) ^ (${n} >>> 11 | ${n} << 21) ^ (${n} >>> 25 | ${n} << 7)`, 'S1_');
  const s0 = (x) => un(x, (v) => rotr(v,7)^rotr(v,18)^(v>>>3), (n) => `(${n} >>> 7 | ${n} << 25) ^ (${n} >>> 18 | ${n} << 14) ^ (${n} >>> 3)`, 's0_');
  const s1 = (x) => un(x, (v) => rotr(v,17)^rotr(v,19)^(v>>>10), (n) => `(${n} >>> 17 | ${n} << 15) ^ (${n} >>> 19 | ${n} << 13) ^ (${n} >>> 10)`, 's1_');
  function tri(x, y, z, f, tmpl, hint) {
    const lvl = Math.max(x.lvl, y.lvl, z.lvl);
    if (lvl === 0) return lit(f(x.v, y.v, z.v));
    return bind(lvl, tmpl(str(x), str(y), str(z)), hint);
  }
  // Ch(e,f,g) = g ^ (e & (f ^ g)); Maj(a,b,c) = (a & b) | (c & (a | b)): one op fewer each.
  const Ch = (e, f, g) => tri(e, f, g, (e, f, g) => g ^ (e & (f ^ g)), (e, f, g) => `${g} ^ (${e} & (${f} ^ ${g}))`, 'ch');
  const Maj = (a, b, c) => tri(a, b, c, (a, b, c) => (a & b) | (c & (a | b)), (a, b, c) => `(${a} & ${b}) | (${c} & (${a} | ${b}))`, 'mj');

  /**
   * One compression. w: array of 16 values. state: 8 values. rounds: how many
   * rounds to run (64 normally). Returns final state array after rounds (not
   * yet added to the chaining value), as [a..h].
   */
  function compress(P, state, w16, rounds = 64, lastOnlyE = false) {
    const W = w16.slice();
    const getW = (t) => {
      if (W[t]) return W[t];
      W[t] = add([s1(getW(t - 2)), getW(t - 7), s0(getW(t - 15)), getW(t - 16)], `${P}w${t}`);
      return W[t];
    };
    let [a, b, c, d, e, f, g, h] = state;
    for (let t = 0; t < rounds; t++) {
      const t1 = add([h, S1(e), Ch(e, f, g), lit(K[t]), getW(t)]);
      const ne = add([d, t1], `${P}e${t + 1}`);
      if (lastOnlyE && t === rounds - 1) { return { e: ne }; }
      const na = add([t1, S0(a), Maj(a, b, c)], `${P}a${t + 1}`);
      h = g; g = f; f = e; e = ne; d = c; c = b; b = a; a = na;
    }
    return { st: [a, b, c, d, e, f, g, h] };
  }
  return { pre, body, add, lit, ref, compress, str, IV, K };
}

export function generate(kind) {
  const G = makeGen();
  const { add, lit, ref, compress, str } = G;
  const M = [0,1,2,3,4,5,6,7].map((i) => ref(`ms${i}`, 1));
  const w = [ref('x0', 1), ref('x1', 1), ref('x2', 1), ref('w3', 2), lit(0x80000000), lit(0),lit(0),lit(0),lit(0),lit(0),lit(0),lit(0),lit(0),lit(0),lit(0), lit(640)];
  const r1 = compress('f', M, w).st;
  const H1 = r1.map((x, i) => add([M[i], x], `d${i}`));
  const w2 = [...H1, lit(0x80000000), lit(0),lit(0),lit(0),lit(0),lit(0),lit(0), lit(256)];
  const IVl = G.IV.map(lit);
  if (kind === 'scan') {
    // Final word 7 = IV7 + h64, and h64 is e after round 61 (e -> f -> g -> h over the last 3 rounds).
    const r2 = compress('s', IVl, w2, 61, true);
    const o7 = add([lit(G.IV[7]), r2.e], 'o7');
    return { pre: G.pre, body: G.body, out: [str(o7)] };
  }
  const r2 = compress('s', IVl, w2).st;
  const out = r2.map((x, i) => str(add([lit(G.IV[i]), x], `o${i}`)));
  return { pre: G.pre, body: G.body, out };
}
