// The peer-to-peer network: libp2p (TCP, Noise, Yamux, identify, ping, bootstrap list, optional
// mDNS), gossipsub with one topic for records and one for blocks, and /dots/sync/1.0.0 for the
// handshake (status), header-first sync and record pushes.
//
// Rules every message follows here:
// - gossip is validated before it is forwarded: a record goes through the pending pool's add, a
//   block through decode, proof of work and chain.processBlock; the verdict (accept / ignore / reject)
//   goes back to gossipsub, so invalid data stops at the first honest node;
// - a peer of another network (genesis) is refused at the handshake and kept out for a while;
// - misbehaviour costs score (p2p/score.ts); a peer at the threshold is disconnected and banned;
// - every input is bounded: frame sizes, counts per message, streams per connection, per-peer
//   rate limits, and the sync engine's windows.
import './polyfill.ts';
import type { Libp2p, PeerId, Stream, Connection } from '@libp2p/interface';
import type { GossipSub, Message, SubscriptionChangeData, TopicValidatorResult } from '@libp2p/gossipsub';
import type { Identify } from '@libp2p/identify';
import type { Ping } from '@libp2p/ping';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { DotsError, UserError, ValidationError } from '../core/errors.ts';
import { toHex, hashToHex } from '../core/hash.ts';
import { decodeBlock, type Block } from '../core/block.ts';
import { decodeRec, type Rec } from '../core/records.ts';
import type { Logger } from '../core/log.ts';
import type { Chain, TipChange } from '../consensus/chain.ts';
import type { Mempool } from '../core/mempool.ts';
import { checkProofOfWork } from '../consensus/validate.ts';
import { loadOrCreateIdentity, IDENTITY_FILE } from './identity.ts';
import { headersAfter } from './locator.ts';
import {
  BLOCKS_RESPONSE_SOFT_BYTES,
  MAX_HEADERS,
  MAX_PUSH_RECORDS,
  MAX_REQUEST_BYTES,
  ProtocolError,
  SYNC_PROTOCOL,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  maxResponseBytes,
  type Request,
  type Response,
  type Status,
} from './messages.ts';
import { DEFAULT_RATE_LIMITS, PeerLimits, PeerScores, TokenBucket, type Offence, type RateLimits, type ScoreOptions } from './score.ts';
import { Synchronizer, short, type SyncOptions, type SyncPeer, type SyncProgress } from './sync.ts';

/** pending records handed to a peer when it connects (the rest travel by gossip or in blocks) */
const MAX_PENDING_PUSH = 1000; // half the records burst a peer allows (score.ts), leaving room for gossip
export const AGENT = 'dots/0.1.0';

export interface P2POptions {
  /** listen address (default 127.0.0.1) */
  host?: string;
  /** TCP port; 0 picks a free one */
  port: number;
  /** multiaddrs others dial this node at, in place of the listening ones (a public address or DNS name) */
  announce?: string[];
  /** multiaddrs with /p2p/PEER-ID to join and stay connected to */
  bootstrap?: string[];
  /** local-network discovery (off by default: it announces the node on the LAN) */
  mdns?: boolean;
  /** data directory: the peer key lives in DATADIR/p2p.key */
  datadir: string;
  log: Logger;
  limits?: Partial<RateLimits>;
  score?: ScoreOptions;
  sync?: SyncOptions;
  /** how often each peer's status is polled, which repairs anything gossip lost */
  statusIntervalMs?: number;
  maxConnections?: number;
}

export interface PeerInfo {
  id: string;
  addrs: string[];
}

export interface PeerDetail extends PeerInfo {
  agent: string;
  height: number;
  score: number;
  direction: string;
}

interface PeerState extends SyncPeer {
  peerId: PeerId;
  ready: boolean;
  agent: string;
  handshaking: boolean;
  /**
   * When the pending pool was handed to the peer at its handshake, if its subscription to the
   * records topic had not come yet: what the pool took from then on may have passed it by (see
   * subscribed). Undefined once it subscribed.
   */
  pushedAt?: number;
}

type Services = { pubsub: GossipSub; identify: Identify; ping: Ping };
type SubscriptionChange = CustomEvent<SubscriptionChangeData>;
type Verdict = TopicValidatorResult;

