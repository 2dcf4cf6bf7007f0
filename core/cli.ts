// The `dots` command line. Every user mistake (bad flag, bad value, locked data directory)
// ends in one line on stderr saying what to fix and exit code 2; nothing prints a stack trace
// unless DOTS_DEBUG is set.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { resolve, join } from 'node:path';
import { existsSync } from 'node:fs';
import { UserError, ValidationError } from './errors.ts';
import { createLogger } from './log.ts';
import { DotsNode, defaultConfig, type NodeConfig } from './node.ts';
import { isNetworkName, NETWORKS, NETWORK_NAMES, type NetworkName } from '../consensus/params.ts';
import { addressOf, encodeAddress, decodeAddress } from './address.ts';
import { publicKeyOf, generateSecretKey } from './sig.ts';
import { writeKeyFile, readKeyFile } from '../wallet/keys.ts';
import { signRecord, Kind, type Transfer } from './records.ts';
import { toHex } from './hash.ts';

const HELP = `dots: a DOTS node (SIP registrar, presence agent and proxy on a proof-of-work chain)

Usage:
  dots node [options]              run a node
  dots wallet new|address|balance|send ...
  dots bench hash [--json]         hashing benchmark
  dots help                        this text

Node options:
  --network devnet|testnet|mainnet|regtest   network (default devnet)
  --datadir DIR          data directory (default ./data/NETWORK)
  --mine                 mine blocks
  --miner-threads N      mining threads (default 1)
  --p2p-port N           peer-to-peer TCP port
  --bootstrap MULTIADDR  peer to join (repeatable)
  --sip-host H           SIP listen address (default 127.0.0.1)
  --sip-port N           SIP UDP/TCP port (default 5060)
  --domain D             SIP domain this node serves (default dots.local)
  --api-host H           API and explorer address (default 127.0.0.1)
  --api-port N           API and explorer port (default 8080)
  --open-registration    let any user register without a password (devnet)

Wallet:
  dots wallet new [--wallet FILE] [--passphrase P]   create an encrypted key file
  dots wallet address [--wallet FILE]                show its address
  dots wallet balance [--wallet FILE] [--api URL]    balance from a running node
  dots wallet send ADDRESS AMOUNT [--fee N] [--wallet FILE] [--api URL]
  (the passphrase may also come from DOTS_PASSPHRASE)
`;

function parse(args: string[], options: ParseArgsConfig['options'], positionals = 0): { values: Record<string, unknown>; positionals: string[] } {
  let r: { values: Record<string, unknown>; positionals: string[] };
  try {
    r = parseArgs({ args, options, allowPositionals: positionals > 0, strict: true }) as typeof r;
  } catch (e) {
    throw new UserError(`${(e as Error).message.split('\n')[0]} (see dots --help)`);
  }
  if (r.positionals.length > positionals) throw new UserError(`unexpected argument "${r.positionals[positionals]}" (see dots --help)`);
  return r;
}

function port(v: unknown, flag: string): number {
  const n = Number(v);
  if (!/^[0-9]+$/.test(String(v)) || n > 65535) throw new UserError(`${flag} must be a port number 0-65535, got "${String(v)}"`);
  return n;
}

function host(v: unknown, flag: string): string {
  const s = String(v);
  if (!/^[0-9a-zA-Z.:-]+$/.test(s)) throw new UserError(`${flag} must be a host name or IP address, got "${s}"`);
  return s;
}

function networkOf(v: unknown): NetworkName {
  const s = String(v ?? 'devnet');
  if (!isNetworkName(s)) throw new UserError(`--network must be one of ${NETWORK_NAMES.join(', ')}, got "${s}"`);
  return s;
}

