// Where a SIP name is served, read from the chain tip plus the pending pool. This is what the
// proxy asks before forwarding a request for a user of another node: the chain names the serving
// node (never the phone's address), and the node's own announcement gives its SIP URI(s).
//
// A name may be served by several nodes (its owner's and its delegates'), each with its own
// binding. Routing tries them freshest first: the node whose online binding was made last is
// where the phone registered last, and the others are the fallbacks when that node does not
// answer (the phone moved on after its node died; the dead node cannot say so).
//
// Pending records count (DESIGN: "routing reads the chain tip plus pending records"), so a phone
// that re-registers at another serving node is reachable there as soon as that node's binding is
// pending, well before it is mined; a pending binding is fresher than any confirmed one.
import { bytesEqual, toHex } from '../core/hash.ts';
import { BindingStatus, type Binding, type NodeAnnounce } from '../core/records.ts';
import { coveringPrefix, getBinding, getName, getNode, servesName, type NameEntry, type StateReader } from '../core/state.ts';
import { addressOf } from '../core/address.ts';
import type { PendingBinding } from '../core/mempool.ts';
import type { Locator, Located } from '../sip/service.ts';
import { NODE_PROOF_TAG, keysOf } from '../sip/tls.ts';
import { verifyTagged } from '../core/sig.ts';

/** What routing reads of the pending pool; `Mempool` satisfies it. */
export interface PendingRecords {
  /** the pending bindings of a name, the highest sequence per node, oldest first */
  pendingBindings(name: string): PendingBinding[];
  /** the pending announcements of a node, in arrival order */
  pendingAnnouncements(nodeId: Uint8Array): readonly NodeAnnounce[];
  /** changes whenever what the two above return may have changed */
  readonly routingVersion: number;
}

/** What routing needs: the tip's state and height, and the pending records. */
export interface RoutingSource {
  readonly state: StateReader;
  readonly tip: { readonly height: number };
  readonly pool: PendingRecords;
}

/** A routing source that follows a chain's tip (`Chain` and `Mempool` as the node has them). */
export function routingSource(chain: { readonly state: StateReader; readonly tip: { readonly height: number } }, pool: PendingRecords): RoutingSource {
  return {
    state: chain.state,
    get tip() {
      return chain.tip;
    },
    pool,
  };
}

/** Another node that serves a name, and how to reach it. */
export interface RemoteNode {
  /** the serving node's id (20 bytes) */
  nodeId: Uint8Array;
  /** the serving node's SIP URIs from its announcement, in its order of preference */
  sipUris: string[];
  /** the serving node's p2p multiaddrs (for the receipt exchange after a call) */
  p2pAddrs: string[];
}

export type Route =
  /** this node serves the name (its binding is the freshest): the local registrar has its contacts */
  | {
      kind: 'local';
      confirmed: boolean;
      /** other nodes with an online binding, freshest first: where to go when no phone is registered here */
      next: RemoteNode[];
    }
  | (RemoteNode & {
      kind: 'remote';
      /** offline when the binding says so, has expired, or the node gave no SIP URI */
      status: 'online' | 'offline';
      /** false while the winning binding is only pending */
      confirmed: boolean;
      /** the other nodes with an online binding, freshest first: tried when this one does not answer */
      next: RemoteNode[];
    })
  /**
   * Nobody serves the name: never claimed, or its claim lapsed (`unclaimed`); claimed but never
   * bound (`unbound`); or bound to a node the state does not know (`no-node`, only possible
   * in a transient reorganisation since a binding needs an announced node).
   */
  | { kind: 'unknown'; reason: 'unclaimed' | 'unbound' | 'no-node' };

/** One serving node's binding as routing reads it. */
export interface Candidate {
  node: Uint8Array;
  status: number;
  expires: number;
  seq: number;
  /** the block that confirmed it; null while pending */
  height: number | null;
  /** higher is fresher: a confirmed binding's height, a pending one's place after the tip */
  fresh: number;
}

/**
 * Each serving node's binding (a pending one with a higher sequence beats its confirmed one),
 * online ones first, freshest first.
 */
export function candidates(src: RoutingSource, name: string, n: NameEntry, now: number): Candidate[] {
  const byNode = new Map<string, Candidate>();
  for (const s of getBinding(src.state, name)?.slots ?? []) {
    byNode.set(toHex(s.node), { node: s.node, status: s.status, expires: s.expires, seq: s.seq, height: s.height, fresh: s.height });
  }
  let order = src.tip.height;
  for (const p of src.pool.pendingBindings(name)) {
    order++;
    if (!servesName(n, p.node)) continue;
    const k = toHex(p.node);
    const c = byNode.get(k);
    if (c === undefined || p.seq > c.seq) byNode.set(k, { node: p.node, status: p.status, expires: p.expires, seq: p.seq, height: null, fresh: order });
  }
  const online = (c: Candidate): number => (c.status === BindingStatus.Online && c.expires > now ? 1 : 0);
  return [...byNode.values()].sort((a, b) => online(b) - online(a) || b.fresh - a.fresh);
}

