// GET /api/search?q=...: what a string people type can name, most specific first: a block height
// or hash, a record id, a node id or address, a bech32m address, a name (a bare user@host is a
// SIP address; a phone number may carry spaces, dashes or brackets).
import type { FastifyInstance } from 'fastify';
import { fromHex, isHex } from '../../core/hash.ts';
import { encodeAddress } from '../../core/address.ts';
import { isValidName } from '../../core/records.ts';
import { getAccount, getName, getNode } from '../../core/state.ts';
import { historyKey } from './history.ts';
import { badRequest, type Api, type Json } from './context.ts';

export function searchRoutes(app: FastifyInstance, api: Api): void {
  const { chain, pool, history, params: p } = api;

  /** What a search string can name, most specific first; a string when it can name nothing. */
  const search = async (q: string): Promise<Json[] | string> => {
    const lower = q.toLowerCase();
    const out: Json[] = [];
    let understood = false;
    if (/^[0-9]{1,10}$/.test(q)) {
      understood = true;
      const e = chain.main[Number(q)];
      if (e !== undefined) out.push({ type: 'block', id: e.hex, height: e.height });
    }
    if (isHex(lower, 32)) {
      understood = true;
      const e = chain.index.get(lower);
      if (e !== undefined && e.status !== 'invalid') out.push({ type: 'block', id: e.hex, height: e.height });
      if (pool.has(lower)) out.push({ type: 'record', id: lower, confirmed: false });
      else {
        const r = await chain.locateRecord(lower);
        if (r !== undefined) out.push({ type: 'record', id: lower, confirmed: true, height: r.entry.height });
      }
    }
    if (isHex(lower, 20)) {
      understood = true;
      const id = fromHex(lower);
      const a = getAccount(chain.state, id);
      // A node id is the address of the node's key; the node page links that address, so a
      // node comes up alone rather than as two results.
      if (getNode(chain.state, id) !== undefined) out.push({ type: 'node', id: lower });
      else if (a.balance > 0 || a.nonce > 0 || history.all(historyKey.address(lower)).length > 0) out.push({ type: 'address', id: encodeAddress(p.addressPrefix, id) });
    }
    if (/^[a-z]+1[02-9ac-hj-np-z]{6,}$/.test(lower)) {
      const addr = api.parseAddress(lower);
      if (typeof addr !== 'string') {
        understood = true;
        out.push({ type: 'address', id: encodeAddress(p.addressPrefix, addr) });
      } else if (/another network/.test(addr)) return addr;
    }
    // Names as people type them: a bare user@host is a SIP address, a phone number may carry
    // spaces, dashes or brackets, and a number without "+" may still be an E.164 name.
    const names = new Set<string>();
    if (/^sips?:/.test(lower)) names.add(lower);
    else if (/^[^@\s:]+@[^@\s]+$/.test(lower)) names.add(`sip:${lower}`);
    else if (/^\+?[0-9][0-9 ().-]*$/.test(lower)) names.add(`+${lower.replace(/[^0-9]/g, '')}`);
    else if (!isHex(lower, 32) && !isHex(lower, 20)) names.add(lower);
    for (const name of names) {
      if (!isValidName(name)) continue;
      understood = true;
      if (getName(chain.state, name) !== undefined || pool.pendingBindings(name).length > 0) out.push({ type: 'name', id: name });
    }
    if (!understood && out.length === 0) return 'not a block height or hash, record id, name (sip:user@domain, +15551234567), node id or address';
    return out;
  };

  app.get<{ Querystring: { q: string } }>(
    '/api/search',
    { schema: { querystring: { type: 'object', required: ['q'], properties: { q: { type: 'string', minLength: 1, maxLength: 256 } } } } },
    async (req, reply) => {
      const q = req.query.q.trim();
      if (q.length === 0) return badRequest(reply, 'search for a block height or hash, record id, name, node id or address');
      const r = await search(q);
      if (typeof r === 'string') return badRequest(reply, r);
      if (r.length === 0) {
        void reply.code(404);
        return { query: q, results: [], error: `nothing found for "${q}"` };
      }
      return { query: q, results: r };
    },
  );
}
