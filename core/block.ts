// Blocks: Bitcoin's 80-byte header over a body of canonical records.
// Block encoding on disk and on the wire: msgpack [header (80 bytes), [record bytes, ...]].
import { encode, decode, asArray, asBytes } from './encoding.ts';
import { EncodingError, ValidationError } from './errors.ts';
import { sha256d } from './hash.ts';
import { asValidationError, decodeRec, type Rec } from './records.ts';

export const HEADER_BYTES = 80;

export interface Header {
  version: number;
  prev: Uint8Array;
  merkleRoot: Uint8Array;
  time: number;
  bits: number;
  nonce: number;
}

export interface Block {
  header: Header;
  headerBytes: Uint8Array;
  /** raw double SHA-256 of the header (internal byte order) */
  hash: Uint8Array;
  records: Rec[];
  /** size of the block's encoding in bytes */
  size: number;
}

export function encodeHeader(h: Header): Uint8Array {
  const b = new Uint8Array(HEADER_BYTES);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, h.version >>> 0, true);
  b.set(h.prev, 4);
  b.set(h.merkleRoot, 36);
  dv.setUint32(68, h.time >>> 0, true);
  dv.setUint32(72, h.bits >>> 0, true);
  dv.setUint32(76, h.nonce >>> 0, true);
  return b;
}

export function decodeHeader(b: Uint8Array): Header {
  if (b.length !== HEADER_BYTES) throw new EncodingError(`header must be ${HEADER_BYTES} bytes, got ${b.length}`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return {
    version: dv.getUint32(0, true),
    prev: b.slice(4, 36),
    merkleRoot: b.slice(36, 68),
    time: dv.getUint32(68, true),
    bits: dv.getUint32(72, true),
    nonce: dv.getUint32(76, true),
  };
}

export function headerHash(headerBytes: Uint8Array): Uint8Array {
  return sha256d(headerBytes);
}

export function makeBlock(header: Header, records: Rec[]): Block {
  const headerBytes = encodeHeader(header);
  const size = encode([headerBytes, records.map((r) => r.bytes)]).length;
  return { header, headerBytes, hash: headerHash(headerBytes), records, size };
}

/**
 * The bytes each decoded block came from, with the parts they were read as: a node stores every
 * block it connects, and encoding it again cost as much as a tenth of connecting it. Kept beside
 * the block, not in it, so a block is still only its fields; used only while the block holds the
 * very header and record bytes it was read as (a test that swaps a record gets a new encoding).
 */
const decodedFrom = new WeakMap<Block, { bytes: Uint8Array; headerBytes: Uint8Array; records: Uint8Array[] }>();

export function encodeBlock(b: Block): Uint8Array {
  const d = decodedFrom.get(b);
  if (d !== undefined && d.headerBytes === b.headerBytes && d.records.length === b.records.length && d.records.every((r, i) => r === b.records[i].bytes)) return d.bytes;
  return encode([b.headerBytes, b.records.map((r) => r.bytes)]);
}

/** Decodes a block; any fault is a ValidationError (bad-encoding), never a crash. */
export function decodeBlock(bytes: Uint8Array, maxBytes: number): Block {
  if (bytes.length > maxBytes) throw new ValidationError('oversize', `block of ${bytes.length} bytes exceeds ${maxBytes}`);
  try {
    const a = asArray(decode(bytes), 2, 'block');
    const headerBytes = asBytes(a[0], 'header', HEADER_BYTES);
    if (!Array.isArray(a[1])) throw new EncodingError('block: records must be an array');
    const ids = new Uint8Array(a[1].length * 32);
    const records = a[1].map((r, i) => decodeRec(asBytes(r, `record ${i}`), ids, i * 32));
    const block: Block = { header: decodeHeader(headerBytes), headerBytes, hash: headerHash(headerBytes), records, size: bytes.length };
    decodedFrom.set(block, { bytes, headerBytes, records: records.map((r) => r.bytes) });
    return block;
  } catch (e) {
    throw asValidationError(e);
  }
}
