// The HTTP API (JSON under /api), the live event stream, Prometheus metrics and the explorer
// page, on Fastify. This file builds the server (limits, error shape, request metrics, the
// explorer's static files) and registers the routes, one module per resource beside it. Inputs
// are checked by route schemas or explicit parsing: bad input gets a 400 with a message, unknown
// things a 404, never a 500. Everything served is documented in node/explorer/openapi.json,
// which a test checks against the routes registered here.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import { apiMetrics } from '../metrics.ts';
import { Api, type ApiContext } from './context.ts';
import { EventHub, eventRoutes } from './events.ts';
import { statusRoutes } from './status.ts';
import { blockRoutes } from './blocks.ts';
import { recordRoutes } from './records.ts';
import { nameRoutes } from './names.ts';
import { nodeRoutes } from './nodes.ts';
import { accountRoutes } from './accounts.ts';
import { searchRoutes } from './search.ts';
import { devRoutes } from './dev.ts';

export type { ApiContext };
export { EventHub };

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
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export async function buildApi(ctx: ApiContext, opts: ApiOptions = {}): Promise<FastifyInstance> {
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
  const api = new Api(ctx);
  const { chain, pool, history } = api;
  const hub = new EventHub(opts.maxEventClients ?? 256, opts.maxEventBuffer ?? 256 * 1024, opts.eventHeartbeatMs ?? 15_000);
  const metrics = apiMetrics({
    height: () => chain.tip.height,
    tipTime: () => chain.tip.header.time,
    difficulty: () => api.difficultyOf(chain.tip.header.bits),
    networkHashrate: () => api.hashrateAt(chain.tip),
    hashrate: () => ctx.hashrate(),
    peers: () => ctx.peers().length,
    pending: () => pool.size,
    syncing: () => ctx.syncing(),
    sseClients: () => hub.size,
  });
  history.start();
  app.addHook('onClose', async () => {
    await history.stop();
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

  statusRoutes(app, api);
  eventRoutes(app, api, hub, metrics);
  blockRoutes(app, api);
  recordRoutes(app, api);
  nameRoutes(app, api);
  nodeRoutes(app, api);
  accountRoutes(app, api);
  searchRoutes(app, api);
  devRoutes(app, api);

  app.get('/metrics', async (_req, reply) => {
    void reply.header('content-type', metrics.registry.contentType);
    return metrics.text();
  });

  return app;
}
