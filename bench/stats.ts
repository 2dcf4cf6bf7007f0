// Figures from samples, and how the benchmarks print them.

/** The `q` quantile (0..1) of ascending `sorted`: the smallest sample with at least q of them at or below it; NaN for none. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** The median of `xs` (any order). */
export function median(xs: number[]): number {
  return quantile([...xs].sort((x, y) => x - y), 0.5);
}

/** `x` with `d` decimals, or "n/a" when it is not a finite number. */
export function fixed(x: number, d = 2): string {
  return Number.isFinite(x) ? x.toFixed(d) : 'n/a';
}

/** `x` rounded to `d` decimals (NaN stays NaN). */
export function rounded(x: number, d: number): number {
  return Number.isFinite(x) ? Number(x.toFixed(d)) : NaN;
}