/** Codes of records that are wrong in themselves (not merely stale at our tip). */
const BAD_RECORD = new Set(['bad-encoding', 'non-canonical', 'bad-signature', 'bad-amount', 'bad-coinbase-position', 'fee-too-low']);
const HANDSHAKE_TIMEOUT_MS = 10_000;
const REQUEST_READ_TIMEOUT_MS = 10_000;
const MAX_STREAMS_PER_CONNECTION = 16;
/** blocks read from the store at once to answer a blocks request, at most this many bytes of them at the network's largest */
const READ_GROUP_BYTES = 8 * 1024 * 1024;
const OTHER_NETWORK_BAN_MS = 10 * 60_000;

/** A bounded set of recent strings (insertion order evicts the oldest). */
class RecentSet {
  private readonly set = new Set<string>();
  constructor(private readonly max: number) {}
  add(s: string): void {
    this.set.delete(s);
    this.set.add(s);
    if (this.set.size > this.max) this.set.delete(this.set.values().next().value as string);
  }
  has(s: string): boolean {
    return this.set.has(s);
  }
}

function hostAddr(host: string, port: number): string {
  return `/${host.includes(':') ? 'ip6' : 'ip4'}/${host}/tcp/${port}`;
}

export class P2PNetwork {
  private node!: Libp2p<Services>;
  private V!: typeof TopicValidatorResult;
  private lpStream!: typeof import('@libp2p/utils').lpStream;
  private multiaddr!: typeof import('@multiformats/multiaddr').multiaddr;
  private readonly peersById = new Map<string, PeerState>();
  private readonly scores: PeerScores;
  private readonly limits: PeerLimits;
  private readonly sync: Synchronizer;
  /** blocks and records that came from peers: gossipsub forwards those, we must not republish */
  private readonly fromNet = new RecentSet(20_000);
  private readonly recordsTopic: string;
  private readonly blocksTopic: string;
  private timers: NodeJS.Timeout[] = [];
  private readonly bootstrapState = new Map<string, { addr: string; nextDial: number; backoff: number; warned: boolean }>();
  /** our own block announcements stay well inside what peers accept (DEFAULT_RATE_LIMITS.blocks) */
  private readonly ownBlocks = new TokenBucket(20, 200);
  private statusDirty = false;
  private started = false;
  private stopping = false;
  private readonly onTip = (c: TipChange): void => {
    this.announceTip(c).catch((e: unknown) => this.o.log.warn(`p2p: announcing the new tip failed: ${(e as Error).message}`));
  };
  private readonly onRecord = (r: Rec): void => this.announceRecord(r);
  private readonly onSubscriptionChange = (e: SubscriptionChange): void => this.subscribed(e.detail);

  constructor(
    readonly chain: Chain,
    readonly pool: Mempool,
    private readonly o: P2POptions,
  ) {
    this.scores = new PeerScores(o.score);
    this.limits = new PeerLimits({ ...DEFAULT_RATE_LIMITS, ...o.limits });
    const net = `/dots/${chain.params.name}/${chain.genesis.hex}`;
    this.recordsTopic = `${net}/records/1`;
    this.blocksTopic = `${net}/blocks/1`;
    this.sync = new Synchronizer(
      {
        chain,
        log: o.log,
        readyPeers: () => [...this.peersById.values()].filter((p) => p.ready),
        request: (peer, req, ms) => this.request(peer as PeerState, req, ms),
        penalize: (id, offence, why) => this.penalize(id, offence, why),
        fromPeers: (hex) => this.fromNet.add(hex),
        // Throttled to one push a second (the status rate limit peers apply is 2/s).
        onProgress: () => {
          this.statusDirty = true;
        },
      },
      o.sync,
    );
  }

  get peerId(): string {
    return this.node.peerId.toString();
  }

  /**
   * The running libp2p node, for protocols of their own (the receipt exchange) that share its
   * connections, identity and connection gater instead of opening a second node.
   */
  get libp2p(): Libp2p {
    if (!this.started) throw new DotsError('the p2p network is not started');
    return this.node;
  }

  get topics(): { records: string; blocks: string } {
    return { records: this.recordsTopic, blocks: this.blocksTopic };
  }

