// The node: the one place that constructs the parts and wires them together, so "what talks to
// what" is answered in this file alone:
//   store -> chain (consensus; owns its signature workers) -> pending pool (follows the chain's
//   tip events; chain-stack.ts opens these three) -> miner (templates from both) -> HTTP API -> peer network (gossips the pool and
//   the chain) -> receipt exchange (on the same libp2p node) -> SIP: the accounts, the SIP service
//   (reading the chain through the routing locator), the presence bridge that turns what the
//   registrar verified into chain records, and the call log that receipts calls.
// Everything it starts, stop() stops, in reverse order.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Store } from '../core/store.ts';
import type { Mempool } from '../core/mempool.ts';
import { VERIFIER, publicKeyOf, signTagged } from '../core/sig.ts';
import { HASHER } from '../core/hash.ts';
import { addressOf, encodeAddress } from '../core/address.ts';
import { UserError } from '../core/errors.ts';
import { Kind, type Rec } from '../core/records.ts';
import { nameOfRef } from '../core/state.ts';
import type { Logger } from '../core/log.ts';
import type { Chain, ChainOptions, TipChange } from '../consensus/chain.ts';
import { NETWORKS, type NetworkParams } from '../consensus/params.ts';
import { defaultSigWorkers } from '../consensus/sigpool.ts';
import { Miner, chainWork } from '../mining/miner.ts';
import { P2PNetwork } from '../p2p/network.ts';
import { ReceiptExchange } from '../p2p/receipts.ts';
import { SipService } from '../sip/service.ts';
import { CallLog } from '../telecom/calls.ts';
import { PresenceBridge } from '../telecom/presence.ts';
import { UserStore } from '../telecom/users.ts';
import { chainLocator, routingSource } from '../telecom/routing.ts';
import { NODE_PROOF_TAG } from '../sip/tls.ts';
import { loadOrCreateKey } from '../wallet/keys.ts';
import { buildApi, LOOPBACK_HOSTS } from './api/server.ts';
import { DOMAIN_FILE, NODE_KEY_FILE, datadirDomain, ownDomain, recordDomain, sipAnnounced, type NodeConfig } from './config.ts';
import { setSipStatsSource } from './metrics.ts';
import { RegistrationsFile } from './registrations.ts';

import { openChainStack, type ChainStack } from './chain-stack.ts';
import { followTip } from './tip-mark.ts';
import { loadTlsIdentity } from './certificate.ts';
import { headerScannerKind } from '../mining/wasm-hasher.ts';
import { PhonePage } from './phone-page.ts';

export { NODE_KEY_FILE } from './config.ts';

