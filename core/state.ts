// The chain state (names, bindings, nodes, accounts, pending name commitments) and the rules
// that need it. State lives in memory as a map of immutable entries; a StateView overlays
// changes so a block (or a whole reorganisation) is checked before anything is committed, and
// the view yields the undo data that puts every touched key back.
import { encode, decode, asArray, asUint, asBytes, asString, asStringList, type Value } from './encoding.ts';
import { ValidationError } from './errors.ts';
import { bytesEqual, toBase64url, toHex } from './hash.ts';
import { addressOf } from './address.ts';
import { Kind, KIND_NAMES, commitmentOf, domainOf, ownDomainPrefix, type Rec, type RecordBody, type SignedBody, type CallReceipt } from './records.ts';
import { nameFee, rulersOf } from './names.ts';

export interface StateRules {
  nameLifetime: number;
  minCommitAge: number;
  maxCommitAge: number;
  maxBindingTtl: number;
  subsidy(height: number): number;
  /** least fee a record pays, in units per byte of its encoding (signatures included) */
  minFeeRate: number;
  /** units the originating node pays the terminating node per second of a receipted call */
  receiptRate: number;
  /** longest call a receipt may claim, in seconds */
  maxCallSeconds: number;
  /** a receipt's call must have ended at most this many seconds before its block's time */
  receiptMaxAge: number;
  /** units an ordinary name costs to claim or renew (core/names.ts scales it by length); burned */
  namePriceBase: number;
}

export interface NameEntry {
  t: 'name';
  owner: Uint8Array;
  expiry: number;
  seq: number;
  /** the nodes that serve the name besides its owner, in the owner's order of preference */
  delegates: Uint8Array[];
  since: number;
  /**
   * The name's number: given at its first claim, in claim order, and kept for good (a lapsed
   * name re-claimed keeps it), so a presence record names a user in a few bytes.
   */
  ref: number;
}
/** The name a number stands for (NameEntry.ref), and how many numbers were given. */
export interface RefEntry {
  t: 'ref';
  name: string;
}
export interface CountEntry {
  t: 'count';
  n: number;
}
/** What one serving node last said of a name. */
export interface BindingSlot {
  node: Uint8Array;
  status: number;
  expires: number;
  seq: number;
  height: number;
}
/**
 * A name's bindings, one slot per serving node, so nodes that serve one name never race each
 * other's sequence numbers. A slot leaves when its node stops serving the name; `floor` keeps the
 * highest sequence such a slot reached, and a new slot must start above it, so a node's old
 * bindings cannot be replayed when it serves the name again.
 */
export interface BindingEntry {
  t: 'binding';
  floor: number;
  slots: BindingSlot[];
}
export interface NodeEntry {
  t: 'node';
  pubkey: Uint8Array;
  sipUris: string[];
  p2pAddrs: string[];
  rewardAddress: Uint8Array;
  seq: number;
  since: number;
}
export interface AccountEntry {
  t: 'account';
  balance: number;
  nonce: number;
}
/** A name commitment: the height it was made at is all a reveal needs (the commitment binds the key). */
export interface CommitEntry {
  t: 'commit';
  height: number;
}
/** A call receipt seen on the chain, kept so the same call is never paid twice. */
export interface ReceiptEntry {
  t: 'receipt';
  height: number;
}
/** The commitments made at one height, so the ones never revealed can leave the state when they can no longer be. */
export interface CommitsAtEntry {
  t: 'commits';
  list: Uint8Array[];
}
export type Entry = NameEntry | BindingEntry | NodeEntry | AccountEntry | CommitEntry | ReceiptEntry | CommitsAtEntry | RefEntry | CountEntry;

const BINDING_PREFIX = 'b:';
const NODE_PREFIX = 'd:';

/** Bytes in a state key: base64url, two thirds the length of hex (the keys are stored as written). */
function keyOf(b: Uint8Array): string {
  return toBase64url(b);
}

