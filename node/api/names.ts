// GET /api/names/{name}: who owns a name, which nodes serve it, and each serving node's binding
// in the order routing tries them (online first, freshest first; a pending binding with a higher
// sequence wins over its node's confirmed one); /history: what the chain recorded for it.
import type { FastifyInstance } from 'fastify';
import { toHex } from '../../core/hash.ts';
import { addressOf, encodeAddress } from '../../core/address.ts';
import { isValidName } from '../../core/records.ts';
import { getName } from '../../core/state.ts';
import { candidates, routingSource } from '../../telecom/routing.ts';
import { historyKey } from './history.ts';
import { MAX_PAGE, badRequest, notFound, pageQuery, type Api, type Json } from './context.ts';

export const NAME_ERROR = 'not a SIP address (sip:user@domain), E.164 number (+15551234567) or domain';

export function nameRoutes(app: FastifyInstance, api: Api): void {
  const { chain, pool, params: p } = api;

  app.get<{ Params: { name: string } }>('/api/names/:name', async (req, reply) => {
    const name = req.params.name.toLowerCase();
    if (!isValidName(name)) return badRequest(reply, NAME_ERROR);
    const n = getName(chain.state, name);
    if (n === undefined) return notFound(reply, 'name');
    const bindings = candidates(routingSource(chain, pool), name, n, chain.clock()).map((c) => api.bindingJson(c, c.height));
    const expired = n.expiry < chain.tip.height + 1;
    return {
      name,
      owner: toHex(n.owner),
      ownerAddress: encodeAddress(p.addressPrefix, addressOf(n.owner)),
      expiry: n.expiry,
      expired,
      since: n.since,
      seq: n.seq,
      // the name's number: how presence records name it
      ref: n.ref,
      delegates: n.delegates.map(toHex),
      online: !expired && bindings.length > 0 && bindings[0].status === 'online',
      // where routing goes first, then all serving nodes' bindings in routing's order
      binding: bindings[0] ?? null,
      bindings,
    };
  });

  app.get<{ Params: { name: string }; Querystring: { limit: number; offset: number } }>(
    '/api/names/:name/history',
    { schema: { querystring: pageQuery(20, MAX_PAGE) } },
    async (req, reply) => {
      const name = req.params.name.toLowerCase();
      if (!isValidName(name)) return badRequest(reply, NAME_ERROR);
      const page = await api.historyPage(historyKey.name(name), req.query.offset, req.query.limit);
      if (page.total === 0 && page.pending.length === 0 && getName(chain.state, name) === undefined) return notFound(reply, 'name');
      return { name, ...page };
    },
  );
}
