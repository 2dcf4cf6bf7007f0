// Canonical msgpack for consensus data. Every record and block body is a fixed-order array of
// unsigned integers, byte strings, text strings and nested arrays. msgpackr does the byte work;
// this module pins one encoding per value (integers above 32 bits as int64, never float) and
// rejects any input whose re-encoding differs, so a value has exactly one valid byte form and
// its hash is an identity.
import { Packr } from 'msgpackr';
import { EncodingError } from './errors.ts';
import { bytesEqual } from './hash.ts';

/** Bytes that decode to a value whose one canonical encoding is different. */
export class NonCanonicalError extends EncodingError {
  override name = 'NonCanonicalError';
}

export type Value = number | string | Uint8Array | Value[];

const packr = new Packr({
  useRecords: false,
  mapsAsObjects: false,
  int64AsType: 'number',
  variableMapSize: true,
  encodeUndefinedAsNil: false,
});

/** Maximum safe amount or integer field: integers above 2^53 cannot be represented exactly. */
export const MAX_UINT = Number.MAX_SAFE_INTEGER;
const U32 = 0xffffffff;

type Packable = number | bigint | string | Uint8Array | Packable[];

function normalize(v: Value): Packable {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new EncodingError(`not an unsigned safe integer: ${v}`);
    return v > U32 ? BigInt(v) : v;
  }
  if (typeof v === 'string' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(normalize);
  throw new EncodingError(`value of type ${typeof v} is not allowed in consensus data`);
}

/**
 * The one encoding of a value. Written here for the forms consensus data is made of (unsigned
 * integers, ASCII text, byte strings, arrays), in the same bytes as msgpackr writes them (a test
 * compares the two on random values and every length boundary), at a fraction of the cost; text
 * beyond ASCII and anything invalid go to encodeFull, which gives every refusal its message.
 */
export function encode(v: Value): Uint8Array {
  const n = sizeOf(v);
  if (n < 0) return encodeFull(v);
  const out = new Uint8Array(n);
  write(v, out, 0);
  return out;
}

/**
 * encode's bytes written into `out` at `at` (the end offset returned), for many small values kept
 * in one array instead of an array each; -1, and nothing written, when they would not fit or are
 * left to encodeFull (then call encode).
 */
export function encodeInto(v: Value, out: Uint8Array, at: number): number {
  const n = sizeOf(v);
  if (n < 0 || at + n > out.length) return -1;
  return write(v, out, at);
}

/** The length of encode(v) where encodeInto writes it; -1 for what it leaves to encode. */
export function encodedSize(v: Value): number {
  return sizeOf(v);
}

/** encode through msgpackr. */
export function encodeFull(v: Value): Uint8Array {
  const b = packr.pack(normalize(v));
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The bytes write() takes for v, or -1 for what it leaves to encodeFull. */
function sizeOf(v: Value): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) return -1;
    return v < 0x80 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= U32 ? 5 : 9;
  }
  if (typeof v === 'string') {
    const n = v.length;
    for (let i = 0; i < n; i++) if (v.charCodeAt(i) >= 0x80) return -1;
    return (n < 32 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5) + n;
  }
  if (v instanceof Uint8Array) {
    const n = v.length;
    return (n <= 0xff ? 2 : n <= 0xffff ? 3 : 5) + n;
  }
  if (Array.isArray(v)) {
    const n = v.length;
    let size = n < 16 ? 1 : n <= 0xffff ? 3 : 5;
    for (let i = 0; i < n; i++) {
      const s = sizeOf(v[i]);
      if (s < 0) return -1;
      size += s;
    }
    return size;
  }
  return -1;
}

