// The pool of pending records: verified, usable for routing before they are mined, and the
// source of block templates. Each record is checked alone against the tip state (so two
// conflicting bindings for one name are both kept, and whichever the chain confirms first
// settles the conflict), except what it spends: a signer's records are checked one after
// another on its account, as they will be mined, so a key cannot promise the same coins to
// several records.
//
// The pool is bounded (records and bytes) and nobody can freeze it (docs/economics.md): when
// it is full, a newcomer takes the place of a record worth less, first from a signer holding
// more than its share of the pool, else the lowest fee rate; only a signer's last record
// leaves, so none of its others is stranded. Templates take records by fee rate, each
// signer's in the order they arrived (a sender's nonces, a domain before its addresses).
//
// The pool reads the chain through PoolChain (the tip's state and the next block's context) and
// follows it through update(), which the node calls on every tip change: the chain knows nothing
// of the pool. add() and update() are synchronous, and the chain swaps its state and tip in one
// step after each store write, so a record is always checked against one whole tip.
import { EventEmitter } from 'node:events';
import { ValidationError } from './errors.ts';
import { toHex } from './hash.ts';
import { Kind, checkRecordSignature, feeRate, type NodeAnnounce, type Rec, type RecordBody, type Presence } from './records.ts';
import { StateView, applyRecord, getAccount, keys, nameOfRef, type ApplyContext, type StateReader } from './state.ts';
import { addressOf, nodeIdOf } from './address.ts';
import { rulersOf } from './names.ts';
import type { SigCache } from './sig.ts';
import type { Block } from './block.ts';

/** What the pool reads of the chain: the tip's state, and the context a next block would have. */
export interface PoolChain {
  readonly state: StateReader;
  nextContext(): ApplyContext;
}

/** A pending binding of a name to a node: a Binding record, or one entry of a node's Presence record. */
export interface PendingBinding {
  rec: Rec;
  node: Uint8Array;
  status: number;
  expires: number;
  seq: number;
}

/**
 * Versions of one presence record (one node, one sequence) the pool takes: each replaces the one
 * before with more of the node's changes, so a node pays for one record per block, not one per
 * change; the cap bounds what a node can make its peers relay for the one record it pays for
 * (32 versions of at most 4 KB), and an honest node past it starts a record with the next sequence.
 */
export const MAX_PRESENCE_VERSIONS = 32;

export interface PoolEntry {
  rec: Rec;
  /** ms since epoch when it entered the pool */
  added: number;
}

/** What the pool keeps of one record beside it: who pays for it, what it spends, what it pays per byte. */
interface Held extends PoolEntry {
  hex: string;
  signer: string;
  /** units it takes from its signer's account (fee, name price, amount, settlement) */
  spent: number;
  rate: number;
}

/** One signer's pending records, in arrival order, and what they spend together. */
interface Signer {
  held: Held[];
  spent: number;
  /** pending transfers: the nonces they use up */
  transfers: number;
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

export interface MempoolLimits {
  /** records held at most (default 50,000) */
  maxRecords?: number;
  /** bytes of records held at most (default 32 MB: 32 blocks' worth) */
  maxBytes?: number;
}

/** The key whose account pays for a record: its signer (a receipt's originating node). */
function payerOf(b: RecordBody): Uint8Array {
  return b.kind === Kind.Coinbase ? b.rewardAddress : addressOf(b.pubkey);
}

/** Adds `item` to the list `m` keeps under `key` (the pool's indexes by name and by node). */
function addTo<T>(m: Map<string, T[]>, key: string, item: T): void {
  const list = m.get(key);
  if (list === undefined) m.set(key, [item]);
  else list.push(item);
}

/** Takes what `gone` picks out of the list under `key`; a list left empty goes too. */
function removeFrom<T>(m: Map<string, T[]>, key: string, gone: (x: T) => boolean): void {
  const list = m.get(key);
  if (list === undefined) return;
  const rest = list.filter((x) => !gone(x));
  if (rest.length === 0) m.delete(key);
  else m.set(key, rest);
}

export class Mempool extends EventEmitter<MempoolEvents> {
  private readonly entries = new Map<string, Held>();
  private signers = new Map<string, Signer>();
  private bytes = 0;
  /** bumped on every change, so a miner knows when its template is stale */
  version = 0;
  /**
   * bumped when what routing reads of the pool changes (a binding, a presence record or a node
   * announcement comes or goes), so a route read before is known to be stale
   */
  routingVersion = 0;
  readonly maxRecords: number;
  readonly maxBytes: number;

