// The HTTP API (JSON under /api), the live event stream, Prometheus metrics and the explorer
// page, on Fastify. Inputs are checked by route schemas or explicit parsing: bad input gets a 400
// with a message, unknown things a 404, never a 500. Everything served is documented in
// core/explorer/openapi.json, which a test checks against the routes registered here.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import { ValidationError } from '../../core/errors.ts';
import { toHex, fromHex, isHex, hashToHex, bytesEqual } from '../../core/hash.ts';
import { decode } from '../../core/encoding.ts';
import { decodeRec, recordJson, isValidName, KIND_NAMES, type Rec } from '../../core/records.ts';
import { getAccount, getBinding, getName, getNode, type BindingEntry, type NodeEntry } from '../../core/state.ts';
import { addressOf, encodeAddress, decodeAddress, nodeIdOf } from '../../core/address.ts';
import { History, historyKey, keysOf, type Ref } from './history.ts';
import { apiMetrics } from '../metrics.ts';
import { workFromBits } from '../../consensus/pow.ts';
import type { Chain, IndexEntry, TipChange } from '../../consensus/chain.ts';
import type { Block } from '../../core/block.ts';
import type { Logger } from '../../core/log.ts';

export interface ApiContext {
  chain: Chain;
  /** this node's own hashes per second (0 when not mining) */
  hashrate(): number;
  peers(): Array<{ id: string; addrs: string[] }>;
  syncing(): boolean;
  /** sync progress (height, target, percent, blocks per second) while syncing */
  syncProgress?: () => unknown;
  /** mine n blocks now; only on development networks */
  mine?: (n: number) => Promise<unknown>;
  /** where unexpected errors are reported (they are answered as a plain 500) */
  log?: Logger;
}

export interface ApiOptions {
  /** most clients on the live event stream at once (more get a 503) */
  maxEventClients?: number;
  /** bytes a slow event client may have queued before it is dropped (its EventSource reconnects) */
  maxEventBuffer?: number;
  /** milliseconds between keep-alive comments on the event stream */
  eventHeartbeatMs?: number;
  /** told of every route as it is registered (the documentation test lists them this way) */
  onRoute?: (method: string, url: string) => void;
}

const EXPLORER_DIR = fileURLToPath(new URL('../explorer/', import.meta.url));
const MAX_PAGE = 100;
const MAX_LIST = 1000;
const IMMUTABLE = 'public, max-age=31536000, immutable';
/** blocks over which the network hashrate is estimated */
const HASHRATE_WINDOW = 20;
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

type Json = Record<string, unknown>;

function notFound(reply: FastifyReply, what: string): { error: string } {
  void reply.code(404);
  return { error: `${what} not found` };
}

function badRequest(reply: FastifyReply, message: string, code = 'bad-request'): { error: string; code: string } {
  void reply.code(400);
  return { error: message, code };
}

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
    records: block.records.map((r) => ({ id: toHex(r.id), ...recordJson(r.body) })),
  };
}

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

/** Pagination query: limit and offset, both integers in range (Fastify coerces and checks). */
function pageQuery(defaultLimit: number, maxLimit: number): Json {
  return {
    type: 'object',
    properties: {
      limit: { type: 'integer', minimum: 1, maximum: maxLimit, default: defaultLimit },
      offset: { type: 'integer', minimum: 0, maximum: 1_000_000_000, default: 0 },
    },
  };
}

function paged<T>(all: T[], offset: number, limit: number): { items: T[]; total: number; offset: number; limit: number; next: number | null } {
  const items = all.slice(offset, offset + limit);
  return { items, total: all.length, offset, limit, next: offset + items.length < all.length ? offset + items.length : null };
}

/**
 * Subscribers of GET /api/events. A client that reads slower than events arrive is dropped once
 * its socket buffer passes a bound (its EventSource reconnects and the page reloads its data), so
 * one stalled phone never makes the node hold an unbounded queue.
 */
