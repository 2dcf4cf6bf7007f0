// Header-first chain sync. One session at a time follows the peer that claims the most work:
//  1. headers in batches of up to 2000 from that peer, found with a block locator, each checked
//     for linkage, proof of work and difficulty bits before anything else is asked for;
//  2. block bodies for those headers, fetched in parallel from every peer that should have them
//     (up to a few requests in flight per peer, a bounded window ahead of the connect point);
//  3. bodies connected strictly in header order through chain.processBlocks, which does the full
//     validation.
// Everything a session holds is bounded (headers ahead, blocks buffered, bytes buffered), so a
// peer that claims a huge chain cannot make this node buffer without limit. Orphans that arrive by
// gossip start a session with their sender, which fetches their missing parents the same way.
import { ValidationError } from '../core/errors.ts';
import { bytesEqual, hashToHex } from '../core/hash.ts';
import { decodeBlock, decodeHeader, headerHash, type Block, type Header } from '../core/block.ts';
import { merkleRoot } from '../core/merkle.ts';
import type { Logger } from '../core/log.ts';
import type { Chain, IndexEntry } from '../consensus/chain.ts';
import { workFromBits } from '../consensus/pow.ts';
import { checkProofOfWork, nextBits } from '../consensus/validate.ts';
import { locatorHeights, mainLocator } from './locator.ts';
import { MAX_BLOCKS_PER_REQUEST, MAX_HEADERS, MAX_LOCATOR, type Request, type Response } from './messages.ts';
import type { Offence } from './score.ts';

/** Most blocks handed to chain.processBlocks at once (one store batch; bounds the state held in memory). */
const MAX_CONNECT_RUN = 128;

/** What the sync engine knows of a peer; the network layer owns and updates these. */
export interface SyncPeer {
  readonly id: string;
  /** most work the peer is known to have (its status, or blocks it relayed) */
  bestWork: bigint;
  bestHeight: number;
  /** block requests this engine has in flight to the peer */
  inflight: number;
  /** no session with this peer as source before this time (ms), after a failed one */
  retryAt: number;
}

export interface SyncHost {
  chain: Chain;
  log: Logger;
  /** peers that passed the handshake */
  readyPeers(): SyncPeer[];
  /** sends a request; null when it failed (the host has already charged the peer for it) */
  request(peer: SyncPeer, req: Request, timeoutMs: number): Promise<Response | null>;
  penalize(peerId: string, offence: Offence, why: string): void;
  /** a block came from peers (so the network layer does not announce it as its own) */
  fromPeers(hex: string): void;
  /** the tip moved because of a session: tell peers */
  onProgress?(): void;
}

export interface SyncOptions {
  maxInflightPerPeer?: number;
  /** blocks ahead of the connect point that may be requested or buffered */
  window?: number;
  maxBufferedBytes?: number;
  /** headers held beyond the connect point */
  maxHeadersAhead?: number;
  headersTimeoutMs?: number;
  blocksTimeoutMs?: number;
  /** seconds between progress log lines while syncing */
  logEverySeconds?: number;
}

export interface SyncProgress {
  syncing: boolean;
  height: number;
  target: number;
  /** 0-100, one decimal */
  percent: number;
  blocksPerSecond: number;
  peer: string | null;
}

interface Item {
  hash: Uint8Array;
  hex: string;
  header: Header;
  height: number;
  work: bigint;
  state: 'none' | 'inflight' | 'have';
}

interface Buffered {
  block: Block;
  from: string;
  /** signature checks running on workers while earlier blocks connect */
  verified: Promise<void>;
}

/** One sync session: the header chain of one source peer and the bodies being fetched for it. */
class Session {
  items: Item[] = [];
  byHex = new Map<string, number>();
  next = 0;
  headersDone = false;
  aborted = false;
  buffered = new Map<string, Buffered>();
  bufferedBytes = 0;
  /** peers that answered "unknown" for a block: not asked for it again in this session */
  missing = new Map<string, Set<string>>();
  failures = new Map<string, number>();
  connected = 0;
  constructor(readonly src: SyncPeer) {}

