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

export function encode(v: Value): Uint8Array {
  const b = packr.pack(normalize(v));
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
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
  let v: unknown;
  try {
    v = packr.unpack(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  } catch (e) {
    throw new EncodingError(`malformed msgpack: ${(e as Error).message}`);
  }
  const value = check(v, 0);
  if (!bytesEqual(encode(value), bytes)) throw new NonCanonicalError('non-canonical encoding: bytes differ from the re-encoding of their value');
  return value;
}

// Typed readers for fixed-order arrays: each throws an EncodingError naming the field.
export function asArray(v: Value, len: number | [number, number], what: string): Value[] {
  if (!Array.isArray(v)) throw new EncodingError(`${what}: expected an array`);
  const [lo, hi] = typeof len === 'number' ? [len, len] : len;
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
    const [lo, hi] = typeof len === 'number' ? [len, len] : len;
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