  async start(): Promise<void> {
    const o = this.o;
    const params = this.chain.params;
    const [{ createLibp2p }, { tcp }, { noise }, { yamux }, { identify }, { ping }, gs, { bootstrap }, utils, ma] = await Promise.all([
      import('libp2p'),
      import('@libp2p/tcp'),
      import('@chainsafe/libp2p-noise'),
      import('@chainsafe/libp2p-yamux'),
      import('@libp2p/identify'),
      import('@libp2p/ping'),
      import('@libp2p/gossipsub'),
      import('@libp2p/bootstrap'),
      import('@libp2p/utils'),
      import('@multiformats/multiaddr'),
    ]);
    this.V = gs.TopicValidatorResult;
    this.lpStream = utils.lpStream;
    this.multiaddr = ma.multiaddr;
    const { privateKey, created } = await loadOrCreateIdentity(join(o.datadir, IDENTITY_FILE));
    if (created) o.log.info(`created peer key ${join(o.datadir, IDENTITY_FILE)}`);
    const bootstrapList = o.bootstrap ?? [];
    const discovery = [];
    if (bootstrapList.length > 0) discovery.push(bootstrap({ list: bootstrapList, timeout: 0 }));
    if (o.mdns === true) {
      const { mdns } = await import('@libp2p/mdns');
      discovery.push(mdns({ serviceTag: `dots-${params.name}` }));
    }
    const isBanned = (peer: PeerId): boolean => this.scores.isBanned(peer.toString());
    try {
      this.node = await createLibp2p<Services>({
        privateKey,
        addresses: { listen: [hostAddr(o.host ?? '127.0.0.1', o.port)], ...(o.announce === undefined ? {} : { announce: o.announce }) },
        transports: [tcp()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux()],
        peerDiscovery: discovery,
        nodeInfo: { userAgent: AGENT },
        connectionGater: {
          denyDialPeer: isBanned,
          denyInboundEncryptedConnection: isBanned,
          denyOutboundEncryptedConnection: isBanned,
        },
        connectionManager: {
          maxConnections: o.maxConnections ?? 64,
          maxIncomingPendingConnections: 16,
        },
        services: {
          identify: identify(),
          ping: ping(),
          pubsub: gs.gossipsub({
            // Our payloads are self-authenticating (signed records, proof-of-work blocks), so
            // libp2p message signatures would only cost time; ids are content hashes, so the same
            // record relayed by many peers is one message.
            globalSignaturePolicy: 'StrictNoSign',
            msgIdFn: (m: Message) => sha256(m.data).subarray(0, 20),
            allowPublishToZeroTopicPeers: true,
            ignoreDuplicatePublishError: true,
            emitSelf: false,
            allowedTopics: [this.recordsTopic, this.blocksTopic],
            maxInboundDataLength: params.maxBlockBytes + 256 * 1024,
            // Validate one message at a time per peer: a peer's stream is not read while its
            // last message is checked, so no peer can queue up unbounded work or memory here.
            awaitRpcHandler: true,
            awaitRpcMessageHandler: true,
            maxOutboundBufferSize: 32 * 1024 * 1024,
          }),
        },
      });
    } catch (e) {
      // libp2p's message spans lines and embeds a stack; the user needs one line.
      const msg = (e as Error).message;
      const where = `${o.host ?? '127.0.0.1'}:${o.port}`;
      if (/EADDRINUSE/.test(msg)) throw new UserError(`cannot listen for peers on ${where}: the port is in use (pass another --p2p-port)`);
      if (/EADDRNOTAVAIL/.test(msg)) throw new UserError(`cannot listen for peers on ${where}: no such local address (pass another --p2p-host)`);
      throw new UserError(`cannot start the p2p network on ${where}: ${msg.split('\n')[0]}`);
    }
    this.started = true;
    await this.node.handle(SYNC_PROTOCOL, (stream, conn) => this.serveStream(stream, conn), {
      maxInboundStreams: MAX_STREAMS_PER_CONNECTION,
      maxOutboundStreams: MAX_STREAMS_PER_CONNECTION,
    });
    const pubsub = this.node.services.pubsub;
    pubsub.topicValidators.set(this.recordsTopic, (peer, msg) => this.validateRecord(peer, msg));
    pubsub.topicValidators.set(this.blocksTopic, (peer, msg) => this.validateBlock(peer, msg));
    pubsub.subscribe(this.recordsTopic);
    pubsub.subscribe(this.blocksTopic);
    pubsub.addEventListener('subscription-change', this.onSubscriptionChange);
    this.node.addEventListener('peer:connect', (e) => this.onConnect(e.detail));
    this.node.addEventListener('peer:disconnect', (e) => this.onDisconnect(e.detail));
    this.chain.on('tip', this.onTip);
    this.pool.on('record', this.onRecord);
    this.sync.start();
    for (const addr of bootstrapList) {
      const id = addr.split('/p2p/')[1];
      if (id !== undefined && id !== this.peerId) this.bootstrapState.set(id, { addr, nextDial: 0, backoff: 1000, warned: false });
    }
    this.every(1000, () => this.keepBootstrapped());
    this.every(o.statusIntervalMs ?? 5000, () => this.pollStatus());
    this.every(1000, () => {
      if (!this.statusDirty) return;
      this.statusDirty = false;
      this.broadcastStatus();
    });
    this.keepBootstrapped();
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.chain.off('tip', this.onTip);
    this.pool.off('record', this.onRecord);
    this.node.services.pubsub.removeEventListener('subscription-change', this.onSubscriptionChange);
    await this.sync.stop();
    await this.node.stop();
  }

