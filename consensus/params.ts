// Network parameters. Each network has its own genesis block (built from these values by
// `npm run genesis`), difficulty rule settings, limits and reward schedule. Changing any
// consensus value here makes a different network.
import type { StateRules } from '../core/state.ts';
import type { AsertParams } from './asert.ts';

export const COIN = 100_000_000;

export interface NetworkParams extends StateRules, AsertParams {
  name: NetworkName;
  /** bech32m prefix of addresses */
  addressPrefix: string;
  genesis: { time: number; nonce: number; note: string };
  /** regtest only: every block at the limit, no retargeting, so tests mine instantly */
  noRetarget: boolean;
  maxFutureSeconds: number;
  maxBlockBytes: number;
  maxBlockRecords: number;
  initialSubsidy: number;
  halvingInterval: number;
  /**
   * Main-chain blocks whose undo data is kept: a reorganisation at most this deep goes back
   * through undo data, a deeper one rebuilds the state at the fork point from the blocks (slow,
   * and rare: it replaces more than this many blocks of most work). Older undo data is deleted,
   * since it is most of what the store keeps per record beside the blocks.
   */
  undoDepth: number;
}

export type NetworkName = 'mainnet' | 'testnet' | 'devnet' | 'regtest';
export const NETWORK_NAMES: NetworkName[] = ['mainnet', 'testnet', 'devnet', 'regtest'];

function subsidyFn(initial: number, interval: number): (height: number) => number {
  return (height: number): number => {
    const halvings = Math.floor(height / interval);
    // Integer halving; after 52 halvings the subsidy is zero for good.
    return halvings >= 52 ? 0 : Math.floor(initial / 2 ** halvings);
  };
}

type ReceiptRules = Pick<NetworkParams, 'receiptRate' | 'maxCallSeconds' | 'receiptMaxAge'>;

// Names cost NAME_PRICE units for an ordinary domain, number or node domain, a tenth of it for a
// user's address, and four times as much per character or digit short (core/names.ts): a node's
// own domain and ten users' addresses cost two coins, what one devnet block pays 25 times over.
// Regtest names are free, so tests need no coins to claim them (the fee rules are tested with
// this price on regtest's other rules).
export const NAME_PRICE = 1 * COIN;

// Call receipts settle calls between nodes: the originating node pays the terminating node
// 1,000 units per call-second (a minute of call is 0.0006 coin), zero-sum between them, so
// receipts print no money and invented calls earn nothing (docs/economics.md); a call must have
// ended within the 6 hours before the block that settles it.
const RECEIPTS: ReceiptRules = { receiptRate: 1000, maxCallSeconds: 86_400, receiptMaxAge: 21_600 };

// Every record pays its miner at least one unit per byte: a presence change (a binding, about
// 150 bytes) costs 150 units, a million of them 1.5 coins. Regtest asks nothing, so tests need
// no coins for their records (the fee rules are tested with a rate on regtest's other rules).
const MIN_FEE_RATE = 1;

function net(p: Omit<NetworkParams, 'subsidy' | keyof ReceiptRules>): NetworkParams {
  return { ...p, ...RECEIPTS, subsidy: subsidyFn(p.initialSubsidy, p.halvingInterval) };
}

