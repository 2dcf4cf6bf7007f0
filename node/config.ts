// What a node is told to be: the network, where it keeps its data, what it listens on and serves.
// The defaults per network come from consensus/params.ts (NODE_DEFAULTS), the one place that
// names them; the command line (cli/node.ts) overrides them flag by flag.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { NODE_DEFAULTS, type NetworkName } from '../consensus/params.ts';
import { UserError } from '../core/errors.ts';
import { writeOwnerOnly } from '../core/files.ts';
import { ownDomainOf } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { addressOf } from '../core/address.ts';
import { publicKeyOf } from '../core/sig.ts';
import { BanListError, banList } from '../sip/transport.ts';

export interface NodeConfig {
  network: NetworkName;
  datadir: string;
  mine: boolean;
  minerThreads: number;
  p2pPort: number;
  /** p2p listen address (default 127.0.0.1) */
  p2pHost?: string;
  bootstrap: string[];
  /** local-network peer discovery by mDNS (default off) */
  mdns?: boolean;
  sipHost: string;
  sipPort: number;
  /** the SIP domain it serves; empty: its own (`ownDomainOf` its node id) */
  domain: string;
  apiHost: string;
  apiPort: number;
  openRegistration: boolean;
  /** seconds between OPTIONS keepalives to each registered phone (default 30) */
  sipKeepalive?: number;
  /** digest algorithms offered to phones, preferred first (default: chosen per phone) */
  sipDigest?: Array<'MD5' | 'SHA-256'>;
  /** addresses whose SIP messages are dropped and connections refused: IPs or CIDR blocks */
  sipBan?: string[];
  /** worker threads that check block signatures while blocks connect (default: one per core; 0: main thread only) */
  sigWorkers?: number;
}

/** The entries of a SIP ban list (IPs or CIDR blocks), checked; a bad one is a UserError naming `flag`. */
export function sipBanList(entries: readonly string[], flag: string): string[] {
  const list = entries.map((e) => e.trim()).filter((e) => e !== '');
  try {
    banList(list);
  } catch (e) {
    if (e instanceof BanListError) throw new UserError(`${flag}: ${e.message}`);
    throw e;
  }
  return list;
}

/**
 * The SIP domain belongs to the data directory: its accounts' digests are made for it
 * (realm = domain), so `dots user add` and `dots node` without --domain take it from
 * DATADIR/domain, written by whichever of them first fixed it.
 */
export const DOMAIN_FILE = 'domain';

/** The node's key in its data directory (its identity, and where its rewards go). */
export const NODE_KEY_FILE = 'node.key';

/** The domain of its own a node with key `secret` serves when told none (no two nodes share a default). */
export function ownDomain(secret: Uint8Array): string {
  return ownDomainOf(toHex(addressOf(publicKeyOf(secret))));
}

/** The domain recorded in `datadir`, if any. */
export function datadirDomain(datadir: string): string | undefined {
  try {
    const d = readFileSync(join(datadir, DOMAIN_FILE), 'utf8').trim().toLowerCase();
    return d === '' ? undefined : d;
  } catch {
    return undefined;
  }
}

/** Records `domain` as the data directory's (written atomically: two `dots user add` at once cannot tear it). */
export function recordDomain(datadir: string, domain: string): void {
  writeOwnerOnly(join(datadir, DOMAIN_FILE), domain.toLowerCase() + '\n');
}

/** The loopback address every service listens on unless told otherwise. */
export const LOCALHOST = '127.0.0.1';

export function defaultConfig(network: NetworkName = 'devnet'): NodeConfig {
  const d = NODE_DEFAULTS[network];
  return {
    network,
    datadir: resolve(d.datadir),
    mine: false,
    minerThreads: 1,
    p2pPort: d.p2pPort,
    bootstrap: [],
    sipHost: LOCALHOST,
    sipPort: d.sipPort,
    domain: '',
    apiHost: LOCALHOST,
    apiPort: d.apiPort,
    openRegistration: false,
  };
}
