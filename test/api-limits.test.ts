// The HTTP API against a stranger with a socket: numbers that are not numbers, connections that
// stall or trickle, one address taking every connection or every event slot, a web page on
// another host name (DNS rebinding), and a dev-mining request that would take the CPU for hours.
// Each is an attack that must fail, against a real server on loopback.
import t, { type Test } from 'tap';
import { connect, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { openChain } from './helpers.ts';
import { waitFor } from './util/wait.ts';
import { buildApi, type ApiOptions } from '../node/api/server.ts';
import type { ApiContext } from '../node/api/context.ts';

async function serve(t: Test, opts: ApiOptions = {}, ctx: Partial<ApiContext> = {}, network: 'regtest' | 'devnet' = 'regtest'): Promise<{ app: FastifyInstance; port: number; base: string }> {
  const { chain, pool } = await openChain(t, { network });
  const app = await buildApi({ chain, pool, hashrate: () => 0, peers: () => [], syncing: () => false, ...ctx }, opts);
  t.teardown(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return { app, port, base: `http://127.0.0.1:${port}` };
}

/** A raw TCP connection to the API; `closed` resolves when the server ends it. */
function raw(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const socket = connect(port, '127.0.0.1');
    const closed = new Promise<number>((r) => socket.once('close', () => r(Date.now() - t0)));
    socket.on('error', () => undefined);
    socket.once('connect', () => resolve({ socket, closed }));
    socket.once('error', reject);
  });
}

t.test('numbers that are not finite are refused on every paged route', async (t) => {
  const { app } = await serve(t);
  for (const url of [
    '/api/blocks?limit=Infinity',
    '/api/blocks?limit=1e400',
    '/api/blocks?before=Infinity',
    '/api/pending?limit=Infinity',
    '/api/nodes?limit=1e400',
    '/api/nodes?offset=-Infinity',
    '/api/stats?blocks=-1e400',
    '/api/stats?blocks=Infinity',
    '/api/names/sip:a@b.test/history?limit=Infinity',
    '/api/accounts/rdots1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq/history?offset=1e999',
  ]) {
    const r = await app.inject({ url });
    t.equal(r.statusCode, 400, `${url}: 400`);
    t.match(r.json(), { error: /must be a finite number|must be/ }, `${url}: says why`);
  }
  t.equal((await app.inject({ url: '/api/pending?limit=1001' })).statusCode, 400, 'the caps themselves hold');
  t.equal((await app.inject({ url: '/api/search?q=Infinity' })).statusCode, 404, 'a string that reads as a number is still a search');
});

t.test('connections: idle ones closed, trickling ones closed however slowly they trickle, one address capped', async (t) => {
  const { port, base } = await serve(t, { idleTimeoutMs: 500, requestTimeoutMs: 1500, maxConnectionsPerAddress: 5 });
  // Idle: connected, never a byte.
  const idle = await raw(port);
  t.ok((await idle.closed) < 5000, 'an idle connection is closed');
  // Slowloris: a byte of headers every 200 ms keeps it from being idle, never completes.
  const slow = await raw(port);
  slow.socket.write('GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const drip = setInterval(() => slow.socket.write('X'), 200);
  const heldMs = await slow.closed;
  clearInterval(drip);
  t.ok(heldMs < 4000, `a trickling request is closed at the request timeout plus the check interval (${heldMs} ms)`);
  // One address: the sixth connection is closed at once while five are held.
  const held = await Promise.all([1, 2, 3, 4, 5].map(() => raw(port)));
  const sixth = await raw(port);
  t.ok((await sixth.closed) < 300, 'the connection over the per-address cap is closed at once');
  for (const h of held) h.socket.destroy();
  await Promise.all(held.map((h) => h.closed));
  const r = await fetch(`${base}/api/status`);
  t.equal(r.status, 200, 'once they are gone, requests are served again');
});

t.test('live event streams: a fair share per address, and no stream for ever', async (t) => {
  const { port } = await serve(t, { maxEventClientsPerAddress: 2, maxEventStreamMs: 800 });
  const open = async (): Promise<{ status: number; ended: Promise<void>; cancel: () => Promise<void> }> => {
    const res = await fetch(`http://127.0.0.1:${port}/api/events`);
    const reader = res.body?.getReader();
    const ended = (async () => {
      if (reader === undefined) return;
      for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
    })();
    return { status: res.status, ended, cancel: async () => void (await reader?.cancel().catch(() => undefined)) };
  };
  const a = await open();
  const b = await open();
  const c = await open();
  t.same([a.status, b.status, c.status], [200, 200, 503], 'a third stream from the same address is refused');
  const t0 = Date.now();
  await Promise.all([a.ended, b.ended]);
  t.ok(Date.now() - t0 < 3000, 'streams end after their longest life (the client reconnects)');
  const d = await open();
  t.equal(d.status, 200, 'and the slots are free again');
  await d.cancel();
});

t.test('DNS rebinding: only this machine\'s host names are answered on a loopback API', async (t) => {
  const { app } = await serve(t);
  for (const host of ['127.0.0.1:8080', 'localhost', 'LOCALHOST:1', '[::1]:8080']) t.equal((await app.inject({ url: '/api/status', headers: { host } })).statusCode, 200, `${host}: answered`);
  for (const host of ['evil.example', 'evil.example:8080', '127.0.0.1.evil.example', 'localhost.evil.example:80']) {
    const r = await app.inject({ url: '/api/status', headers: { host } });
    t.equal(r.statusCode, 403, `"${host}": refused`);
    t.match(r.json(), { code: 'bad-host' });
  }
  const open = await serve(t, { allowedHosts: 'any' });
  t.equal((await open.app.inject({ url: '/api/status', headers: { host: 'node.example.org' } })).statusCode, 200, 'a public node may answer any name');
});

t.test('dev mining: one request at a time, and on devnet a handful of blocks per request', async (t) => {
  let release = (): void => {};
  const mined: number[] = [];
  const mine = (n: number): Promise<void> => {
    mined.push(n);
    return new Promise((r) => (release = r));
  };
  const { app } = await serve(t, {}, { mine }, 'devnet');
  t.equal((await app.inject({ method: 'POST', url: '/api/dev/mine', payload: { count: 11 } })).statusCode, 400, 'devnet: more than 10 blocks in one request is refused');
  const first = app.inject({ method: 'POST', url: '/api/dev/mine', payload: { count: 2 } });
  await waitFor('the first request mining', async () => mined.length === 1);
  const second = await app.inject({ method: 'POST', url: '/api/dev/mine', payload: { count: 1 } });
  t.equal(second.statusCode, 429, 'a second request while one mines is refused');
  t.match(second.json(), { error: /already mining/ });
  release();
  t.equal((await first).statusCode, 200);
  t.same(mined, [2]);
  const regtest = await serve(t, {}, { mine: async () => undefined });
  t.equal((await regtest.app.inject({ method: 'POST', url: '/api/dev/mine', payload: { count: 1000 } })).statusCode, 200, 'regtest (tests) may ask for up to 1,000');
});