/**
 * A name commitment as the state keeps it: its first 16 bytes. The entry binds nobody (the
 * commitment hashes the claimant's key, checked at the reveal), so two commitments sharing 128
 * bits (2^64 tries to make a pair, 2^128 to match another's) would only share one entry, and the
 * state and its undo data keep 16 bytes fewer per commitment.
 */
export function commitKey(c: Uint8Array): Uint8Array {
  return c.subarray(0, COMMIT_KEY_BYTES);
}
const COMMIT_KEY_BYTES = 16;

export const keys = {
  name: (name: string): string => `n:${name}`,
  binding: (name: string): string => BINDING_PREFIX + name,
  node: (id: Uint8Array): string => NODE_PREFIX + keyOf(id),
  account: (addr: Uint8Array): string => `a:${keyOf(addr)}`,
  commit: (c: Uint8Array): string => `c:${keyOf(commitKey(c))}`,
  receipt: (callId: Uint8Array): string => `r:${keyOf(callId)}`,
  commitsAt: (height: number): string => `h:${height}`,
  nameRef: (ref: number): string => `i:${ref.toString(36)}`,
  nameCount: 'm:names',
};

export function encodeEntry(e: Entry): Uint8Array {
  return encode(entryFields(e));
}

/** What encodeEntry encodes: the entry's fields in their fixed order. */
export function entryFields(e: Entry): Value[] {
  let f: Value[];
  switch (e.t) {
    case 'name':
      f = [e.owner, e.expiry, e.seq, e.delegates, e.since, e.ref];
      break;
    case 'binding':
      f = [e.floor, e.slots.map((x) => [x.node, x.status, x.expires, x.seq, x.height])];
      break;
    case 'node':
      f = [e.pubkey, e.sipUris, e.p2pAddrs, e.rewardAddress, e.seq, e.since];
      break;
    case 'account':
      f = [e.balance, e.nonce];
      break;
    case 'commit':
      f = [e.height];
      break;
    case 'receipt':
      f = [e.height];
      break;
    case 'commits':
      f = [e.list];
      break;
    case 'ref':
      f = [e.name];
      break;
    case 'count':
      f = [e.n];
      break;
  }
  return f;
}

export function decodeEntry(key: string, bytes: Uint8Array): Entry {
  const a = decode(bytes) as Value[];
  switch (key[0]) {
    case 'n':
      asArray(a, 6, key);
      return {
        t: 'name',
        owner: asBytes(a[0], 'owner'),
        expiry: asUint(a[1], 'expiry'),
        seq: asUint(a[2], 'seq'),
        delegates: asArray(a[3], [0, 64], 'delegates').map((d) => asBytes(d, 'delegate')),
        since: asUint(a[4], 'since'),
        ref: asUint(a[5], 'ref'),
      };
    case 'b': {
      asArray(a, 2, key);
      const slots = asArray(a[1], [0, 64], 'slots').map((v) => {
        const x = asArray(v, 5, 'slot');
        return { node: asBytes(x[0], 'node'), status: asUint(x[1], 'status'), expires: asUint(x[2], 'expires'), seq: asUint(x[3], 'seq'), height: asUint(x[4], 'height') };
      });
      return { t: 'binding', floor: asUint(a[0], 'floor'), slots };
    }
    case 'd':
      asArray(a, 6, key);
      return {
        t: 'node',
        pubkey: asBytes(a[0], 'pubkey'),
        sipUris: asStringList(a[1], 'sipUris', 8, 256),
        p2pAddrs: asStringList(a[2], 'p2pAddrs', 8, 256),
        rewardAddress: asBytes(a[3], 'rewardAddress'),
        seq: asUint(a[4], 'seq'),
        since: asUint(a[5], 'since'),
      };
    case 'a':
      asArray(a, 2, key);
      return { t: 'account', balance: asUint(a[0], 'balance'), nonce: asUint(a[1], 'nonce') };
    case 'c':
      asArray(a, 1, key);
      return { t: 'commit', height: asUint(a[0], 'height') };
    case 'r':
      asArray(a, 1, key);
      return { t: 'receipt', height: asUint(a[0], 'height') };
    case 'h':
      asArray(a, 1, key);
      return { t: 'commits', list: asArray(a[0], [0, 1_000_000], 'commitments').map((c) => asBytes(c, 'commitment', COMMIT_KEY_BYTES)) };
    case 'i':
      asArray(a, 1, key);
      return { t: 'ref', name: asString(a[0], 'name', 300) };
    case 'm':
      asArray(a, 1, key);
      return { t: 'count', n: asUint(a[0], 'count') };
    default:
      throw new Error(`unknown state key ${asString(key, 'key', 300)}`);
  }
}

