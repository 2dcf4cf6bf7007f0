// GET /api/records/{id}: a record where the main chain confirmed it, with its Merkle inclusion
// proof (the explorer checks it in the browser), or as pending. POST /api/records: a signed
// record from anyone, checked by the pending pool exactly as one from a peer would be, and
// answered once it is kept on disk.
import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../core/errors.ts';
import { fromHex, isHex, toHex } from '../../core/hash.ts';
import { inclusionProof } from '../../core/merkle.ts';
import { KIND_NAMES, decodeRec, recordJson, type Rec } from '../../core/records.ts';
import type { Chain, IndexEntry } from '../../consensus/chain.ts';
import { badRequest, notFound, type Api } from './context.ts';

export interface ConfirmedRecord {
  rec: Rec;
  entry: IndexEntry;
  index: number;
  /** the inclusion proof's path, leaf to root */
  proof: Uint8Array[];
  root: Uint8Array;
  /** records in the block (the tree's size) */
  count: number;
}

/** Where a record is confirmed on the main chain, with its Merkle inclusion proof. */
export async function findRecord(chain: Chain, idHex: string): Promise<ConfirmedRecord | undefined> {
  const loc = await chain.locateRecord(idHex);
  if (loc === undefined) return undefined;
  const block = await chain.getBlock(loc.entry.hex);
  // the location names a height: in the moment a reorganisation is written but not yet followed,
  // that height may still hold the old block, which does not have this record there
  if (block === undefined || block.records[loc.index] === undefined || toHex(block.records[loc.index].id) !== idHex) return undefined;
  const ids = block.records.map((r) => r.id);
  return { rec: block.records[loc.index], entry: loc.entry, index: loc.index, proof: inclusionProof(ids, loc.index), root: block.header.merkleRoot, count: ids.length };
}

export function recordRoutes(app: FastifyInstance, api: Api): void {
  const { chain, pool } = api;

  app.get<{ Params: { id: string } }>('/api/records/:id', async (req, reply) => {
    const id = req.params.id.toLowerCase();
    if (!isHex(id, 32)) return badRequest(reply, 'record id must be 64 hex digits');
    const found = await findRecord(chain, id);
    if (found !== undefined) {
      return {
        id,
        confirmed: true,
        kind: KIND_NAMES[found.rec.body.kind],
        block: found.entry.hex,
        height: found.entry.height,
        time: found.entry.header.time,
        confirmations: chain.tip.height - found.entry.height + 1,
        header: toHex(found.entry.headerBytes),
        index: found.index,
        record: recordJson(found.rec.body, api.nameOfRef),
        bytes: toHex(found.rec.bytes),
        proof: { leafIndex: found.index, treeSize: found.count, path: found.proof.map(toHex), merkleRoot: toHex(found.root) },
      };
    }
    const pending = pool.get(id);
    if (pending !== undefined) {
      return { id, confirmed: false, kind: KIND_NAMES[pending.rec.body.kind], added: pending.added, record: recordJson(pending.rec.body, api.nameOfRef), bytes: toHex(pending.rec.bytes) };
    }
    return notFound(reply, 'record');
  });

  app.post<{ Body: { record?: unknown } }>('/api/records', async (req, reply) => {
    const hex = req.body?.record;
    if (typeof hex !== 'string' || hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-f]+$/.test(hex)) {
      return badRequest(reply, 'body must be {"record": "<hex bytes of a signed record>"}');
    }
    try {
      const rec = decodeRec(fromHex(hex));
      pool.add(rec);
      // "pending" is a promise to the submitter: it holds across a crash once it is on disk
      await api.ctx.durable?.();
      void reply.code(202);
      return { id: toHex(rec.id), pending: true };
    } catch (e) {
      if (e instanceof ValidationError) return badRequest(reply, e.message, e.code);
      throw e;
    }
  });
}
