// The search for the highest rate a server sustains, shared by `dots bench sip` and `dots bench
// calls`: from `start`, the rate doubles until a window fails (or a sustained one reaches `max`),
// then the search bisects between the last rate sustained and the first that failed until they
// are within 10% (and `minGap`) of each other, trying multiples of `step`. Or, when the
// environment names rates (DOTS_BENCH_SIP_RATES, DOTS_BENCH_CALLS_RATES), just those windows.

/** What a window at one rate gave (SIPp's counts); benchmarks add their own figures. */
export interface Window {
  rate: number;
  /** sustained: under 1% failed or unfinished, in time */
  ok: boolean;
  success: number;
  failed: number;
  unfinished: number;
  retransmissions: number;
  /** seconds it took */
  elapsed: number;
}

export interface SearchOptions<T> {
  start: number;
  /** no doubling past a sustained rate of at least this */
  max: number;
  /** bisection tries multiples of this */
  step: number;
  /** bisection ends once the gap is at most max(minGap, 10% of the rate sustained) */
  minGap: number;
  /** one window at `rate` */
  run: (rate: number) => Promise<T>;
}

export interface SearchResult<T> {
  /** the highest rate sustained, null if not even the first */
  best: T | null;
  /** the lowest rate that failed, null if none did */
  failedAt: T | null;
  /** windows run */
  trials: number;
}

export async function searchRate<T extends Window>(o: SearchOptions<T>): Promise<SearchResult<T>> {
  let best: T | null = null;
  let failedAt: T | null = null;
  let trials = 0;
  let lo = 0;
  let hi = 0;
  let rate = o.start;
  const run = (r: number): Promise<T> => {
    trials++;
    return o.run(r);
  };
  for (;;) {
    const t = await run(rate);
    if (t.ok) {
      best = t;
      lo = rate;
      if (rate >= o.max) return { best, failedAt, trials };
      rate *= 2;
    } else {
      failedAt = t;
      hi = rate;
      break;
    }
  }
  while (hi - lo > Math.max(o.minGap, lo * 0.1)) {
    const mid = Math.round((lo + hi) / 2 / o.step) * o.step;
    if (mid <= lo || mid >= hi) break;
    const t = await run(mid);
    if (t.ok) {
      best = t;
      lo = mid;
    } else {
      failedAt = t;
      hi = mid;
    }
  }
  return { best, failedAt, trials };
}

/** The rates a benchmark's environment variable names (`8000,12000`), or null when it names none: then the search runs. */
export function fixedRates(value: string | undefined): number[] | null {
  const rates = value?.split(',').map(Number).filter((x) => x > 0) ?? [];
  return rates.length > 0 ? rates : null;
}

/**
 * Just the windows at `rates`, in order, no search: `best` is the highest rate sustained and
 * `failedAt` the last window that failed (the lowest, when the rates rise).
 */
export async function runWindows<T extends Window>(rates: readonly number[], run: (rate: number) => Promise<T>): Promise<SearchResult<T>> {
  const r: SearchResult<T> = { best: null, failedAt: null, trials: 0 };
  for (const rate of rates) {
    const t = await run(rate);
    r.trials++;
    if (t.ok && (r.best === null || rate > r.best.rate)) r.best = t;
    if (!t.ok) r.failedAt = t;
  }
  return r;
}
