// GET /api/nodes (every announced node), /api/nodes/{id} (what it serves and earned),
// /api/nodes/{id}/history.
import type { FastifyInstance } from 'fastify';
import { bytesEqual, fromHex, isHex, toHex } from '../../core/hash.ts';
import { encodeAddress, nodeIdOf } from '../../core/address.ts';
import { Kind } from '../../core/records.ts';
import { allBindings, allNodes, getAccount, getNode, type NodeEntry } from '../../core/state.ts';
import { historyKey } from './history.ts';
import { MAX_LIST, MAX_PAGE, badRequest, historySettled, notFound, pageQuery, paged, type Api, type Json } from './context.ts';

function nodeJson(prefix: string, n: NodeEntry): Json {
  return {
    id: toHex(nodeIdOf(n.pubkey)),
    pubkey: toHex(n.pubkey),
    sipUris: n.sipUris,
    p2pAddrs: n.p2pAddrs,
    rewardAddress: encodeAddress(prefix, n.rewardAddress),
    seq: n.seq,
    since: n.since,
  };
}

/** A node id from a path: 40 hex digits. */
function nodeId(raw: string): Uint8Array | undefined {
  const id = raw.toLowerCase();
  return isHex(id, 20) ? fromHex(id) : undefined;
}

export function nodeRoutes(app: FastifyInstance, api: Api): void {
  const { chain, history, params: p } = api;

  /** Whether one of the node's announced addresses is a peer this node is connected to. */
  const connected = (n: NodeEntry): boolean => {
    const peers = api.ctx.peers();
    return n.p2pAddrs.some((a) => peers.some((q) => a.endsWith(`/p2p/${q.id}`)));
  };

  app.get<{ Querystring: { limit: number; offset: number } }>('/api/nodes', { schema: { querystring: pageQuery(100, MAX_LIST) } }, async (req) => {
    const all = [...allNodes(chain.state)];
    all.sort((a, b) => a.since - b.since || (toHex(a.pubkey) < toHex(b.pubkey) ? -1 : 1));
    const pg = paged(all, req.query.offset, req.query.limit);
    return { nodes: pg.items.map((n) => nodeJson(p.addressPrefix, n)), total: pg.total, offset: pg.offset, limit: pg.limit, next: pg.next };
  });

  app.get<{ Params: { id: string } }>('/api/nodes/:id', async (req, reply) => {
    const id = nodeId(req.params.id);
    if (id === undefined) return badRequest(reply, 'node id must be 40 hex digits');
    const n = getNode(chain.state, id);
    if (n === undefined) return notFound(reply, 'node');
    // What it serves: the names it holds a binding slot of.
    const serves: Json[] = [];
    for (const [name, b] of allBindings(chain.state)) {
      if (serves.length >= MAX_LIST) break;
      if (bytesEqual(b.node, id)) serves.push({ name, ...api.bindingJson(b, b.height) });
    }
    await historySettled(history);
    let blocksMined = 0;
    let mined = 0;
    for (const r of history.all(historyKey.address(toHex(n.rewardAddress)))) {
      if (r.kind === Kind.Coinbase) {
        blocksMined++;
        mined += r.delta;
      }
    }
    return {
      ...nodeJson(p.addressPrefix, n),
      connected: connected(n),
      serves,
      earned: { balance: getAccount(chain.state, n.rewardAddress).balance, blocksMined, mined },
    };
  });

  app.get<{ Params: { id: string }; Querystring: { limit: number; offset: number } }>(
    '/api/nodes/:id/history',
    { schema: { querystring: pageQuery(20, MAX_PAGE) } },
    async (req, reply) => {
      const id = nodeId(req.params.id);
      if (id === undefined) return badRequest(reply, 'node id must be 40 hex digits');
      if (getNode(chain.state, id) === undefined) return notFound(reply, 'node');
      return { id: toHex(id), ...(await api.historyPage(historyKey.node(toHex(id)), req.query.offset, req.query.limit)) };
    },
  );
}