export interface StateReader {
  get(key: string): Entry | undefined;
}

/** The committed state: one map, mutated only by commit() of a view. */
export class ChainState implements StateReader {
  readonly map = new Map<string, Entry>();
  get(key: string): Entry | undefined {
    return this.map.get(key);
  }
}

/** A change to one key: the value before (undefined = absent) and after (undefined = deleted). */
export interface Change {
  key: string;
  before: Entry | undefined;
  after: Entry | undefined;
}

export class StateView implements StateReader {
  private readonly changes = new Map<string, Change>();
  /** entries this view made with setOwned: nothing else holds them (see ownEntry) */
  private owned: Set<Entry> | null = null;
  constructor(private readonly base: StateReader) {}

  /**
   * The entry at `key` if this view made it with setOwned, which may then be changed in place;
   * else undefined. Any other entry may be held elsewhere (the state below, a parent view, undo
   * data), so it is replaced, never changed. A child view owns only what it made itself: what
   * it is merged into copies before changing.
   */
  ownEntry(key: string): Entry | undefined {
    const e = this.changes.get(key)?.after;
    return e !== undefined && this.owned?.has(e) === true ? e : undefined;
  }

  /** set() of an entry only this view holds, which ownEntry then gives back to change in place. */
  setOwned(key: string, value: Entry): void {
    (this.owned ??= new Set()).add(value);
    this.set(key, value);
  }

  get(key: string): Entry | undefined {
    const c = this.changes.get(key);
    return c !== undefined ? c.after : this.base.get(key);
  }

  set(key: string, value: Entry | undefined): void {
    const c = this.changes.get(key);
    if (c !== undefined) c.after = value;
    else this.changes.set(key, { key, before: this.base.get(key), after: value });
  }

  /** Changes in first-touched order. */
  list(): Change[] {
    return [...this.changes.values()];
  }

  /** A child view over this one: discard it on failure, merge() it on success. */
  child(): StateView {
    return new StateView(this);
  }

  merge(child: StateView): void {
    for (const c of child.list()) this.set(c.key, c.after);
  }
}

export function commitTo(state: ChainState, changes: readonly Change[]): void {
  for (const c of changes) {
    if (c.after === undefined) state.map.delete(c.key);
    else state.map.set(c.key, c.after);
  }
}

/** Undo data: the previous encoding of every touched key (absent keys as a one-element entry). */
/** One key's value before a block touched it (undefined: the key was absent). */
export interface UndoEntry {
  key: string;
  before: Entry | undefined;
}

export function encodeUndo(changes: readonly Change[]): Uint8Array {
  return encode(changes.map((c) => (c.before === undefined ? [c.key] : [c.key, encodeEntry(c.before)])));
}

export function decodeUndo(bytes: Uint8Array): UndoEntry[] {
  const a = decode(bytes) as Value[][];
  return a.map((e) => {
    const key = asString(e[0], 'key', 300);
    return { key, before: e.length > 1 ? decodeEntry(key, asBytes(e[1], 'before')) : undefined };
  });
}

export interface ApplyContext {
  height: number;
  time: number;
  rules: StateRules;
}

