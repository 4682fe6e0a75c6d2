/*
 * Statistics over the expert pairs of an E x E similarity matrix (row-major), shared by the weight
 * analysis that computes them and the charts that draw them, so both always agree. Safe to bundle into webviews.
 */

/** Ordinary least squares y = intercept + slope x; r2 is 1 - SS_res / SS_tot, pairs the points used. */
export interface LinearFit {
  slope: number;
  intercept: number;
  r2: number;
  pairs: number;
}

/**
 * OLS with intercept of y on x over the points where both coordinates are finite. Without variance in x
 * the slope is 0 and the intercept the mean of y; without variance in y R² is 0.
 */
export function olsFit(xs: ArrayLike<number>, ys: ArrayLike<number>): LinearFit {
  const px: number[] = [];
  const py: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    const x = Number(xs[i]);
    const y = Number(ys[i]);
    if (Number.isFinite(x) && Number.isFinite(y)) {
      px.push(x);
      py.push(y);
    }
  }
  const count = px.length;
  if (count === 0) return { slope: 0, intercept: 0, r2: 0, pairs: 0 };
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < count; i++) {
    sx += px[i]!;
    sy += py[i]!;
  }
  const mx = sx / count;
  const my = sy / count;
  // Centred sums: the raw-moment formula loses everything when all similarities are close to each other.
  let sxx = 0;
  let syy = 0;
  let sxy = 0;
  for (let i = 0; i < count; i++) {
    const dx = px[i]! - mx;
    const dy = py[i]! - my;
    sxx += dx * dx;
    syy += dy * dy;
    sxy += dx * dy;
  }
  // Relative thresholds: exact zero tests miss variances that are pure rounding noise.
  const tiny = 1e-24 * count;
  if (sxx <= tiny) return { slope: 0, intercept: my, r2: 0, pairs: count };
  const slope = sxy / sxx;
  const r2 = syy <= tiny ? 0 : Math.min(1, (sxy * sxy) / (sxx * syy));
  return { slope, intercept: my - slope * mx, r2, pairs: count };
}

/** The pairs a < b of two E x E matrices, as parallel arrays. */
export function upperPairs(E: number, x: ArrayLike<number>, y: ArrayLike<number>): { a: number[]; b: number[]; x: number[]; y: number[] } {
  const out = { a: [] as number[], b: [] as number[], x: [] as number[], y: [] as number[] };
  for (let a = 0; a < E; a++)
    for (let b = a + 1; b < E; b++) {
      out.a.push(a);
      out.b.push(b);
      out.x.push(Number(x[a * E + b]));
      out.y.push(Number(y[a * E + b]));
    }
  return out;
}

/** OLS of y on x over the pairs a < b of two E x E matrices (router similarity against expert similarity). */
export function pairRegression(x: ArrayLike<number>, y: ArrayLike<number>, E: number): LinearFit {
  const p = upperPairs(E, x, y);
  return olsFit(p.x, p.y);
}

/**
 * Mean over the ordered pairs a != b of an E x E matrix, skipping non-finite entries; `empty` when there
 * is no such entry (E < 2, or all of them missing).
 */
export function meanOffDiagonal(values: ArrayLike<number>, E: number, empty = NaN): number {
  let s = 0;
  let n = 0;
  for (let a = 0; a < E; a++)
    for (let b = 0; b < E; b++) {
      if (a === b) continue;
      const v = Number(values[a * E + b]);
      if (!Number.isFinite(v)) continue;
      s += v;
      n++;
    }
  return n ? s / n : empty;
}
