// What the node hands the SIP stack: its view of the chain, its accounts and its log. sip/
// imports nothing from the folders above it; these interfaces (and the onPresence and onCallEnd
// callbacks of SipServiceOptions) are the only way between them, so the stack runs and is tested
// with a map in place of the chain.

import type { DigestCredentials } from './digest.ts';

/** Where the chain (tip plus pending records) says a name is served. */
export type Located =
  | { kind: 'local' }
  /** the nodes serving the name, to try in order (each by its URIs in order) until one answers */
  | { kind: 'remote'; nodes: Array<{ nodeId: Uint8Array; uris: string[] }>; online: boolean }
  | { kind: 'unknown' };

/** The chain's view of names, supplied by the node (its `chainLocator`). */
export interface Locator {
  locate(name: string): Located;
  /**
   * Whether `sig` is node `nodeId`'s signature over `binding` (a TLS connection's keying
   * material, sip/tls.ts node proofs), by the node key the chain has for it.
   */
  verifyNodeProof?(nodeId: Uint8Array, binding: Uint8Array, sig: Uint8Array): boolean;
  /**
   * Why this node takes no calls from node `nodeId` now (it left calls this node terminated
   * unsettled: docs/economics.md), or null to take them.
   */
  refusesCallsFrom?(nodeId: Uint8Array): string | null;
}

/** How this node proves itself on TLS connections to other nodes: its id, and a signer with its node key. */
export interface NodeProver {
  nodeId: Uint8Array;
  /** the node key's signature over `binding`, with the tag NODE_PROOF_TAG (sip/tls.ts) */
  sign(binding: Uint8Array): Uint8Array;
}

/** Where digest credentials come from (the node's account store). */
export interface UserDirectory {
  /** HA1 values for a user name (lower case), for realm = the domain */
  lookup(user: string): DigestCredentials | undefined;
  /** the user a chain name of theirs reaches (an E.164 number, a sip: name elsewhere), if any */
  userOfAlias?(name: string): string | undefined;
  /** the users whose phones register at the operator's server behind the trunk (`dots user add --trunk`) */
  trunkUsers?(): string[];
  /** whether `user` is one of them */
  isTrunkUser?(user: string): boolean;
}

export interface SipLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}
