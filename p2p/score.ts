// Peer scoring, bans and rate limits. Every peer starts at 0; misbehaviour subtracts points and
// time slowly forgives them (so an honest peer that once relayed something stale recovers); a
// peer at or below the ban threshold is disconnected and refused for a while. All maps are
// bounded so that a stream of fresh peer ids cannot grow memory without limit.

/** What a peer did wrong, with the points it costs. */
export const PENALTY = {
  /** a block that fails validation: one is enough to disconnect */
  invalidBlock: 100,
  badPow: 100,
  /** a record with a bad signature or encoding (state conflicts cost nothing: they race honestly) */
  invalidRecord: 25,
  /** bytes that do not decode, a response of the wrong shape: twice is enough */
  malformed: 60,
  oversize: 60,
  /** one message or request over the rate limit */
  flood: 1,
  /** a block or header we did not ask for, headers that do not link */
  unexpected: 20,
  /** a request that timed out or a stream reset mid-answer */
  timeout: 5,
  /** sent a block too far in the future: maybe only a bad clock */
  badTime: 20,
} as const;

export type Offence = keyof typeof PENALTY;

export interface ScoreOptions {
  banThreshold?: number;
  banMs?: number;
  /** points forgiven per second */
  decayPerSecond?: number;
  maxTracked?: number;
  now?: () => number;
}

interface Entry {
  score: number;
  at: number;
}

export class PeerScores {
  readonly banThreshold: number;
  readonly banMs: number;
  private readonly decay: number;
  private readonly maxTracked: number;
  private readonly now: () => number;
  private readonly scores = new Map<string, Entry>();
  private readonly bans = new Map<string, number>();

  constructor(o: ScoreOptions = {}) {
    this.banThreshold = o.banThreshold ?? -100;
    this.banMs = o.banMs ?? 10 * 60_000;
    this.decay = o.decayPerSecond ?? 0.2;
    this.maxTracked = o.maxTracked ?? 10_000;
    this.now = o.now ?? Date.now;
  }

  score(peer: string): number {
    const e = this.scores.get(peer);
    if (e === undefined) return 0;
    const elapsed = (this.now() - e.at) / 1000;
    return Math.min(0, e.score + elapsed * this.decay);
  }

  /** Charges `offence` (times `count`); returns true when the peer has just crossed into a ban. */
  penalize(peer: string, offence: Offence, count = 1): boolean {
    if (this.isBanned(peer)) return false;
    const s = this.score(peer) - PENALTY[offence] * count;
    this.scores.delete(peer); // re-insert: the map's order is least recently charged first
    this.scores.set(peer, { score: s, at: this.now() });
    if (this.scores.size > this.maxTracked) this.scores.delete(this.scores.keys().next().value as string);
    if (s <= this.banThreshold) {
      this.ban(peer, this.banMs);
      return true;
    }
    return false;
  }

  ban(peer: string, ms: number): void {
    this.bans.delete(peer);
    this.bans.set(peer, this.now() + ms);
    this.scores.delete(peer);
    if (this.bans.size > this.maxTracked) this.bans.delete(this.bans.keys().next().value as string);
  }

  isBanned(peer: string): boolean {
    const until = this.bans.get(peer);
    if (until === undefined) return false;
    if (until > this.now()) return true;
    this.bans.delete(peer);
    return false;
  }

  banned(): string[] {
    return [...this.bans.keys()].filter((p) => this.isBanned(p));
  }

  forget(peer: string): void {
    this.scores.delete(peer);
  }
}

/** Token bucket: `burst` tokens, refilled at `rate` per second. */
export class TokenBucket {
  private tokens: number;
  private at: number;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.at = now();
  }

  take(n = 1): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.at) / 1000) * this.rate);
    this.at = t;
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }
}

/** Per-peer rate limits, one bucket per kind of traffic. */
export interface RateLimits {
  /** records received by gossip or push, per second and burst */
  records: [number, number];
  /** blocks received by gossip */
  blocks: [number, number];
  /** headers, blocks and record-push requests served on the sync protocol */
  requests: [number, number];
  /** status requests: the handshake, a poll every few seconds, a push after each sync */
  status: [number, number];
}

export const DEFAULT_RATE_LIMITS: RateLimits = {
  // A relay forwards what the whole network submits; 500/s sustained is several times what a
  // block every few seconds can confirm, and the burst absorbs a reorganisation's returned records.
  records: [500, 2000],
  // Honest peers relay each new block once; a burst covers a dev network mining hundreds at once.
  blocks: [50, 500],
  // A syncing peer keeps at most a few requests in flight of up to 128 blocks each.
  requests: [200, 500],
  // The cheapest request to send, so the tightest limit: honest peers send about one a second.
  status: [2, 20],
};

export class PeerLimits {
  private readonly buckets = new Map<string, Record<keyof RateLimits, TokenBucket>>();
  constructor(
    private readonly limits: RateLimits = DEFAULT_RATE_LIMITS,
    private readonly maxTracked = 10_000,
  ) {}

  take(peer: string, kind: keyof RateLimits, n = 1): boolean {
    let b = this.buckets.get(peer);
    if (b === undefined) {
      const l = this.limits;
      b = { records: new TokenBucket(...l.records), blocks: new TokenBucket(...l.blocks), requests: new TokenBucket(...l.requests), status: new TokenBucket(...l.status) };
      this.buckets.set(peer, b);
      if (this.buckets.size > this.maxTracked) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    return b[kind].take(n);
  }

  forget(peer: string): void {
    this.buckets.delete(peer);
  }
}
