// POST /api/dev/mine {"count": N}: mine blocks now, for tests and demos. Only development
// networks have it: on a real network nobody may make a node spend its work. Even there the
// request is a stranger's to send, so one runs at a time (others get 429) and devnet, whose
// blocks take real hashing (about two seconds each), mines at most 10 per request; regtest's
// blocks cost nothing and tests ask for hundreds.
import type { FastifyInstance } from 'fastify';
import type { Api } from './context.ts';

const MAX_BLOCKS: Record<string, number> = { regtest: 1000, devnet: 10 };

export function devRoutes(app: FastifyInstance, api: Api): void {
  const { chain, params: p } = api;
  const mine = api.ctx.mine;
  const max = MAX_BLOCKS[p.name];
  if (mine === undefined || max === undefined) return;
  let busy = false;
  app.post<{ Body: { count?: number } | undefined }>(
    '/api/dev/mine',
    { schema: { body: { type: 'object', properties: { count: { type: 'integer', minimum: 1, maximum: max } } } } },
    async (req, reply) => {
      if (busy) {
        void reply.code(429).header('retry-after', '1');
        return { error: 'this node is already mining for another request; try again when it is done' };
      }
      busy = true;
      try {
        await mine(req.body?.count ?? 1);
      } finally {
        busy = false;
      }
      return { height: chain.tip.height, tip: chain.tip.hex };
    },
  );
}