  constructor(
    private readonly chain: PoolChain,
    private readonly network: string,
    private readonly sigs: SigCache,
    limits: MempoolLimits = {},
  ) {
    super();
    this.maxRecords = limits.maxRecords ?? 50_000;
    this.maxBytes = limits.maxBytes ?? 32_000_000;
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

  /** Records one signer (its address, hex) holds in the pool. */
  heldBy(addrHex: string): number {
    return this.signers.get(addrHex)?.held.length ?? 0;
  }

  /**
   * Checks a record against the state it would be mined on, after its signer's pending records
   * (what they spend and the nonces they use); returns what it takes from the signer's account.
   * Throws ValidationError with the reason.
   */
  private check(rec: Rec, state: StateReader, ctx: ApplyContext, signers: Map<string, Signer>): number {
    const b = rec.body;
    if (b.kind === Kind.Coinbase) throw new ValidationError('bad-coinbase-position', 'a coinbase cannot be pending');
    if (!this.sigs.has(rec.id)) {
      checkRecordSignature(this.network, b);
      this.sigs.add(rec.id);
    }
    const view = new StateView(state);
    this.afterRulers(view, b, ctx);
    // The signer's account as its pending records leave it (set after the rulers' claims, which
    // may be its own and already counted there).
    const payer = payerOf(b);
    const s = signers.get(toHex(payer));
    const a = getAccount(state, payer);
    const before = s === undefined ? a : { ...a, balance: Math.max(0, a.balance - s.spent), nonce: a.nonce + s.transfers };
    view.set(keys.account(payer), before);
    applyRecord(view, rec, ctx);
    return Math.max(0, before.balance - getAccount(view, payer).balance);
  }

  /** Pending claims by name: a name whose domain or number block is being claimed too applies after it. */
  private readonly claims = new Map<string, Rec>();

  /**
   * A claim is checked on the state its block would have: after the pending claims of the names
   * that rule it (its domain, the number blocks above it), since a node reveals its domain and
   * its users' addresses together, an operator a number block and the numbers it allocates from it.
   */
  private afterRulers(view: StateView, b: RecordBody, ctx: ApplyContext): void {
    if (b.kind !== Kind.NameClaim) return;
    for (const name of rulersOf(b.name)) {
      const rc = this.claims.get(name);
      if (rc === undefined) continue;
      try {
        applyRecord(view, rc, ctx);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
      }
    }
  }

  /** Pending node announcements by node id (hex): routing reads a node's address on every call. */
  private readonly announces = new Map<string, NodeAnnounce[]>();

  /** Pending bindings by name, in arrival order: routing reads them on every call. */
  private readonly bindings = new Map<string, PendingBinding[]>();
  /** the names each pending presence record binds (the state that gave them may move on) */
  private readonly presenceNames = new Map<Rec, string[]>();

  private track(rec: Rec, sign: 1 | -1): void {
    const b = rec.body;
    if (b.kind === Kind.Binding || b.kind === Kind.Presence || b.kind === Kind.NodeAnnounce) this.routingVersion++;
    if (b.kind === Kind.Binding) {
      if (sign === 1) addTo(this.bindings, b.name, { rec, node: b.node, status: b.status, expires: b.expires, seq: b.seq });
      else removeFrom(this.bindings, b.name, (x) => x.rec === rec);
    }
    if (b.kind === Kind.Presence) {
      if (sign === 1) {
        const node = addressOf(b.pubkey);
        const names: string[] = [];
        for (const e of b.entries) {
          // it was checked against this state: every number has its name
          const name = nameOfRef(this.chain.state, e.ref) as string;
          names.push(name);
          addTo(this.bindings, name, { rec, node, status: e.status, expires: e.expires, seq: b.seq });
        }
        this.presenceNames.set(rec, names);
      } else {
        for (const name of this.presenceNames.get(rec) ?? []) removeFrom(this.bindings, name, (x) => x.rec === rec);
        this.presenceNames.delete(rec);
      }
    }
    if (b.kind === Kind.NodeAnnounce) {
      const k = toHex(nodeIdOf(b.pubkey));
      if (sign === 1) addTo(this.announces, k, b);
      else removeFrom(this.announces, k, (x) => x === b);
    }
    if (b.kind === Kind.NameClaim) {
      if (sign === 1) this.claims.set(b.name, rec);
      else if (this.claims.get(b.name) === rec) this.claims.delete(b.name);
    }
  }

  /** Counts a held record into a signer map (the pool's own, or one being rebuilt). */
  private static join(signers: Map<string, Signer>, h: Held): void {
    let s = signers.get(h.signer);
    if (s === undefined) {
      s = { held: [], spent: 0, transfers: 0 };
      signers.set(h.signer, s);
    }
    s.held.push(h);
    s.spent += h.spent;
    if (h.rec.body.kind === Kind.Transfer) s.transfers++;
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
    // (an empty pool, as while syncing, spares a hex key per record)
    if (this.entries.size > 0) for (const b of connected) for (const r of b.records) this.remove(toHex(r.id));
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

  /** per signer, the sequence of its last presence record and how many versions of it were taken */
  private readonly presenceVersions = new Map<string, { seq: number; versions: number }>();

  /**
   * A node's presence record with the sequence of one it has pending replaces that one, if that is
   * its signer's last record (so the order its records are mined in stays), the newcomer carries
   * every name the old one did, and the sequence has not had MAX_PRESENCE_VERSIONS versions.
   * Returns the record it replaces; throws when it may not; undefined for a record that replaces
   * nothing.
   */
  private replaced(rec: Rec, signer: string): Held | undefined {
    const b = rec.body;
    if (b.kind !== Kind.Presence) return undefined;
    const s = this.signers.get(signer);
    let same: Held | undefined;
    for (const h of s?.held ?? []) if (h.rec.body.kind === Kind.Presence && h.rec.body.seq === b.seq) same = h;
    if (same === undefined || s === undefined) return undefined;
    if (same !== s.held[s.held.length - 1]) throw new ValidationError('replacement-refused', `presence sequence ${b.seq} is pending and followed by other records of its node; use a higher sequence`);
    const old = same.rec.body as Presence;
    let i = 0;
    for (const e of b.entries) if (i < old.entries.length && e.ref === old.entries[i].ref) i++;
    if (i < old.entries.length) throw new ValidationError('replacement-refused', `a presence record replacing pending sequence ${b.seq} must carry every name that one does`);
    const v = this.presenceVersions.get(signer);
    if (v !== undefined && v.seq === b.seq && v.versions >= MAX_PRESENCE_VERSIONS) throw new ValidationError('replacement-refused', `presence sequence ${b.seq} was replaced ${MAX_PRESENCE_VERSIONS - 1} times; use a higher sequence`);
    return same;
  }

  private insert(rec: Rec, state: StateReader, ctx: ApplyContext): void {
    const hex = toHex(rec.id);
    if (this.entries.has(hex)) throw new ValidationError('already-pending', 'record is already pending');
    const signer = toHex(payerOf(rec.body));
    const old = this.replaced(rec, signer);
    if (old !== undefined) {
      // checked with the old one's spending out of the signer's account; it comes back if the
      // newcomer fails, and only an accepted newcomer counts as a version
      const seq = (rec.body as Presence).seq;
      const versions = this.presenceVersions.get(signer)?.versions ?? 1;
      this.remove(old.hex);
      try {
        this.insert(rec, state, ctx);
      } catch (err) {
        this.insert(old.rec, state, ctx);
        this.presenceVersions.set(signer, { seq, versions });
        throw err;
      }
      this.presenceVersions.set(signer, { seq, versions: versions + 1 });
      return;
    }
    const spent = this.check(rec, state, ctx, this.signers);
    const h: Held = { rec, added: Date.now(), hex, signer, spent, rate: feeRate(rec) };
    this.makeRoom(h);
    if (rec.body.kind === Kind.Presence) {
      const v = this.presenceVersions.get(signer);
      if (v !== undefined && v.seq === rec.body.seq) v.versions++;
      else this.presenceVersions.set(signer, { seq: rec.body.seq, versions: 1 });
    }
    this.entries.set(hex, h);
    this.bytes += rec.bytes.length;
    Mempool.join(this.signers, h);
    this.track(rec, 1);
    this.version++;
    this.emit('added', rec);
  }

  /**
   * Frees room for a newcomer in a full pool, or refuses it with pool-full. Only a signer's last
   * record may leave (its others never depend on it). A signer past its share of the pool (the
   * limit divided among the signers in it, the newcomer's counted) gives way first, to anyone:
   * so one key, or a few, flooding the pool pushes out its own records, not others'. Past its
   * share, a newcomer may only replace a cheaper record of its own signer. Otherwise the record
   * of the lowest fee rate leaves, if the newcomer pays more per byte.
   */
  private makeRoom(h: Held): void {
    const size = h.rec.bytes.length;
    const full = (): boolean => this.entries.size + 1 > this.maxRecords || this.bytes + size > this.maxBytes;
    while (full()) {
      const count = this.signers.size + (this.signers.has(h.signer) ? 0 : 1);
      const share = Math.max(1, Math.floor(this.maxRecords / count));
      const own = this.signers.get(h.signer);
      let victim: Held | undefined;
      if (own !== undefined && own.held.length + 1 > share) {
        const last = own.held[own.held.length - 1];
        if (last.rate < h.rate) victim = last;
        else throw new ValidationError('pool-full', `the pending pool is full and this signer holds its share (${own.held.length} of ${this.entries.size} records); pay more per byte than its last one (${last.rate.toFixed(2)}) to replace it`);
      } else {
        let over: Held | undefined;
        let cheapest: Held | undefined;
        for (const s of this.signers.values()) {
          const last = s.held[s.held.length - 1];
          if (s.held.length > share && (over === undefined || last.rate < over.rate)) over = last;
          if (cheapest === undefined || last.rate < cheapest.rate) cheapest = last;
        }
        if (over !== undefined) victim = over;
        else if (cheapest !== undefined && cheapest.rate < h.rate) victim = cheapest;
        else throw new ValidationError('pool-full', `the pending pool is full (${this.entries.size} records, ${this.bytes} bytes) of records paying at least ${cheapest?.rate.toFixed(2) ?? '?'} per byte; pay more to enter`);
      }
      this.remove(victim.hex);
    }
  }

  remove(idHex: string): boolean {
    const e = this.entries.get(idHex);
    if (e === undefined) return false;
    const s = this.signers.get(e.signer);
    if (s !== undefined) {
      const i = s.held.indexOf(e);
      if (i >= 0) s.held.splice(i, 1);
      s.spent -= e.spent;
      if (e.rec.body.kind === Kind.Transfer) s.transfers--;
      if (s.held.length === 0) this.signers.delete(e.signer);
    }
    this.drop(e);
    if (!this.signers.has(e.signer)) this.presenceVersions.delete(e.signer);
    return true;
  }

  /** Takes a record out of everything but the signer accounts. */
  private drop(e: Held): void {
    this.entries.delete(e.hex);
    this.bytes -= e.rec.bytes.length;
    this.track(e.rec, -1);
    this.version++;
    this.emit('removed', e.hex);
  }

  /**
   * After the tip moved: every record is checked again, each signer's in arrival order on what
   * its earlier ones leave; what no longer applies (a spent balance, a used nonce, a commitment
   * too old to reveal) is dropped, and with it what its signer sent after it that now fails.
   */
  private revalidate(state: StateReader, ctx: ApplyContext): void {
    const kept = new Map<string, Signer>();
    const dropped: string[] = [];
    for (const [hex, e] of this.entries) {
      try {
        e.spent = this.check(e.rec, state, ctx, kept);
        Mempool.join(kept, e);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        dropped.push(hex);
      }
    }
    this.signers = kept;
    for (const hex of dropped) this.drop(this.entries.get(hex) as Held);
  }

  /**
   * Records for a block on `state`, within the limits: the best fee rate first among the signers'
   * next records, each signer's taken in arrival order, each applying after the ones before.
   */
  select(state: StateReader, ctx: ApplyContext, maxBytes: number, maxCount: number): { recs: Rec[]; fees: number } {
    const view = new StateView(state);
    const recs: Rec[] = [];
    let bytes = 0;
    let fees = 0;
    // a max-heap of each signer's next record by fee rate
    const heap: Array<{ list: Held[]; i: number }> = [];
    const rate = (x: { list: Held[]; i: number }): number => x.list[x.i].rate;
    const up = (k: number): void => {
      while (k > 0) {
        const p = (k - 1) >> 1;
        if (rate(heap[p]) >= rate(heap[k])) break;
        [heap[p], heap[k]] = [heap[k], heap[p]];
        k = p;
      }
    };
    const down = (k: number): void => {
      for (;;) {
        const l = 2 * k + 1;
        const r = l + 1;
        let m = k;
        if (l < heap.length && rate(heap[l]) > rate(heap[m])) m = l;
        if (r < heap.length && rate(heap[r]) > rate(heap[m])) m = r;
        if (m === k) return;
        [heap[m], heap[k]] = [heap[k], heap[m]];
        k = m;
      }
    };
    for (const s of this.signers.values()) {
      heap.push({ list: s.held, i: 0 });
      up(heap.length - 1);
    }
    while (heap.length > 0 && recs.length < maxCount) {
      const top = heap[0];
      const e = top.list[top.i];
      if (bytes + e.rec.bytes.length + 8 <= maxBytes) {
        const child = view.child();
        try {
          fees += applyRecord(child, e.rec, ctx);
          view.merge(child);
          recs.push(e.rec);
          bytes += e.rec.bytes.length + 8;
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
        }
      }
      top.i++;
      if (top.i < top.list.length) down(0);
      else {
        const last = heap.pop() as { list: Held[]; i: number };
        if (heap.length > 0) {
          heap[0] = last;
          down(0);
        }
      }
    }
    return { recs, fees };
  }

  /** The pending announcements of the node `nodeId` (20 bytes), in arrival order. */
  pendingAnnouncements(nodeId: Uint8Array): readonly NodeAnnounce[] {
    return this.announces.get(toHex(nodeId)) ?? [];
  }

  /**
   * The pending bindings of a name, the highest sequence per serving node, in the order the kept
   * ones arrived (the last is the freshest), for routing before confirmation.
   */
  pendingBindings(name: string): PendingBinding[] {
    const list = this.bindings.get(name);
    if (list === undefined) return [];
    const best = new Map<string, PendingBinding>();
    for (const b of list) {
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
