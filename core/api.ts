// The HTTP API (JSON under /api) on Fastify. Inputs are validated by route schemas or by
// explicit parsing; bad input gets a 400 with a message, unknown things a 404, never a 500.
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { ValidationError } from './errors.ts';
import { toHex, fromHex, isHex, hashToHex } from './hash.ts';
import { decodeRec, recordJson, isValidName } from './records.ts';
import { getAccount, getBinding, getName, getNode, type NodeEntry } from './state.ts';
import { addressOf, encodeAddress, decodeAddress, nodeIdOf } from './address.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';
import type { Block } from './block.ts';

export interface ApiContext {
  chain: Chain;
  /** this node's own hashes per second (0 when not mining) */
  hashrate(): number;
  peers(): Array<{ id: string; addrs: string[] }>;
  syncing(): boolean;
  /** mine n blocks now; only on development networks */
  mine?: (n: number) => Promise<unknown>;
}

const MAX_PAGE = 100;

function notFound(reply: FastifyReply, what: string): { error: string } {
  void reply.code(404);
  return { error: `${what} not found` };
}

function badRequest(reply: FastifyReply, message: string, code = 'bad-request'): { error: string; code: string } {
  void reply.code(400);
  return { error: message, code };
}

export function blockJson(chain: Chain, e: IndexEntry, block: Block): Record<string, unknown> {
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
    records: block.records.map((r) => ({ id: toHex(r.id), ...recordJson(r.body) })),
  };
}

