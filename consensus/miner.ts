// A single-threaded miner on the main event loop: it scans nonces in short slices (a few ms
// each) so SIP, p2p and the API stay responsive, and rebuilds its template whenever the tip
// or the pending pool changes. The fast multi-worker miner replaces the scanning loop only.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { encodeHeader } from '../core/block.ts';
import { HeaderHasher } from './hasher.ts';
import { compactToTarget, targetToBytesLE } from './pow.ts';
import type { Chain, ProcessResult, Template } from './chain.ts';

const SLICE = 16_384;
const TEMPLATE_MAX_AGE_MS = 2000;
const NONCE_SPACE = 0x1_0000_0000;

export interface MinerEvents {
  onBlock?: (r: ProcessResult, height: number) => void;
}

export class Miner {
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private extra = 0;
  private hashes = 0;
  private windowStart = Date.now();
  /** hashes per second over the last few seconds (0 when stopped) */
  hashrate = 0;

  constructor(
    private readonly chain: Chain,
    private readonly rewardAddress: Uint8Array,
    private readonly events: MinerEvents = {},
  ) {}

  get mining(): boolean {
    return this.running;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loopDone;
    this.hashrate = 0;
  }

  private nextExtraNonce(): Uint8Array {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, this.extra++ >>> 0, true);
    new DataView(b.buffer).setUint32(4, (Math.random() * 0x1_0000_0000) >>> 0, true);
    return b;
  }

  private count(n: number): void {
    this.hashes += n;
    const now = Date.now();
    const dt = now - this.windowStart;
    if (dt >= 2000) {
      this.hashrate = Math.round((this.hashes * 1000) / dt);
      this.hashes = 0;
      this.windowStart = now;
    }
  }

  /** Searches one template until a block is found, the template goes stale, or the miner stops. */
  private async search(t: Template, stillGood: () => boolean): Promise<number> {
    const hasher = new HeaderHasher(encodeHeader(t.header));
    const target = targetToBytesLE(compactToTarget(t.header.bits));
    for (let nonce = 0; nonce < NONCE_SPACE; nonce += SLICE) {
      const found = hasher.scan(nonce, Math.min(SLICE, NONCE_SPACE - nonce), target);
      this.count(found < 0 ? SLICE : found - nonce + 1);
      if (found >= 0) return found;
      await yieldToLoop();
      if (!stillGood()) return -1;
    }
    return -1;
  }

  private async loop(): Promise<void> {
    while (this.running) {
      const tip = this.chain.tip;
      const poolVersion = this.chain.pool.version;
      const built = Date.now();
      const t = this.chain.template(this.rewardAddress, this.nextExtraNonce());
      const nonce = await this.search(
        t,
        () => this.running && this.chain.tip === tip && this.chain.pool.version === poolVersion && Date.now() - built < TEMPLATE_MAX_AGE_MS,
      );
      if (nonce < 0) continue;
      const r = await this.chain.processBlock(this.chain.makeBlock(t, nonce));
      this.events.onBlock?.(r, t.height);
    }
  }

  /** Mines `n` blocks on the tip right now (development networks and tests). */
  async mineBlocks(n: number): Promise<ProcessResult[]> {
    const out: ProcessResult[] = [];
    for (let i = 0; i < n; i++) {
      for (;;) {
        const t = this.chain.template(this.rewardAddress, this.nextExtraNonce());
        const nonce = await this.search(t, () => true);
        if (nonce < 0) continue;
        const r = await this.chain.processBlock(this.chain.makeBlock(t, nonce));
        this.events.onBlock?.(r, t.height);
        out.push(r);
        break;
      }
    }
    return out;
  }
}
