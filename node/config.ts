// What a node is told to be: the network, where it keeps its data, what it listens on and serves.
// The defaults per network come from consensus/params.ts (NODE_DEFAULTS), the one place that
// names them; the command line (cli/node.ts) overrides them flag by flag.
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join, resolve } from 'node:path';
import { NODE_DEFAULTS, type NetworkName } from '../consensus/params.ts';
import { UserError } from '../core/errors.ts';
import { writeOwnerOnly } from '../core/files.ts';
import { ownDomainOf } from '../core/records.ts';
import { toHex } from '../core/hash.ts';
import { addressOf } from '../core/address.ts';
import { parseTrunkSource } from '../sip/trunk.ts';
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
  /**
   * what the node is reached at for SIP when that is not what it listens on (a public address
   * or DNS name, behind NAT or a load balancer): its announcement on the chain, Via and
   * Record-Route (default: the listening address and port)
   */
  sipAnnounce?: { host: string; port?: number };
  /** multiaddrs other nodes dial this node at, in place of the listening ones (default: those) */
  p2pAnnounce?: string[];
  /** SIP over TLS port (null: no TLS) */
  tlsPort: number | null;
  /** a certificate and key to use (PEM files) instead of the node's own, made at first start */
  tlsCert?: string;
  tlsKey?: string;
  /** phones must register over TLS, and SDP with SRTP keys (a=crypto) crosses plain transports nowhere */
  requireTls?: boolean;
  /** SIP over WebSocket (RFC 7118) on this port, for browser phones (null: none); `wsTls`: wss with the TLS certificate */
  wsPort?: number | null;
  wsTls?: boolean;
  /** STUN servers the browser phone page gives its browsers (stun:HOST[:PORT]), for media across NAT */
  iceServers?: string[];
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
  /** the operator's own SIP server (Kamailio, a PBX) for the domain's users that do not register here, and the sources whose requests are its */
  trunk?: { targets: Array<{ host: string; port: number }>; allow?: string[] };
  /** records the pending pool holds at most (default 50,000); past it, records are evicted by fee rate with a share per signer */
  maxPending?: number;
  /** units per byte the node's own records (bindings, names, announcements, receipts) pay (default: the network's least) */
  feeRate?: number;
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

/** The sources whose requests are the trunk's servers' (IPs or IP:PORT), checked; a bad one is a UserError naming `flag`. */
export function trunkSources(entries: readonly string[], flag: string): string[] {
  const list = entries.map((e) => e.trim()).filter((e) => e !== '');
  for (const e of list) if (parseTrunkSource(e) === null) throw new UserError(`${flag} must be an IP address or IP:PORT your SIP server sends from, got "${e}"`);
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

/** An address no other machine can reach this node at: unspecified (listening everywhere) or loopback. */
export function unreachableHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost') || h === '::' || h === '::1' || h === '0.0.0.0') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return /^::ffff:127\./.test(h);
}

/**
 * The networks where nodes are strangers on the internet (mainnet, testnet) refuse a node that
 * would announce an address nobody else can reach: listening on 0.0.0.0 or loopback without
 * --sip-announce (or --p2p-announce), it would put sip:0.0.0.0 or sip:127.0.0.1 on the chain
 * and be called there. Devnet and regtest run on one machine or a LAN and allow it.
 */
export function checkAnnounced(c: NodeConfig): void {
  if (c.network !== 'mainnet' && c.network !== 'testnet') return;
  const sip = c.sipAnnounce?.host ?? c.sipHost;
  if (unreachableHost(sip)) {
    throw new UserError(
      `on ${c.network} the node would announce sip:${isIP(sip) === 6 ? `[${sip}]` : sip}, which no other node can reach: pass --sip-announce HOST[:PORT] (this machine's public address or DNS name)` +
        (c.sipAnnounce === undefined ? ' and --sip-host 0.0.0.0 (or the address to listen on)' : ''),
    );
  }
  const p2p = c.p2pAnnounce ?? [`/ip4/${c.p2pHost ?? LOCALHOST}`];
  const bad = p2p.find((a) => unreachableHost(a.split('/')[2] ?? ''));
  if (bad !== undefined) {
    throw new UserError(
      `on ${c.network} the node would announce ${bad.split('/').slice(0, 3).join('/')} for p2p, which no other node can reach: pass --p2p-announce /ip4/PUBLIC-IP/tcp/PORT (or /dns4/NAME/tcp/PORT)` +
        (c.p2pAnnounce === undefined ? ' and --p2p-host 0.0.0.0' : ''),
    );
  }
}

/**
 * What a node listening on every address (0.0.0.0 or ::) announces when told nothing (devnet,
 * regtest: mainnet and testnet refuse it, see checkAnnounced): the machine's first non-internal
 * IPv4 address, which the other machines of its network reach, else loopback.
 */
export function sipAnnounced(c: Pick<NodeConfig, 'sipHost' | 'sipAnnounce'>): { host: string; port?: number } | undefined {
  if (c.sipAnnounce !== undefined) return c.sipAnnounce;
  if (c.sipHost !== '0.0.0.0' && c.sipHost !== '::') return undefined;
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return { host: a.address };
  return { host: LOCALHOST };
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
    tlsPort: d.tlsPort,
    domain: '',
    apiHost: LOCALHOST,
    apiPort: d.apiPort,
    openRegistration: false,
  };
}