/** A node's public key, from its confirmed announcement or a pending one; undefined for a node never announced. */
export function nodeKey(src: RoutingSource, nodeId: Uint8Array): Uint8Array | undefined {
  const conf = getNode(src.state, nodeId);
  if (conf !== undefined) return conf.pubkey;
  return src.pool.pendingAnnouncements(nodeId)[0]?.pubkey;
}

/**
 * A node's SIP and p2p addresses: its confirmed announcement, or a pending one with a higher
 * sequence (a node that moved announces its new address, and calls should follow at once).
 */
export function nodeAddresses(src: RoutingSource, nodeId: Uint8Array): { sipUris: string[]; p2pAddrs: string[] } | undefined {
  const conf = getNode(src.state, nodeId);
  let best: NodeAnnounce | undefined;
  // every call reads this: the pool keeps its announcements by node (it went through the whole
  // pool, which a node that routes calls fills with their receipts)
  for (const b of src.pool.pendingAnnouncements(nodeId)) {
    if ((best === undefined || b.seq > best.seq) && (conf === undefined || b.seq > conf.seq)) best = b;
  }
  if (best !== undefined) return { sipUris: best.sipUris, p2pAddrs: best.p2pAddrs };
  if (conf !== undefined) return { sipUris: conf.sipUris, p2pAddrs: conf.p2pAddrs };
  return undefined;
}

/**
 * Where `name` is served, as seen by the node `self` at unix time `now` (seconds).
 * The proxy answers 404 for `unknown` and 480 for an offline `remote`; for `local` it asks the
 * local registrar (which knows whether the phone is registered right now).
 */
export function resolveName(src: RoutingSource, name: string, now: number, self: Uint8Array): Route {
  // a name whose claim ran out at the tip is free for anyone: its old bindings route nowhere
  const n = getName(src.state, name);
  const isNumber = name.startsWith('+');
  if (n === undefined || n.expiry < src.tip.height) {
    // A number nobody holds on its own is the number block's: its operator takes it (over its
    // trunk), as the telephone network routes a number range to the carrier that holds it.
    const block = isNumber ? coveringPrefix(src.state, name, src.tip.height) : undefined;
    return block === undefined ? { kind: 'unknown', reason: 'unclaimed' } : servedBy(src, block[1], self);
  }
  const all = candidates(src, name, n, now);
  // a number held but never bound (a number ported to another operator, or one of many an
  // operator serves from its own SIP server) goes to the nodes that serve it
  if (all.length === 0) return isNumber ? servedBy(src, n, self) : { kind: 'unknown', reason: 'unbound' };
  const first = all[0];
  // the other serving nodes whose online binding holds, freshest first
  const next: RemoteNode[] = [];
  for (let i = 1; i < all.length; i++) {
    const c = all[i];
    if (c.status !== BindingStatus.Online || c.expires <= now || bytesEqual(c.node, self)) continue;
    const a = nodeAddresses(src, c.node);
    if (a !== undefined && a.sipUris.length > 0) next.push({ nodeId: c.node, ...a });
  }
  if (bytesEqual(first.node, self)) return { kind: 'local', confirmed: first.height !== null, next };
  const addrs = nodeAddresses(src, first.node);
  if (addrs === undefined) return { kind: 'unknown', reason: 'no-node' };
  // An expired binding is a phone that stopped being refreshed: its node would not find it.
  const online = first.status === BindingStatus.Online && first.expires > now && addrs.sipUris.length > 0;
  return { kind: 'remote', nodeId: first.node, sipUris: addrs.sipUris, p2pAddrs: addrs.p2pAddrs, status: online ? 'online' : 'offline', confirmed: first.height !== null, next };
}

/**
 * A name routed to the nodes that serve it (its owner's node, then its delegates, in order)
 * without a binding to say a phone is there: the first answers for it (its trunk finds the phone).
 */
