// GET /api/events: the live stream (Server-Sent Events) of tip changes and pending records the
// explorer follows. Tip changes are turned into payloads one after another, so clients see them
// in chain order even though building a summary may read the store.
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { toHex } from '../../core/hash.ts';
import { recordJson, type Rec } from '../../core/records.ts';
import type { TipChange } from '../../consensus/chain.ts';
import type { ApiMetrics } from '../metrics.ts';
import type { Api } from './context.ts';

/** Blocks a tip event lists in full; the counts say how many there were. */
const EVENT_BLOCKS = 20;

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

export function eventRoutes(app: FastifyInstance, api: Api, hub: EventHub, metrics: ApiMetrics): void {
  const { chain, pool, ctx } = api;
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
        const connected = await Promise.all(c.connected.slice(-EVENT_BLOCKS).map((e) => api.summaryOf(e)));
        hub.send('tip', {
          ...api.status(),
          connected,
          connectedCount: c.connected.length,
          disconnected: c.disconnected.slice(0, EVENT_BLOCKS).map((e) => e.hex),
          disconnectedCount: c.disconnected.length,
        });
      } catch (e) {
        // The store closes under a stopping node; nothing to tell clients then.
        ctx.log?.debug(`event stream: tip summary failed: ${(e as Error).message}`);
      }
    });
  };
  const onRecord = (r: Rec): void => hub.send('record', { id: toHex(r.id), pending: pool.size, ...recordJson(r.body) });
  chain.on('tip', onTip);
  pool.on('record', onRecord);
  app.addHook('preClose', async () => {
    // Open event streams would keep server.close() waiting forever.
    hub.close();
  });
  app.addHook('onClose', async () => {
    chain.off('tip', onTip);
    pool.off('record', onRecord);
    await tipQueue;
  });

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
    hub.add(reply.raw, `retry: 2000\n\n${hub.format('hello', api.status())}`);
  });
}
