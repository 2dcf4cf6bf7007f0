// The work a signature worker does: decode each record and check its signature, exactly as block
// validation would (checkRecordSignature), and report which ones passed. The main thread then
// marks those ids in the chain's signature cache, so processBlock skips them; anything that failed
// here is simply checked again there, so a worker can never make an invalid record pass.
import { decodeRec, checkRecordSignature } from '../core/records.ts';

/**
 * Records to check, their bytes one after another in one buffer (`ends[i]` is where record i
 * ends), which the pool transfers to the worker. A block's records are views of the message that
 * brought them: posted as views, a task took a copy of that whole message along (a sync response
 * of 64 blocks, tens of kilobytes, for a task of a few).
 */
export interface VerifyTask {
  network: string;
  bytes: Uint8Array;
  ends: Uint32Array;
}

/** The task for these records: their bytes copied into one buffer of their own, which can be transferred. */
export function packRecords(network: string, records: readonly Uint8Array[]): VerifyTask {
  let total = 0;
  for (const r of records) total += r.length;
  const bytes = new Uint8Array(total);
  const ends = new Uint32Array(records.length);
  let at = 0;
  for (let i = 0; i < records.length; i++) {
    bytes.set(records[i], at);
    at += records[i].length;
    ends[i] = at;
  }
  return { network, bytes, ends };
}

/** One byte per record: 1 when its signature verified. */
export function verifyBatch(task: VerifyTask): Uint8Array {
  const ok = new Uint8Array(task.ends.length);
  let start = 0;
  for (let i = 0; i < task.ends.length; i++) {
    const end = task.ends[i];
    try {
      checkRecordSignature(task.network, decodeRec(task.bytes.subarray(start, end)).body);
      ok[i] = 1;
    } catch {
      ok[i] = 0;
    }
    start = end;
  }
  return ok;
}