  get last(): Item | undefined {
    return this.items[this.items.length - 1];
  }

  truncateAfter(i: number): void {
    for (const it of this.items.splice(i + 1)) {
      this.byHex.delete(it.hex);
      const b = this.buffered.get(it.hex);
      if (b !== undefined) {
        this.bufferedBytes -= b.block.size;
        this.buffered.delete(it.hex);
      }
    }
  }

  /** Drops connected items from the front so a long sync keeps only what is ahead. */
  compact(): void {
    if (this.next < 4096) return;
    const gone = this.items.splice(0, this.next);
    for (const it of gone) this.byHex.delete(it.hex);
    this.next = 0;
    this.items.forEach((it, i) => this.byHex.set(it.hex, i));
  }
}

/** A promise that the next wake() resolves: how the loops here sleep until something changes. */
class Signal {
  private waiters: Array<() => void> = [];
  wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        const i = this.waiters.indexOf(done);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve();
      };
      const t = setTimeout(done, ms);
      t.unref();
      this.waiters.push(done);
    });
  }
}

export class Synchronizer {
  private session: Session | null = null;
  private stopped = true;
  private loopDone: Promise<void> = Promise.resolve();
  private readonly signal = new Signal();
  private readonly o: Required<SyncOptions>;
  private timer?: NodeJS.Timeout;
  private rate = 0;
  private rateMark = { at: Date.now(), connected: 0 };
  private totalConnected = 0;
  private lastLog = 0;