export function parseNodeArgs(args: string[]): NodeConfig {
  const { values: v } = parse(args, {
    network: { type: 'string' },
    datadir: { type: 'string' },
    mine: { type: 'boolean' },
    'miner-threads': { type: 'string' },
    'p2p-port': { type: 'string' },
    bootstrap: { type: 'string', multiple: true },
    'sip-host': { type: 'string' },
    'sip-port': { type: 'string' },
    domain: { type: 'string' },
    'api-host': { type: 'string' },
    'api-port': { type: 'string' },
    'open-registration': { type: 'boolean' },
  });
  const network = networkOf(v.network);
  const c = defaultConfig(network);
  if (v.datadir !== undefined) c.datadir = resolve(String(v.datadir));
  c.mine = v.mine === true;
  if (v['miner-threads'] !== undefined) {
    const n = Number(v['miner-threads']);
    if (!/^[0-9]+$/.test(String(v['miner-threads'])) || n < 1 || n > 256) throw new UserError(`--miner-threads must be a whole number from 1 to 256, got "${String(v['miner-threads'])}"`);
    c.minerThreads = n;
  }
  if (v['p2p-port'] !== undefined) c.p2pPort = port(v['p2p-port'], '--p2p-port');
  if (v.bootstrap !== undefined) {
    for (const b of v.bootstrap as string[]) if (!/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+\/tcp\/[0-9]+\/p2p\/[1-9A-HJ-NP-Za-km-z]+$/.test(b)) throw new UserError(`--bootstrap must be a multiaddr like /ip4/127.0.0.1/tcp/27070/p2p/PEER-ID, got "${b}"`);
    c.bootstrap = v.bootstrap as string[];
  }
  if (v['sip-host'] !== undefined) c.sipHost = host(v['sip-host'], '--sip-host');
  if (v['sip-port'] !== undefined) c.sipPort = port(v['sip-port'], '--sip-port');
  if (v.domain !== undefined) {
    const d = String(v.domain).toLowerCase();
    if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(d)) throw new UserError(`--domain must be a domain name like example.org, got "${String(v.domain)}"`);
    c.domain = d;
  }
  if (v['api-host'] !== undefined) c.apiHost = host(v['api-host'], '--api-host');
  if (v['api-port'] !== undefined) c.apiPort = port(v['api-port'], '--api-port');
  c.openRegistration = v['open-registration'] === true;
  return c;
}