/** Writes v (sized by sizeOf) at out[o]; the offset after it. */
function write(v: Value, out: Uint8Array, o: number): number {
  if (typeof v === 'number') {
    if (v < 0x80) {
      out[o] = v;
      return o + 1;
    }
    if (v <= 0xff) return writeUint(out, writeByte(out, o, 0xcc), v, 1);
    if (v <= 0xffff) return writeUint(out, writeByte(out, o, 0xcd), v, 2);
    if (v <= U32) return writeUint(out, writeByte(out, o, 0xce), v, 4);
    // above 32 bits: int64, as msgpackr writes a BigInt, high word then low
    o = writeUint(out, writeByte(out, o, 0xd3), Math.floor(v / 0x1_0000_0000), 4);
    return writeUint(out, o, v % 0x1_0000_0000, 4);
  }
  if (typeof v === 'string') {
    const n = v.length;
    if (n < 32) o = writeByte(out, o, 0xa0 | n);
    else if (n <= 0xff) o = writeUint(out, writeByte(out, o, 0xd9), n, 1);
    else if (n <= 0xffff) o = writeUint(out, writeByte(out, o, 0xda), n, 2);
    else o = writeUint(out, writeByte(out, o, 0xdb), n, 4);
    for (let i = 0; i < n; i++) out[o + i] = v.charCodeAt(i);
    return o + n;
  }
  if (v instanceof Uint8Array) {
    const n = v.length;
    if (n <= 0xff) o = writeUint(out, writeByte(out, o, 0xc4), n, 1);
    else if (n <= 0xffff) o = writeUint(out, writeByte(out, o, 0xc5), n, 2);
    else o = writeUint(out, writeByte(out, o, 0xc6), n, 4);
    out.set(v, o);
    return o + n;
  }
  const a = v;
  const n = a.length;
  if (n < 16) o = writeByte(out, o, 0x90 | n);
  else if (n <= 0xffff) o = writeUint(out, writeByte(out, o, 0xdc), n, 2);
  else o = writeUint(out, writeByte(out, o, 0xdd), n, 4);
  for (let i = 0; i < n; i++) o = write(a[i], out, o);
  return o;
}

function writeByte(out: Uint8Array, o: number, b: number): number {
  out[o] = b;
  return o + 1;
}

/** n (below 2^32) big-endian in `size` bytes. */
function writeUint(out: Uint8Array, o: number, n: number, size: number): number {
  for (let i = size - 1; i >= 0; i--) {
    out[o + i] = n & 0xff;
    n = Math.floor(n / 256);
  }
  return o + size;
}

function check(v: unknown, depth: number): Value {
  if (depth > 8) throw new EncodingError('nesting too deep');
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new EncodingError('integer out of range or not an integer');
    return v;
  }
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = check(v[i], depth + 1);
    return v as Value[];
  }
  throw new EncodingError(`unexpected ${v === null ? 'nil' : typeof v} in consensus data`);
}

/** Decodes bytes and insists they are the canonical encoding of what they decode to. */
export function decode(bytes: Uint8Array): Value {
  return decodeCanonical(bytes) ?? decodeFull(bytes);
}

/**
 * decode's full path: msgpackr reads the bytes, and they must be what encode gives for the value
 * read. It gives every verdict on malformed or non-canonical bytes and their exact error.
 */