function fail(code: string, msg: string): never {
  throw new ValidationError(code, msg);
}

export function getName(s: StateReader, name: string): NameEntry | undefined {
  return s.get(keys.name(name)) as NameEntry | undefined;
}
export function getBinding(s: StateReader, name: string): BindingEntry | undefined {
  return s.get(keys.binding(name)) as BindingEntry | undefined;
}
export function getNode(s: StateReader, id: Uint8Array): NodeEntry | undefined {
  return s.get(keys.node(id)) as NodeEntry | undefined;
}
/** The name a presence entry's number stands for. */
export function nameOfRef(s: StateReader, ref: number): string | undefined {
  return (s.get(keys.nameRef(ref)) as RefEntry | undefined)?.name;
}
export function getAccount(s: StateReader, addr: Uint8Array): AccountEntry {
  return accountAt(s, keys.account(addr));
}

/** The account at a state key (its key built once where it is read and then written). */
function accountAt(s: StateReader, key: string): AccountEntry {
  return (s.get(key) as AccountEntry | undefined) ?? { t: 'account', balance: 0, nonce: 0 };
}

/** Every announced node, in no particular order. */
export function* allNodes(s: ChainState): Generator<NodeEntry> {
  for (const [k, e] of s.map) if (k.startsWith(NODE_PREFIX)) yield e as NodeEntry;
}

/** Every binding slot with the name it binds, in no particular order. */
export function* allBindings(s: ChainState): Generator<[string, BindingSlot]> {
  for (const [k, e] of s.map) {
    if (!k.startsWith(BINDING_PREFIX)) continue;
    const name = k.slice(BINDING_PREFIX.length);
    for (const slot of (e as BindingEntry).slots) yield [name, slot];
  }
}

/** The slot of one node in a name's bindings. */
export function slotOf(b: BindingEntry | undefined, node: Uint8Array): BindingSlot | undefined {
  if (b === undefined) return undefined;
  for (const s of b.slots) if (bytesEqual(s.node, node)) return s;
  return undefined;
}

/** The sequence a node's next binding of a name must exceed. */
export function seqAfter(b: BindingEntry | undefined, node: Uint8Array): number {
  return slotOf(b, node)?.seq ?? b?.floor ?? 0;
}

function credit(v: StateView, addr: Uint8Array, amount: number): void {
  if (amount === 0) return;
  const k = keys.account(addr);
  const a = accountAt(v, k);
  const balance = a.balance + amount;
  if (!Number.isSafeInteger(balance)) fail('overflow', 'balance overflow');
  v.set(k, { t: 'account', balance, nonce: a.nonce });
}

/** The live name entry an owner operation acts on, checked for owner and sequence. */
function ownedName(v: StateView, name: string, pubkey: Uint8Array, nameSeq: number, height: number): NameEntry {
  const n = getName(v, name);
  if (n === undefined) fail('unknown-name', `${name} is not claimed`);
  if (n.expiry < height) fail('name-expired', `${name} expired at height ${n.expiry}`);
  if (!bytesEqual(n.owner, pubkey)) fail('not-owner', `${name} is owned by another key`);
  if (nameSeq !== n.seq) fail('stale-name-seq', `${name} is at sequence ${n.seq}, record has ${nameSeq}`);
  return n;
}

/** Whether `pubkey` may act for the name: its owner, or one of the nodes it is delegated to. */
export function actsFor(n: NameEntry, pubkey: Uint8Array): boolean {
  return bytesEqual(n.owner, pubkey) || isDelegate(n, addressOf(pubkey));
}

export function isDelegate(n: NameEntry, node: Uint8Array): boolean {
  for (const d of n.delegates) if (bytesEqual(d, node)) return true;
  return false;
}

/** Whether a binding may name `node`: the owner's own node, or a delegate. */
export function servesName(n: NameEntry, node: Uint8Array): boolean {
  return bytesEqual(addressOf(n.owner), node) || isDelegate(n, node);
}

