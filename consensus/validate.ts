// Block validation in three stages, each failure a ValidationError with its own code:
//  1. sanity: everything checkable from the block alone (size, records, Merkle root, PoW, signatures);
//  2. header context: what the parent chain fixes (difficulty bits, median-time-past, future limit);
//  3. state: every record applied to the state at the parent (core/state.ts).
import { ValidationError } from '../core/errors.ts';
import { toHex, bytesEqual } from '../core/hash.ts';
import { IdSet } from '../core/idset.ts';
import { merkleRoot } from '../core/merkle.ts';
import { Kind, checkRecordSignature } from '../core/records.ts';
import type { SigCache } from '../core/sig.ts';
import type { Block, Header } from '../core/block.ts';
import { compactToTarget, hashMeetsTarget, PowError } from './pow.ts';
import { asertNextBits } from './asert.ts';
import type { NetworkParams } from './params.ts';

export function checkProofOfWork(header: Header, hash: Uint8Array, p: NetworkParams): void {
  let target: bigint;
  try {
    target = compactToTarget(header.bits);
  } catch (e) {
    throw new ValidationError('bad-bits', (e as PowError).message);
  }
  if (target <= 0n || target > compactToTarget(p.powLimitBits)) throw new ValidationError('bad-bits', 'target outside (0, pow limit]');
  if (!hashMeetsTarget(hash, target)) throw new ValidationError('bad-pow', 'block hash does not meet its target');
}

export function checkBlockSanity(block: Block, p: NetworkParams, sigs?: SigCache): void {
  if (block.size > p.maxBlockBytes) throw new ValidationError('oversize', `block of ${block.size} bytes exceeds ${p.maxBlockBytes}`);
  const recs = block.records;
  if (recs.length === 0 || recs[0].body.kind !== Kind.Coinbase) throw new ValidationError('bad-coinbase', 'the first record of a block must be its coinbase');
  if (recs.length > p.maxBlockRecords) throw new ValidationError('too-many-records', `${recs.length} records exceed ${p.maxBlockRecords}`);
  checkProofOfWork(block.header, block.hash, p);
  const seen = new IdSet(recs.length);
  for (let i = 0; i < recs.length; i++) {
    const id = recs[i].id;
    if (seen.has(id)) throw new ValidationError('duplicate-record', `record ${toHex(id)} appears twice`);
    seen.add(id);
    if (i > 0 && recs[i].body.kind === Kind.Coinbase) throw new ValidationError('bad-coinbase-position', `record ${i} is a second coinbase`);
  }
  if (!bytesEqual(merkleRoot(recs.map((r) => r.id)), block.header.merkleRoot)) throw new ValidationError('bad-merkle-root', 'Merkle root does not commit to the records');
  for (let i = 1; i < recs.length; i++) {
    const r = recs[i];
    if (sigs?.has(r.id)) continue;
    checkRecordSignature(p.name, r.body);
    sigs?.add(r.id);
  }
}

/** What the header checks need to know of the parent chain. */
export interface ParentInfo {
  height: number;
  time: number;
  bits: number;
  /** median of the timestamps of the parent and up to 10 of its ancestors */
  medianTimePast: number;
}

export interface Anchor {
  height: number;
  parentTime: number;
  bits: number;
}

export function nextBits(p: NetworkParams, anchor: Anchor, parent: { height: number; time: number }): number {
  if (p.noRetarget) return p.powLimitBits;
  return asertNextBits(p, anchor, parent.height, parent.time);
}

export function checkHeaderContext(header: Header, parent: ParentInfo, anchor: Anchor, p: NetworkParams, now: number): void {
  const want = nextBits(p, anchor, parent);
  if (header.bits !== want) throw new ValidationError('bad-bits', `bits 0x${header.bits.toString(16)} but the difficulty rule asks 0x${want.toString(16)}`);
  if (header.time <= parent.medianTimePast) throw new ValidationError('time-too-old', `time ${header.time} is not above median-time-past ${parent.medianTimePast}`);
  if (header.time > now + p.maxFutureSeconds) throw new ValidationError('time-too-new', `time ${header.time} is more than ${p.maxFutureSeconds}s ahead of ${now}`);
}

export function medianOf(times: number[]): number {
  const s = [...times].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}