export function decodeFull(bytes: Uint8Array): Value {
  let v: unknown;
  try {
    v = packr.unpack(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new EncodingError(`malformed msgpack: ${(e as Error).message}`);
  }
  const value = check(v, 0);
  if (!bytesEqual(encodeFull(value), bytes)) throw new NonCanonicalError('non-canonical encoding: bytes differ from the re-encoding of their value');
  return value;
}

// decodeCanonical's input and its reading position there (one reader at a time: it never yields);
// the input is let go after each call
const EMPTY = new Uint8Array(0);
let src: Uint8Array = EMPTY;
let at = 0;

/**
 * decode's fast path, for the bytes records and blocks are made of: it reads only the forms
 * encode writes (the shortest integer, string, byte-string and array headers; strings of ASCII;
 * integers above 32 bits as int64, as msgpackr writes them) and returns the value, or undefined
 * for anything else, which decode then hands to decodeFull for its verdict. So it accepts no
 * bytes decodeFull refuses (test/core-units.test.ts checks that on mutated encodings) and spares
 * every valid record the re-encoding decodeFull compares with, a quarter of a block's decoding.
 */
export function decodeCanonical(bytes: Uint8Array): Value | undefined {
  src = bytes;
  at = 0;
  const v = readValue(0);
  const whole = at === bytes.length;
  src = EMPTY;
  return whole ? v : undefined;
}

function readValue(depth: number): Value | undefined {
  if (at >= src.length) return undefined;
  const t = src[at++];
  if (t < 0x80) return t;
  if (t >= 0x90 && t <= 0x9f) return readArray(t - 0x90, depth);
  if (t >= 0xa0 && t <= 0xbf) return readAscii(t - 0xa0);
  switch (t) {
    case 0xcc: {
      const n = readLength(1);
      return n >= 0x80 ? n : undefined;
    }
    case 0xcd: {
      const n = readLength(2);
      return n >= 0x100 ? n : undefined;
    }
    case 0xce: {
      const n = readLength(4);
      return n >= 0x10000 ? n : undefined;
    }
    case 0xd3: {
      // an integer above 32 bits: high word then low word, at most 2^53 - 1
      const hi = readLength(4);
      const lo = readLength(4);
      return hi >= 1 && hi <= 0x1fffff ? hi * 0x1_0000_0000 + lo : undefined;
    }
    case 0xc4:
      return readBin(readLength(1), 0);
    case 0xc5:
      return readBin(readLength(2), 0x100);
    case 0xc6:
      return readBin(readLength(4), 0x10000);
    case 0xd9: {
      const n = readLength(1);
      return n >= 32 ? readAscii(n) : undefined;
    }
    case 0xda: {
      const n = readLength(2);
      return n >= 0x100 ? readAscii(n) : undefined;
    }
    case 0xdb: {
      const n = readLength(4);
      return n >= 0x10000 ? readAscii(n) : undefined;
    }
    case 0xdc: {
      const n = readLength(2);
      return n >= 16 ? readArray(n, depth) : undefined;
    }
    case 0xdd: {
      const n = readLength(4);
      return n >= 0x10000 ? readArray(n, depth) : undefined;
    }
    default:
      return undefined;
  }
}

/** A big-endian unsigned integer of `size` bytes (1, 2 or 4); -1 past the end, which every caller's check refuses. */
function readLength(size: number): number {
  if (at + size > src.length) {
    at = src.length + 1; // nothing after this reads, and the whole-input check fails
    return -1;
  }
  let n = 0;
  for (let i = 0; i < size; i++) n = n * 256 + src[at++];
  return n;
}

function readBin(n: number, min: number): Uint8Array | undefined {
  if (n < min || at + n > src.length) return undefined;
  const v = new Uint8Array(src.buffer, src.byteOffset + at, n);
  at += n;
  return v;
}

function readAscii(n: number): string | undefined {
  if (n < 0 || at + n > src.length) return undefined;
  let s = '';
  for (let i = 0; i < n; i++) {
    const c = src[at + i];
    if (c >= 0x80) return undefined;
    s += String.fromCharCode(c);
  }
  at += n;
  return s;
}

function readArray(n: number, depth: number): Value[] | undefined {
  // check() refuses nesting deeper than 8, and an array cannot hold more items than bytes are left
  if (n < 0 || depth >= 8 || n > src.length - at) return undefined;
  // made at its length: grown by push, a record's array of seven took 184 bytes, not 72
  const a: Value[] = new Array<Value>(n);
  for (let i = 0; i < n; i++) {
    const v = readValue(depth + 1);
    if (v === undefined) return undefined;
    a[i] = v;
  }
  return a;
}

// Typed readers for fixed-order arrays: each throws an EncodingError naming the field.
export function asArray(v: Value, len: number | [number, number], what: string): Value[] {
  if (!Array.isArray(v)) throw new EncodingError(`${what}: expected an array`);
  const lo = typeof len === 'number' ? len : len[0];
  const hi = typeof len === 'number' ? len : len[1];
  if (v.length < lo || v.length > hi) throw new EncodingError(`${what}: expected ${lo === hi ? lo : `${lo}..${hi}`} fields, got ${v.length}`);
  return v;
}

export function asUint(v: Value, what: string, max = MAX_UINT): number {
  if (typeof v !== 'number' || v > max) throw new EncodingError(`${what}: expected an integer up to ${max}`);
  return v;
}

export function asBytes(v: Value, what: string, len?: number | [number, number]): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new EncodingError(`${what}: expected bytes`);
  if (len !== undefined) {
    // the bounds read without an array made for them (every field of every record comes here)
    const lo = typeof len === 'number' ? len : len[0];
    const hi = typeof len === 'number' ? len : len[1];
    if (v.length < lo || v.length > hi) throw new EncodingError(`${what}: expected ${lo === hi ? lo : `${lo}..${hi}`} bytes, got ${v.length}`);
  }
  return v;
}

export function asString(v: Value, what: string, maxLen: number): string {
  if (typeof v !== 'string') throw new EncodingError(`${what}: expected a string`);
  if (v.length > maxLen) throw new EncodingError(`${what}: longer than ${maxLen}`);
  return v;
}

export function asStringList(v: Value, what: string, maxItems: number, maxLen: number): string[] {
  if (!Array.isArray(v) || v.length > maxItems) throw new EncodingError(`${what}: expected at most ${maxItems} strings`);
  return v.map((x, i) => asString(x, `${what}[${i}]`, maxLen));
}