  /** Full multiaddrs with /p2p/PEER-ID, loopback first. */
  multiaddrs(): string[] {
    const all = this.node.getMultiaddrs().map(String);
    return [...all.filter((a) => a.startsWith('/ip4/127.')), ...all.filter((a) => !a.startsWith('/ip4/127.'))];
  }

  peers(): PeerInfo[] {
    return this.peerDetails().map(({ id, addrs }) => ({ id, addrs }));
  }

  peerDetails(): PeerDetail[] {
    const out: PeerDetail[] = [];
    for (const p of this.peersById.values()) {
      if (!p.ready) continue;
      const conns = this.node.getConnections(p.peerId);
      out.push({
        id: p.id,
        addrs: conns.map((c) => c.remoteAddr.toString()),
        agent: p.agent,
        height: p.bestHeight,
        score: Math.round(this.scores.score(p.id)),
        direction: conns[0]?.direction ?? 'unknown',
      });
    }
    return out;
  }

  syncing(): boolean {
    return this.sync.syncing();
  }

  progress(): SyncProgress {
    return this.sync.progress();
  }

  bannedPeers(): string[] {
    return this.scores.banned();
  }

  // ---- peers and handshake -------------------------------------------------------------------

  private ourStatus(): Status {
    const tip = this.chain.tip;
    return { network: this.chain.params.name, genesis: this.chain.genesis.hash, height: tip.height, tip: tip.hash, work: tip.work, agent: AGENT };
  }

  /** Null when the status is of our network, else why not. */
  private foreign(s: Status): string | null {
    if (s.network !== this.chain.params.name) return `network ${s.network}`;
    const g = hashToHex(s.genesis);
    if (g !== this.chain.genesis.hex) return `genesis ${g.slice(0, 16)}...`;
    return null;
  }

  private onConnect(peerId: PeerId): void {
    const id = peerId.toString();
    if (this.scores.isBanned(id)) {
      void this.node.hangUp(peerId).catch(() => undefined);
      return;
    }
    let p = this.peersById.get(id);
    if (p === undefined) {
      p = { id, peerId, ready: false, agent: '', handshaking: false, bestWork: 0n, bestHeight: 0, inflight: 0, retryAt: 0 };
      this.peersById.set(id, p);
    }
    void this.handshake(p);
  }

  private onDisconnect(peerId: PeerId): void {
    const id = peerId.toString();
    const p = this.peersById.get(id);
    this.peersById.delete(id);
    this.limits.forget(id);
    if (p?.ready === true) this.o.log.info(`p2p: peer ${short(id)} disconnected (${this.readyCount()} peer(s) left)`);
    this.sync.wake();
  }

  private readyCount(): number {
    let n = 0;
    for (const p of this.peersById.values()) if (p.ready) n++;
    return n;
  }

  private async handshake(p: PeerState): Promise<void> {
    if (p.handshaking || p.ready) return;
    p.handshaking = true;
    try {
      const res = await this.request(p, { type: 'status', status: this.ourStatus() }, HANDSHAKE_TIMEOUT_MS);
      if (res === null || res.type !== 'status') {
        if (this.peersById.has(p.id)) {
          this.o.log.debug(`p2p: handshake with ${short(p.id)} failed${res?.type === 'error' ? `: ${res.message}` : ''}`);
          await this.node.hangUp(p.peerId).catch(() => undefined);
        }
        return;
      }
      this.acceptStatus(p, res.status);
    } finally {
      p.handshaking = false;
    }
  }

