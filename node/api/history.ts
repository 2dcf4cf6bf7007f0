// The explorer's history index: which main-chain records touched a name, an address or a node,
// newest last. The chain keeps only current state (and undo data), so "what happened to alice"
// needs its own index. It lives in memory and follows the main chain: on start it reads the
// chain from genesis in the background (yielding to the event loop), then on every tip change it
// disconnects what left the main chain and connects what joined it, so a reorganisation is
// reflected exactly. Memory is about one small object per (record, key) pair; a persistent index
// written in the chain's own batches is the way to go once chains are long.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { toHex } from '../../core/hash.ts';
import { addressOf } from '../../core/address.ts';
import { Kind, type KindCode, type RecordBody } from '../../core/records.ts';
import { nameFee } from '../../core/names.ts';
import { nameOfRef } from '../../core/state.ts';
import type { Chain, IndexEntry, TipChange } from '../../consensus/chain.ts';
import type { Block } from '../../core/block.ts';
import { silentLogger, type Logger } from '../../core/log.ts';

export interface Ref {
  height: number;
  /** block hash (display hex) */
  block: string;
  /** position of the record in its block */
  index: number;
  /** record id (hex) */
  id: string;
  kind: KindCode;
  /** balance change of the address (address keys only, 0 when the record moved no money) */
  delta: number;
}

export const historyKey = {
  name: (name: string): string => `n:${name}`,
  address: (addrHex: string): string => `a:${addrHex}`,
  node: (idHex: string): string => `d:${idHex}`,
};

/**
 * The keys a record touches, with the balance change of each address key: the fee every signed
 * record pays, a name's price burned at `namePriceBase`, a transfer, a call's settlement (between
 * the two nodes' own accounts, which are their ids).
 */
export function keysOf(body: RecordBody, namePriceBase: number, receiptRate: number, nameOfRef: (ref: number) => string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  // (addr and node are functions of the module, not closures made per record: under tsx each
  // closure made is also named through Object.defineProperty, an eighth of indexing a block)
  if (body.kind === Kind.Coinbase) {
    addr(out, body.rewardAddress, body.amount);
    return out;
  }
  const signer = addressOf(body.pubkey);
  addr(out, signer, -body.fee);
  switch (body.kind) {
    case Kind.NodeAnnounce:
      node(out, signer);
      break;
    case Kind.NameCommit:
      break;
    case Kind.NameClaim:
    case Kind.NameRenew:
      out.set(historyKey.name(body.name), 0);
      addr(out, signer, -nameFee(body.name, namePriceBase));
      break;
    case Kind.NameTransfer:
      out.set(historyKey.name(body.name), 0);
      addr(out, addressOf(body.newOwner), 0);
      for (const n of body.delegates) node(out, n);
      break;
    case Kind.NameDelegate:
      out.set(historyKey.name(body.name), 0);
      for (const n of body.nodes) node(out, n);
      break;
    case Kind.Binding:
      out.set(historyKey.name(body.name), 0);
      node(out, body.node);
      break;
    case Kind.Presence:
      node(out, signer);
      for (const e of body.entries) {
        const name = nameOfRef(e.ref);
        if (name !== undefined) out.set(historyKey.name(name), 0);
      }
      break;
    case Kind.Transfer:
      addr(out, signer, -body.amount);
      addr(out, body.to, body.amount);
      break;
    case Kind.CallReceipt: {
      const owed = (body.ended - body.answered) * receiptRate;
      node(out, body.orig);
      node(out, body.term);
      addr(out, body.orig, -owed);
      addr(out, body.term, owed);
      break;
    }
  }
  return out;
}

/** An address key of keysOf's, its balance change added to what the record already moved there. */
function addr(out: Map<string, number>, a: Uint8Array, delta: number): void {
  const k = historyKey.address(toHex(a));
  out.set(k, (out.get(k) ?? 0) + delta);
}

/** A node key of keysOf's (an empty id names no node). */
function node(out: Map<string, number>, id: Uint8Array): void {
  if (id.length > 0) out.set(historyKey.node(toHex(id)), 0);
}

/** Most bytes of block bodies the index holds ahead of indexing them (past it, they are read from the store). */
const MAX_ARRIVED_BYTES = 32 << 20;

export class History {
  private readonly refs = new Map<string, Ref[]>();
  /** the main-chain blocks indexed so far, genesis first */
  private readonly indexed: IndexEntry[] = [];
  /** keys each indexed block added refs to, parallel to `indexed`, so a disconnect touches only those */
  private readonly touched: string[][] = [];
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  /**
   * Why indexing stopped short of the tip (a main-chain block whose body is missing or does not
   * read: a damaged store). The index then serves what it has; the next tip change tries again.
   */
  failure: string | null = null;
  /**
   * Bodies of main-chain blocks not indexed yet, as the tip events bring them (hex -> block): the
   * index takes them from here, not from the store. Read back and decoded again, each block of a
   * sync cost the index a store read and a decoding (the chain keeps only its last 64 blocks).
   */
  private readonly arrived = new Map<string, Block>();
  private arrivedBytes = 0;
  private readonly onTip = (c: TipChange): void => {
    this.failure = null;
    for (const e of c.disconnected) this.takeArrived(e.hex);
    for (let i = 0; i < c.connected.length; i++) {
      const b = c.connectedBlocks[i];
      if (this.arrived.has(c.connected[i].hex)) continue;
      if (this.arrivedBytes + b.size > MAX_ARRIVED_BYTES) break;
      this.arrived.set(c.connected[i].hex, b);
      this.arrivedBytes += b.size;
    }
    this.kick();
  };

