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

export interface EventHubOptions {
  /** clients at once, from everywhere */
  maxClients: number;
  /** clients at once from one address: a fair share, so one address cannot hold every slot */
  maxPerAddress: number;
  /** bytes a slow client may have queued before it is dropped (its EventSource reconnects) */
  maxBuffer: number;
  heartbeatMs: number;
  /** a stream's longest life: then it ends, and the client's EventSource reconnects (slots never stay taken for good) */
  maxStreamMs: number;
}

/**
 * Subscribers of GET /api/events. A client that reads slower than events arrive is dropped once
 * its socket buffer passes a bound (its EventSource reconnects and the page reloads its data), so
 * one stalled phone never makes the node hold an unbounded queue; slots are shared out per
 * address and streams end after a while, so nobody keeps them.
 */
export class EventHub {
  private readonly clients = new Map<ServerResponse, string>();
  private readonly perAddress = new Map<string, number>();
  private seq = 0;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(private readonly o: EventHubOptions) {
    this.heartbeat = setInterval(() => this.broadcast(': keep-alive\n\n'), o.heartbeatMs);
    this.heartbeat.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Why a client at `address` may not open a stream now, or null when it may. */
  refuse(address: string): string | null {
    if (this.clients.size >= this.o.maxClients) return 'too many event stream clients; try again later';
    if ((this.perAddress.get(address) ?? 0) >= this.o.maxPerAddress) return `at most ${this.o.maxPerAddress} event streams per client address`;
    return null;
  }

  add(res: ServerResponse, address: string, hello: string): void {
    this.clients.set(res, address);
    this.perAddress.set(address, (this.perAddress.get(address) ?? 0) + 1);
    const end = setTimeout(() => res.end(), this.o.maxStreamMs);
    end.unref();
    res.on('close', () => {
      clearTimeout(end);
      this.forget(res);
    });
    res.write(hello);
  }

  send(event: string, data: unknown): void {
    if (this.clients.size === 0) return;
    this.broadcast(this.format(event, data));
  }

  format(event: string, data: unknown): string {
    return `id: ${++this.seq}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private forget(res: ServerResponse): void {
    const address = this.clients.get(res);
    if (address === undefined) return;
    this.clients.delete(res);
    const left = (this.perAddress.get(address) ?? 1) - 1;
    if (left <= 0) this.perAddress.delete(address);
    else this.perAddress.set(address, left);
  }

  private broadcast(msg: string): void {
    for (const res of this.clients.keys()) {
      if (res.writableLength > this.o.maxBuffer) {
        this.forget(res);
        res.destroy();
        continue;
      }
      res.write(msg);
    }
  }

  close(): void {
    clearInterval(this.heartbeat);
    for (const res of this.clients.keys()) res.end();
    this.clients.clear();
    this.perAddress.clear();
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
  const onRecord = (r: Rec): void => hub.send('record', { id: toHex(r.id), pending: pool.size, ...recordJson(r.body, api.nameOfRef) });
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
    const address = req.socket.remoteAddress ?? '';
    const refusal = hub.refuse(address);
    if (refusal !== null) {
      void reply.code(503).header('retry-after', '30');
      return { error: refusal };
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
    hub.add(reply.raw, address, `retry: 2000\n\n${hub.format('hello', api.status())}`);
  });
}