/**
 * The longest live E.164 name that is a proper prefix of `number` (its number block), if any:
 * the owner of that block allocates the numbers in it.
 */
export function coveringPrefix(s: StateReader, number: string, height: number): [string, NameEntry] | undefined {
  // the blocks above the number, longest first: the longest live one rules
  const blocks = rulersOf(number);
  for (let i = blocks.length - 1; i >= 0; i--) {
    const e = getName(s, blocks[i]);
    if (e !== undefined && e.expiry >= height) return [blocks[i], e];
  }
  return undefined;
}

/** Burns a name's price from the account of the key that claims or renews it. */
function payNameFee(v: StateView, name: string, pubkey: Uint8Array, rules: StateRules): void {
  debit(v, addressOf(pubkey), nameFee(name, rules.namePriceBase), 'name-fee-unpaid', name);
}

/**
 * After a name's owner or delegates changed: the slots of nodes that no longer serve it leave
 * (they stop routing at once), their sequence kept in the floor. With `all`, every slot leaves
 * (a new owner starts with no bindings).
 */
function dropSlots(v: StateView, name: string, n: NameEntry | undefined, all: boolean): void {
  const b = getBinding(v, name);
  if (b === undefined) return;
  let floor = b.floor;
  const slots: BindingSlot[] = [];
  for (const s of b.slots) {
    if (!all && n !== undefined && servesName(n, s.node)) slots.push(s);
    else floor = Math.max(floor, s.seq);
  }
  if (slots.length !== b.slots.length) v.set(keys.binding(name), { t: 'binding', floor, slots });
}

/**
 * Takes `amount` from an account; what it cannot cover fails with `code`. Every debit of the
 * chain is from the account of the key that signed the record (its fee, a name's price, a
 * transfer, a call's settlement), so no record spends what its signer did not sign away.
 */
function debit(v: StateView, addr: Uint8Array, amount: number, code: string, what: string): void {
  if (amount === 0) return;
  const k = keys.account(addr);
  const a = accountAt(v, k);
  if (a.balance < amount) fail(code, `${what} costs ${amount}, the signer's balance is ${a.balance}`);
  v.set(k, { t: 'account', balance: a.balance - amount, nonce: a.nonce });
}

/**
 * Applies one signed (non-coinbase) record to a view; returns its fee, which the block's
 * coinbase may claim. Every record pays at least minFeeRate units per byte of its encoding,
 * from its signer's account (a receipt's from the originating node's). Signatures are checked
 * elsewhere (they need no state and run in parallel).
 */
export function applyRecord(v: StateView, rec: Rec, ctx: ApplyContext): number {
  const body = rec.body;
  if (body.kind === Kind.Coinbase) return fail('bad-coinbase-position', 'a coinbase may only be the first record of a block');
  const { rules } = ctx;
  const least = rules.minFeeRate * rec.bytes.length;
  if (body.fee < least) fail('fee-too-low', `a ${KIND_NAMES[body.kind]} of ${rec.bytes.length} bytes pays at least ${least} (${rules.minFeeRate} per byte), it offers ${body.fee}`);
  // A transfer's fee is taken with its amount, after its nonce is checked.
  if (body.kind !== Kind.Transfer) debit(v, addressOf(body.pubkey), body.fee, 'fee-unpaid', "the record's fee");
  applyBody(v, body, ctx);
  return body.fee;
}

/** Gives a newly claimed name the next number, and records which name it stands for. */
function newRef(v: StateView, name: string): number {
  const n = (v.get(keys.nameCount) as CountEntry | undefined)?.n ?? 0;
  v.set(keys.nameCount, { t: 'count', n: n + 1 });
  v.set(keys.nameRef(n), { t: 'ref', name });
  return n;
}

/**
 * One binding of `name` to `node`, signed by `signer`: the rules every binding follows, whether
 * a record of its own or an entry of a node's presence record.
 */
