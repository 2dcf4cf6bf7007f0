// A global limit shared fairly among sources (addresses): one source may hold no more than is
// left free for everyone else. Alone it can take half; with others, each ends up near
// max / (sources + 1), so a single source (or a few) never fills the limit and a newcomer always
// finds room. Used for forwarded requests in progress and for subscriptions.

export class FairShare {
  private readonly held = new Map<string, number>();
  private total = 0;

  constructor(readonly max: number) {}

  /** Takes one unit for `source`: false when the limit is reached or `source` already holds as many as are left free. */
  take(source: string): boolean {
    const mine = this.held.get(source) ?? 0;
    if (this.total >= this.max || mine >= this.max - this.total) return false;
    this.held.set(source, mine + 1);
    this.total++;
    return true;
  }

  /** Gives back a unit `source` took. */
  release(source: string): void {
    const mine = this.held.get(source);
    if (mine === undefined) return;
    if (mine <= 1) this.held.delete(source);
    else this.held.set(source, mine - 1);
    this.total--;
  }

  get size(): number {
    return this.total;
  }

  /** Units `source` holds. */
  of(source: string): number {
    return this.held.get(source) ?? 0;
  }

  /** True when the limit itself (not a source's share) is reached. */
  get full(): boolean {
    return this.total >= this.max;
  }
}
