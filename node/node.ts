// The node: the one place that constructs the parts and wires them together (store, chain,
// miner, API, the peer network, the call-receipt exchange, and the SIP service with the presence
// bridge, accounts and call log that connect it to the chain). Everything it starts, stop()
// stops, in reverse order.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Store } from '../core/store.ts';
import { buildApi } from './api/server.ts';
import { loadOrCreateKey } from '../wallet/keys.ts';
import { publicKeyOf } from '../core/sig.ts';
import { addressOf, encodeAddress } from '../core/address.ts';
import { UserError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { Chain, type ChainOptions } from '../consensus/chain.ts';
import { Miner } from '../mining/miner.ts';
import { NETWORKS, type NetworkParams } from '../consensus/params.ts';
import type { NodeConfig } from './config.ts';
import { P2PNetwork } from '../p2p/network.ts';
import { ReceiptExchange } from '../p2p/receipts.ts';
import { CallLog, type CallEnd } from '../telecom/calls.ts';
import { PresenceBridge } from '../telecom/presence.ts';
import { UserStore } from '../telecom/users.ts';
import { chainLocator } from '../telecom/routing.ts';
import { SipService } from '../sip/service.ts';
import { Kind, type Rec } from '../core/records.ts';
import { setSipStatsSource } from './metrics.ts';
import { RegistrationsFile } from './registrations.ts';

export class DotsNode {
  private api?: FastifyInstance;
  miner?: Miner;
  p2p?: P2PNetwork;
  receipts?: ReceiptExchange;
  calls?: CallLog;
  sip?: SipService;
  users?: UserStore;
  presence?: PresenceBridge;
  private registrations?: RegistrationsFile;
  private readonly unwire: Array<() => void> = [];
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
    try {
      await this.startSip(this.calls);
    } catch (e) {
      await this.stop();
      throw e;
    }
    if (config.mine) {
      this.miner.start();
      log.info(`mining to ${encodeAddress(params.addressPrefix, this.rewardAddress)}`);
    }
  }

  /**
   * The SIP side: accounts, the SIP service (reading the chain through the locator), and the
   * presence bridge that turns what the registrar verified into chain records.
   */
  private async startSip(calls: CallLog): Promise<void> {
    const { chain, config, log } = this;
    const users = new UserStore(config.datadir, config.domain, (m) => log.warn(m));
    this.users = users;
    const interval = (config.sipKeepalive ?? 30) * 1000;
    const sip = new SipService({
      host: config.sipHost,
      port: config.sipPort,
      domain: config.domain,
      openRegistration: config.openRegistration,
      users,
      keepalive: { intervalMs: interval, timeoutMs: Math.min(8000, Math.max(1000, interval)) },
      digest: { algorithms: config.sipDigest },
      log,
      onPresence: (aor, online, until) => this.presence?.phone(aor, online, until),
      locator: chainLocator(chain, () => chain.clock(), this.nodeId),
      onCallEnd: (e: CallEnd) => calls.callEnded(e),
    });
    try {
      await sip.start();
    } catch (e) {
      users.stop();
      throw new UserError(`cannot listen for SIP on ${config.sipHost}:${config.sipPort}: ${(e as Error).message} (pass another --sip-port)`);
    }
    this.sip = sip;
    setSipStatsSource({
      registrations: () => sip.registrar.contactCount,
      registerRequests: () => ({ ok: sip.results.registerOk, challenged: sip.results.registerChallenged, refused: sip.results.registerRefused, error: sip.results.registerError }),
      calls: () => ({
        answered: sip.proxy.stats.answered,
        failed: sip.proxy.stats.callsFailed,
        cancelled: sip.proxy.stats.callsCancelled,
        'not-found': sip.results.callsNotFound,
        offline: sip.results.callsOffline,
        shed: sip.proxy.stats.shed,
      }),
      activeCalls: () => sip.proxy.activeCalls,
      messages: () => ({ delivered: sip.proxy.stats.messagesDelivered, failed: sip.proxy.stats.messagesFailed }),
      keepalives: () => ({ sent: sip.registrar.stats.pings, failed: sip.registrar.stats.pingFailures }),
    });
    this.unwire.push(() => setSipStatsSource(null));
    // watchers hear of bindings as soon as they are pending, and of whatever a new tip settled
    const onRecord = (rec: Rec): void => {
      const b = rec.body;
      if (b.kind === Kind.Binding) sip.routingChanged(b.name);
      else if (b.kind === Kind.NodeAnnounce) sip.routingChanged();
    };
    const onTip = (): void => sip.routingChanged();
    chain.on('record', onRecord);
    chain.on('tip', onTip);
    this.unwire.push(() => {
      chain.off('record', onRecord);
      chain.off('tip', onTip);
    });
    this.presence = new PresenceBridge({ chain, secret: this.secret, datadir: config.datadir, domain: config.domain, sipUri: () => sip.uri, p2pAddrs: () => this.p2p?.multiaddrs() ?? [], users, openRegistration: config.openRegistration, log });
    this.registrations = new RegistrationsFile(config.datadir, sip.registrar, log);
    this.registrations.start();
    this.presence.start();
    if (users.size === 0 && !config.openRegistration) log.info('sip: no accounts yet (dots user add NAME --password PW), and registration is not open');
  }

  /** What `dots node` prints for SIP: its URI and how it is served. */
  describeSip(): string {
    if (this.sip === undefined) return 'not listening';
    return `${this.sip.uri} (UDP and TCP) for domain ${this.config.domain}${this.config.openRegistration ? ', open registration' : ''}`;
  }

  get nodeId(): Uint8Array {
    return this.rewardAddress;
  }

  private stopped = false;
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.miner?.stop();
    // SIP first, so no call ends after the call log stopped; the exchange before p2p, whose
    // libp2p node it borrows.
    for (const undo of this.unwire.splice(0)) undo();
    await this.presence?.stop();
    await this.registrations?.stop();
    this.users?.stop();
    await this.sip?.stop();
    this.calls?.stop();
    await this.receipts?.stop();
    await this.p2p?.stop();
    await this.api?.close();
    await this.store.close();
  }
}
