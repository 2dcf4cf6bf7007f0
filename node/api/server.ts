// The HTTP API (JSON under /api), the live event stream, Prometheus metrics and the explorer
// page, on Fastify. This file builds the server (limits, error shape, request metrics, the
// explorer's static files) and registers the routes, one module per resource beside it. Inputs
// are checked by route schemas or explicit parsing: bad input gets a 400 with a message, unknown
// things a 404, never a 500. Everything served is documented in node/explorer/openapi.json,
// which a test checks against the routes registered here.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { isIP, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import fastifyStatic from '@fastify/static';
import { apiMetrics } from '../metrics.ts';
import type { PhonePage } from '../phone-page.ts';
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
  /** live event streams one client address may hold (default 8) */
  maxEventClientsPerAddress?: number;
  /** how long a live event stream lasts before the node ends it and the client reconnects, ms (default 1 h) */
  maxEventStreamMs?: number;
  /** connections the API holds at once (default 1024), and from one address (default 64) */
  maxConnections?: number;
  maxConnectionsPerAddress?: number;
  /** a request's headers and body must arrive within this, however slowly they trickle, ms (default 10 s) */
  requestTimeoutMs?: number;
  /** a connection that sends and receives nothing for this long is closed, ms (default 60 s) */
  idleTimeoutMs?: number;
  /**
   * Host header values the API answers to (names without the port), or 'any'. A node on a
   * loopback address answers only to loopback names (default), so a web page on another name
   * that a DNS rebinding points at 127.0.0.1 cannot reach it.
   */
  allowedHosts?: readonly string[] | 'any';
  /** the browser phone, served under /phone/ */
  phone?: PhonePage;
}

/** Host names that mean this machine. */
export const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '::1'];

/** The Host header's name part: without the port, brackets off an IPv6 address, lower case. */
function hostName(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']'));
  const colon = h.lastIndexOf(':');
  return colon >= 0 && isIP(h) === 0 ? h.slice(0, colon) : h;
}

/**
 * The HTTP server under Fastify, with limits a stranger cannot stretch: headers and body within
 * the request timeout however slowly they come (checked every second), idle connections closed,
 * and connections capped overall and per client address, so one address cannot take every file
 * handle the node has (21,000 stalled connections from one address once did).
 */
function limitedServer(o: Required<Pick<ApiOptions, 'maxConnections' | 'maxConnectionsPerAddress' | 'requestTimeoutMs' | 'idleTimeoutMs'>>): (handler: Parameters<typeof createServer>[1]) => Server {
  return (handler) => {
    const server = createServer({ requestTimeout: o.requestTimeoutMs, headersTimeout: o.requestTimeoutMs, connectionsCheckingInterval: 1000, keepAliveTimeout: 5000 }, handler);
    server.setTimeout(o.idleTimeoutMs);
    server.maxConnections = o.maxConnections;
    const perAddress = new Map<string, number>();
    server.on('connection', (socket: Socket) => {
      const addr = socket.remoteAddress ?? '';
      const n = (perAddress.get(addr) ?? 0) + 1;
      if (n > o.maxConnectionsPerAddress) {
        socket.destroy();
        return;
      }
      perAddress.set(addr, n);
      socket.once('close', () => {
        const left = (perAddress.get(addr) ?? 1) - 1;
        if (left <= 0) perAddress.delete(addr);
        else perAddress.set(addr, left);
      });
    });
    return server;
  };
}

const EXPLORER_DIR = fileURLToPath(new URL('../explorer/', import.meta.url));
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export async function buildApi(ctx: ApiContext, opts: ApiOptions = {}): Promise<FastifyInstance> {
  // Names and SIP URIs in paths are longer than find-my-way's default 100-character parameter.
  // forceCloseConnections: a stopping node drops open connections (event streams half-closed by
  // their clients among them) instead of waiting out keep-alive timeouts.
  const app = Fastify({
    logger: false,
    serverFactory: limitedServer({
      maxConnections: opts.maxConnections ?? 1024,
      maxConnectionsPerAddress: opts.maxConnectionsPerAddress ?? 64,
      requestTimeoutMs: opts.requestTimeoutMs ?? 10_000,
      idleTimeoutMs: opts.idleTimeoutMs ?? 60_000,
    }),
    bodyLimit: 256 * 1024,
    // Our route schemas are not checked against JSON Schema's meta-schema at each start: compiling
    // the meta-schema was about 35 ms of a node's first start (a CPU profile; the first
    // DotsNode.start in a process, five alternating: median 207 ms against 302). The requests are
    // checked as before, and a schema of ours with an unknown keyword or type still stops the start
    // (ajv's strict mode and its type check, with or without the meta-schema; tried ad hoc).
    ajv: { customOptions: { validateSchema: false } },
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
  const hub = new EventHub({
    maxClients: opts.maxEventClients ?? 256,
    maxPerAddress: opts.maxEventClientsPerAddress ?? 8,
    maxBuffer: opts.maxEventBuffer ?? 256 * 1024,
    heartbeatMs: opts.eventHeartbeatMs ?? 15_000,
    maxStreamMs: opts.maxEventStreamMs ?? 3_600_000,
  });
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

  const allowed = opts.allowedHosts ?? LOOPBACK_HOSTS;
  app.addHook('onRequest', async (req, reply) => {
    (req as { startedAt?: bigint }).startedAt = process.hrtime.bigint();
    if (allowed !== 'any' && !allowed.includes(hostName(req.headers.host ?? ''))) {
      return reply.code(403).send({ error: `this node's API does not answer to the host name "${req.headers.host ?? ''}"`, code: 'bad-host' });
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    const started = (req as { startedAt?: bigint }).startedAt;
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    if (started !== undefined) metrics.latency.observe({ method: req.method, route }, Number(process.hrtime.bigint() - started) / 1e9);
  });

  // Query numbers must be finite. The schemas' integer coercion takes "Infinity" and "1e400" and
  // they then pass every minimum and maximum (a page cap of Infinity answered 62 MB; a 500 on
  // /api/stats): whatever a schema made a number is checked here, for every route.
  app.addHook('preHandler', async (req, reply) => {
    const query = req.query as Record<string, unknown> | undefined;
    for (const [k, v] of Object.entries(query ?? {})) {
      if (typeof v === 'number' && !Number.isFinite(v)) return reply.code(400).send({ error: `querystring/${k} must be a finite number`, code: 'bad-request' });
    }
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

  // The browser phone, beside the explorer (its files and config.json; see node/phone-page.ts).
  const phone = opts.phone;
  if (phone !== undefined) {
    app.get('/phone', async (_req, reply) => reply.redirect('/phone/'));
    app.get<{ Params: { '*': string } }>('/phone/*', async (req, reply) => {
      const a = phone.answer(req.params['*'], req.headers['if-none-match']);
      return reply.code(a.status).headers(a.headers).send(a.body);
    });
  }

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
