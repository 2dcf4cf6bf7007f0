// The work a signature worker does: decode each record and check its signature, exactly as block
// validation would (checkRecordSignature), and report which ones passed. The main thread then
// marks those ids in the chain's signature cache, so processBlock skips them; anything that failed
// here is simply checked again there, so a worker can never make an invalid record pass.
import { decodeRec, checkRecordSignature } from '../core/records.ts';

export interface VerifyTask {
  network: string;
  records: Uint8Array[];
}

/** One byte per record: 1 when its signature verified. */
export function verifyBatch(task: VerifyTask): Uint8Array {
  const ok = new Uint8Array(task.records.length);
  task.records.forEach((bytes, i) => {
    try {
      checkRecordSignature(task.network, decodeRec(bytes).body);
      ok[i] = 1;
    } catch {
      ok[i] = 0;
    }
  });
  return ok;
}
