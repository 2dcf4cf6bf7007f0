// Wire format of the request-response protocol (/dots/sync/1.0.0). One request and one response
// per stream, each a single length-prefixed frame holding a canonical msgpack array whose first
// element is the message type. Every decoder bounds counts and sizes before it allocates, and any
// fault is a ProtocolError, which costs the sending peer score.
import { encode, decode, asArray, asBytes, asString, asUint, type Value } from '../core/encoding.ts';
import { DotsError, EncodingError } from '../core/errors.ts';
import { HEADER_BYTES } from '../core/block.ts';
import { MAX_RECORD_BYTES } from '../core/records.ts';

export const SYNC_PROTOCOL = '/dots/sync/1.0.0';

/** Locator hashes per headers request (enough for ~2^50 blocks with exponential steps). */
export const MAX_LOCATOR = 64;
/** Headers per response: 160 kB, small enough to validate in a few ms. */
export const MAX_HEADERS = 2000;
/**
 * Block hashes per blocks request. A response is bounded by its bytes (below), so this bounds
 * only how many small blocks share one request: every request costs both nodes a stream, its
 * protocol negotiation and libp2p's peer-store update, and with 64 (the limit before 2026-12-06) a
 * sync of mostly empty blocks spent the serving node's time on them. `bench sync`'s chain in
 * three alternating triples: 1,914-1,952 blocks/s at 128 against 1,744-1,788 at 64 (the serving
 * node 580-600 ms of CPU against 790-840), and 1,860-1,941 at 256. A node from before refuses a
 * request for more than 64 as malformed.
 */
export const MAX_BLOCKS_PER_REQUEST = 128;
/** A blocks response stops adding blocks once it holds this many bytes (it always holds one). */
export const BLOCKS_RESPONSE_SOFT_BYTES = 2 * 1024 * 1024;
/** Records per push (records returned to the pool by a reorganisation). */
export const MAX_PUSH_RECORDS = 256;
export const MAX_AGENT = 64;
export const MAX_REQUEST_BYTES = MAX_PUSH_RECORDS * (MAX_RECORD_BYTES + 8) + 1024;

/** Largest response frame for a network whose blocks are at most `maxBlockBytes`. */
export function maxResponseBytes(maxBlockBytes: number): number {
  return BLOCKS_RESPONSE_SOFT_BYTES + maxBlockBytes + MAX_BLOCKS_PER_REQUEST * 8 + 1024;
}

/** A peer broke the protocol: malformed, oversized or unexpected data. */
export class ProtocolError extends DotsError {
  override name = 'ProtocolError';
  constructor(
    readonly code: 'malformed' | 'oversize' | 'unexpected' | 'timeout' | 'refused',
    message: string,
  ) {
    super(`${code}: ${message}`);
  }
}

export interface Status {
  network: string;
  /** genesis block hash, internal byte order */
  genesis: Uint8Array;
  height: number;
  /** best block hash, internal byte order */
  tip: Uint8Array;
  work: bigint;
  agent: string;
}

export type Request =
  | { type: 'status'; status: Status }
  | { type: 'headers'; locator: Uint8Array[]; max: number }
  | { type: 'blocks'; hashes: Uint8Array[] }
  | { type: 'records'; records: Uint8Array[] };

export type Response =
  | { type: 'status'; status: Status }
  | { type: 'headers'; headers: Uint8Array[] }
  /** one entry per requested hash, empty bytes where the block is unknown */
  | { type: 'blocks'; blocks: Uint8Array[] }
  | { type: 'records'; accepted: number }
  | { type: 'error'; code: string; message: string };

const T = { error: 0, status: 1, headers: 2, blocks: 3, records: 4 } as const;

export function workToBytes(w: bigint): Uint8Array {
  if (w < 0n) throw new RangeError('work must not be negative');
  let hex = w.toString(16);
  if (hex.length % 2 === 1) hex = '0' + hex;
  return w === 0n ? new Uint8Array(0) : new Uint8Array(Buffer.from(hex, 'hex'));
}

export function workFromBytes(b: Uint8Array): bigint {
  return b.length === 0 ? 0n : BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'));
}

function statusFields(s: Status): Value[] {
  return [s.network, s.genesis, s.height, s.tip, workToBytes(s.work), s.agent];
}

function statusOf(a: Value[], at: number): Status {
  return {
    network: asString(a[at], 'network', 16),
    genesis: asBytes(a[at + 1], 'genesis', 32),
    height: asUint(a[at + 2], 'height', 0xffffffff),
    tip: asBytes(a[at + 3], 'tip', 32),
    work: workFromBytes(asBytes(a[at + 4], 'work', [0, 33])),
    agent: asString(a[at + 5], 'agent', MAX_AGENT),
  };
}

