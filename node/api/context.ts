// What every route module of the HTTP API shares: the node's parts it reads (ApiContext), and the
// views computed from them once per API (Api): status, block summaries, difficulty and hashrate
// estimates, the history index. Route modules (one per resource, beside this file) take an Api
// and register their routes; server.ts builds the Api and the Fastify instance around them.
import type { FastifyReply } from 'fastify';
import { decode } from '../../core/encoding.ts';
import { hashToHex, toHex } from '../../core/hash.ts';
import { decodeAddress } from '../../core/address.ts';
import { KIND_NAMES, recordJson } from '../../core/records.ts';
import { nameOfRef, type BindingSlot } from '../../core/state.ts';
import type { Block } from '../../core/block.ts';
import type { Mempool } from '../../core/mempool.ts';
import type { Logger } from '../../core/log.ts';
import type { Chain, IndexEntry } from '../../consensus/chain.ts';
import type { NetworkParams } from '../../consensus/params.ts';
import { workFromBits } from '../../consensus/pow.ts';
import { History, keysOf, type Ref } from './history.ts';

export interface ApiContext {
  chain: Chain;
  /** the pending records (pending bindings count for routing, so the API shows them too) */
  pool: Mempool;
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
  /** resolves once the records the pool accepted are on disk: a submission is answered after it */
  durable?: () => Promise<void>;
}

export type Json = Record<string, unknown>;

export const MAX_PAGE = 100;
export const MAX_LIST = 1000;
export const IMMUTABLE = 'public, max-age=31536000, immutable';
/** blocks over which the network hashrate is estimated */
const HASHRATE_WINDOW = 20;
/** block summaries kept (immutable per hash) */
const MAX_SUMMARIES = 4096;

export function notFound(reply: FastifyReply, what: string): { error: string } {
  void reply.code(404);
  return { error: `${what} not found` };
}

export function badRequest(reply: FastifyReply, message: string, code = 'bad-request'): { error: string; code: string } {
  void reply.code(400);
  return { error: message, code };
}

/** Pagination query: limit and offset, both integers in range (Fastify coerces and checks). */
export function pageQuery(defaultLimit: number, maxLimit: number): Json {
  return {
    type: 'object',
    properties: {
      limit: { type: 'integer', minimum: 1, maximum: maxLimit, default: defaultLimit },
      offset: { type: 'integer', minimum: 0, maximum: 1_000_000_000, default: 0 },
    },
  };
}

export function paged<T>(all: T[], offset: number, limit: number): { items: T[]; total: number; offset: number; limit: number; next: number | null } {
  const items = all.slice(offset, offset + limit);
  return { items, total: all.length, offset, limit, next: offset + items.length < all.length ? offset + items.length : null };
}

/** Waits for the history index to catch up with the tip, at most two seconds (it reads the chain in the background). */
export function historySettled(history: History): Promise<unknown> {
  return Promise.race([history.settled(), new Promise((r) => setTimeout(r, 2000).unref())]);
}

/** The parts and the views every route module reads. */
export class Api {
  readonly chain: Chain;
  readonly pool: Mempool;
  readonly params: NetworkParams;
  readonly history: History;
  private readonly limitWork: number;
  /** record counts and sizes of blocks, so block lists need not decode whole blocks again */
  private readonly summaries = new Map<string, { records: number; size: number }>();

  /** the name a presence entry's number stands for (numbers are never given twice) */
  readonly nameOfRef = (ref: number): string | undefined => nameOfRef(this.chain.state, ref);

  constructor(readonly ctx: ApiContext) {
    this.chain = ctx.chain;
    this.pool = ctx.pool;
    this.params = ctx.chain.params;
    this.history = new History(ctx.chain, ctx.log);
    this.limitWork = Number(workFromBits(this.params.powLimitBits));
  }