function nodeJson(prefix: string, n: NodeEntry): Record<string, unknown> {
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

export async function buildApi(ctx: ApiContext): Promise<FastifyInstance> {
  const { chain } = ctx;
  const p = chain.params;
  const app = Fastify({ logger: false, bodyLimit: 256 * 1024 });

  app.setErrorHandler((err: { statusCode?: number; message: string }, _req, reply) => {
    const code = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    void reply.code(code).send({ error: code === 500 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  app.get('/api/status', async () => ({
    network: p.name,
    height: chain.tip.height,
    tip: chain.tip.hex,
    work: chain.tip.work.toString(),
    bits: chain.tip.header.bits,
    time: chain.tip.header.time,
    peers: ctx.peers().length,
    pending: chain.pool.size,
    hashrate: ctx.hashrate(),
    syncing: ctx.syncing(),
    genesis: chain.genesis.hex,
  }));

  app.get<{ Querystring: { limit?: number; before?: number } }>(
    '/api/blocks',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: MAX_PAGE }, before: { type: 'integer', minimum: 0 } },
        },
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 20;
      const top = Math.min(req.query.before !== undefined ? req.query.before - 1 : chain.tip.height, chain.tip.height);
      const out: Array<Record<string, unknown>> = [];
      for (let h = top; h >= 0 && out.length < limit; h--) {
        const e = chain.main[h];
        out.push({ hash: e.hex, height: e.height, time: e.header.time, bits: e.header.bits, nonce: e.header.nonce, prev: hashToHex(e.header.prev) });
      }
      return { blocks: out, next: top - out.length >= 0 ? top - out.length + 1 : null };
    },
  );

  app.get<{ Params: { id: string } }>('/api/blocks/:id', async (req, reply) => {
    const id = req.params.id;
    let e: IndexEntry | undefined;
    if (/^[0-9]{1,10}$/.test(id)) e = chain.main[Number(id)];
    else if (isHex(id, 32)) e = chain.index.get(id);
    else return badRequest(reply, 'block id must be a height or a 64-hex-digit hash');
    if (e === undefined) return notFound(reply, 'block');
    const block = await chain.getBlock(e.hex);
    if (block === undefined) return notFound(reply, 'block body');
    // A block's content never changes once it is known by hash.
    if (isHex(id, 32)) void reply.header('cache-control', 'public, max-age=31536000, immutable');
    return blockJson(chain, e, block);
  });

  app.get<{ Params: { id: string } }>('/api/records/:id', async (req, reply) => {
    const id = req.params.id;
    if (!isHex(id, 32)) return badRequest(reply, 'record id must be 64 hex digits');
    const found = await chain.findRecord(id);
    if (found !== undefined) {
      return {
        id,
        confirmed: true,
        block: found.entry.hex,
        height: found.entry.height,
        index: found.index,
        record: recordJson(found.rec.body),
        bytes: toHex(found.rec.bytes),
        proof: { leafIndex: found.index, treeSize: found.count, path: found.proof.map(toHex), merkleRoot: toHex(found.root) },
      };
    }
    const pending = chain.pool.get(id);
    if (pending !== undefined) return { id, confirmed: false, record: recordJson(pending.rec.body), bytes: toHex(pending.rec.bytes) };
    return notFound(reply, 'record');
  });

  app.get<{ Params: { name: string } }>('/api/names/:name', async (req, reply) => {
    const name = req.params.name.toLowerCase();
    if (!isValidName(name)) return badRequest(reply, 'not a SIP address (sip:user@domain), E.164 number (+15551234567) or domain');
    const n = getName(chain.state, name);
    const b = getBinding(chain.state, name);
    const pending = chain.pool.pendingBinding(name);
    if (n === undefined && pending === undefined) return notFound(reply, 'name');
    const now = chain.clock();
    let binding: Record<string, unknown> | null = null;
    if (pending !== undefined && (b === undefined || pending.seq > b.seq)) {
      binding = { node: toHex(pending.node), status: pending.status === 1 && pending.expires > now ? 'online' : 'offline', expires: pending.expires, seq: pending.seq, confirmed: false, height: null };
    } else if (b !== undefined) {
      binding = { node: toHex(b.node), status: b.status === 1 && b.expires > now ? 'online' : 'offline', expires: b.expires, seq: b.seq, confirmed: true, height: b.height };
    }
    return {
      name,
      owner: n === undefined ? null : toHex(n.owner),
      ownerAddress: n === undefined ? null : encodeAddress(p.addressPrefix, addressOf(n.owner)),
      expiry: n?.expiry ?? null,
      seq: n?.seq ?? null,
      delegate: n !== undefined && n.delegate.length > 0 ? toHex(n.delegate) : null,
      binding,
    };
  });

  app.get('/api/nodes', async () => {
    const nodes: Array<Record<string, unknown>> = [];
    for (const [k, v] of chain.state.map) if (k.startsWith('d:')) nodes.push(nodeJson(p.addressPrefix, v as NodeEntry));
    return { nodes };
  });

  app.get<{ Params: { id: string } }>('/api/nodes/:id', async (req, reply) => {
    if (!isHex(req.params.id, 20)) return badRequest(reply, 'node id must be 40 hex digits');
    const n = getNode(chain.state, fromHex(req.params.id));
    if (n === undefined) return notFound(reply, 'node');
    return nodeJson(p.addressPrefix, n);
  });

  app.get<{ Params: { address: string } }>('/api/accounts/:address', async (req, reply) => {
    let addr: Uint8Array;
    try {
      addr = decodeAddress(p.addressPrefix, req.params.address);
    } catch (e) {
      return badRequest(reply, (e as Error).message);
    }
    const a = getAccount(chain.state, addr);
    return { address: encodeAddress(p.addressPrefix, addr), balance: a.balance, nonce: a.nonce };
  });

  app.get('/api/pending', async () => ({
    records: chain.pool.list().map((e) => ({ id: toHex(e.rec.id), added: e.added, ...recordJson(e.rec.body) })),
  }));

  app.get('/api/peers', async () => ({ peers: ctx.peers() }));

  app.post<{ Body: { record?: unknown } }>('/api/records', async (req, reply) => {
    const hex = req.body?.record;
    if (typeof hex !== 'string' || hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-f]+$/.test(hex)) {
      return badRequest(reply, 'body must be {"record": "<hex bytes of a signed record>"}');
    }
    try {
      const rec = decodeRec(fromHex(hex));
      await chain.submitRecord(rec);
      void reply.code(202);
      return { id: toHex(rec.id), pending: true };
    } catch (e) {
      if (e instanceof ValidationError) return badRequest(reply, e.message, e.code);
      throw e;
    }
  });

  if (ctx.mine !== undefined && (p.name === 'regtest' || p.name === 'devnet')) {
    const mine = ctx.mine;
    app.post<{ Body: { count?: number } }>(
      '/api/dev/mine',
      { schema: { body: { type: 'object', properties: { count: { type: 'integer', minimum: 1, maximum: 1000 } } } } },
      async (req) => {
        await mine(req.body?.count ?? 1);
        return { height: chain.tip.height, tip: chain.tip.hex };
      },
    );
  }

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', 'text/plain; version=0.0.4');
    return [
      '# HELP dots_height Height of the best chain.',
      '# TYPE dots_height gauge',
      `dots_height ${chain.tip.height}`,
      '# HELP dots_pending_records Records in the pending pool.',
      '# TYPE dots_pending_records gauge',
      `dots_pending_records ${chain.pool.size}`,
      '# HELP dots_peers Connected peers.',
      '# TYPE dots_peers gauge',
      `dots_peers ${ctx.peers().length}`,
      '# HELP dots_hashrate This node\'s hashes per second.',
      '# TYPE dots_hashrate gauge',
      `dots_hashrate ${ctx.hashrate()}`,
      '',
    ].join('\n');
  });

  return app;
}