  /** Applies a peer's status: refuses another network, else marks the peer ready. */
  private acceptStatus(p: PeerState, s: Status): boolean {
    const why = this.foreign(s);
    if (why !== null) {
      this.o.log.warn(`p2p: refused peer ${short(p.id)}: it is on ${why}, we are on ${this.chain.params.name} (genesis ${this.chain.genesis.hex.slice(0, 16)}...)`);
      this.scores.ban(p.id, OTHER_NETWORK_BAN_MS);
      p.ready = false;
      void this.node.hangUp(p.peerId).catch(() => undefined);
      return false;
    }
    p.agent = s.agent;
    p.bestHeight = s.height;
    p.bestWork = s.work;
    if (!p.ready && this.peersById.has(p.id)) {
      p.ready = true;
      this.o.log.info(`p2p: connected to ${short(p.id)} (${s.agent}, height ${s.height}); ${this.readyCount()} peer(s)`);
      // Gossip reaches only peers subscribed at the time: what was pending before this peer came
      // (a node's own announcement at start-up, say) would never reach it. Hand it over now.
      this.pushPending(p, 0);
      if (!this.node.services.pubsub.getSubscribers(this.recordsTopic).some((id) => id.equals(p.peerId))) p.pushedAt = Date.now();
    }
    if (s.work > this.chain.tip.work) this.sync.wake();
    return true;
  }

  private pollStatus(): void {
    for (const p of this.peersById.values()) {
      if (!p.ready) continue;
      void this.request(p, { type: 'status', status: this.ourStatus() }, HANDSHAKE_TIMEOUT_MS).then((res) => {
        if (res?.type === 'status') this.acceptStatus(p, res.status);
      });
    }
  }

  /** Tells every peer our new tip (after a sync), so peers behind us start syncing at once. */
  private broadcastStatus(): void {
    this.pollStatus();
  }

  private keepBootstrapped(): void {
    if (this.stopping) return;
    const now = Date.now();
    for (const [id, b] of this.bootstrapState) {
      if (b.nextDial > now || this.scores.isBanned(id) || this.peersById.has(id)) continue;
      b.nextDial = now + b.backoff;
      void (async () => {
        try {
          await this.node.dial(this.multiaddr(b.addr), { signal: AbortSignal.timeout(10_000) });
          b.backoff = 1000;
          b.warned = false;
        } catch (e) {
          // Peers come and go; retry with backoff, up to once every 30 s, and say so once.
          b.backoff = Math.min(30_000, b.backoff * 2);
          const msg = `p2p: cannot reach bootstrap peer ${b.addr}: ${(e as Error).message.split('\n')[0]} (retrying)`;
          if (b.warned) this.o.log.debug(msg);
          else this.o.log.warn(msg);
          b.warned = true;
        }
      })();
    }
  }

  penalize(id: string, offence: Offence, why: string): void {
    const banned = this.scores.penalize(id, offence);
    this.o.log.debug(`p2p: peer ${short(id)} ${offence}: ${why} (score ${this.scores.score(id).toFixed(0)})`);
    if (banned) {
      this.o.log.warn(`p2p: disconnected and banned peer ${short(id)} for ${Math.round(this.scores.banMs / 60_000)} min: ${why}`);
      const p = this.peersById.get(id);
      if (p !== undefined) p.ready = false;
      for (const c of this.node.getConnections()) {
        if (c.remotePeer.toString() === id) void c.close().catch(() => c.abort(new Error('banned')));
      }
    }
  }

  // ---- request-response ----------------------------------------------------------------------

