// `dots node`: the flags of a node, checked one by one (a bad one ends in one line naming it),
// and the node run until SIGINT or SIGTERM.
import { resolve } from 'node:path';
import { isIP } from 'node:net';
import { UserError } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { DotsNode } from '../node/node.ts';
import { checkAnnounced, datadirDomain, defaultConfig, sipBanList, trunkSources, type NodeConfig } from '../node/config.ts';
import { announceAddr, domain, host, hostPort, networkOf, parse, port } from './args.ts';
import { NETWORKS } from '../consensus/params.ts';

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
    'p2p-announce': { type: 'string', multiple: true },
    'sip-host': { type: 'string' },
    'sip-announce': { type: 'string' },
    'tls-port': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'no-tls': { type: 'boolean' },
    'require-tls': { type: 'boolean' },
    'ws-port': { type: 'string' },
    'ws-tls': { type: 'boolean' },
    'ice-server': { type: 'string', multiple: true },
    'sip-port': { type: 'string' },
    domain: { type: 'string' },
    'api-host': { type: 'string' },
    'api-port': { type: 'string' },
    'open-registration': { type: 'boolean' },
    'sip-keepalive': { type: 'string' },
    'sip-digest': { type: 'string' },
    'sip-ban': { type: 'string', multiple: true },
    'fee-rate': { type: 'string' },
    'max-pending': { type: 'string' },
    trunk: { type: 'string', multiple: true },
    'trunk-allow': { type: 'string', multiple: true },
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
  if (v['sip-announce'] !== undefined) c.sipAnnounce = hostPort(v['sip-announce'], '--sip-announce');
  if (v['tls-port'] !== undefined) c.tlsPort = port(v['tls-port'], '--tls-port');
  if ((v['tls-cert'] === undefined) !== (v['tls-key'] === undefined)) throw new UserError('--tls-cert and --tls-key go together: give both, or neither (the node then makes its own)');
  if (v['tls-cert'] !== undefined) c.tlsCert = resolve(String(v['tls-cert']));
  if (v['tls-key'] !== undefined) c.tlsKey = resolve(String(v['tls-key']));
  if (v['no-tls'] === true) {
    if (v['tls-port'] !== undefined || v['tls-cert'] !== undefined || v['tls-key'] !== undefined) throw new UserError('--no-tls cannot go with --tls-port, --tls-cert or --tls-key');
    c.tlsPort = null;
  }
  if (v['ws-port'] !== undefined) c.wsPort = port(v['ws-port'], '--ws-port');
  if (v['ws-tls'] === true) {
    if (c.wsPort === undefined || c.wsPort === null) throw new UserError('--ws-tls goes with --ws-port N (the WebSocket port to serve wss on)');
    if (c.tlsPort === null) throw new UserError('--ws-tls needs TLS: drop --no-tls');
    c.wsTls = true;
  }
  if (v['ice-server'] !== undefined) {
    for (const s of v['ice-server'] as string[]) if (!/^stuns?:[0-9a-zA-Z.-]+(:[0-9]{1,5})?$/.test(s) && !/^stuns?:\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$/.test(s)) throw new UserError(`--ice-server must be a STUN server like stun:stun.example.org:3478, got "${s}"`);
    c.iceServers = v['ice-server'] as string[];
  }
  if (v['require-tls'] === true) {
    if (c.tlsPort === null) throw new UserError('--require-tls needs TLS: drop --no-tls');
    c.requireTls = true;
  }
  if (v['p2p-announce'] !== undefined) c.p2pAnnounce = (v['p2p-announce'] as string[]).map((a) => announceAddr(a, '--p2p-announce'));
  if (v.domain !== undefined) c.domain = domain(v.domain, '--domain');
  else c.domain = datadirDomain(c.datadir) ?? c.domain;
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
  if (v['sip-ban'] !== undefined) {
    c.sipBan = sipBanList((v['sip-ban'] as string[]).flatMap((b) => b.split(',')), '--sip-ban');
  }
  if (v.trunk !== undefined) {
    const targets = (v.trunk as string[]).map((x) => {
      const m = /^sip:(\[[0-9a-fA-F:]+\]|[0-9.]+)(?::([0-9]{1,5}))?(;transport=udp)?$/i.exec(x);
      const host = m?.[1].replace(/^\[|\]$/g, '') ?? '';
      if (m === null || isIP(host) === 0) throw new UserError(`--trunk must be your SIP server's address as sip:IP[:PORT] (over UDP), got "${x}"`);
      const p = m[2] === undefined ? 5060 : Number(m[2]);
      if (p < 1 || p > 65535) throw new UserError(`--trunk: port ${p} is out of range in "${x}"`);
      return { host, port: p };
    });
    c.trunk = { targets };
    if (v['trunk-allow'] !== undefined) c.trunk.allow = trunkSources((v['trunk-allow'] as string[]).flatMap((x) => x.split(',')), '--trunk-allow');
  } else if (v['trunk-allow'] !== undefined) throw new UserError('--trunk-allow goes with --trunk sip:IP[:PORT]');
  if (v['max-pending'] !== undefined) {
    const n = String(v['max-pending']);
    if (!/^[0-9]+$/.test(n) || Number(n) < 10 || Number(n) > 10_000_000) throw new UserError(`--max-pending must be a whole number of records from 10 to 10000000, got "${n}"`);
    c.maxPending = Number(n);
  }
  if (v['fee-rate'] !== undefined) {
    const r = String(v['fee-rate']);
    const least = NETWORKS[network].minFeeRate;
    if (!/^[0-9]+$/.test(r) || !Number.isSafeInteger(Number(r)) || Number(r) < least) throw new UserError(`--fee-rate must be a whole number of units per byte of at least ${least} (the least ${network} takes), got "${r}"`);
    c.feeRate = Number(r);
  }
  checkAnnounced(c);
  return c;
}

export async function runNode(args: string[]): Promise<number> {
  const config = parseNodeArgs(args);
  const log = createLogger(process.env.DOTS_LOG === 'debug' ? 'debug' : 'info');
  const node = await DotsNode.start(config, log);
  const out = (s: string): void => void process.stdout.write(s + '\n');
  out(`DOTS node on ${config.network}, data in ${config.datadir}`);
  out(`p2p:      ${node.p2p?.multiaddrs()[0] ?? 'not listening'}`);
  out(`sip:      ${node.describeSip()}`);
  out(`explorer: ${node.apiUrl}/`);
  out(`phone:    ${node.describePhone()}`);
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