export class EventHub {
  private readonly clients = new Set<ServerResponse>();
  private seq = 0;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly maxClients: number,
    private readonly maxBuffer: number,
    heartbeatMs: number,
  ) {
    this.heartbeat = setInterval(() => this.broadcast(': keep-alive\n\n'), heartbeatMs);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  get full(): boolean {
    return this.clients.size >= this.maxClients;
  }

  add(res: ServerResponse, hello: string): void {
    this.clients.add(res);
    res.on('close', () => this.clients.delete(res));
    res.write(hello);
  }

  send(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    this.broadcast(this.format(event, data));
  }

  format(event: string, data: unknown): string {
    return `id: ${++this.seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private broadcast(msg: string): void {
    for (const res of this.clients) {
      if (res.writableLength > this.maxBuffer) {
        this.clients.delete(res);
        res.destroy();
        continue;
      }
      res.write(msg);
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const res of this.clients) res.end();
    this.clients.clear();
  }
}

export async function buildApi(ctx: ApiContext, opts: ApiOptions = {}): Promise<FastifyInstance> {
  const { chain } = ctx;
  const p = chain.params;
  // Names and SIP URIs in paths are longer than find-my-way's default 100-character parameter.
  // forceCloseConnections: a stopping node drops open connections (event streams half-closed by
  // their clients among them) instead of waiting out keep-alive timeouts.
  const app = Fastify({
    logger: false,
    bodyLimit: 256 * 1024,
    forceCloseConnections: true,
    routerOptions: { maxParamLength: 1024 },
    // Malformed URLs (bad percent-encoding, over-long ids) answer in the same {error} shape.
    frameworkErrors: (err, _req, reply) => {
      const code = typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 400;
      void (reply as FastifyReply).code(code).send({ error: err.message });
    },
  });
  const onRoute = opts.onRoute;
  if (onRoute !== undefined) {
    app.addHook('onRoute', (r) => {
      for (const m of Array.isArray(r.method) ? r.method : [r.method]) onRoute(m, r.url);
    });
  }
  const history = new History(chain);
  const hub = new EventHub(opts.maxEventClients ?? 256, opts.maxEventBuffer ?? 256 * 1024, opts.eventHeartbeatMs ?? 15_000);
  const limitWork = Number(workFromBits(p.powLimitBits));
  const difficultyOf = (bits: number): number => Number(workFromBits(bits)) / limitWork;

  // Genesis times are fixed in the network parameters, often long before the first block, so
  // spans that start at genesis say nothing about mining: estimates start at block 1.
  /** Hashes per second over the `window` blocks ending at `e`, from their work and time span. */
  const hashrateAt = (e: IndexEntry, window: number): number => {
    const from = chain.main[Math.max(1, e.height - window)];
    if (from === undefined || from === e) return 0;
    const span = e.header.time - from.header.time;
    return span > 0 ? Number(e.work - from.work) / span : 0;
  };

  // Record counts and sizes of blocks (immutable per hash), so block lists need not decode
  // whole blocks again.
  const summaries = new Map<string, { records: number; size: number }>();
  const summaryOf = async (e: IndexEntry): Promise<Json> => {
    let s = summaries.get(e.hex);
    if (s === undefined) {
      const bytes = await chain.getBlockBytes(e.hex);
      const v = bytes === undefined ? undefined : decode(bytes);
      const recs = Array.isArray(v) && Array.isArray(v[1]) ? v[1].length : 0;
      s = { records: recs, size: bytes?.length ?? 0 };
      if (summaries.size >= 4096) summaries.delete(summaries.keys().next().value as string);
      summaries.set(e.hex, s);
    }
    return { hash: e.hex, height: e.height, time: e.header.time, bits: e.header.bits, nonce: e.header.nonce, prev: hashToHex(e.header.prev), records: s.records, size: s.size };
  };

  const status = (): Json => ({
    network: p.name,
    height: chain.tip.height,
    tip: chain.tip.hex,
    work: chain.tip.work.toString(),
    bits: chain.tip.header.bits,
    time: chain.tip.header.time,
    difficulty: difficultyOf(chain.tip.header.bits),
    networkHashrate: Math.round(hashrateAt(chain.tip, HASHRATE_WINDOW)),
    idealBlockTime: p.idealBlockTime,
    peers: ctx.peers().length,
    pending: chain.pool.size,
    hashrate: ctx.hashrate(),
    syncing: ctx.syncing(),
    sync: ctx.syncProgress?.() ?? null,
    genesis: chain.genesis.hex,
  });

  const metrics = apiMetrics({
    height: () => chain.tip.height,
    tipTime: () => chain.tip.header.time,
    difficulty: () => difficultyOf(chain.tip.header.bits),
    networkHashrate: () => hashrateAt(chain.tip, HASHRATE_WINDOW),
    hashrate: () => ctx.hashrate(),
    peers: () => ctx.peers().length,
    pending: () => chain.pool.size,
    syncing: () => ctx.syncing(),
    sseClients: () => hub.size,
  });

  // Live events. Tip changes are turned into payloads one after another, so clients see them
  // in chain order even though building a summary may read the store.
  let tipQueue: Promise<void> = Promise.resolve();
  const onTip = (c: TipChange): void => {
    metrics.blocksConnected.inc(c.connected.length);
    if (c.disconnected.length > 0) {
      metrics.reorgs.inc();
      metrics.blocksDisconnected.inc(c.disconnected.length);
    }
    tipQueue = tipQueue.then(async () => {
      if (hub.size === 0) return;
      try {
        const connected = await Promise.all(c.connected.slice(-20).map(summaryOf));
        hub.send('tip', {
          ...status(),
          connected,
          connectedCount: c.connected.length,
          disconnected: c.disconnected.slice(0, 20).map((e) => e.hex),
          disconnectedCount: c.disconnected.length,
        });
      } catch (e) {
        // The store closes under a stopping node; nothing to tell clients then.
        ctx.log?.debug(`event stream: tip summary failed: ${(e as Error).message}`);
      }
    });
  };
  const onRecord = (r: Rec): void => hub.send('record', { id: toHex(r.id), pending: chain.pool.size, ...recordJson(r.body) });
  chain.on('tip', onTip);
  chain.on('record', onRecord);
  history.start();

  app.addHook('preClose', async () => {
    // Open event streams would keep server.close() waiting forever.
    hub.close();
  });
  app.addHook('onClose', async () => {
    chain.off('tip', onTip);
    chain.off('record', onRecord);
    await history.stop();
    await tipQueue;
  });

  app.addHook('onRequest', async (req) => {
    (req as { startedAt?: bigint }).startedAt = process.hrtime.bigint();
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const started = (req as { startedAt?: bigint }).startedAt;
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    if (started !== undefined) metrics.latency.observe({ method: req.method, route }, Number(process.hrtime.bigint() - started) / 1e9);
  });

  app.setErrorHandler((err: { statusCode?: number; message: string; stack?: string }, req, reply) => {
    const code = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500;
    if (code === 500) ctx.log?.error(`API ${req.method} ${req.url}: ${err.stack ?? err.message}`);
    void reply.code(code).send({ error: code === 500 ? 'internal error' : err.message });
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` });
  });

  // The explorer: a few static files; index.html and its modules revalidate (ETag) so an
  // upgraded node serves its new page at once.
  await app.register(fastifyStatic, {
    root: EXPLORER_DIR,
    prefix: '/',
    wildcard: false,
    index: 'index.html',
    cacheControl: false,
    setHeaders(res) {
      void res.header('cache-control', 'no-cache').header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer');
    },
  });

  const openapi = readFileSync(new URL('../explorer/openapi.json', import.meta.url), 'utf8');
  app.get('/api/openapi.json', async (_req, reply) => {
    void reply.header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-cache');
    return openapi;
  });

  app.get('/api/status', async () => status());

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
          difficulty: difficultyOf(e.header.bits),
          hashrate: Math.round(hashrateAt(e, 10)),
        });
      }
      const first = chain.main[Math.max(1, from)];
      const span = chain.tip.header.time - first.header.time;
      return {
        network: p.name,
        idealBlockTime: p.idealBlockTime,
        height: top,
        averageBlockTime: top > first.height ? span / (top - first.height) : null,
        networkHashrate: Math.round(hashrateAt(chain.tip, HASHRATE_WINDOW)),
        blocks: series,
      };
    },
  );

  app.get('/api/events', async (req, reply) => {
    if (hub.full) {
      void reply.code(503).header('retry-after', '30');
      return { error: 'too many event stream clients; try again later' };
    }
    if (req.method === 'HEAD') {
      void reply.header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache, no-transform');
      return '';
    }
    reply.hijack();
    metrics.requests.inc({ method: 'GET', route: '/api/events', status: '200' });
    reply.raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // A stream's socket is never reused; closing it with the stream lets a stopping server
      // finish at once instead of waiting for the client's keep-alive timeout.
      connection: 'close',
      'x-accel-buffering': 'no',
    });
    req.raw.socket.setNoDelay(true);
    hub.add(reply.raw, `retry: 2000\n\n${hub.format('hello', status())}`);
  });

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
      const blocks = await Promise.all(entries.map(summaryOf));
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
    const byHash = !/^[0-9]+$/.test(req.params.id);
    if (byHash) {
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
    void reply.header('cache-control', /^[0-9]+$/.test(req.params.id) ? 'no-cache' : IMMUTABLE).header('content-type', 'application/octet-stream');
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });

  app.get<{ Params: { id: string } }>('/api/records/:id', async (req, reply) => {
    const id = req.params.id.toLowerCase();
    if (!isHex(id, 32)) return badRequest(reply, 'record id must be 64 hex digits');
    const found = await chain.findRecord(id);
    if (found !== undefined) {
      return {
        id,
        confirmed: true,
        kind: KIND_NAMES[found.rec.body.kind],
        block: found.entry.hex,
        height: found.entry.height,
        time: found.entry.header.time,
        confirmations: chain.tip.height - found.entry.height + 1,
        header: toHex(found.entry.headerBytes),
        index: found.index,
        record: recordJson(found.rec.body),
        bytes: toHex(found.rec.bytes),
        proof: { leafIndex: found.index, treeSize: found.count, path: found.proof.map(toHex), merkleRoot: toHex(found.root) },
      };
    }
    const pending = chain.pool.get(id);
    if (pending !== undefined) {
      return { id, confirmed: false, kind: KIND_NAMES[pending.rec.body.kind], added: pending.added, record: recordJson(pending.rec.body), bytes: toHex(pending.rec.bytes) };
    }
    return notFound(reply, 'record');
  });

  const nameError = 'not a SIP address (sip:user@domain), E.164 number (+15551234567) or domain';

  const bindingJson = (b: BindingEntry): Json => ({
    node: toHex(b.node),
    status: b.status === 1 && b.expires > chain.clock() ? 'online' : 'offline',
    expires: b.expires,
    seq: b.seq,
    confirmed: true,
    height: b.height,
  });

  app.get<{ Params: { name: string } }>('/api/names/:name', async (req, reply) => {
    const name = req.params.name.toLowerCase();
    if (!isValidName(name)) return badRequest(reply, nameError);
    const n = getName(chain.state, name);
    const b = getBinding(chain.state, name);
    const pending = chain.pool.pendingBinding(name);
    if (n === undefined && pending === undefined) return notFound(reply, 'name');
    const now = chain.clock();
    let binding: Json | null = null;
    if (pending !== undefined && (b === undefined || pending.seq > b.seq)) {
      binding = { node: toHex(pending.node), status: pending.status === 1 && pending.expires > now ? 'online' : 'offline', expires: pending.expires, seq: pending.seq, confirmed: false, height: null };
    } else if (b !== undefined) {
      binding = bindingJson(b);
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

  /** One page of a history key, newest first, each item with its record and block time. */
  const historyPage = async (key: string, offset: number, limit: number): Promise<Json> => {
    await Promise.race([history.settled(), new Promise((r) => setTimeout(r, 2000).unref())]);
    const { total, items } = history.page(key, offset, limit);
    const blocks = new Map<string, Block | undefined>();
    for (const it of items) if (!blocks.has(it.block)) blocks.set(it.block, await chain.getBlock(it.block));
    const out = items.map((it: Ref) => {
      const rec = blocks.get(it.block)?.records[it.index];
      return {
        id: it.id,
        kind: KIND_NAMES[it.kind],
        height: it.height,
        block: it.block,
        index: it.index,
        time: chain.index.get(it.block)?.header.time ?? null,
        delta: it.delta,
        record: rec === undefined ? null : recordJson(rec.body),
      };
    });
    const pending = chain.pool
      .list()
      .filter((e) => keysOf(e.rec.body).has(key))
      .slice(0, MAX_PAGE)
      .map((e) => ({ id: toHex(e.rec.id), kind: KIND_NAMES[e.rec.body.kind], added: e.added, delta: keysOf(e.rec.body).get(key) ?? 0, record: recordJson(e.rec.body) }));
    return {
      total,
      offset,
      limit,
      next: offset + items.length < total ? offset + items.length : null,
      indexedHeight: history.height,
      complete: history.complete,
      items: out,
      pending,
    };
  };

  app.get<{ Params: { name: string }; Querystring: { limit: number; offset: number } }>(
    '/api/names/:name/history',
    { schema: { querystring: pageQuery(20, MAX_PAGE) } },
    async (req, reply) => {
      const name = req.params.name.toLowerCase();
      if (!isValidName(name)) return badRequest(reply, nameError);
      const page = await historyPage(historyKey.name(name), req.query.offset, req.query.limit);
      if (page.total === 0 && (page.pending as unknown[]).length === 0 && getName(chain.state, name) === undefined) return notFound(reply, 'name');
      return { name, ...page };
    },
  );

  const peerOf = (n: NodeEntry): boolean => {
    const peers = ctx.peers();
    return n.p2pAddrs.some((a) => peers.some((q) => a.endsWith(`/p2p/${q.id}`)));
  };

  app.get<{ Querystring: { limit: number; offset: number } }>('/api/nodes', { schema: { querystring: pageQuery(100, MAX_LIST) } }, async (req) => {
    const all: NodeEntry[] = [];
    for (const [k, v] of chain.state.map) if (k.startsWith('d:')) all.push(v as NodeEntry);
    all.sort((a, b) => a.since - b.since || (toHex(a.pubkey) < toHex(b.pubkey) ? -1 : 1));
    const pg = paged(all, req.query.offset, req.query.limit);
    return { nodes: pg.items.map((n) => nodeJson(p.addressPrefix, n)), total: pg.total, offset: pg.offset, limit: pg.limit, next: pg.next };
  });

  const nodeId = (raw: string): Uint8Array | undefined => {
    const id = raw.toLowerCase();
    return isHex(id, 20) ? fromHex(id) : undefined;
  };

  app.get<{ Params: { id: string } }>('/api/nodes/:id', async (req, reply) => {
    const id = nodeId(req.params.id);
    if (id === undefined) return badRequest(reply, 'node id must be 40 hex digits');
    const n = getNode(chain.state, id);
    if (n === undefined) return notFound(reply, 'node');
    // What it serves: the names whose current binding points at it.
    const serves: Json[] = [];
    for (const [k, v] of chain.state.map) {
      if (k.startsWith('b:') && bytesEqual((v as BindingEntry).node, id) && serves.length < MAX_LIST) serves.push({ name: k.slice(2), ...bindingJson(v as BindingEntry) });
    }
    await Promise.race([history.settled(), new Promise((r) => setTimeout(r, 2000).unref())]);
    let blocksMined = 0;
    let mined = 0;
    for (const r of history.all(historyKey.address(toHex(n.rewardAddress)))) {
      if (r.kind === 0) {
        blocksMined++;
        mined += r.delta;
      }
    }
    return {
      ...nodeJson(p.addressPrefix, n),
      connected: peerOf(n),
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
      return { id: toHex(id), ...(await historyPage(historyKey.node(toHex(id)), req.query.offset, req.query.limit)) };
    },
  );

  const parseAddress = (s: string): Uint8Array | string => {
    try {
      return decodeAddress(p.addressPrefix, s);
    } catch (e) {
      return (e as Error).message;
    }
  };

  app.get<{ Params: { address: string } }>('/api/accounts/:address', async (req, reply) => {
    const addr = parseAddress(req.params.address);
    if (typeof addr === 'string') return badRequest(reply, addr);
    const a = getAccount(chain.state, addr);
    return { address: encodeAddress(p.addressPrefix, addr), balance: a.balance, nonce: a.nonce };
  });

  app.get<{ Params: { address: string }; Querystring: { limit: number; offset: number } }>(
    '/api/accounts/:address/history',
    { schema: { querystring: pageQuery(20, MAX_PAGE) } },
    async (req, reply) => {
      const addr = parseAddress(req.params.address);
      if (typeof addr === 'string') return badRequest(reply, addr);
      return { address: encodeAddress(p.addressPrefix, addr), ...(await historyPage(historyKey.address(toHex(addr)), req.query.offset, req.query.limit)) };
    },
  );

  app.get<{ Querystring: { limit: number; offset: number } }>('/api/pending', { schema: { querystring: pageQuery(100, MAX_LIST) } }, async (req) => {
    const pg = paged(chain.pool.list(), req.query.offset, req.query.limit);
    return {
      records: pg.items.map((e) => ({ id: toHex(e.rec.id), added: e.added, ...recordJson(e.rec.body) })),
      total: pg.total,
      offset: pg.offset,
      limit: pg.limit,
      next: pg.next,
    };
  });

  app.get('/api/peers', async () => ({ peers: ctx.peers() }));

  /** What a search string can name, most specific first. */
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
      if (chain.pool.has(lower)) out.push({ type: 'record', id: lower, confirmed: false });
      else {
        const r = await chain.findRecord(lower);
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
      const addr = parseAddress(lower);
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
      if (getName(chain.state, name) !== undefined || chain.pool.pendingBinding(name) !== undefined) out.push({ type: 'name', id: name });
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
    app.post<{ Body: { count?: number } | undefined }>(
      '/api/dev/mine',
      { schema: { body: { type: 'object', properties: { count: { type: 'integer', minimum: 1, maximum: 1000 } } } } },
      async (req) => {
        await mine(req.body?.count ?? 1);
        return { height: chain.tip.height, tip: chain.tip.hex };
      },
    );
  }

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.text();
  });

  return app;
}