function bind(v: StateView, name: string, node: Uint8Array, signer: Uint8Array, status: number, expires: number, seq: number, ctx: ApplyContext): void {
  const { height, rules } = ctx;
  const n = getName(v, name);
  if (n === undefined) fail('unknown-name', `${name} is not claimed`);
  if (n.expiry < height) fail('name-expired', `${name} expired at height ${n.expiry}`);
  if (!actsFor(n, signer)) fail('not-authorized', `binding for ${name} is signed by neither its owner nor a delegate`);
  // A delegate speaks for itself only: it cannot say the user is at another serving node.
  if (!bytesEqual(n.owner, signer) && !bytesEqual(addressOf(signer), node)) fail('not-authorized', `a delegate of ${name} may bind it to itself only`);
  if (!servesName(n, node)) fail('not-serving', `${name} may be bound only to its owner's node or one of its delegates`);
  const b = getBinding(v, name);
  const after = seqAfter(b, node);
  if (seq <= after) fail('stale-binding-seq', `binding sequence ${seq} is not above ${after}`);
  if (getNode(v, node) === undefined) fail('unknown-node', 'binding names a node that never announced itself');
  if (expires > ctx.time + rules.maxBindingTtl) fail('binding-too-long', `binding expiry more than ${rules.maxBindingTtl}s ahead`);
  const slots = (b?.slots ?? []).filter((s) => !bytesEqual(s.node, node));
  slots.push({ node, status, expires, seq, height });
  v.set(keys.binding(name), { t: 'binding', floor: b?.floor ?? 0, slots });
}