function list(v: Value, what: string, max: number): Value[] {
  if (!Array.isArray(v)) throw new EncodingError(`${what}: expected an array`);
  if (v.length > max) throw new EncodingError(`${what}: more than ${max} items`);
  return v;
}

export function encodeRequest(r: Request): Uint8Array {
  switch (r.type) {
    case 'status':
      return encode([T.status, ...statusFields(r.status)]);
    case 'headers':
      return encode([T.headers, r.locator, r.max]);
    case 'blocks':
      return encode([T.blocks, r.hashes]);
    case 'records':
      return encode([T.records, r.records]);
  }
}

function guard<X>(what: string, fn: () => X): X {
  try {
    return fn();
  } catch (e) {
    if (e instanceof EncodingError) throw new ProtocolError('malformed', `${what}: ${e.message}`);
    throw e;
  }
}

export function decodeRequest(bytes: Uint8Array): Request {
  if (bytes.length > MAX_REQUEST_BYTES) throw new ProtocolError('oversize', `request of ${bytes.length} bytes`);
  return guard('request', () => {
    const v = decode(bytes);
    if (!Array.isArray(v) || v.length === 0) throw new EncodingError('expected a non-empty array');
    const type = asUint(v[0], 'type', 255);
    switch (type) {
      case T.status:
        return { type: 'status', status: statusOf(asArray(v, 7, 'status'), 1) };
      case T.headers: {
        const a = asArray(v, 3, 'headers request');
        const locator = list(a[1], 'locator', MAX_LOCATOR).map((h, i) => asBytes(h, `locator[${i}]`, 32));
        const max = asUint(a[2], 'max', MAX_HEADERS);
        return { type: 'headers', locator, max };
      }
      case T.blocks: {
        const a = asArray(v, 2, 'blocks request');
        return { type: 'blocks', hashes: list(a[1], 'hashes', MAX_BLOCKS_PER_REQUEST).map((h, i) => asBytes(h, `hashes[${i}]`, 32)) };
      }
      case T.records: {
        const a = asArray(v, 2, 'records push');
        return { type: 'records', records: list(a[1], 'records', MAX_PUSH_RECORDS).map((r, i) => asBytes(r, `records[${i}]`, [1, MAX_RECORD_BYTES])) };
      }
      default:
        throw new EncodingError(`unknown request type ${type}`);
    }
  });
}

export function encodeResponse(r: Response): Uint8Array {
  switch (r.type) {
    case 'status':
      return encode([T.status, ...statusFields(r.status)]);
    case 'headers':
      return encode([T.headers, r.headers]);
    case 'blocks':
      return encode([T.blocks, r.blocks]);
    case 'records':
      return encode([T.records, r.accepted]);
    case 'error':
      return encode([T.error, r.code, r.message]);
  }
}

/** Decodes a response and checks it answers `req` (type, counts), so callers get a usable shape. */
export function decodeResponse(bytes: Uint8Array, req: Request, maxBlockBytes: number): Response {
  if (bytes.length > maxResponseBytes(maxBlockBytes)) throw new ProtocolError('oversize', `response of ${bytes.length} bytes`);
  const r = guard('response', (): Response => {
    const v = decode(bytes);
    if (!Array.isArray(v) || v.length === 0) throw new EncodingError('expected a non-empty array');
    const type = asUint(v[0], 'type', 255);
    switch (type) {
      case T.error: {
        const a = asArray(v, 3, 'error');
        return { type: 'error', code: asString(a[1], 'code', 64), message: asString(a[2], 'message', 256) };
      }
      case T.status:
        return { type: 'status', status: statusOf(asArray(v, 7, 'status'), 1) };
      case T.headers: {
        const a = asArray(v, 2, 'headers');
        const max = req.type === 'headers' ? req.max : 0;
        return { type: 'headers', headers: list(a[1], 'headers', max).map((h, i) => asBytes(h, `headers[${i}]`, HEADER_BYTES)) };
      }
      case T.blocks: {
        const a = asArray(v, 2, 'blocks');
        const n = req.type === 'blocks' ? req.hashes.length : 0;
        const blocks = list(a[1], 'blocks', n).map((b, i) => asBytes(b, `blocks[${i}]`, [0, maxBlockBytes]));
        return { type: 'blocks', blocks };
      }
      case T.records:
        return { type: 'records', accepted: asUint(asArray(v, 2, 'records')[1], 'accepted', MAX_PUSH_RECORDS) };
      default:
        throw new EncodingError(`unknown response type ${type}`);
    }
  });
  if (r.type !== 'error' && r.type !== req.type) throw new ProtocolError('unexpected', `a ${req.type} request was answered with ${r.type}`);
  return r;
}
