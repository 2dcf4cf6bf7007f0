// GET /api/accounts/{address} (balance and nonce) and /history (what came and went).
import type { FastifyInstance } from 'fastify';
import { toHex } from '../../core/hash.ts';
import { encodeAddress } from '../../core/address.ts';
import { getAccount } from '../../core/state.ts';
import { historyKey } from './history.ts';
import { MAX_PAGE, badRequest, pageQuery, type Api } from './context.ts';

export function accountRoutes(app: FastifyInstance, api: Api): void {
  const { chain, params: p } = api;

  app.get<{ Params: { address: string } }>('/api/accounts/:address', async (req, reply) => {
    const addr = api.parseAddress(req.params.address);
    if (typeof addr === 'string') return badRequest(reply, addr);
    const a = getAccount(chain.state, addr);
    return { address: encodeAddress(p.addressPrefix, addr), balance: a.balance, nonce: a.nonce };
  });

  app.get<{ Params: { address: string }; Querystring: { limit: number; offset: number } }>(
    '/api/accounts/:address/history',
    { schema: { querystring: pageQuery(20, MAX_PAGE) } },
    async (req, reply) => {
      const addr = api.parseAddress(req.params.address);
      if (typeof addr === 'string') return badRequest(reply, addr);
      return { address: encodeAddress(p.addressPrefix, addr), ...(await api.historyPage(historyKey.address(toHex(addr)), req.query.offset, req.query.limit)) };
    },
  );
}
