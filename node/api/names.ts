// GET /api/names/{name}: who owns a name and which node serves it now (the pending binding with
// the highest sequence wins over the confirmed one, as routing reads it); /history: what the
// chain recorded for it.
import type { FastifyInstance } from 'fastify';
import { toHex } from '../../core/hash.ts';
import { addressOf, encodeAddress } from '../../core/address.ts';
import { isValidName } from '../../core/records.ts';
import { getBinding, getName } from '../../core/state.ts';
import { historyKey } from './history.ts';
import { MAX_PAGE, badRequest, notFound, pageQuery, type Api, type Json } from './context.ts';

export const NAME_ERROR = 'not a SIP address (sip:user@domain), E.164 number (+15551234567) or domain';

export function nameRoutes(app: FastifyInstance, api: Api): void {
  const { chain, pool, params: p } = api;

  app.get<{ Params: { name: string } }>('/api/names/:name', async (req, reply) => {
    const name = req.params.name.toLowerCase();
    if (!isValidName(name)) return badRequest(reply, NAME_ERROR);
    const n = getName(chain.state, name);
    const b = getBinding(chain.state, name);
    const pending = pool.pendingBinding(name);
    if (n === undefined && pending === undefined) return notFound(reply, 'name');
    const now = chain.clock();
    let binding: Json | null = null;
    if (pending !== undefined && (b === undefined || pending.seq > b.seq)) {
      binding = { node: toHex(pending.node), status: pending.status === 1 && pending.expires > now ? 'online' : 'offline', expires: pending.expires, seq: pending.seq, confirmed: false, height: null };
    } else if (b !== undefined) {
      binding = api.bindingJson(b);
    }
    const expired = n === undefined || n.expiry < chain.tip.height + 1;
    return {
      name,
      owner: n === undefined ? null : toHex(n.owner),
      ownerAddress: n === undefined ? null : encodeAddress(p.addressPrefix, addressOf(n.owner)),
      expiry: n?.expiry ?? null,
      expired,
      since: n?.since ?? null,
      seq: n?.seq ?? null,
      delegate: n !== undefined && n.delegate.length > 0 ? toHex(n.delegate) : null,
      online: !expired && binding !== null && binding.status === 'online',
      binding,
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