  /** One request on a fresh stream; null on any failure, after charging the peer if it was its fault. */
  private async request(p: PeerState, req: Request, timeoutMs: number): Promise<Response | null> {
    if (this.stopping) return null;
    const signal = AbortSignal.timeout(timeoutMs);
    const maxData = maxResponseBytes(this.chain.params.maxBlockBytes);
    let stream: Stream | undefined;
    try {
      stream = await this.node.dialProtocol(p.peerId, SYNC_PROTOCOL, { signal });
      const lp = this.lpStream(stream, { maxDataLength: maxData, maxBufferSize: maxData + 64 * 1024 });
      await lp.write(encodeRequest(req), { signal });
      const buf = await lp.read({ signal });
      void stream.close().catch(() => undefined);
      const res = decodeResponse(buf.subarray(), req, this.chain.params.maxBlockBytes);
      if (res.type === 'error') this.o.log.debug(`p2p: ${short(p.id)} answered ${req.type} with ${res.code}: ${res.message}`);
      return res;
    } catch (e) {
      stream?.abort(e as Error);
      if (this.stopping) return null;
      const err = e as Error & { name: string };
      if (e instanceof ProtocolError) this.penalize(p.id, e.code === 'oversize' ? 'oversize' : 'malformed', `${req.type} response: ${e.message}`);
      else if (err.name === 'InvalidDataLengthError' || err.name === 'InvalidDataLengthLengthError') this.penalize(p.id, 'oversize', `${req.type} response too large`);
      else if (signal.aborted) this.penalize(p.id, 'timeout', `${req.type} request timed out`);
      else this.o.log.debug(`p2p: ${req.type} request to ${short(p.id)} failed: ${err.message}`);
      return null;
    }
  }

