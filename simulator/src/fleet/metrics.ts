/** Quantiles of a sample, in its unit; undefined fields when the sample is empty. */
export interface Quantiles {
  readonly count: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export function quantiles(values: readonly number[] | Float64Array): Quantiles | undefined {
  if (values.length === 0) return undefined;
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
  let sum = 0;
  for (const v of sorted) sum += v;
  const r = (v: number) => Number(v.toFixed(1));
  return {
    count: sorted.length,
    p50: r(at(0.5)),
    p95: r(at(0.95)),
    p99: r(at(0.99)),
    max: r(sorted[sorted.length - 1] as number),
    mean: r(sum / sorted.length),
  };
}

/** Histogram with logarithmic buckets (for the report's latency plots). */
export interface Histogram {
  /** Upper bounds of the buckets, in the sample's unit. */
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
}

export function logHistogram(values: readonly number[] | Float64Array, perDecade = 5): Histogram {
  if (values.length === 0) return { bounds: [], counts: [] };
  let max = 0;
  for (const v of values) if (v > max) max = v;
  const bounds: number[] = [];
  for (let e = 0; ; e++) {
    const b = 10 ** (e / perDecade);
    bounds.push(Number(b.toPrecision(3)));
    if (b >= max) break;
  }
  const counts = new Array<number>(bounds.length).fill(0);
  for (const v of values) {
    let i = 0;
    while (i < bounds.length - 1 && v > (bounds[i] as number)) i++;
    counts[i] = (counts[i] as number) + 1;
  }
  return { bounds, counts };
}

/** Rounds to `digits` decimals. */
export const round = (v: number, digits = 1) => Number(v.toFixed(digits));

/** Picks `fraction` of the items (at least one), spread evenly over them: deterministic, so runs compare. */
export function pickEvenly<T>(items: readonly T[], fraction: number): T[] {
  const n = Math.max(1, Math.round(items.length * fraction));
  const step = items.length / n;
  return Array.from({ length: n }, (_, i) => items[Math.floor(i * step)] as T);
}