  /** Difficulty of a block's bits: its work relative to a block at the proof-of-work limit. */
  difficultyOf(bits: number): number {
    return Number(workFromBits(bits)) / this.limitWork;
  }

  /**
   * Hashes per second over the `window` blocks ending at `e`, from their work and time span.
   * Genesis times are fixed in the network parameters, often long before the first block, so
   * spans that start at genesis say nothing about mining: estimates start at block 1.
   */
  hashrateAt(e: IndexEntry, window = HASHRATE_WINDOW): number {
    const from = this.chain.main[Math.max(1, e.height - window)];
    if (from === undefined || from === e) return 0;
    const span = e.header.time - from.header.time;
    return span > 0 ? Number(e.work - from.work) / span : 0;
  }

  /** A block as block lists show it. */
  async summaryOf(e: IndexEntry): Promise<Json> {
    let s = this.summaries.get(e.hex);
    if (s === undefined) {
      const bytes = await this.chain.getBlockBytes(e.hex);
      const v = bytes === undefined ? undefined : decode(bytes);
      const recs = Array.isArray(v) && Array.isArray(v[1]) ? v[1].length : 0;
      s = { records: recs, size: bytes?.length ?? 0 };
      if (this.summaries.size >= MAX_SUMMARIES) this.summaries.delete(this.summaries.keys().next().value as string);
      this.summaries.set(e.hex, s);
    }
    return { hash: e.hex, height: e.height, time: e.header.time, bits: e.header.bits, nonce: e.header.nonce, prev: hashToHex(e.header.prev), records: s.records, size: s.size };
  }

  /** GET /api/status, also the first event of the live stream. */
  status(): Json {
    const { chain, params: p, ctx } = this;
    return {
      network: p.name,
      height: chain.tip.height,
      tip: chain.tip.hex,
      work: chain.tip.work.toString(),
      bits: chain.tip.header.bits,
      time: chain.tip.header.time,
      difficulty: this.difficultyOf(chain.tip.header.bits),
      networkHashrate: Math.round(this.hashrateAt(chain.tip)),
      idealBlockTime: p.idealBlockTime,
      peers: ctx.peers().length,
      pending: this.pool.size,
      hashrate: ctx.hashrate(),
      syncing: ctx.syncing(),
      sync: ctx.syncProgress?.() ?? null,
      genesis: chain.genesis.hex,
    };
  }

  /** A serving node's binding as the API shows it (online only until it expires); height null while pending. */
  bindingJson(b: Pick<BindingSlot, 'node' | 'status' | 'expires' | 'seq'>, height: number | null): Json {
    return {
      node: toHex(b.node),
      status: b.status === 1 && b.expires > this.chain.clock() ? 'online' : 'offline',
      expires: b.expires,
      seq: b.seq,
      confirmed: height !== null,
      height,
    };
  }

  /** An address in this network's bech32m form, or why it is not one. */
  parseAddress(s: string): Uint8Array | string {
    try {
      return decodeAddress(this.params.addressPrefix, s);
    } catch (e) {
      return (e as Error).message;
    }
  }

  /** One page of a history key, newest first, each item with its record and block time; pending records that touch the key follow. */
  async historyPage(key: string, offset: number, limit: number): Promise<Json & { total: number; pending: unknown[] }> {
    const { chain, history } = this;
    await historySettled(history);
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
        record: rec === undefined ? null : recordJson(rec.body, this.nameOfRef),
      };
    });
    const pending = this.pool
      .list()
      .map((e) => ({ e, delta: keysOf(e.rec.body, this.params.namePriceBase, this.params.receiptRate, this.nameOfRef).get(key) }))
      .filter((x) => x.delta !== undefined)
      .slice(0, MAX_PAGE)
      .map(({ e, delta }) => ({ id: toHex(e.rec.id), kind: KIND_NAMES[e.rec.body.kind], added: e.added, delta: delta ?? 0, record: recordJson(e.rec.body, this.nameOfRef) }));
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
  }
}