  /** The body of a block from `arrived`, taken out of it (undefined when it is not there). */
  private takeArrived(hex: string): Block | undefined {
    const b = this.arrived.get(hex);
    if (b === undefined) return undefined;
    this.arrived.delete(hex);
    this.arrivedBytes -= b.size;
    return b;
  }

  constructor(
    private readonly chain: Chain,
    private readonly log: Logger = silentLogger,
  ) {}

  start(): void {
    this.chain.on('tip', this.onTip);
    this.kick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.chain.off('tip', this.onTip);
    await this.running;
    this.arrived.clear();
    this.arrivedBytes = 0;
  }

  /** Height up to which the index matches the main chain, -1 before genesis is read. */
  get height(): number {
    const top = this.indexed[this.indexed.length - 1];
    return top !== undefined && this.chain.isMain(top) ? top.height : -1;
  }

  /** True when every main-chain block up to the tip is indexed. */
  get complete(): boolean {
    return this.height === this.chain.tip.height && this.indexed[this.indexed.length - 1] === this.chain.tip;
  }

  /** Resolves once the index has caught up with the tip as it is now (tests and first requests), or cannot. */
  async settled(): Promise<void> {
    while (!this.stopped && !this.complete && this.failure === null) {
      this.kick();
      await this.running;
    }
  }

  /** Refs of a key, newest first, one page. */
  page(key: string, offset: number, limit: number): { total: number; items: Ref[] } {
    const all = this.refs.get(key) ?? [];
    const end = Math.max(0, all.length - offset);
    const start = Math.max(0, end - limit);
    return { total: all.length, items: all.slice(start, end).reverse() };
  }

  all(key: string): readonly Ref[] {
    return this.refs.get(key) ?? [];
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.catchUp();
        } while (this.again && !this.stopped && this.failure === null);
      } catch (e) {
        this.fail(`reading the chain failed: ${(e as Error).message}`);
      } finally {
        this.running = null;
      }
    })();
  }

  private async catchUp(): Promise<void> {
    let steps = 0;
    while (!this.stopped) {
      const top = this.indexed[this.indexed.length - 1];
      if (top !== undefined && !this.chain.isMain(top)) {
        this.disconnect(top);
        continue;
      }
      const nextHeight = top === undefined ? 0 : top.height + 1;
      const next = this.chain.main[nextHeight];
      if (next === undefined) return;
      const block = this.takeArrived(next.hex) ?? (await this.chain.getBlock(next.hex));
      if (this.stopped) return;
      // A main-chain block without a body cannot happen in a sound store; stop rather than spin,
      // and try again on the next tip change.
      if (block === undefined) {
        this.fail(`block ${next.height} (${next.hex}) has no body in the store`);
        return;
      }
      // A reorganisation during the read: look again at what is main now.
      if (!this.chain.isMain(next) || this.indexed[this.indexed.length - 1] !== top) continue;
      this.connect(next, block);
      if (++steps % 64 === 0) await yieldToLoop();
    }
  }

  private fail(why: string): void {
    if (this.failure === null) this.log.warn(`history index stopped at height ${this.height}: ${why}`);
    this.failure = why;
    // stopped short: what the tip events brought is read again from the store when it resumes
    this.arrived.clear();
    this.arrivedBytes = 0;
  }

  private connect(e: IndexEntry, block: Block): void {
    const touched = new Set<string>();
    block.records.forEach((r, index) => {
      const id = toHex(r.id);
      for (const [key, delta] of keysOf(r.body, this.chain.params.namePriceBase, this.chain.params.receiptRate, (ref) => nameOfRef(this.chain.state, ref))) {
        let list = this.refs.get(key);
        if (list === undefined) this.refs.set(key, (list = []));
        list.push({ height: e.height, block: e.hex, index, id, kind: r.body.kind, delta });
        touched.add(key);
      }
    });
    this.indexed.push(e);
    this.touched.push([...touched]);
  }

  /** Blocks leave from the top only, so their refs are the last ones of every list. */
  private disconnect(e: IndexEntry): void {
    this.indexed.pop();
    for (const key of this.touched.pop() ?? []) {
      const list = this.refs.get(key);
      if (list === undefined) continue;
      while (list.length > 0 && list[list.length - 1].block === e.hex) list.pop();
      if (list.length === 0) this.refs.delete(key);
    }
  }
}