/** Whether a listen address is this machine only. */
function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

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
  /** undoes the event wiring between parts, at stop */
  private readonly unwire: Array<() => void> = [];
  apiUrl = '';
  readonly nodeId: Uint8Array;
  /** the browser phone's page, served by the API under /phone/ and at the root of the SIP WebSocket port */
  readonly phone: PhonePage;

  readonly store: Store;
  readonly chain: Chain;
  readonly pool: Mempool;

  private constructor(
    readonly config: NodeConfig,
    readonly params: NetworkParams,
    private readonly stack: ChainStack,
    readonly secret: Uint8Array,
    private readonly log: Logger,
  ) {
    ({ store: this.store, chain: this.chain, pool: this.pool } = stack);
    this.nodeId = addressOf(publicKeyOf(secret));
    this.phone = new PhonePage(() => ({
      domain: config.domain,
      websocket: this.sip === undefined || this.sip.wsPort === 0 ? null : { port: this.sip.wsPort, secure: config.wsTls === true },
      iceServers: (config.iceServers ?? []).map((urls) => ({ urls })),
    }));
  }

  /** The node mines to its own key: its reward address is its node id. */
  get rewardAddress(): Uint8Array {
    return this.nodeId;
  }

  static async start(config: NodeConfig, log: Logger, chainOpts: ChainOptions = {}): Promise<DotsNode> {
    const params = NETWORKS[config.network];
    try {
      mkdirSync(config.datadir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new UserError(`cannot create data directory ${config.datadir}: ${(e as Error).message}`);
    }
    // The store first: its lock is what keeps a second node off this data directory.
    const stack = await openChainStack(config.datadir, params, { sigWorkers: config.sigWorkers ?? defaultSigWorkers(), log, pool: { maxRecords: config.maxPending }, ...chainOpts });
    let secret: Uint8Array;
    try {
      const keyFile = join(config.datadir, NODE_KEY_FILE);
      const key = loadOrCreateKey(keyFile);
      if (key.created) log.info(`created node key ${keyFile}`);
      secret = key.secret;
    } catch (e) {
      await stack.close();
      throw e;
    }
    // without --domain and none recorded, the node serves its own (no two nodes share a default)
    if (config.domain === '') config = { ...config, domain: ownDomain(secret) };
    try {
      // the domain this data directory serves from now on (dots user add reads it)
      if (datadirDomain(config.datadir) !== config.domain) recordDomain(config.datadir, config.domain);
    } catch (e) {
      await stack.close();
      throw new UserError(`cannot write ${join(config.datadir, DOMAIN_FILE)}: ${(e as Error).message}`);
    }
    const node = new DotsNode(config, params, stack, secret, log);
    await node.startServices();
    return node;
  }

  /** Runs `fn`; if it throws, stops what was started so far and throws on. */
  private async orStop(fn: () => Promise<void>): Promise<void> {
    try {
      await fn();
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  private async startServices(): Promise<void> {
    const { chain, pool, log, config, params } = this;
    log.info(`${params.name} chain at height ${chain.tip.height}, tip ${chain.tip.hex}; signatures checked with ${VERIFIER}, hashes with ${HASHER}`);
    this.unwire.push(followTip(config.datadir, chain, log));
    this.onTip((c) => {
      const n = c.connected.length;
      if (c.disconnected.length > 0) log.info(`reorganised: ${c.disconnected.length} block(s) disconnected, ${n} connected`);
      // While syncing, p2p logs progress lines instead of one line per block.
      if (this.p2p?.syncing() === true) return;
      log.info(`new tip ${c.tip.height} ${c.tip.hex} (${n} connected, ${pool.size} pending)`);
    });
    const miner = new Miner(
      chainWork(chain, pool),
      this.rewardAddress,
      {
        onBlock: (r, height) => {
          if (r.status === 'connected') log.debug(`mined block ${height} ${r.hex}`);
          else log.warn(`mined block ${height} was not connected: ${r.status}`);
        },
        onHashrate: (hps, threads) => log.info(`mining at ${(hps / 1e6).toFixed(2)} MH/s (${threads > 0 ? `${threads} worker thread${threads === 1 ? '' : 's'}` : 'event loop'})`),
        onError: (e) => log.warn(`miner: ${e.message}`),
        onWarning: (m) => log.warn(`miner: ${m}`),
      },
      { threads: config.minerThreads },
    );
    this.miner = miner;
    const api = await buildApi(
      {
        chain,
        pool,
        hashrate: () => miner.hashrate,
        peers: () => this.p2p?.peers() ?? [],
        syncing: () => this.p2p?.syncing() ?? false,
        syncProgress: () => this.p2p?.progress(),
        mine: (n) => miner.mineBlocks(n),
        log,
        durable: () => this.stack.durable(),
      },
      // On a loopback address only this machine's names are answered (no DNS rebinding); a node
      // that listens on another address is meant to be reached by whatever name points at it.
      { allowedHosts: isLoopback(config.apiHost) ? [...LOOPBACK_HOSTS, config.apiHost.toLowerCase()] : 'any', phone: this.phone },
    );
    this.api = api;
    await this.orStop(async () => {
      try {
        await api.listen({ host: config.apiHost, port: config.apiPort });
      } catch (e) {
        throw new UserError(`cannot listen for the API on ${config.apiHost}:${config.apiPort}: ${(e as Error).message} (pass another --api-port)`);
      }
    });
    const addr = api.server.address();
    this.apiUrl = `http://${config.apiHost}:${typeof addr === 'object' && addr !== null ? addr.port : config.apiPort}`;
    const p2p = new P2PNetwork(chain, pool, { host: config.p2pHost, port: config.p2pPort, announce: config.p2pAnnounce, bootstrap: config.bootstrap, mdns: config.mdns, datadir: config.datadir, log });
    this.p2p = p2p;
    await this.orStop(() => p2p.start());
    await this.orStop(async () => {
      // The exchange rides on the p2p node: same peer identity, connections and bans.
      this.receipts = new ReceiptExchange({ params, pool, secret: this.secret, log, penalize: (id, o, w) => p2p.penalize(id, o, w) });
      this.calls = new CallLog({ chain, pool, secret: this.secret, log, exchange: this.receipts, feeRate: config.feeRate });
      await this.receipts.start(p2p.libp2p);
    });
    const calls = this.calls as CallLog;
    await this.orStop(() => this.startSip(calls));
    if (config.mine) {
      miner.start();
      log.info(`mining to ${encodeAddress(params.addressPrefix, this.rewardAddress)} with the ${headerScannerKind()} hasher`);
    }
  }

  /** Follows the chain's tip changes for as long as the node runs. */
  private onTip(fn: (c: TipChange) => void): void {
    this.chain.on('tip', fn);
    this.unwire.push(() => this.chain.off('tip', fn));
  }

  /** Hears of every record the pending pool accepts, for as long as the node runs. */
  private onRecord(fn: (r: Rec) => void): void {
    this.pool.on('record', fn);
    this.unwire.push(() => this.pool.off('record', fn));
  }

  /**
   * The SIP side: accounts, the SIP service (reading the chain through the locator), and the
   * presence bridge that turns what the registrar verified into chain records.
   */
  private async startSip(calls: CallLog): Promise<void> {
    const { chain, pool, config, log } = this;
    const users = new UserStore(config.datadir, config.domain, (m) => log.warn(m));
    this.users = users;
    const interval = (config.sipKeepalive ?? 30) * 1000;
    const announced = sipAnnounced(config);
    const tls =
      config.tlsPort === null
        ? undefined
        : {
            port: config.tlsPort,
            ...loadTlsIdentity(config.datadir, {
              certFile: config.tlsCert,
              keyFile: config.tlsKey,
              commonName: config.domain,
              hosts: [...new Set([announced?.host ?? config.sipHost, 'localhost', '127.0.0.1'].filter((h) => h !== '0.0.0.0' && h !== '::'))],
            }),
          };
    const src = routingSource(chain, pool);
    const sip = new SipService({
      host: config.sipHost,
      port: config.sipPort,
      announce: announced,
      tls,
      ws: config.wsPort === undefined || config.wsPort === null ? undefined : { port: config.wsPort, secure: config.wsTls === true, http: (req, res) => this.phone.handle(req, res) },
      requireTls: config.requireTls === true,
      domain: config.domain,
      openRegistration: config.openRegistration,
      users,
      keepalive: { intervalMs: interval, timeoutMs: Math.min(8000, Math.max(1000, interval)) },
      digest: { algorithms: config.sipDigest },
      log,
      onPresence: (aor, online, until) => this.presence?.phone(aor, online, until),
      locator: { ...chainLocator(src, () => chain.clock(), this.nodeId, { tls: tls !== undefined }), refusesCallsFrom: (id) => calls.refusesCallsFrom(id) },
      nodeProof: { nodeId: this.nodeId, sign: (binding) => signTagged(this.secret, NODE_PROOF_TAG, binding) },
      onCallEnd: (e) => calls.callEnded(e),
      transport: { banned: config.sipBan },
      // the users behind the trunk are checked as often as the node pings its own phones
      trunk: config.trunk === undefined ? undefined : { ...config.trunk, probeEveryMs: interval },
    });
    try {
      await sip.start();
    } catch (e) {
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
      trunkServersUp: () => sip.trunk?.serversUp ?? 0,
      trunkChecks: () => ({ online: sip.trunk?.stats.online ?? 0, offline: (sip.trunk?.stats.probes ?? 0) - (sip.trunk?.stats.online ?? 0) }),
      datagrams: () => ({ received: sip.transport.stats.udpIn, sent: sip.transport.stats.udpOut, shed: sip.transport.queue.stats.dropped }),
    });
    this.unwire.push(() => setSipStatsSource(null));
    // watchers hear of bindings as soon as they are pending, and of whatever a new tip settled
    this.onRecord((rec) => {
      const b = rec.body;
      if (b.kind === Kind.Binding) sip.routingChanged(b.name);
      else if (b.kind === Kind.Presence) for (const e of b.entries) sip.routingChanged(nameOfRef(chain.state, e.ref));
      else if (b.kind === Kind.NodeAnnounce) sip.routingChanged();
    });
    this.onTip(() => sip.routingChanged());
    this.presence = new PresenceBridge({
      chain,
      pool,
      secret: this.secret,
      datadir: config.datadir,
      domain: config.domain,
      sipUris: () => (sip.tlsUri === null ? [sip.uri] : [sip.uri, sip.tlsUri]),
      p2pAddrs: () => this.p2p?.multiaddrs() ?? [],
      users,
      openRegistration: config.openRegistration,
      log,
      feeRate: config.feeRate,
    });
    this.registrations = new RegistrationsFile(config.datadir, sip.registrar, log);
    this.registrations.start();
    this.presence.start();
    if (users.size === 0 && !config.openRegistration) log.info('sip: no accounts yet (dots user add NAME --password PW), and registration is not open');
  }

  /** What `dots node` prints for SIP: its URI and how it is served. */
  describeSip(): string {
    if (this.sip === undefined) return 'not listening';
    const listening = `${this.config.sipHost.includes(':') ? `[${this.config.sipHost}]` : this.config.sipHost}:${this.sip.port}`;
    const announced = this.sip.uri !== `sip:${listening}` ? `, listening on ${listening}` : '';
    const tls = (this.sip.tlsPort === 0 ? '' : `; TLS on ${this.sip.tlsPort}`) + (this.sip.wsPort === 0 ? '' : `; ${this.config.wsTls === true ? 'wss' : 'ws'} on ${this.sip.wsPort}`);
    const path = this.sip.transport.udpPath;
    const udp = path?.kind === 'dgram' ? `UDP by node:dgram (${path.reason})` : 'UDP read and sent in batches';
    return `${this.sip.uri} (${udp}, TCP${announced}${tls}) for domain ${this.config.domain}${this.config.openRegistration ? ', open registration' : ''}`;
  }

  /** What `dots node` prints for the browser phone: where its page is, or why there is none. */
  describePhone(): string {
    const page = `${this.apiUrl}/phone/`;
    if (!this.phone.built) return `${page} (not built: npm run build:phone)`;
    if (this.sip === undefined || this.sip.wsPort === 0) return `${page} (needs --ws-port N: SIP over WebSocket)`;
    if (this.config.wsTls !== true) return page;
    const host = sipAnnounced(this.config)?.host ?? this.config.sipHost;
    return `${page}, and https://${host.includes(':') ? `[${host}]` : host}:${this.sip.wsPort}/ for browsers on other machines`;
  }

  private stopped = false;
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.miner?.stop();
    // Nothing passes events between the parts while they stop (a tip that p2p still brings in
    // must not reach a SIP service that is closing).
    for (const undo of this.unwire.splice(0)) undo();
    // SIP first, so no call ends after the call log stopped; the exchange before p2p, whose
    // libp2p node it borrows.
    await this.presence?.stop();
    await this.registrations?.stop();
    this.users?.stop();
    await this.sip?.stop();
    this.calls?.stop();
    await this.receipts?.stop();
    await this.p2p?.stop();
    await this.api?.close();
    await this.stack.close();
  }
}