  constructor(
    private readonly host: SyncHost,
    opts: SyncOptions = {},
  ) {
    this.o = {
      maxInflightPerPeer: opts.maxInflightPerPeer ?? 4,
      window: opts.window ?? 1024,
      maxBufferedBytes: opts.maxBufferedBytes ?? 64 * 1024 * 1024,
      maxHeadersAhead: opts.maxHeadersAhead ?? 50_000,
      headersTimeoutMs: opts.headersTimeoutMs ?? 15_000,
      blocksTimeoutMs: opts.blocksTimeoutMs ?? 30_000,
      logEverySeconds: opts.logEverySeconds ?? 5,
    };
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.session !== null) this.session.aborted = true;
    clearInterval(this.timer);
    this.signal.wake();
    await this.loopDone;
  }

  /** Something changed (a peer appeared or announced more work): look for a sync source. */
  wake(): void {
    this.signal.wake();
  }

  /** A peer relayed a block whose parent we lack: it has blocks we do not, so sync from it. */
  onOrphan(peer: SyncPeer): void {
    if (peer.bestWork <= this.host.chain.tip.work) peer.bestWork = this.host.chain.tip.work + 1n;
    this.wake();
  }

  syncing(): boolean {
    const s = this.session;
    return s !== null && !s.aborted && (!s.headersDone || s.next < s.items.length);
  }

  progress(): SyncProgress {
    const chain = this.host.chain;
    const s = this.session;
    const height = chain.tip.height;
    const target = Math.max(height, s?.last?.height ?? 0, s?.src.bestHeight ?? 0);
    const percent = target === 0 ? 100 : Math.floor((height / target) * 1000) / 10;
    return { syncing: this.syncing(), height, target, percent, blocksPerSecond: Math.round(this.rate), peer: s?.src.id ?? null };
  }

  private tick(): void {
    const now = Date.now();
    const dt = (now - this.rateMark.at) / 1000;
    if (dt >= 1) {
      const inst = (this.totalConnected - this.rateMark.connected) / dt;
      // Smoothed over a few seconds so the figure does not jump with every batch.
      this.rate = this.rate === 0 ? inst : this.rate * 0.6 + inst * 0.4;
      this.rateMark = { at: now, connected: this.totalConnected };
    }
    if (this.syncing() && now - this.lastLog >= this.o.logEverySeconds * 1000) {
      this.lastLog = now;
      const p = this.progress();
      this.host.log.info(`sync: height ${p.height}/${p.target} (${p.percent.toFixed(1)}%), ${p.blocksPerSecond} blocks/s from ${this.host.readyPeers().length} peer(s)`);
    }
  }

  private bestSource(): SyncPeer | undefined {
    const tipWork = this.host.chain.tip.work;
    const now = Date.now();
    let best: SyncPeer | undefined;
    for (const p of this.host.readyPeers()) {
      if (p.bestWork > tipWork && p.retryAt <= now && (best === undefined || p.bestWork > best.bestWork)) best = p;
    }
    return best;
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      const src = this.bestSource();
      if (src === undefined) {
        await this.signal.wait(5000);
        continue;
      }
      try {
        await this.run(src);
      } catch (e) {
        // A bug or a closed store: log it and keep the node alive; the next status poll retries.
        this.host.log.warn(`sync with ${short(src.id)} stopped: ${(e as Error).message}`);
        src.retryAt = Date.now() + 10_000;
      }
    }
  }

  private async run(src: SyncPeer): Promise<void> {
    const s = new Session(src);
    this.session = s;
    const startHeight = this.host.chain.tip.height;
    const started = Date.now();
    this.lastLog = started;
    if (src.bestHeight > startHeight + 1) {
      this.host.log.info(`sync: from ${short(src.id)}, height ${startHeight} to ${src.bestHeight}`);
      // the signature workers start while the headers come, not when the first records do
      void this.host.chain.warmVerifier();
    }
    const headers = this.fetchHeaders(s).catch((e: unknown) => this.abort(s, (e as Error).message));
    try {
      await this.connectLoop(s);
    } finally {
      s.aborted = true;
      this.signal.wake();
      await headers;
      this.session = null;
    }
    // What the peer showed us is what it has; without this a peer that over-claimed its work
    // would be picked as a source again and again.
    const lastWork = s.last?.work;
    if (s.headersDone && lastWork !== undefined && lastWork < src.bestWork) src.bestWork = lastWork;
    if (s.headersDone && s.items.length === 0 && src.bestWork > this.host.chain.tip.work) src.bestWork = this.host.chain.tip.work;
    if (!s.headersDone) src.retryAt = Date.now() + 10_000;
    // A session that connected nothing must not be retried in a tight loop.
    if (s.connected === 0) src.retryAt = Math.max(src.retryAt, Date.now() + 2000);
    if (s.connected > 0) {
      const secs = (Date.now() - started) / 1000;
      if (s.connected > 1) this.host.log.info(`sync: connected ${s.connected} blocks in ${secs.toFixed(1)}s, now at height ${this.host.chain.tip.height}`);
      this.host.onProgress?.();
    }
  }

  private abort(s: Session, why: string): void {
    if (s.aborted) return;
    this.host.log.debug(`sync session with ${short(s.src.id)} aborted: ${why}`);
    s.aborted = true;
    s.src.retryAt = Date.now() + 10_000;
    this.signal.wake();
  }

  // ---- headers -------------------------------------------------------------------------------

  private locator(s: Session): Uint8Array[] {
    const out: Uint8Array[] = [];
    const last = s.last;
    if (last !== undefined && s.items.length > 0) {
      const first = s.items[0].height;
      for (const h of locatorHeights(last.height)) {
        if (h < first || out.length >= MAX_LOCATOR / 2) break;
        out.push(s.items[h - first].hash);
      }
    }
    const main = mainLocator(this.host.chain);
    const room = MAX_LOCATOR - out.length;
    return out.concat(main.length <= room ? main : [...main.slice(0, room - 1), main[main.length - 1]]);
  }

  private async fetchHeaders(s: Session): Promise<void> {
    while (!s.aborted && !this.stopped && !s.headersDone) {
      if (s.items.length - s.next >= this.o.maxHeadersAhead) {
        await this.signal.wait(1000);
        continue;
      }
      const req: Request = { type: 'headers', locator: this.locator(s), max: MAX_HEADERS };
      const res = await this.host.request(s.src, req, this.o.headersTimeoutMs);
      if (s.aborted) return;
      if (res === null || res.type !== 'headers') {
        this.abort(s, res === null ? 'headers request failed' : `peer answered ${res.type === 'error' ? res.code : res.type}`);
        return;
      }
      if (!this.addHeaders(s, res.headers)) return;
      if (res.headers.length < MAX_HEADERS) s.headersDone = true;
      // A finished header chain with no more work than ours is not worth downloading.
      const last = s.last;
      if (s.headersDone && last !== undefined && last.work <= this.host.chain.tip.work && s.next === 0 && s.buffered.size === 0) {
        s.truncateAfter(-1);
      }
      this.pump(s);
      this.signal.wake();
    }
  }

  /** Validates a batch of headers and appends it; false (and the session aborted) on a fault. */
  private addHeaders(s: Session, raw: Uint8Array[]): boolean {
    const chain = this.host.chain;
    const p = chain.params;
    if (raw.length === 0) return true;
    let headers: Header[];
    try {
      headers = raw.map((b) => decodeHeader(b));
    } catch (e) {
      this.host.penalize(s.src.id, 'malformed', (e as Error).message);
      this.abort(s, 'malformed header');
      return false;
    }
    // Where does the batch attach: the end of what we have, an earlier item (the peer
    // reorganised), or a block we store?
    const prevHex = hashToHex(headers[0].prev);
    let parent: { hash: Uint8Array; height: number; time: number; work: bigint };
    const at = s.byHex.get(prevHex);
    if (at !== undefined) {
      if (at < s.next - 1) {
        this.abort(s, 'peer reorganised below the connect point');
        return false;
      }
      s.truncateAfter(at);
      const it = s.items[at];
      parent = { hash: it.hash, height: it.height, time: it.header.time, work: it.work };
    } else {
      const e: IndexEntry | undefined = chain.index.get(prevHex);
      if (e === undefined || e.status === 'invalid') {
        this.host.penalize(s.src.id, 'unexpected', `headers attach to ${e === undefined ? 'an unknown' : 'an invalid'} block ${prevHex}`);
        this.abort(s, 'headers do not attach');
        return false;
      }
      if (s.next > 0 && s.next < s.items.length) {
        this.abort(s, 'peer reorganised below the connect point');
        return false;
      }
      s.truncateAfter(-1);
      s.next = 0;
      parent = { hash: e.hash, height: e.height, time: e.header.time, work: e.work };
    }
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i];
      const hash = headerHash(raw[i]);
      const hex = hashToHex(hash);
      if (!bytesEqual(h.prev, parent.hash)) {
        this.host.penalize(s.src.id, 'unexpected', 'headers do not link');
        this.abort(s, 'headers do not link');
        return false;
      }
      try {
        checkProofOfWork(h, hash, p);
        const want = nextBits(p, chain.anchor, { height: parent.height, time: parent.time });
        if (h.bits !== want) throw new ValidationError('bad-bits', `header ${hex} has bits 0x${h.bits.toString(16)}, the rule asks 0x${want.toString(16)}`);
      } catch (e) {
        if (!(e instanceof ValidationError)) throw e;
        this.host.penalize(s.src.id, e.code === 'bad-pow' ? 'badPow' : 'invalidBlock', e.message);
        this.abort(s, e.message);
        return false;
      }
      const known = chain.index.get(hex);
      if (known?.status === 'invalid') {
        this.host.penalize(s.src.id, 'invalidBlock', `header of invalid block ${hex}`);
        this.abort(s, 'header of an invalid block');
        return false;
      }
      const item: Item = { hash, hex, header: h, height: parent.height + 1, work: parent.work + workFromBits(h.bits), state: 'none' };
      s.byHex.set(hex, s.items.length);
      s.items.push(item);
      parent = { hash, height: item.height, time: h.time, work: item.work };
    }
    if (s.src.bestHeight < parent.height) s.src.bestHeight = parent.height;
    if (s.src.bestWork < parent.work) s.src.bestWork = parent.work;
    return true;
  }

  // ---- bodies --------------------------------------------------------------------------------

  /** Hands out block requests to every peer with a free slot. */
  private pump(s: Session): void {
    if (s.aborted || this.stopped) return;
    const peers = this.host.readyPeers().filter((p) => (s.failures.get(p.id) ?? 0) < 3);
    if (peers.length === 0) return;
    peers.sort((a, b) => a.inflight - b.inflight);
    const chain = this.host.chain;
    const end = Math.min(s.items.length, s.next + this.o.window);
    let remaining = 0;
    for (let i = s.next; i < end; i++) if (s.items[i].state === 'none' && !chain.index.has(s.items[i].hex)) remaining++;
    if (remaining === 0) return;
    // Small batches when little is left, so the tail is spread over peers too.
    const batchSize = Math.max(1, Math.min(MAX_BLOCKS_PER_REQUEST, Math.ceil(remaining / peers.length)));
    for (let round = 0; round < this.o.maxInflightPerPeer; round++) {
      for (const peer of peers) {
        if (peer.inflight >= this.o.maxInflightPerPeer || s.bufferedBytes >= this.o.maxBufferedBytes) continue;
        const batch: Item[] = [];
        for (let i = s.next; i < end && batch.length < batchSize; i++) {
          const it = s.items[i];
          if (it.state !== 'none') continue;
          if (chain.index.has(it.hex)) continue;
          if (s.missing.get(it.hex)?.has(peer.id)) continue;
          // Only the source surely has the blocks of its own header chain; others are asked
          // only for blocks at or below the work they claim.
          if (peer !== s.src && peer.bestWork < it.work) continue;
          batch.push(it);
        }
        if (batch.length === 0) continue;
        for (const it of batch) it.state = 'inflight';
        peer.inflight++;
        this.fetchBlocks(s, peer, batch).catch((e: unknown) => this.abort(s, `block fetch failed: ${(e as Error).message}`));
      }
    }
  }

  private async fetchBlocks(s: Session, peer: SyncPeer, batch: Item[]): Promise<void> {
    let res: Response | null = null;
    try {
      res = await this.host.request(peer, { type: 'blocks', hashes: batch.map((it) => it.hash) }, this.o.blocksTimeoutMs);
    } finally {
      peer.inflight--;
    }
    if (s.aborted) return;
    const maxBytes = this.host.chain.params.maxBlockBytes;
    if (res === null || res.type !== 'blocks') {
      s.failures.set(peer.id, (s.failures.get(peer.id) ?? 0) + 1);
      for (const it of batch) if (it.state === 'inflight') it.state = 'none';
      if (peer === s.src && (s.failures.get(peer.id) ?? 0) >= 3) this.abort(s, 'source keeps failing block requests');
    } else {
      // the response's blocks share their signature checks (chain.preverify): one promise for all
      const arrived: Array<{ hex: string; block: Block }> = [];
      batch.forEach((it, i) => {
        if (it.state !== 'inflight') return;
        const bytes = res.blocks[i];
        if (bytes === undefined || bytes.length === 0) {
          it.state = 'none';
          let m = s.missing.get(it.hex);
          if (m === undefined) s.missing.set(it.hex, (m = new Set()));
          m.add(peer.id);
          if (peer === s.src) {
            this.host.penalize(peer.id, 'unexpected', `source does not serve block ${it.hex} of its own headers`);
            this.abort(s, 'source lacks a block of its own header chain');
          }
          return;
        }
        let block: Block;
        try {
          block = decodeBlock(bytes, maxBytes);
        } catch (e) {
          it.state = 'none';
          this.host.penalize(peer.id, 'malformed', `block ${it.hex}: ${(e as Error).message}`);
          return;
        }
        if (!bytesEqual(block.hash, it.hash)) {
          it.state = 'none';
          this.host.penalize(peer.id, 'unexpected', `sent block ${hashToHex(block.hash)} for ${it.hex}`);
          return;
        }
        // The header fixes the Merkle root: a body that does not match it was forged by the
        // sender, not made by the miner, so only the sender is at fault and another peer is asked.
        if (!bytesEqual(merkleRoot(block.records.map((r) => r.id)), block.header.merkleRoot)) {
          it.state = 'none';
          this.host.penalize(peer.id, 'invalidBlock', `body of ${it.hex} does not match its header`);
          return;
        }
        it.state = 'have';
        arrived.push({ hex: it.hex, block });
      });
      if (arrived.length > 0) {
        const verified = this.host.chain.preverify(...arrived.map((a) => a.block));
        for (const { hex, block } of arrived) {
          s.buffered.set(hex, { block, from: peer.id, verified });
          s.bufferedBytes += block.size;
        }
      }
    }
    this.signal.wake();
    this.pump(s);
  }

  private async connectLoop(s: Session): Promise<void> {
    const chain = this.host.chain;
    while (!s.aborted && !this.stopped) {
      if (s.next >= s.items.length) {
        if (s.headersDone) return;
        await this.signal.wait(1000);
        continue;
      }
      const it = s.items[s.next];
      const known = chain.index.get(it.hex);
      if (known !== undefined) {
        if (known.status === 'invalid') {
          this.host.penalize(s.src.id, 'invalidBlock', `headers lead through invalid block ${it.hex}`);
          this.abort(s, 'chain leads through an invalid block');
          return;
        }
        this.dropBuffered(s, it.hex);
        s.next++;
        continue;
      }
      const got = s.buffered.get(it.hex);
      if (got === undefined) {
        if (!this.host.readyPeers().includes(s.src)) {
          // The next session picks another source (or this one again when it returns).
          this.abort(s, 'source peer left');
          return;
        }
        this.pump(s);
        await this.signal.wait(1000);
        continue;
      }
      // Every consecutive body at hand goes to the chain at once: it validates them in order
      // and connects them with one store batch instead of one (or two) per block.
      const run: Array<Buffered & { hex: string }> = [{ ...got, hex: it.hex }];
      for (let i = s.next + 1; i < s.items.length && run.length < MAX_CONNECT_RUN; i++) {
        const hex = s.items[i].hex;
        const b = s.buffered.get(hex);
        if (b === undefined || chain.index.has(hex)) break;
        run.push({ ...b, hex });
      }
      for (const b of run) {
        this.dropBuffered(s, b.hex);
        await chain.settle(b.verified);
        this.host.fromPeers(b.hex);
      }
      const results = await chain.processBlocks(run.map((b) => b.block));
      for (let i = 0; i < results.length; i++) {
        const r = results[i];
        const b = run[i];
        if (r.status === 'invalid') {
          const offence: Offence = r.code === 'time-too-new' ? 'badTime' : 'invalidBlock';
          this.host.penalize(s.src.id, offence, `headers lead to invalid block ${b.hex}: ${r.code}`);
          if (b.from !== s.src.id) this.host.penalize(b.from, offence, `served invalid block ${b.hex}: ${r.code}`);
          this.abort(s, `block ${b.hex} is invalid: ${r.message}`);
          return;
        }
        if (r.status === 'orphan') {
          this.abort(s, `block ${b.hex} did not attach`);
          return;
        }
        // The header chain may have been replaced above the connect point meanwhile: the loop
        // then goes on from whatever the items say now.
        if (s.items[s.next]?.hex !== b.hex) break;
        s.next++;
        s.connected++;
        this.totalConnected++;
      }
      s.compact();
      this.pump(s);
    }
  }

  private dropBuffered(s: Session, hex: string): void {
    const b = s.buffered.get(hex);
    if (b === undefined) return;
    s.buffered.delete(hex);
    s.bufferedBytes -= b.block.size;
  }
}

export function short(peerId: string): string {
  return peerId.length > 16 ? `${peerId.slice(0, 8)}..${peerId.slice(-6)}` : peerId;
}