export const NETWORKS: Record<NetworkName, NetworkParams> = {
  mainnet: net({
    name: 'mainnet',
    namePriceBase: NAME_PRICE,
    addressPrefix: 'dots',
    genesis: { time: 1798761600, nonce: 765297, note: 'DOTS mainnet genesis' },
    idealBlockTime: 60,
    halfLife: 172_800,
    powLimitBits: 0x1e0fffff,
    noRetarget: false,
    maxFutureSeconds: 7200,
    maxBlockBytes: 1_000_000,
    maxBlockRecords: 5000,
    initialSubsidy: 50 * COIN,
    halvingInterval: 1_050_000,
    nameLifetime: 525_600,
    minCommitAge: 3,
    maxCommitAge: 10_080,
    maxBindingTtl: 7 * 86_400,
    undoDepth: 2_000,
    minFeeRate: MIN_FEE_RATE,
  }),
  testnet: net({
    name: 'testnet',
    namePriceBase: NAME_PRICE,
    addressPrefix: 'tdots',
    genesis: { time: 1798761600, nonce: 78017, note: 'DOTS testnet genesis' },
    idealBlockTime: 30,
    halfLife: 3600,
    powLimitBits: 0x1f00ffff,
    noRetarget: false,
    maxFutureSeconds: 7200,
    maxBlockBytes: 1_000_000,
    maxBlockRecords: 5000,
    initialSubsidy: 50 * COIN,
    halvingInterval: 1_050_000,
    nameLifetime: 100_000,
    minCommitAge: 2,
    maxCommitAge: 10_080,
    maxBindingTtl: 7 * 86_400,
    undoDepth: 2_000,
    minFeeRate: MIN_FEE_RATE,
  }),
  devnet: net({
    name: 'devnet',
    namePriceBase: NAME_PRICE,
    addressPrefix: 'ddots',
    genesis: { time: 1795046400, nonce: 4295701, note: 'DOTS devnet genesis' },
    idealBlockTime: 5,
    halfLife: 120,
    // At the limit a block takes about 16 M hashes: about two seconds for one mining thread here.
    // The genesis lies in the past, so ASERT sees the chain behind schedule and keeps the limit
    // until miners outpace it; that keeps a devnet steady whatever day it starts.
    powLimitBits: 0x1e010000,
    noRetarget: false,
    maxFutureSeconds: 600,
    maxBlockBytes: 1_000_000,
    maxBlockRecords: 5000,
    initialSubsidy: 50 * COIN,
    halvingInterval: 100_000,
    nameLifetime: 100_000,
    minCommitAge: 1,
    maxCommitAge: 1000,
    maxBindingTtl: 7 * 86_400,
    undoDepth: 2_000,
    minFeeRate: MIN_FEE_RATE,
  }),
  regtest: net({
    name: 'regtest',
    namePriceBase: 0,
    addressPrefix: 'rdots',
    genesis: { time: 1795046400, nonce: 1, note: 'DOTS regtest genesis' },
    idealBlockTime: 1,
    halfLife: 3600,
    powLimitBits: 0x207fffff,
    noRetarget: true,
    maxFutureSeconds: 7200,
    maxBlockBytes: 1_000_000,
    maxBlockRecords: 5000,
    initialSubsidy: 50 * COIN,
    halvingInterval: 150,
    nameLifetime: 1000,
    minCommitAge: 1,
    maxCommitAge: 100,
    maxBindingTtl: 7 * 86_400,
    undoDepth: 50,
    minFeeRate: 0,
  }),
};

/**
 * What a node of each network listens on and serves unless told otherwise. None of it is
 * consensus (changing it makes no other network), so it lives beside NETWORKS rather than in it:
 * one place for the defaults the node, `dots user add` and the wallet commands share.
 */
export interface NodeDefaults {
  /** peer-to-peer TCP port; 0 picks a free one */
  p2pPort: number;
  /** SIP UDP and TCP port; 0 picks a free one */
  sipPort: number;
  /** SIP over TLS port; 0 picks a free one */
  tlsPort: number;
  /** HTTP API and explorer port */
  apiPort: number;
  /** the data directory, relative to the working directory */
  datadir: string;
}

export const NODE_DEFAULTS: Record<NetworkName, NodeDefaults> = {
  mainnet: { p2pPort: 7070, sipPort: 5060, tlsPort: 5061, apiPort: 8080, datadir: 'data/mainnet' },
  testnet: { p2pPort: 17070, sipPort: 5060, tlsPort: 5061, apiPort: 8080, datadir: 'data/testnet' },
  devnet: { p2pPort: 27070, sipPort: 5060, tlsPort: 5061, apiPort: 8080, datadir: 'data/devnet' },
  // regtest is for tests, which run many nodes at once: free ports unless some are asked for
  regtest: { p2pPort: 0, sipPort: 0, tlsPort: 0, apiPort: 8080, datadir: 'data/regtest' },
};

export function isNetworkName(s: string): s is NetworkName {
  return (NETWORK_NAMES as string[]).includes(s);
}