function applyBody(v: StateView, body: SignedBody, ctx: ApplyContext): void {
  const { height, rules } = ctx;
  switch (body.kind) {
    case Kind.NodeAnnounce: {
      const id = addressOf(body.pubkey);
      const cur = getNode(v, id);
      if (cur !== undefined && body.seq <= cur.seq) fail('stale-node-seq', `node announcement sequence ${body.seq} is not above ${cur.seq}`);
      v.set(keys.node(id), {
        t: 'node',
        pubkey: body.pubkey,
        sipUris: body.sipUris,
        p2pAddrs: body.p2pAddrs,
        rewardAddress: body.rewardAddress,
        seq: body.seq,
        since: cur?.since ?? height,
      });
      return;
    }
    case Kind.NameCommit: {
      const k = keys.commit(body.commitment);
      if (v.get(k) !== undefined) fail('duplicate-commit', 'this name commitment is already on the chain');
      v.set(k, { t: 'commit', height });
      // the height's list, copied once per view and then added to (a copy per commitment made a
      // block of n commitments cost n^2/2)
      const ak = keys.commitsAt(height);
      const mine = v.ownEntry(ak) as CommitsAtEntry | undefined;
      if (mine !== undefined) mine.list.push(commitKey(body.commitment));
      else v.setOwned(ak, { t: 'commits', list: [...((v.get(ak) as CommitsAtEntry | undefined)?.list ?? []), commitKey(body.commitment)] });
      return;
    }
    case Kind.NameClaim: {
      const n = getName(v, body.name);
      if (n !== undefined && n.expiry >= height) fail('name-taken', `${body.name} is owned until height ${n.expiry}`);
      const ck = keys.commit(commitmentOf(body.name, body.salt, body.pubkey));
      const c = v.get(ck) as CommitEntry | undefined;
      if (c === undefined) fail('no-commit', `no commitment for this claim of ${body.name}`);
      if (c.height + rules.minCommitAge > height) fail('commit-too-recent', `commitment must be ${rules.minCommitAge} blocks old before the reveal`);
      if (height > c.height + rules.maxCommitAge) fail('commit-expired', `commitment older than ${rules.maxCommitAge} blocks`);
      // Domain authority: a SIP address is handed out by its domain's owner (or the node the
      // owner delegated the domain to), never taken by whoever reveals first. The owner may then
      // transfer it to a user's key, which keeps it until it expires.
      const reserved = ownDomainPrefix(body.name);
      if (reserved !== null && !toHex(addressOf(body.pubkey)).startsWith(reserved)) fail('domain-reserved', `${body.name} is the own domain of the node whose id begins ${reserved}`);
      const domain = domainOf(body.name);
      if (domain !== null) {
        const d = getName(v, domain);
        if (d === undefined || d.expiry < height) fail('domain-unclaimed', `${body.name} is under ${domain}, which nobody holds: claim the domain first`);
        if (!actsFor(d, body.pubkey)) fail('domain-not-held', `${body.name} is under ${domain}, which the claimant neither owns nor serves as its delegate`);
      }
      // Number blocks: the longest live prefix's owner (or its delegate) allocates the numbers in it.
      if (body.name.startsWith('+')) {
        const block = coveringPrefix(v, body.name, height);
        if (block !== undefined && !actsFor(block[1], body.pubkey)) fail('prefix-not-held', `${body.name} is in the number block ${block[0]}, which the claimant neither owns nor serves as its delegate`);
      }
      payNameFee(v, body.name, body.pubkey, rules);
      v.set(ck, undefined);
      const entry: NameEntry = { t: 'name', owner: body.pubkey, expiry: height + rules.nameLifetime, seq: 0, delegates: [], since: height, ref: n?.ref ?? newRef(v, body.name) };
      v.set(keys.name(body.name), entry);
      // The previous owner's bindings stop holding, but their sequence stays so old records cannot be replayed.
      dropSlots(v, body.name, entry, true);
      return;
    }
    case Kind.NameRenew: {
      const n = ownedName(v, body.name, body.pubkey, body.nameSeq, height);
      payNameFee(v, body.name, body.pubkey, rules);
      v.set(keys.name(body.name), { ...n, expiry: height + rules.nameLifetime, seq: n.seq + 1 });
      return;
    }
    case Kind.NameTransfer: {
      const n = ownedName(v, body.name, body.pubkey, body.nameSeq, height);
      const after: NameEntry = { ...n, owner: body.newOwner, delegates: body.delegates, seq: n.seq + 1 };
      v.set(keys.name(body.name), after);
      dropSlots(v, body.name, after, false);
      return;
    }
    case Kind.NameDelegate: {
      const n = ownedName(v, body.name, body.pubkey, body.nameSeq, height);
      const after: NameEntry = { ...n, delegates: body.nodes, seq: n.seq + 1 };
      v.set(keys.name(body.name), after);
      dropSlots(v, body.name, after, false);
      return;
    }
    case Kind.Binding:
      bind(v, body.name, body.node, body.pubkey, body.status, body.expires, body.seq, ctx);
      return;
    case Kind.Presence: {
      const node = addressOf(body.pubkey);
      if (getNode(v, node) === undefined) fail('unknown-node', 'presence from a node that never announced itself');
      for (let i = 0; i < body.entries.length; i++) {
        const e = body.entries[i];
        const name = nameOfRef(v, e.ref);
        if (name === undefined) fail('unknown-name', `entry ${i}: no name has the number ${e.ref}`);
        try {
          bind(v, name, node, body.pubkey, e.status, e.expires, body.seq, ctx);
        } catch (err) {
          if (err instanceof ValidationError) fail(err.code, `entry ${i} (${name}): ${err.message.slice(err.code.length + 2)}`);
          throw err;
        }
      }
      return;
    }
    case Kind.Transfer: {
      const from = keys.account(addressOf(body.pubkey));
      const a = accountAt(v, from);
      if (body.nonce !== a.nonce) fail('bad-nonce', `account nonce is ${a.nonce}, transfer has ${body.nonce}`);
      const total = body.amount + body.fee;
      if (!Number.isSafeInteger(total) || total > a.balance) fail('insufficient-funds', `balance ${a.balance} is less than ${total}`);
      v.set(from, { t: 'account', balance: a.balance - total, nonce: a.nonce + 1 });
      credit(v, body.to, body.amount);
      return;
    }
    case Kind.CallReceipt:
      return applyReceipt(v, body, ctx);
  }
}

