// The pool of pending records: verified, usable for routing before they are mined, and the
// source of block templates. Each record is checked alone against the tip state, so two
// conflicting bindings for one name are both kept; the template takes them in arrival order
// and whichever the chain confirms first settles the conflict (the other then drops out).
//
// The pool reads the chain through PoolChain (the tip's state and the next block's context) and
// follows it through update(), which the node calls on every tip change: the chain knows nothing
// of the pool. add() and update() are synchronous, and the chain swaps its state and tip in one
// step after each store write, so a record is always checked against one whole tip.
import { EventEmitter } from 'node:events';
import { ValidationError } from './errors.ts';
import { toHex } from './hash.ts';
import { Kind, checkRecordSignature, type Rec, type RecordBody, type Binding } from './records.ts';
import { StateView, applyRecord, getAccount, keys, newTally, type ApplyContext, type StateReader } from './state.ts';
import { addressOf } from './address.ts';
import { rulersOf } from './names.ts';
import type { SigCache } from './sig.ts';
import type { Block } from './block.ts';

/** What the pool reads of the chain: the tip's state, and the context a next block would have. */
export interface PoolChain {
  readonly state: StateReader;
  nextContext(): ApplyContext;
}

export interface PoolEntry {
  rec: Rec;
  /** ms since epoch when it entered the pool */
  added: number;
}

/**
 * Events: `record`, a record from outside entered the pool (to be gossiped); `added` and
 * `removed`, every change of what the pool holds, whatever caused it (what a copy on disk follows).
 */
export interface MempoolEvents {
  record: [Rec];
  added: [Rec];
  removed: [idHex: string];
}

export class Mempool extends EventEmitter<MempoolEvents> {
  private readonly entries = new Map<string, PoolEntry>();
  /** bumped on every change, so a miner knows when its template is stale */
  version = 0;

  constructor(
    private readonly chain: PoolChain,
    private readonly network: string,
    private readonly sigs: SigCache,
    readonly maxRecords = 50_000,
  ) {
    super();
  }

  get size(): number {
    return this.entries.size;
  }

  has(idHex: string): boolean {
    return this.entries.has(idHex);
  }

  get(idHex: string): PoolEntry | undefined {
    return this.entries.get(idHex);
  }

  list(): PoolEntry[] {
    return [...this.entries.values()];
  }

  /** Checks a record against the state it would be mined on; throws ValidationError with the reason. */
  private check(rec: Rec, state: StateReader, ctx: ApplyContext): void {
    const b = rec.body;
    if (b.kind === Kind.Coinbase) throw new ValidationError('bad-coinbase-position', 'a coinbase cannot be pending');
    if (!this.sigs.has(rec.id)) {
      checkRecordSignature(this.network, b);
      this.sigs.add(rec.id);
    }
    const view = new StateView(state);
    if (b.kind === Kind.Transfer) {
      // A sender's pending transfers form a chain of nonces: check this one after them.
      const addr = addressOf(b.pubkey);
      const s = this.senders.get(toHex(addr));
      if (s !== undefined) {
        const a = getAccount(state, addr);
        view.set(keys.account(addr), { ...a, balance: Math.max(0, a.balance - s.spent), nonce: a.nonce + s.count });
      }
    }
    this.afterRulers(view, b, ctx);
    applyRecord(view, b, ctx);
  }

  /** Pending claims by name: a name whose domain or number block is being claimed too applies after it. */
  private readonly claims = new Map<string, Rec>();

  /**
   * A claim is checked on the state its block would have: after the pending claims of the names
   * that rule it (its domain, the number blocks above it), since the template takes records in
   * arrival order and a node reveals its domain and its users' addresses together, an operator
   * a number block and the numbers it allocates from it.
   */
  private afterRulers(view: StateView, b: RecordBody, ctx: ApplyContext): void {
    if (b.kind !== Kind.NameClaim) return;
    for (const name of rulersOf(b.name)) {
      const rc = this.claims.get(name);
      if (rc === undefined) continue;
      try {
        applyRecord(view, rc.body, ctx);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
      }
    }
  }

  private readonly senders = new Map<string, { count: number; spent: number }>();

  /** Pending bindings by name, in arrival order: routing reads them on every call. */
  private readonly bindings = new Map<string, Rec[]>();

  private track(rec: Rec, sign: 1 | -1): void {
    const b = rec.body;
    if (b.kind === Kind.Binding) {
      const list = this.bindings.get(b.name);
      if (sign === 1) {
        if (list === undefined) this.bindings.set(b.name, [rec]);
        else list.push(rec);
      } else if (list !== undefined) {
        const rest = list.filter((r) => r !== rec);
        if (rest.length === 0) this.bindings.delete(b.name);
        else this.bindings.set(b.name, rest);
      }
    }
    if (b.kind === Kind.NameClaim) {
      if (sign === 1) this.claims.set(b.name, rec);
      else if (this.claims.get(b.name) === rec) this.claims.delete(b.name);
    }
    if (b.kind !== Kind.Transfer) return;
    const k = toHex(addressOf(b.pubkey));
    const s = this.senders.get(k) ?? { count: 0, spent: 0 };
    s.count += sign;
    s.spent += sign * (b.amount + b.fee);
    if (s.count <= 0) this.senders.delete(k);
    else this.senders.set(k, s);
  }

