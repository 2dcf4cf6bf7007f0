// The node: the one place that wires the parts together (store, chain, miner, API, and later
// the peer network and SIP). Everything it starts, stop() stops, in reverse order.
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

export interface NodeConfig {
  network: NetworkName;
  datadir: string;
  mine: boolean;
  minerThreads: number;
  p2pPort: number;
  bootstrap: string[];
  sipHost: string;
  sipPort: number;
  domain: string;
  apiHost: string;
  apiPort: number;
  openRegistration: boolean;
}

export function defaultConfig(network: NetworkName = 'devnet'): NodeConfig {
  return {
    network,
    datadir: resolve('data', network),
    mine: false,
    minerThreads: 1,
    p2pPort: NETWORKS[network].defaultP2pPort,
    bootstrap: [],
    sipHost: '127.0.0.1',
    sipPort: 5060,
    domain: 'dots.local',
    apiHost: '127.0.0.1',
    apiPort: 8080,
    openRegistration: false,
  };
}

export class DotsNode {
  private api?: FastifyInstance;
  miner?: Miner;
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
      log.info(`new tip ${c.tip.height} ${c.tip.hex} (${c.connected.length} connected, ${chain.pool.size} pending)`);
    });
    this.miner = new Miner(chain, this.rewardAddress, {
      onBlock: (r, height) => {
        if (r.status === 'connected') log.debug(`mined block ${height} ${r.hex}`);
        else log.warn(`mined block ${height} was not connected: ${r.status}`);
      },
    });
    this.api = await buildApi({
      chain,
      hashrate: () => this.miner?.hashrate ?? 0,
      peers: () => [],
      syncing: () => false,
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
    await this.api?.close();
    await this.store.close();
  }
}
