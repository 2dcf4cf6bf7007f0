// POST /api/dev/mine {"count": N}: mine blocks now, for tests and demos. Only development
// networks (regtest, devnet) have it: on a real network nobody may make a node spend its work.
import type { FastifyInstance } from 'fastify';
import type { Api } from './context.ts';

const DEV_NETWORKS = new Set(['regtest', 'devnet']);

export function devRoutes(app: FastifyInstance, api: Api): void {
  const { chain, params: p } = api;
  const mine = api.ctx.mine;
  if (mine === undefined || !DEV_NETWORKS.has(p.name)) return;
  app.post<{ Body: { count?: number } | undefined }>(
    '/api/dev/mine',
    { schema: { body: { type: 'object', properties: { count: { type: 'integer', minimum: 1, maximum: 1000 } } } } },
    async (req) => {
      await mine(req.body?.count ?? 1);
      return { height: chain.tip.height, tip: chain.tip.hex };
    },
  );
}