  private async serveStream(stream: Stream, conn: Connection): Promise<void> {
    const id = conn.remotePeer.toString();
    const lp = this.lpStream(stream, { maxDataLength: MAX_REQUEST_BYTES, maxBufferSize: MAX_REQUEST_BYTES + 64 * 1024 });
    try {
      const buf = await lp.read({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) });
      const req = decodeRequest(buf.subarray());
      let res: Response;
      if (!this.limits.take(id, req.type === 'status' ? 'status' : 'requests')) {
        this.penalize(id, 'flood', `${req.type} requests over the rate limit`);
        res = { type: 'error', code: 'rate-limited', message: 'too many requests' };
      } else {
        res = await this.serve(id, conn, req);
      }
      await lp.write(encodeResponse(res), { signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) });
      await stream.close({ signal: AbortSignal.timeout(REQUEST_READ_TIMEOUT_MS) });
    } catch (e) {
      stream.abort(e as Error);
      if (this.stopping) return;
      const err = e as Error & { name: string };
      if (e instanceof ProtocolError) this.penalize(id, e.code === 'oversize' ? 'oversize' : 'malformed', `request: ${e.message}`);
      else if (err.name === 'InvalidDataLengthError' || err.name === 'InvalidDataLengthLengthError' || err.name === 'InvalidMessageLengthError') this.penalize(id, 'oversize', 'request too large');
      else this.o.log.debug(`p2p: serving ${short(id)} failed: ${err.message}`);
    }
  }

  private async serve(id: string, conn: Connection, req: Request): Promise<Response> {
    let p = this.peersById.get(id);
    if (req.type === 'status') {
      if (p === undefined) {
        // The request can beat our own peer:connect handling; track the peer now.
        p = { id, peerId: conn.remotePeer, ready: false, agent: '', handshaking: false, bestWork: 0n, bestHeight: 0, inflight: 0, retryAt: 0 };
        this.peersById.set(id, p);
      }
      this.acceptStatus(p, req.status);
      return { type: 'status', status: this.ourStatus() };
    }
    if (p?.ready !== true) return { type: 'error', code: 'handshake-first', message: 'send a status request first' };
    switch (req.type) {
      case 'headers':
        return { type: 'headers', headers: headersAfter(this.chain, req.locator, Math.min(req.max, MAX_HEADERS)) };
      case 'blocks': {
        const blocks: Uint8Array[] = [];
        let bytes = 0;
        // Read a group at a time, one call to the database each: a read per block was about a
        // third of a serving node's main thread during a sync (its binding's call, its promise
        // and its wake of a thread for each). A group holds READ_GROUP_BYTES of blocks at their
        // largest, so a request for big blocks reads little past the response's soft limit.
        const group = Math.max(1, Math.floor(READ_GROUP_BYTES / this.chain.params.maxBlockBytes));
        for (let i = 0; i < req.hashes.length && bytes < BLOCKS_RESPONSE_SOFT_BYTES; i += group) {
          // Never serve a block we found invalid (or do not know): an honest peer would be charged for it.
          const hexes = req.hashes.slice(i, i + group).map((h) => hashToHex(h));
          const servable = hexes.filter((hex) => {
            const e = this.chain.index.get(hex);
            return e !== undefined && e.status !== 'invalid';
          });
          const read = await this.chain.getBlocksBytes(servable);
          const found = new Map(servable.map((hex, k) => [hex, read[k]]));
          for (const hex of hexes) {
            if (bytes >= BLOCKS_RESPONSE_SOFT_BYTES) break;
            const b = found.get(hex);
            blocks.push(b ?? new Uint8Array(0));
            bytes += b?.length ?? 0;
          }
        }
        return { type: 'blocks', blocks };
      }
      case 'records': {
        let accepted = 0;
        for (const bytes of req.records.slice(0, MAX_PUSH_RECORDS)) {
          if (!this.limits.take(id, 'records')) {
            this.penalize(id, 'flood', 'records over the rate limit');
            break;
          }
          const v = await this.admitRecord(id, bytes, false);
          if (v === 'accept') accepted++;
        }
        return { type: 'records', accepted };
      }
    }
  }

  // ---- gossip --------------------------------------------------------------------------------

  /** Checks a record from a peer and adds it to the pool; 'reject' charged the peer. */
  private async admitRecord(id: string, bytes: Uint8Array, gossiped: boolean): Promise<'accept' | 'ignore' | 'reject'> {
    let rec: Rec;
    try {
      rec = decodeRec(bytes);
    } catch (e) {
      this.penalize(id, 'malformed', `record: ${(e as Error).message}`);
      return 'reject';
    }
    // Gossipsub forwards what we accept by gossip; records pushed to us directly are ours to relay.
    if (gossiped) this.fromNet.add(toHex(rec.id));
    try {
      this.pool.add(rec);
      return 'accept';
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      if (BAD_RECORD.has(e.code)) {
        this.penalize(id, 'invalidRecord', e.message);
        return 'reject';
      }
      return 'ignore';
    }
  }

  private async validateRecord(peer: PeerId, msg: Message): Promise<Verdict> {
    const id = peer.toString();
    if (!this.limits.take(id, 'records')) {
      this.penalize(id, 'flood', 'gossiped records over the rate limit');
      return this.V.Ignore;
    }
    try {
      const v = await this.admitRecord(id, msg.data, true);
      return v === 'accept' ? this.V.Accept : v === 'reject' ? this.V.Reject : this.V.Ignore;
    } catch (e) {
      this.o.log.warn(`p2p: record from ${short(id)} not checked: ${(e as Error).message}`);
      return this.V.Ignore;
    }
  }

  private async validateBlock(peer: PeerId, msg: Message): Promise<Verdict> {
    const id = peer.toString();
    if (!this.limits.take(id, 'blocks')) {
      this.penalize(id, 'flood', 'gossiped blocks over the rate limit');
      return this.V.Ignore;
    }
    const params = this.chain.params;
    let block: Block;
    try {
      block = decodeBlock(msg.data, params.maxBlockBytes);
      // Proof of work first: it is what makes a block costly, and it is checked in microseconds.
      checkProofOfWork(block.header, block.hash, params);
    } catch (e) {
      if (!(e instanceof ValidationError)) throw e;
      this.penalize(id, e.code === 'bad-pow' || e.code === 'bad-bits' ? 'badPow' : e.code === 'oversize' ? 'oversize' : 'malformed', `block: ${e.message}`);
      return this.V.Reject;
    }
    const hex = hashToHex(block.hash);
    this.fromNet.add(hex);
    try {
      await this.chain.settle(this.chain.preverify(block));
      const r = await this.chain.processBlock(block);
      const p = this.peersById.get(id);
      switch (r.status) {
        case 'connected':
        case 'side': {
          const e = this.chain.index.get(hex);
          if (p !== undefined && e !== undefined && e.work > p.bestWork) {
            p.bestWork = e.work;
            p.bestHeight = e.height;
          }
          return this.V.Accept;
        }
        case 'duplicate':
          return this.V.Ignore;
        case 'orphan':
          if (p?.ready === true) this.sync.onOrphan(p);
          return this.V.Ignore;
        case 'invalid':
          this.penalize(id, r.code === 'time-too-new' ? 'badTime' : 'invalidBlock', `block ${hex}: ${r.message}`);
          return this.V.Reject;
      }
    } catch (e) {
      this.o.log.warn(`p2p: block ${hex} from ${short(id)} not checked: ${(e as Error).message}`);
      return this.V.Ignore;
    }
  }

  /** Publishes by gossip; resolves with how many peers it went to (0 on failure). */
  private publish(topic: string, data: Uint8Array): Promise<number> {
    if (this.stopping) return Promise.resolve(0);
    return this.node.services.pubsub.publish(topic, data).then(
      (r) => r.recipients.length,
      (e: unknown) => {
        this.o.log.debug(`p2p: publish failed: ${(e as Error).message}`);
        return 0;
      },
    );
  }

  /**
   * A peer's subscription to the records topic came after its handshake: a record this node took
   * in between was relayed to the mesh without it and never offered to it after (gossipsub
   * offers recent messages only to peers outside the mesh, which the new peer joins at once), so
   * it never reached the peer, nor the peers behind it, until mined (`bench sync`'s line of
   * three nodes lost the first record after C came, in about a third of runs). Hand over what
   * the pool took since the handshake's push.
   */
  private subscribed(d: SubscriptionChangeData): void {
    if (!d.subscriptions.some((s) => s.subscribe && s.topic === this.recordsTopic)) return;
    const p = this.peersById.get(d.peerId.toString());
    if (p === undefined || !p.ready || p.pushedAt === undefined) return;
    const since = p.pushedAt;
    p.pushedAt = undefined;
    this.pushPending(p, since);
  }

  /** Hands a peer what the pending pool took at or after `since` (ms), up to MAX_PENDING_PUSH records. */
  private pushPending(p: PeerState, since: number): void {
    const records = this.pool.list().filter((e) => e.added >= since).slice(0, MAX_PENDING_PUSH).map((e) => e.rec.bytes);
    if (records.length > 0) this.pushRecords(p, records);
  }

  private announceRecord(r: Rec): void {
    if (this.fromNet.has(toHex(r.id))) return;
    void this.publish(this.recordsTopic, r.bytes).then((n) => {
      // Gossip reached nobody: a peer that connected a moment ago has not told us its topics
      // yet (the push at connect time covered only what was pending then). Hand it over.
      if (n === 0 && !this.stopping) for (const p of this.peersById.values()) if (p.ready) this.pushRecords(p, [r.bytes]);
    });
  }

  /** Publishes blocks this node made; re-offers records a reorganisation put back in the pool. */
  private async announceTip(c: TipChange): Promise<void> {
    const own = c.connected.filter((e) => !this.fromNet.has(e.hex)).slice(-16);
    for (const e of own) {
      if (!this.ownBlocks.take()) {
        // Mining faster than peers take gossip (a dev network mining hundreds at once): tell
        // peers our status instead, and they fetch the blocks by sync.
        this.statusDirty = true;
        continue;
      }
      const bytes = await this.chain.getBlockBytes(e.hex);
      if (bytes !== undefined) void this.publish(this.blocksTopic, bytes);
    }
    if (c.disconnected.length === 0) return;
    const returned: Uint8Array[] = [];
    for (const b of c.disconnectedBlocks) for (const r of b.records.slice(1)) if (this.pool.has(toHex(r.id))) returned.push(r.bytes);
    if (returned.length === 0) return;
    this.o.log.info(`p2p: offering ${returned.length} record(s) of disconnected blocks to peers again`);
    // Peers saw these by gossip before (their seen-caches would drop a republication), so push
    // them directly; a peer that did not have them relays them on by gossip.
    for (const p of this.peersById.values()) if (p.ready) this.pushRecords(p, returned);
  }

  /**
   * Sends records straight to one peer, in batches the protocol allows, one request after
   * another, and past the first MAX_PENDING_PUSH at half the rate a peer takes records
   * (DEFAULT_RATE_LIMITS). Sent all at once, the thousands of records a deep reorganisation can
   * return took more than the 16 streams a connection allows, and past a peer's burst it dropped
   * the rest and charged us a point a request.
   */
  private pushRecords(p: PeerState, records: Uint8Array[]): void {
    const paceMs = (MAX_PUSH_RECORDS / (DEFAULT_RATE_LIMITS.records[0] / 2)) * 1000;
    void (async () => {
      for (let i = 0; i < records.length; i += MAX_PUSH_RECORDS) {
        if (i >= MAX_PENDING_PUSH) await new Promise((r) => setTimeout(r, paceMs).unref());
        if (this.stopping || !p.ready) return;
        if ((await this.request(p, { type: 'records', records: records.slice(i, i + MAX_PUSH_RECORDS) }, 30_000)) === null) return;
      }
    })();
  }
}
