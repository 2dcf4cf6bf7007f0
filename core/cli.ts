// The `dots` command line. Every user mistake (bad flag, bad value, locked data directory)
// ends in one line on stderr saying what to fix and exit code 2; nothing prints a stack trace
// unless DOTS_DEBUG is set.
import { resolve } from 'node:path';
import { UserError, ValidationError } from './errors.ts';
import { createLogger } from './log.ts';
import { DotsNode, defaultConfig, type NodeConfig } from './node.ts';
import { parse, port, host, networkOf } from './args.ts';
import { runWallet, runName } from '../wallet/commands.ts';
import { runUser } from './users.ts';

const HELP = `dots: a DOTS node (SIP registrar, presence agent and proxy on a proof-of-work chain)

Usage:
  dots node [options]              run a node
  dots wallet new|address|balance|send|history ...
  dots name claim|renew|transfer|delegate|show ...
  dots user add NAME --password PW [--alias NAME]... [--datadir DIR] [--domain D]
                                   a SIP account for a phone at this node
  dots bench hash [--json]         hashing benchmark
  dots help                        this text

Node options:
  --network devnet|testnet|mainnet|regtest   network (default devnet)
  --datadir DIR          data directory (default ./data/NETWORK)
  --mine                 mine blocks
  --miner-threads N      mining threads (default 1)
  --p2p-port N           peer-to-peer TCP port (0 picks a free one)
  --p2p-host H           peer-to-peer listen address (default 127.0.0.1)
  --bootstrap MULTIADDR  peer to join (repeatable)
  --mdns                 find peers on the local network (mDNS)
  --sip-host H           SIP listen address (default 127.0.0.1)
  --sip-port N           SIP UDP/TCP port (default 5060)
  --domain D             SIP domain this node serves (default dots.local)
  --api-host H           API and explorer address (default 127.0.0.1)
  --api-port N           API and explorer port (default 8080)
  --open-registration    let any user register without a password (devnet)
  --sip-keepalive N      seconds between OPTIONS pings to each phone (default 30)
  --sip-digest LIST      digest algorithms offered, preferred first: md5, sha-256 or both
                         (default: sha-256 first, md5 alone to phones known to need it)

Wallet:
  dots wallet new [--wallet FILE] [--passphrase P]   create an encrypted key file
  dots wallet address [--wallet FILE]                show its address
  dots wallet balance [--wallet FILE] [--api URL]    balance from a running node
  dots wallet history [--wallet FILE] [--api URL]    what came and went
  dots wallet send ADDRESS AMOUNT [--fee N] [--wallet FILE] [--api URL]
  (the passphrase may also come from DOTS_PASSPHRASE)

Names (sip:user@domain, +E164 or a domain; signed with the wallet key):
  dots name claim NAME [--no-wait]     commit, wait for the commitment to mature, reveal
  dots name renew NAME
  dots name transfer NAME PUBKEY       to the owner of another key (66 hex digits)
  dots name delegate NAME NODE-ID|none let a node sign presence bindings for the name
  dots name show NAME
`;

export function parseNodeArgs(args: string[]): NodeConfig {
  const { values: v } = parse(args, {
    network: { type: 'string' },
    datadir: { type: 'string' },
    mine: { type: 'boolean' },
    'miner-threads': { type: 'string' },
    'p2p-port': { type: 'string' },
    'p2p-host': { type: 'string' },
    mdns: { type: 'boolean' },
    bootstrap: { type: 'string', multiple: true },
    'sip-host': { type: 'string' },
    'sip-port': { type: 'string' },
    domain: { type: 'string' },
    'api-host': { type: 'string' },
    'api-port': { type: 'string' },
    'open-registration': { type: 'boolean' },
    'sip-keepalive': { type: 'string' },
    'sip-digest': { type: 'string' },
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
  if (v['p2p-host'] !== undefined) c.p2pHost = host(v['p2p-host'], '--p2p-host');
  c.mdns = v.mdns === true;
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
  if (v['sip-keepalive'] !== undefined) {
    const k = String(v['sip-keepalive']);
    if (!/^[0-9]+$/.test(k) || Number(k) < 1 || Number(k) > 3600) throw new UserError(`--sip-keepalive must be a whole number of seconds from 1 to 3600, got "${k}"`);
    c.sipKeepalive = Number(k);
  }
  if (v['sip-digest'] !== undefined) {
    const algs = String(v['sip-digest']).toUpperCase().split(',').map((a) => a.trim());
    if (algs.length === 0 || algs.length > 2 || new Set(algs).size !== algs.length || !algs.every((a) => a === 'MD5' || a === 'SHA-256')) throw new UserError(`--sip-digest must be md5, sha-256 or both separated by a comma, got "${String(v['sip-digest'])}"`);
    c.sipDigest = algs as Array<'MD5' | 'SHA-256'>;
  }
  return c;
}

async function runNode(args: string[]): Promise<number> {
  const config = parseNodeArgs(args);
  const log = createLogger(process.env.DOTS_LOG === 'debug' ? 'debug' : 'info');
  const node = await DotsNode.start(config, log);
  const out = (s: string): void => void process.stdout.write(s + '\n');
  out(`DOTS node on ${config.network}, data in ${config.datadir}`);
  out(`p2p:      ${node.p2p?.multiaddrs()[0] ?? 'not listening'}`);
  out(`sip:      ${node.sip?.describe() ?? 'not listening'}`);
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
      case 'name':
        return await runName(rest);
      case 'user':
        return await runUser(rest);
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
