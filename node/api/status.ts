// GET /api/status, /api/stats (block times, difficulty and hashrate over recent blocks),
// /api/pending and /api/peers: the node and its chain at a glance.
import type { FastifyInstance } from 'fastify';
import { toHex } from '../../core/hash.ts';
import { recordJson } from '../../core/records.ts';
import { MAX_LIST, pageQuery, paged, type Api, type Json } from './context.ts';

/** Blocks over which each point of /api/stats estimates the hashrate. */
const STATS_HASHRATE_WINDOW = 10;

export function statusRoutes(app: FastifyInstance, api: Api): void {
  const { chain, pool, params: p } = api;

  app.get('/api/status', async () => api.status());

  app.get<{ Querystring: { blocks: number } }>(
    '/api/stats',
    { schema: { querystring: { type: 'object', properties: { blocks: { type: 'integer', minimum: 2, maximum: MAX_LIST, default: 100 } } } } },
    async (req) => {
      const top = chain.tip.height;
      const from = Math.max(0, top - req.query.blocks + 1);
      const series: Json[] = [];
      for (let h = from; h <= top; h++) {
        const e = chain.main[h];
        const prev = e.prev;
        series.push({
          height: h,
          time: e.header.time,
          interval: prev === null || prev.height === 0 ? null : e.header.time - prev.header.time,
          bits: e.header.bits,
          difficulty: api.difficultyOf(e.header.bits),
          hashrate: Math.round(api.hashrateAt(e, STATS_HASHRATE_WINDOW)),
        });
      }
      const first = chain.main[Math.max(1, from)];
      const span = chain.tip.header.time - first.header.time;
      return {
        network: p.name,
        idealBlockTime: p.idealBlockTime,
        height: top,
        averageBlockTime: top > first.height ? span / (top - first.height) : null,
        networkHashrate: Math.round(api.hashrateAt(chain.tip)),
        blocks: series,
      };
    },
  );

  app.get<{ Querystring: { limit: number; offset: number } }>('/api/pending', { schema: { querystring: pageQuery(100, MAX_LIST) } }, async (req) => {
    const pg = paged(pool.list(), req.query.offset, req.query.limit);
    return {
      records: pg.items.map((e) => ({ id: toHex(e.rec.id), added: e.added, size: e.rec.bytes.length, ...recordJson(e.rec.body, api.nameOfRef) })),
      total: pg.total,
      offset: pg.offset,
      limit: pg.limit,
      next: pg.next,
    };
  });

  app.get('/api/peers', async () => ({ peers: api.ctx.peers() }));
}