  /**
   * A record whose signatures its maker checked already (a call receipt this node signed one
   * half of and verified the other): the pool, and block validation after it, need not check
   * them again. Only for a record every signature of which was made or verified by the caller.
   */
  signaturesChecked(id: Uint8Array): void {
    this.sigs.add(id);
  }

  /**
   * A record from outside (a peer, the API, this node's own services): checked against the tip,
   * added, and announced with a 'record' event. Throws ValidationError with the reason.
   */
  add(rec: Rec): void {
    this.insert(rec, this.chain.state, this.chain.nextContext());
    this.emit('record', rec);
  }

  /**
   * The tip moved: records mined in the connected blocks leave the pool, the rest are checked
   * again, and records of disconnected blocks come back if they still apply (a transfer of money
   * that no longer exists does not). Blocks in TipChange order: connected oldest first,
   * disconnected newest first.
   */
  update(connected: readonly Block[], disconnected: readonly Block[]): void {
    for (const b of connected) for (const r of b.records) this.remove(toHex(r.id));
    const state = this.chain.state;
    const ctx = this.chain.nextContext();
    this.revalidate(state, ctx);
    // oldest first, so a sender's transfers come back in nonce order
    for (let i = disconnected.length - 1; i >= 0; i--) {
      const records = disconnected[i].records;
      for (let j = 1; j < records.length; j++) {
        // A record the new branch also confirmed fails its own replay rule (nonce, sequence, commitment) here.
        if (this.entries.has(toHex(records[j].id))) continue;
        try {
          this.insert(records[j], state, ctx);
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
        }
      }
    }
  }

  /**
   * A record the pool held before the node restarted: checked against the tip as any other,
   * kept quietly (peers get the pending records when they connect); false when it no longer applies.
   */
  restore(rec: Rec): boolean {
    try {
      this.insert(rec, this.chain.state, this.chain.nextContext());
      return true;
    } catch (err) {
      if (err instanceof ValidationError) return false;
      throw err;
    }
  }

  private insert(rec: Rec, state: StateReader, ctx: ApplyContext): void {
    const hex = toHex(rec.id);
    if (this.entries.has(hex)) throw new ValidationError('already-pending', 'record is already pending');
    this.check(rec, state, ctx);
    if (this.entries.size >= this.maxRecords) throw new ValidationError('pool-full', `pending pool holds ${this.maxRecords} records`);
    this.entries.set(hex, { rec, added: Date.now() });
    this.track(rec, 1);
    this.version++;
    this.emit('added', rec);
  }

  remove(idHex: string): boolean {
    const e = this.entries.get(idHex);
    if (e === undefined) return false;
    this.entries.delete(idHex);
    this.track(e.rec, -1);
    this.version++;
    this.emit('removed', idHex);
    return true;
  }

  /** After the tip moved: drop what no longer applies on its own; returns what was dropped. */
  private revalidate(state: StateReader, ctx: ApplyContext): Rec[] {
    const dropped: Rec[] = [];
    // Transfers are checked cumulatively (nonce chains), everything else on its own.
    const transfers = new StateView(state);
    for (const [hex, e] of this.entries) {
      const cumulative = e.rec.body.kind === Kind.Transfer;
      const view = cumulative ? transfers.child() : new StateView(state);
      try {
        this.afterRulers(view, e.rec.body, ctx);
        applyRecord(view, e.rec.body, ctx);
        if (cumulative) transfers.merge(view);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        this.remove(hex);
        dropped.push(e.rec);
      }
    }
    if (dropped.length > 0) this.version++;
    return dropped;
  }

  /** Records that apply one after another on `state`, in arrival order, within the limits. */
  select(state: StateReader, blockCtx: ApplyContext, maxBytes: number, maxCount: number): { recs: Rec[]; fees: number } {
    const ctx = { ...blockCtx, tally: newTally() };
    const view = new StateView(state);
    const recs: Rec[] = [];
    let bytes = 0;
    let fees = 0;
    for (const e of this.entries.values()) {
      if (recs.length >= maxCount) break;
      if (bytes + e.rec.bytes.length + 8 > maxBytes) continue;
      const child = view.child();
      const tallyBefore = { paid: ctx.tally.paid, pairs: new Map(ctx.tally.pairs) };
      try {
        fees += applyRecord(child, e.rec.body, ctx);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        ctx.tally = tallyBefore;
        continue;
      }
      view.merge(child);
      recs.push(e.rec);
      bytes += e.rec.bytes.length + 8;
    }
    return { recs, fees };
  }

  /**
   * The pending bindings of a name, the highest sequence per serving node, in the order the kept
   * ones arrived (the last is the freshest), for routing before confirmation.
   */
  pendingBindings(name: string): Binding[] {
    const list = this.bindings.get(name);
    if (list === undefined) return [];
    const best = new Map<string, Binding>();
    for (const r of list) {
      const b = r.body as Binding;
      const k = toHex(b.node);
      const cur = best.get(k);
      if (cur === undefined || b.seq > cur.seq) {
        best.delete(k); // re-inserted last: it is the newer of the two
        best.set(k, b);
      }
    }
    return [...best.values()];
  }
}
