// The node: the one place that wires the parts together (store, chain, miner, API, the peer
// network, the call-receipt exchange and SIP). Everything it starts, stop() stops, in reverse order.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Store } from './store.ts';
import { buildApi } from './api.ts';
import { loadOrCreateKey } from '../wallet/keys.ts';
import { publicKeyOf } from './sig.ts';
import { addressOf, encodeAddress } from './address.ts';
import { UserError } from './errors.ts';
import type { Logger } from './log.ts';
import { Chain, type ChainOptions } from '../consensus/chain.ts';
import { Miner } from '../consensus/miner.ts';
import { NETWORKS, type NetworkName, type NetworkParams } from '../consensus/params.ts';
import { P2PNetwork } from '../p2p/network.ts';
import { ReceiptExchange } from '../p2p/receipts.ts';
import { CallLog, type CallEnd } from './calls.ts';
import { startSip, type SipStack } from './presence.ts';

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
  domain: string;
  apiHost: string;
  apiPort: number;
  openRegistration: boolean;
  /** seconds between OPTIONS keepalives to each registered phone (default 30) */
  sipKeepalive?: number;
  /** digest algorithms offered to phones, preferred first (default: chosen per phone) */
  sipDigest?: Array<'MD5' | 'SHA-256'>;
}

export function defaultConfig(network: NetworkName = 'devnet'): NodeConfig {
  return {
    network,
    datadir: resolve('data', network),
    mine: false,
    minerThreads: 1,
    // regtest is for tests, which run many nodes at once: a free port unless one is asked for
    p2pPort: network === 'regtest' ? 0 : NETWORKS[network].defaultP2pPort,
    bootstrap: [],
    sipHost: '127.0.0.1',
    // regtest is for tests, which run many nodes at once: a free port unless one is asked for
    sipPort: network === 'regtest' ? 0 : 5060,
    domain: 'dots.local',
    apiHost: '127.0.0.1',
    apiPort: 8080,
    openRegistration: false,
  };
}

export class DotsNode {
  private api?: FastifyInstance;
  miner?: Miner;
  p2p?: P2PNetwork;
  receipts?: ReceiptExchange;
  calls?: CallLog;
  sip?: SipStack;
  apiUrl = '';

  private constructor(
    readonly config: NodeConfig,
    readonly params: NetworkParams,
    readonly store: Store,
    readonly chain: Chain,
    readonly secret: Uint8Array,
    private readonly log: Logger,
  ) {}

  get rewardAddress(): Uint8Array {
    return addressOf(publicKeyOf(this.secret));
  }

  static async start(config: NodeConfig, log: Logger, chainOpts: ChainOptions = {}): Promise<DotsNode> {
    const params = NETWORKS[config.network];
    try {
      mkdirSync(config.datadir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new UserError(`cannot create data directory ${config.datadir}: ${(e as Error).message}`);
    }
    const store = await Store.open(join(config.datadir, 'chain'));
    let node: DotsNode;
    try {
      const { secret, created } = loadOrCreateKey(join(config.datadir, 'node.key'));
      if (created) log.info(`created node key ${join(config.datadir, 'node.key')}`);
      const chain = await Chain.open(store, params, chainOpts);
      node = new DotsNode(config, params, store, chain, secret, log);
    } catch (e) {
      await store.close();
      throw e;
    }
    await node.startServices();
    return node;
  }

  private async startServices(): Promise<void> {
    const { chain, log, config, params } = this;
    log.info(`${params.name} chain at height ${chain.tip.height}, tip ${chain.tip.hex}`);
    chain.on('tip', (c) => {
      const n = c.connected.length;
      if (c.disconnected.length > 0) log.info(`reorganised: ${c.disconnected.length} block(s) disconnected, ${n} connected`);
      // While syncing, p2p logs progress lines instead of one line per block.
      if (this.p2p?.syncing() === true) return;
      log.info(`new tip ${c.tip.height} ${c.tip.hex} (${c.connected.length} connected, ${chain.pool.size} pending)`);
    });
    this.miner = new Miner(
      chain,
      this.rewardAddress,
      {
        onBlock: (r, height) => {
          if (r.status === 'connected') log.debug(`mined block ${height} ${r.hex}`);
          else log.warn(`mined block ${height} was not connected: ${r.status}`);
        },
        onHashrate: (hps, threads) => log.info(`mining at ${(hps / 1e6).toFixed(2)} MH/s (${threads > 0 ? `${threads} worker thread${threads === 1 ? '' : 's'}` : 'event loop'})`),
        onError: (e) => log.warn(`miner: ${e.message}`),
      },
      { threads: config.minerThreads },
    );
    this.api = await buildApi({
      chain,
      hashrate: () => this.miner?.hashrate ?? 0,
      peers: () => this.p2p?.peers() ?? [],
      syncing: () => this.p2p?.syncing() ?? false,
      syncProgress: () => this.p2p?.progress(),
      mine: (n) => (this.miner as Miner).mineBlocks(n),
    });
    try {
      await this.api.listen({ host: config.apiHost, port: config.apiPort });
    } catch (e) {
      await this.stop();
      throw new UserError(`cannot listen for the API on ${config.apiHost}:${config.apiPort}: ${(e as Error).message} (pass another --api-port)`);
    }
    const addr = this.api.server.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : config.apiPort;
    this.apiUrl = `http://${config.apiHost}:${port}`;
    this.p2p = new P2PNetwork(chain, { host: config.p2pHost, port: config.p2pPort, bootstrap: config.bootstrap, mdns: config.mdns, datadir: config.datadir, log });
    try {
      await this.p2p.start();
    } catch (e) {
      await this.stop();
      throw e;
    }
    const p2p = this.p2p;
    try {
      // The exchange rides on the p2p node: same peer identity, connections and bans.
      this.receipts = new ReceiptExchange({ chain, secret: this.secret, log, penalize: (id, o, w) => p2p.penalize(id, o, w) });
      this.calls = new CallLog({ chain, secret: this.secret, log, exchange: this.receipts });
      await this.receipts.start(p2p.libp2p);
    } catch (e) {
      await this.stop();
      throw e;
    }
    const calls = this.calls;
    try {
      this.sip = await startSip(config, chain, this.secret, log, () => this.p2p?.multiaddrs() ?? [], { onCallEnd: (e: CallEnd) => calls.callEnded(e) });
    } catch (e) {
      await this.stop();
      throw e;
    }
    if (config.mine) {
      this.miner.start();
      log.info(`mining to ${encodeAddress(params.addressPrefix, this.rewardAddress)}`);
    }
  }

  private stopped = false;
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.miner?.stop();
    // SIP first, so no call ends after the call log stopped; the exchange before p2p, whose
    // libp2p node it borrows.
    await this.sip?.stop();
    this.calls?.stop();
    await this.receipts?.stop();
    await this.p2p?.stop();
    await this.api?.close();
    await this.store.close();
  }
}
