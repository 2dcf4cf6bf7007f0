// GET /api/blocks (the main chain, newest first), /api/blocks/{hash or height} and its /raw
// bytes. A block by hash is the same forever, so it carries an ETag covering its place in the
// chain; by height it can change with a reorganisation.
import type { FastifyInstance } from 'fastify';
import { isHex, hashToHex, toHex } from '../../core/hash.ts';
import { recordJson } from '../../core/records.ts';
import { nameOfRef } from '../../core/state.ts';
import type { Block } from '../../core/block.ts';
import type { Chain, IndexEntry } from '../../consensus/chain.ts';
import { IMMUTABLE, MAX_PAGE, badRequest, notFound, type Api, type Json } from './context.ts';

export function blockJson(chain: Chain, e: IndexEntry, block: Block): Json {
  return {
    hash: e.hex,
    height: e.height,
    header: toHex(e.headerBytes),
    version: e.header.version,
    time: e.header.time,
    bits: e.header.bits,
    nonce: e.header.nonce,
    prev: hashToHex(e.header.prev),
    merkleRoot: toHex(e.header.merkleRoot),
    work: e.work.toString(),
    size: block.size,
    mainChain: chain.isMain(e),
    confirmations: chain.isMain(e) ? chain.tip.height - e.height + 1 : 0,
    next: chain.isMain(e) ? (chain.main[e.height + 1]?.hex ?? null) : null,
    recordCount: block.records.length,
    records: block.records.map((r) => ({ id: toHex(r.id), ...recordJson(r.body, (ref) => nameOfRef(chain.state, ref)) })),
  };
}

const BY_HEIGHT = /^[0-9]+$/;

export function blockRoutes(app: FastifyInstance, api: Api): void {
  const { chain } = api;

  app.get<{ Querystring: { limit?: number; before?: number } }>(
    '/api/blocks',
    {
      schema: {
        querystring: {
          type: 'object',
          properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE }, before: { type: 'integer', minimum: 0 } },
        },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 20;
      const top = Math.min(req.query.before !== undefined ? req.query.before - 1 : chain.tip.height, chain.tip.height);
      const entries: IndexEntry[] = [];
      for (let h = top; h >= 0 && entries.length < limit; h--) entries.push(chain.main[h]);
      const blocks = await Promise.all(entries.map((e) => api.summaryOf(e)));
      return { blocks, next: top - blocks.length >= 0 ? top - blocks.length + 1 : null, height: chain.tip.height };
    },
  );

  /** A block by height (main chain) or by hash (any stored block); a string when the id is bad. */
  const findBlock = (raw: string): IndexEntry | undefined | string => {
    const id = raw.toLowerCase();
    if (/^[0-9]{1,10}$/.test(id)) return chain.main[Number(id)];
    if (isHex(id, 32)) return chain.index.get(id);
    return 'block id must be a height or a 64-hex-digit hash';
  };

  app.get<{ Params: { id: string } }>('/api/blocks/:id', async (req, reply) => {
    const e = findBlock(req.params.id);
    if (typeof e === 'string') return badRequest(reply, e);
    if (e === undefined || e.status === 'invalid') return notFound(reply, 'block');
    if (!BY_HEIGHT.test(req.params.id)) {
      // The body of a block never changes, but its place does (confirmations, main chain or
      // not), so the tag covers both and a client revalidates to a cheap 304.
      const etag = `"${e.hex}.${chain.isMain(e) ? chain.tip.height : 'side'}"`;
      void reply.header('etag', etag).header('cache-control', 'no-cache');
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    } else {
      void reply.header('cache-control', 'no-cache');
    }
    const block = await chain.getBlock(e.hex);
    if (block === undefined) return notFound(reply, 'block body');
    return blockJson(chain, e, block);
  });

  app.get<{ Params: { id: string } }>('/api/blocks/:id/raw', async (req, reply) => {
    const e = findBlock(req.params.id);
    if (typeof e === 'string') return badRequest(reply, e);
    if (e === undefined || e.status === 'invalid') return notFound(reply, 'block');
    const bytes = await chain.getBlockBytes(e.hex);
    if (bytes === undefined) return notFound(reply, 'block body');
    // Bytes named by their hash are the same forever; by height they change with the chain.
    void reply.header('cache-control', BY_HEIGHT.test(req.params.id) ? 'no-cache' : IMMUTABLE).header('content-type', 'application/octet-stream');
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });
}
