// Command-line argument helpers shared by every `dots` command: strict parsing, and value
// checks that fail with one line naming the flag and what it expects.
import { mkdirSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UserError } from '../core/errors.ts';
import { fromHex, isHex } from '../core/hash.ts';
import { isValidPublicKey } from '../core/sig.ts';
import { isNetworkName, NETWORK_NAMES, type NetworkName } from '../consensus/params.ts';

export function parse(args: string[], options: ParseArgsConfig['options'], positionals = 0): { values: Record<string, unknown>; positionals: string[] } {
  let r: { values: Record<string, unknown>; positionals: string[] };
  try {
    r = parseArgs({ args, options, allowPositionals: positionals > 0, strict: true }) as typeof r;
  } catch (e) {
    throw new UserError(`${(e as Error).message.split('\n')[0]} (see dots --help)`);
  }
  if (r.positionals.length > positionals) throw new UserError(`unexpected argument "${r.positionals[positionals]}" (see dots --help)`);
  return r;
}

export function port(v: unknown, flag: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(String(v)) || n > 65535) throw new UserError(`${flag} must be a port number 0-65535, got "${String(v)}"`);
  return n;
}

export function host(v: unknown, flag: string): string {
  const s = String(v);
  if (!/^[0-9a-zA-Z.:-]+$/.test(s)) throw new UserError(`${flag} must be a host name or IP address, got "${s}"`);
  return s;
}

/** HOST or HOST:PORT ([IPv6]:PORT for an IPv6 address): what a node announces it is reached at. */
export function hostPort(v: unknown, flag: string): { host: string; port?: number } {
  const s = String(v);
  const m = /^\[([0-9a-fA-F:.]+)\](?::([0-9]+))?$/.exec(s) ?? /^([0-9a-zA-Z.-]+)(?::([0-9]+))?$/.exec(s) ?? (isIP(s) === 6 ? [s, s] : null);
  if (m === null || (isIP(m[1]) === 0 && !/[a-zA-Z]/.test(m[1]) && !/^[0-9.]+$/.test(m[1]))) throw new UserError(`${flag} must be HOST or HOST:PORT (a public address or DNS name; [IPv6]:PORT), got "${s}"`);
  if (isIP(m[1]) === 0 && /^[0-9.]+$/.test(m[1])) throw new UserError(`${flag} must be HOST or HOST:PORT, and "${m[1]}" is not an IPv4 address`);
  const out: { host: string; port?: number } = { host: m[1].toLowerCase() };
  if (m[2] !== undefined) {
    const n = port(m[2], flag);
    if (n === 0) throw new UserError(`${flag}: the announced port cannot be 0`);
    out.port = n;
  }
  return out;
}

/** A multiaddr other nodes dial this node at (/ip4|ip6|dns4|dns6|dns/HOST/tcp/PORT, without /p2p/: the node adds its own). */
export function announceAddr(v: unknown, flag: string): string {
  const s = String(v);
  if (!/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/[1-9][0-9]{0,4}$/.test(s) || Number(s.split('/')[4]) > 65535) throw new UserError(`${flag} must be a multiaddr like /dns4/node.example.org/tcp/27070 or /ip4/203.0.113.7/tcp/27070, got "${s}"`);
  return s;
}

export function networkOf(v: unknown): NetworkName {
  const s = String(v ?? 'devnet');
  if (!isNetworkName(s)) throw new UserError(`--network must be one of ${NETWORK_NAMES.join(', ')}, got "${s}"`);
  return s;
}


const DOMAIN_RE = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

/** A SIP domain, lower-cased: letters, digits and inner hyphens, dot-separated labels. */
export function domain(v: unknown, flag: string): string {
  const d = String(v).toLowerCase();
  if (!DOMAIN_RE.test(d)) throw new UserError(`${flag} must be a domain name like example.org, got "${String(v)}"`);
  return d;
}

/** Creates the data directory (owner-only) or says in one line why it cannot. */
export function makeDatadir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw new UserError(`cannot create data directory ${dir}: ${(e as Error).message}`);
  }
}

/** A public key given on the command line (66 hex digits, a point on the curve), as bytes. */
export function publicKeyArg(v: unknown, what: string): Uint8Array {
  const s = String(v).toLowerCase();
  if (!isHex(s, 33) || !isValidPublicKey(fromHex(s))) throw new UserError(`${what} must be a public key, 66 hex digits (dots wallet address shows it)`);
  return fromHex(s);
}