function servedBy(src: RoutingSource, n: NameEntry, self: Uint8Array): Route {
  const nodes: RemoteNode[] = [];
  let local = false;
  for (const id of [addressOf(n.owner), ...n.delegates]) {
    if (nodes.some((x) => bytesEqual(x.nodeId, id))) continue;
    if (bytesEqual(id, self)) {
      if (nodes.length === 0) local = true;
      continue;
    }
    const a = nodeAddresses(src, id);
    if (a !== undefined && a.sipUris.length > 0) nodes.push({ nodeId: id, ...a });
  }
  if (local) return { kind: 'local', confirmed: true, next: nodes };
  const [first, ...next] = nodes;
  if (first === undefined) return { kind: 'unknown', reason: 'no-node' };
  return { kind: 'remote', ...first, status: 'online', confirmed: true, next };
}

/**
 * The SIP proxy's view of the chain (sip/ reaches the chain only through this interface): where
 * a name is served, read from the tip plus pending records at the time `clock` gives. With `tls`
 * (this node speaks TLS), a node that announced a TLS URI is reached there only: its key is
 * checked on the connection, and falling back to its plain URIs when that check fails would
 * hand the call to whoever made it fail. A calling node's proof is checked against the node key
 * of its announcement (tip plus pending).
 */
export function chainLocator(src: RoutingSource, clock: () => number, self: Uint8Array, o: { tls?: boolean } = {}): Locator {
  const urisOf = (x: RemoteNode): string[] => {
    if (o.tls !== true) return x.sipUris;
    const secure = x.sipUris.filter((u) => keysOf([u]).length > 0);
    return secure.length > 0 ? secure : x.sipUris;
  };
  const nodes = (list: RemoteNode[]): Array<{ nodeId: Uint8Array; uris: string[] }> => list.map((x) => ({ nodeId: x.nodeId, uris: urisOf(x) }));
  const located = (name: string, now: number): Located => {
    const r = resolveName(src, name, now, self);
    if (r.kind === 'remote') return { kind: 'remote', nodes: nodes([r, ...r.next]), online: r.status === 'online' };
    // asked only when no phone of the name is registered here: the other serving nodes may have one
    if (r.kind === 'local') return r.next.length > 0 ? { kind: 'remote', nodes: nodes(r.next), online: true } : { kind: 'local' };
    return { kind: 'unknown' };
  };
  const routes = new RouteCache();
  return {
    verifyNodeProof(nodeId, binding, sig) {
      const pub = nodeKey(src, nodeId);
      return pub !== undefined && verifyTagged(pub, NODE_PROOF_TAG, binding, sig);
    },
    locate(name) {
      const now = clock();
      const hit = routes.get(src, name, now);
      if (hit !== undefined) return hit;
      const at = located(name, now);
      routes.set(src, name, now, at);
      return at;
    },
  };
}

/** How many names' routes a node keeps at most (all are dropped when it is full). */
const ROUTES_KEPT = 10_000;

interface Kept {
  /** the tip (its index entry: a new object for every tip) and pool version the route was read at */
  tip: object;
  version: number;
  /** read at this time, good until the first binding of the name that was live then expires */
  at: number;
  until: number;
  route: Located;
}

/**
 * Routes already read, per name. A call for a user of another node read the chain for its route
 * each time, which was a twentieth of node B's CPU at 2,000 calls a second and 60-100 us of the
 * INVITE's time. A route is what resolveName gives from the tip's state, the pending pool's
 * bindings and announcements, and the time (bindings expire), so one is kept only while all
 * three say the same: the same tip, the same pool routing version (any binding, presence record
 * or announcement added to the pool or dropped from it changes it), and a time before the next
 * expiry of any binding of the name. Results are shared: callers must not change them.
 */
class RouteCache {
  private readonly kept = new Map<string, Kept>();

  get(src: RoutingSource, name: string, now: number): Located | undefined {
    const k = this.kept.get(name);
    if (k === undefined || k.tip !== src.tip || k.version !== src.pool.routingVersion || now < k.at || now >= k.until) return undefined;
    return k.route;
  }

  set(src: RoutingSource, name: string, now: number, route: Located): void {
    if (this.kept.size >= ROUTES_KEPT) this.kept.clear();
    this.kept.set(name, { tip: src.tip, version: src.pool.routingVersion, at: now, until: nextExpiry(src, name, now), route });
  }
}

/** The earliest expiry after `now` of any binding of the name, confirmed or pending (Infinity if none). */
function nextExpiry(src: RoutingSource, name: string, now: number): number {
  let until = Infinity;
  for (const s of getBinding(src.state, name)?.slots ?? []) if (s.expires > now && s.expires < until) until = s.expires;
  for (const p of src.pool.pendingBindings(name)) if (p.expires > now && p.expires < until) until = p.expires;
  return until;
}