async function runNode(args: string[]): Promise<number> {
  const config = parseNodeArgs(args);
  const log = createLogger(process.env.DOTS_LOG === 'debug' ? 'debug' : 'info');
  const node = await DotsNode.start(config, log);
  const out = (s: string): void => void process.stdout.write(s + '\n');
  out(`DOTS node on ${config.network}, data in ${config.datadir}`);
  out(`p2p:      not enabled in this version`);
  out(`sip:      not enabled in this version (sip:${config.domain})`);
  out(`explorer: ${node.apiUrl}/`);
  out(`api:      ${node.apiUrl}/api/status`);
  await new Promise<void>((resolveStop) => {
    let stopping = false;
    const stop = (sig: string): void => {
      if (stopping) return;
      stopping = true;
      log.info(`${sig}: stopping`);
      void node.stop().then(resolveStop);
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

interface WalletOpts {
  file: string;
  network: NetworkName;
  api: string;
  passphrase?: string;
}

function walletOpts(v: Record<string, unknown>): WalletOpts {
  const network = networkOf(v.network);
  return {
    network,
    file: resolve(String(v.wallet ?? join('data', network, 'wallet.key'))),
    api: String(v.api ?? 'http://127.0.0.1:8080').replace(/\/$/, ''),
    passphrase: (v.passphrase as string | undefined) ?? process.env.DOTS_PASSPHRASE,
  };
}

async function apiGet(api: string, path: string): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(api + path);
  } catch {
    throw new UserError(`cannot reach a node API at ${api} (is dots node running? pass --api URL)`);
  }
  const body = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new UserError(`node answered ${res.status}: ${String(body.error)}`);
  return body;
}

async function runWallet(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const opts = { wallet: { type: 'string' }, passphrase: { type: 'string' }, network: { type: 'string' }, api: { type: 'string' }, fee: { type: 'string' } } as const;
  const { values, positionals } = parse(rest, opts, sub === 'send' ? 2 : 0);
  const w = walletOpts(values);
  const prefix = NETWORKS[w.network].addressPrefix;
  switch (sub) {
    case 'new': {
      if (existsSync(w.file)) throw new UserError(`${w.file} exists already; pass --wallet FILE for another`);
      if (w.passphrase === undefined) throw new UserError('give a passphrase with --passphrase or DOTS_PASSPHRASE to encrypt the new key');
      const secret = generateSecretKey();
      writeKeyFile(w.file, secret, w.passphrase);
      console.log(`wallet ${w.file}`);
      console.log(`address ${encodeAddress(prefix, addressOf(publicKeyOf(secret)))}`);
      return 0;
    }
    case 'address': {
      const secret = readKeyFile(w.file, w.passphrase);
      console.log(encodeAddress(prefix, addressOf(publicKeyOf(secret))));
      return 0;
    }
    case 'balance': {
      const secret = readKeyFile(w.file, w.passphrase);
      const a = await apiGet(w.api, `/api/accounts/${encodeAddress(prefix, addressOf(publicKeyOf(secret)))}`);
      console.log(`${String(a.address)} balance ${String(a.balance)} nonce ${String(a.nonce)}`);
      return 0;
    }
    case 'send': {
      const [to, amountStr] = positionals;
      if (to === undefined || amountStr === undefined) throw new UserError('usage: dots wallet send ADDRESS AMOUNT [--fee N]');
      const toAddr = decodeAddress(prefix, to);
      if (!/^[1-9][0-9]*$/.test(amountStr) || !Number.isSafeInteger(Number(amountStr))) throw new UserError(`AMOUNT must be a positive whole number of units, got "${amountStr}"`);
      const feeStr = String(values.fee ?? '0');
      if (!/^[0-9]+$/.test(feeStr) || !Number.isSafeInteger(Number(feeStr))) throw new UserError(`--fee must be a whole number of units, got "${feeStr}"`);
      const secret = readKeyFile(w.file, w.passphrase);
      const pub = publicKeyOf(secret);
      const acct = await apiGet(w.api, `/api/accounts/${encodeAddress(prefix, addressOf(pub))}`);
      const rec = signRecord<Transfer>(w.network, secret, { kind: Kind.Transfer, pubkey: pub, to: toAddr, amount: Number(amountStr), fee: Number(feeStr), nonce: Number(acct.nonce) });
      let res: Response;
      try {
        res = await fetch(`${w.api}/api/records`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ record: toHex(rec.bytes) }) });
      } catch {
        throw new UserError(`cannot reach a node API at ${w.api}`);
      }
      const body = (await res.json()) as Record<string, unknown>;
      if (!res.ok) throw new UserError(`transfer rejected: ${String(body.error)}`);
      console.log(`sent, record ${String(body.id)} pending`);
      return 0;
    }
    default:
      throw new UserError(`unknown wallet command "${sub ?? ''}" (new, address, balance, send)`);
  }
}

async function runBench(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { json: { type: 'boolean' }, seconds: { type: 'string' } }, 1);
  const which = positionals[0] ?? 'all';
  const seconds = values.seconds === undefined ? 2 : Number(values.seconds);
  if (!(seconds > 0 && seconds <= 600)) throw new UserError('--seconds must be a number from 0 to 600');
  const { runBenchmarks } = await import('../bench/index.ts');
  return runBenchmarks(which, { json: values.json === true, seconds });
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'node':
        return await runNode(rest);
      case 'wallet':
        return await runWallet(rest);
      case 'bench':
        return await runBench(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        return cmd === undefined ? 2 : 0;
      default:
        throw new UserError(`unknown command "${cmd}" (see dots --help)`);
    }
  } catch (e) {
    if (e instanceof UserError || e instanceof ValidationError) {
      process.stderr.write(`dots: ${e.message}\n`);
      return 2;
    }
    if (process.env.DOTS_DEBUG !== undefined) throw e;
    process.stderr.write(`dots: unexpected error: ${(e as Error).message} (set DOTS_DEBUG=1 for details)\n`);
    return 1;
  }
}