/**
 * Settles a receipted call: the originating node pays the terminating node receiptRate units per
 * second, between the two nodes' own accounts (their ids). Between colluding nodes that is a
 * wash, and the fee to the miner is a loss, so invented calls earn nothing (docs/economics.md).
 */
function applyReceipt(v: StateView, r: CallReceipt, ctx: ApplyContext): void {
  const { rules } = ctx;
  if (bytesEqual(r.orig, r.term)) fail('bad-receipt', 'a receipt needs two different nodes');
  const duration = r.ended - r.answered;
  if (r.ended <= r.answered || duration > rules.maxCallSeconds) fail('bad-receipt', `call duration must be 1..${rules.maxCallSeconds} seconds`);
  if (r.ended > ctx.time + 600) fail('bad-receipt', 'call ends in the future');
  // Without a lower bound, call-hours could be invented at any time in the past; the terminating
  // node forgets its calls after the same 6 hours (telecom/calls.ts), so an honest receipt is
  // mined well within it.
  if (r.ended < ctx.time - rules.receiptMaxAge) fail('stale-receipt', `the call ended more than ${rules.receiptMaxAge} seconds before this block`);
  const k = keys.receipt(r.callId);
  if (v.get(k) !== undefined) fail('duplicate-receipt', 'this call was receipted before');
  if (getNode(v, r.orig) === undefined || getNode(v, r.term) === undefined) fail('unknown-node', 'receipt names a node that never announced itself');
  v.set(k, { t: 'receipt', height: ctx.height });
  const owed = duration * rules.receiptRate;
  debit(v, r.orig, owed, 'settlement-unpaid', `${duration} s of call at ${rules.receiptRate} per second`);
  credit(v, r.term, owed);
}

/**
 * Commitments that can no longer be revealed leave the state: at height H those made at
 * H - maxCommitAge - 1 (a reveal must come within maxCommitAge blocks). Nobody could use them,
 * and without this every commitment ever made stayed in the state for good. A reorganisation
 * undoes it like any other change.
 */
function pruneCommitments(v: StateView, ctx: ApplyContext): void {
  const h = ctx.height - ctx.rules.maxCommitAge - 1;
  if (h < 0) return;
  const at = v.get(keys.commitsAt(h)) as CommitsAtEntry | undefined;
  if (at === undefined) return;
  for (const c of at.list) if (v.get(keys.commit(c)) !== undefined) v.set(keys.commit(c), undefined);
  v.set(keys.commitsAt(h), undefined);
}

/**
 * Applies a whole block body to a view (coinbase first, then every record in order).
 * `height` and `time` come from the block; the coinbase may claim at most subsidy plus fees.
 */
export function applyBlockRecords(v: StateView, records: Rec[], ctx: ApplyContext): void {
  if (records.length === 0 || records[0].body.kind !== Kind.Coinbase) fail('bad-coinbase', 'the first record of a block must be its coinbase');
  const cb = records[0].body;
  if (cb.height !== ctx.height) fail('bad-coinbase-height', `coinbase says height ${cb.height}, block is at ${ctx.height}`);
  pruneCommitments(v, ctx);
  let fees = 0;
  for (let i = 1; i < records.length; i++) {
    try {
      fees += applyRecord(v, records[i], ctx);
    } catch (e) {
      if (e instanceof ValidationError) throw new ValidationError(e.code, `record ${i} (${KIND_NAMES[records[i].body.kind]}): ${e.message.slice(e.code.length + 2)}`);
      throw e;
    }
  }
  const max = ctx.rules.subsidy(ctx.height) + fees;
  if (cb.amount > max) fail('bad-coinbase-amount', `coinbase claims ${cb.amount}, at most ${max} allowed`);
  credit(v, cb.rewardAddress, cb.amount);
}
