// Where a SIP name is served, read from the chain tip plus the pending pool. This is what the
// proxy asks before forwarding a request for a user of another node: the chain names the serving
// node (never the phone's address), and the node's own announcement gives its SIP URI(s).
//
// Pending records count (DESIGN: "routing reads the chain tip plus pending records"), so a phone
// that re-registers at another node is reachable there as soon as the new binding is pending,
// well before it is mined. The chain settles conflicts later; until then the highest sequence
// number wins, which is the binding the owner (or its delegate) signed last.
import { bytesEqual } from '../core/hash.ts';
import { BindingStatus, Kind, type Binding, type NodeAnnounce } from '../core/records.ts';
import { nodeIdOf } from '../core/address.ts';
import { getBinding, getName, getNode, type StateReader } from '../core/state.ts';
import type { PoolEntry } from '../core/mempool.ts';
import type { Locator } from '../sip/service.ts';

/** What routing reads of the pending pool; `Mempool` satisfies it. */
export interface PendingRecords {
  pendingBinding(name: string): Binding | undefined;
  list(): PoolEntry[];
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

export type Route =
  /** this node serves the name: the local registrar has its contacts */
  | { kind: 'local'; confirmed: boolean }
  | {
      kind: 'remote';
      /** the serving node's id (20 bytes) */
      nodeId: Uint8Array;
      /** the serving node's SIP URIs from its announcement, in its order of preference */
      sipUris: string[];
      /** the serving node's p2p multiaddrs (for the receipt exchange after a call) */
      p2pAddrs: string[];
      /** offline when the binding says so, has expired, or the node gave no SIP URI */
      status: 'online' | 'offline';
      /** false while the winning binding is only pending */
      confirmed: boolean;
    }
  /**
   * Nobody serves the name: never claimed, or its claim lapsed (`unclaimed`); claimed but never
   * bound (`unbound`); or bound to a node the state does not know (`no-node`, only possible
   * in a transient reorganisation since a binding needs an announced node).
   */
  | { kind: 'unknown'; reason: 'unclaimed' | 'unbound' | 'no-node' };

interface Winner {
  node: Uint8Array;
  status: number;
  expires: number;
  seq: number;
  confirmed: boolean;
}

/** The binding that decides routing: a pending one with a higher sequence beats the confirmed one. */
function winningBinding(src: RoutingSource, name: string): Winner | undefined {
  const conf = getBinding(src.state, name);
  const pend = src.pool.pendingBinding(name);
  if (pend !== undefined && (conf === undefined || pend.seq > conf.seq)) {
    return { node: pend.node, status: pend.status, expires: pend.expires, seq: pend.seq, confirmed: false };
  }
  if (conf !== undefined) return { node: conf.node, status: conf.status, expires: conf.expires, seq: conf.seq, confirmed: true };
  return undefined;
}

/** A name whose claim ran out at the tip is free for anyone: its old binding routes nowhere. */
function nameLive(src: RoutingSource, name: string): boolean {
  const n = getName(src.state, name);
  return n !== undefined && n.expiry >= src.tip.height;
}

/**
 * A node's SIP and p2p addresses: its confirmed announcement, or a pending one with a higher
 * sequence (a node that moved announces its new address, and calls should follow at once).
 */
export function nodeAddresses(src: RoutingSource, nodeId: Uint8Array): { sipUris: string[]; p2pAddrs: string[] } | undefined {
  const conf = getNode(src.state, nodeId);
  let best: NodeAnnounce | undefined;
  // O(pool) like Mempool.pendingBinding; an index by node belongs in the pool if this gets hot.
  for (const e of src.pool.list()) {
    const b = e.rec.body;
    if (b.kind !== Kind.NodeAnnounce) continue;
    if ((best === undefined || b.seq > best.seq) && (conf === undefined || b.seq > conf.seq) && bytesEqual(nodeIdOf(b.pubkey), nodeId)) best = b;
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
  if (!nameLive(src, name)) return { kind: 'unknown', reason: 'unclaimed' };
  const w = winningBinding(src, name);
  if (w === undefined) return { kind: 'unknown', reason: 'unbound' };
  if (bytesEqual(w.node, self)) return { kind: 'local', confirmed: w.confirmed };
  const addrs = nodeAddresses(src, w.node);
  if (addrs === undefined) return { kind: 'unknown', reason: 'no-node' };
  // An expired binding is a phone that stopped being refreshed: its node would not find it.
  const online = w.status === BindingStatus.Online && w.expires > now && addrs.sipUris.length > 0;
  return { kind: 'remote', nodeId: w.node, sipUris: addrs.sipUris, p2pAddrs: addrs.p2pAddrs, status: online ? 'online' : 'offline', confirmed: w.confirmed };
}

/**
 * The SIP proxy's view of the chain (sip/ reaches the chain only through this interface): where
 * a name is served, read from the tip plus pending records at the time `clock` gives.
 */
export function chainLocator(src: RoutingSource, clock: () => number, self: Uint8Array): Locator {
  return {
    locate(name) {
      const r = resolveName(src, name, clock(), self);
      if (r.kind === 'remote') return { kind: 'remote', nodeId: r.nodeId, uris: r.sipUris, online: r.status === 'online' };
      return r.kind === 'local' ? { kind: 'local' } : { kind: 'unknown' };
    },
  };
}
