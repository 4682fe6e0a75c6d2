import type { Routing } from '../shared/protocol';

/*
 * Analyses of one traced sequence (protocol Routing), for the trace panel and the heatmap's trace source.
 * Small enough to compute on demand, so these return plain nested arrays. Safe to bundle into webviews.
 */

/** [start, end) token indices; absent means every token. */
export type TokenRange = readonly [number, number];

export type RoutingView = Pick<Routing, 'numLayers' | 'numTokens' | 'numExperts' | 'topK' | 'topExperts' | 'topWeights' | 'entropy'>;

function resolveRange(r: RoutingView, range: TokenRange | undefined): [number, number] {
  if (!range) return [0, r.numTokens];
  const [start, end] = range;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end > r.numTokens) {
    throw new Error(`token range [${start}, ${end}) is not within [0, ${r.numTokens})`);
  }
  return [start, end];
}

/** The expert id at a flat slot index; a bad id would otherwise silently grow a count array. */
function expertAt(r: RoutingView, index: number): number {
  const e = r.topExperts[index]!;
  if (!(e >= 0 && e < r.numExperts)) throw new Error(`expert id ${e} at slot index ${index} is not within [0, ${r.numExperts})`);
  return e;
}

/**
 * counts[layer][expert]: the number of (token, slot) assignments of the expert over the tokens of the
 * range, i.e. how many of those tokens had it among their top-k. Each layer sums to k x tokens.
 */
export function expertCounts(routing: RoutingView, tokenRange?: TokenRange): number[][] {
  const [start, end] = resolveRange(routing, tokenRange);
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = routing;
  const out: number[][] = [];
  for (let l = 0; l < L; l++) {
    const row = new Array<number>(E).fill(0);
    for (let t = start; t < end; t++) {
      const base = (l * T + t) * K;
      for (let s = 0; s < K; s++) row[expertAt(routing, base + s)]!++;
    }
    out.push(row);
  }
  return out;
}

/** Per layer: the experts with zero count, e.g. of expertCounts. */
export function neverActivated(counts: readonly (readonly number[])[]): number[][] {
  return counts.map((row) => row.flatMap((c, e) => (c === 0 ? [e] : [])));
}

/**
 * entropy[layer][token]: gate entropy (nats, softmax over all experts) divided by ln(numExperts):
 * 1 for a uniform gate, 0 when one expert takes all the probability.
 */
export function entropyNormalized(routing: RoutingView): number[][] {
  const { numLayers: L, numTokens: T, numExperts: E } = routing;
  const lnE = Math.log(E);
  const out: number[][] = [];
  for (let l = 0; l < L; l++) {
    const row = new Array<number>(T);
    for (let t = 0; t < T; t++) row[t] = routing.entropy[l * T + t]! / lnE;
    out.push(row);
  }
  return out;
}

export interface TraceLayerStats {
  layer: number;
  /** Mean normalised gate entropy over the range's tokens. */
  entropyNormalized: number;
  /** Mean over tokens of the largest applied expert weight. */
  meanTop1Weight: number;
  /** Mean over tokens of the sum of the k applied weights (1 when renormalised, as in Mixtral). */
  meanTopKMass: number;
  /** Experts chosen by at least one token of the range. */
  activeExperts: number;
}

/**
 * Per layer, over the tokens of the range: mean normalised entropy, mean top-1 weight, mean top-k mass
 * (same definitions as the run summary's, over one sequence) and the number of distinct experts used.
 * Means over an empty range are 0.
 */
export function layerStats(routing: RoutingView, tokenRange?: TokenRange): TraceLayerStats[] {
  const [start, end] = resolveRange(routing, tokenRange);
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = routing;
  const lnE = Math.log(E);
  const n = end - start;
  const counts = expertCounts(routing, [start, end]);
  const out: TraceLayerStats[] = [];
  for (let l = 0; l < L; l++) {
    let h = 0;
    let top1 = 0;
    let mass = 0;
    for (let t = start; t < end; t++) {
      h += routing.entropy[l * T + t]! / lnE;
      const base = (l * T + t) * K;
      let wMax = -Infinity;
      for (let s = 0; s < K; s++) {
        const w = routing.topWeights[base + s]!;
        mass += w;
        if (w > wMax) wMax = w;
      }
      top1 += wMax;
    }
    out.push({
      layer: l,
      entropyNormalized: n > 0 ? h / n : 0,
      meanTop1Weight: n > 0 ? top1 / n : 0,
      meanTopKMass: n > 0 ? mass / n : 0,
      activeExperts: counts[l]!.filter((c) => c > 0).length,
    });
  }
  return out;
}

/** Per-layer mean normalised entropy over the range (layerStats(...).entropyNormalized). */
export function meanEntropyNormalized(routing: RoutingView, tokenRange?: TokenRange): number[] {
  return layerStats(routing, tokenRange).map((s) => s.entropyNormalized);
}

export interface TokenRoute {
  /** The k experts in the routing's slot order. */
  experts: number[];
  /** The weights applied to them. */
  weights: number[];
  /** Their sum: the top-k mass (1 when renormalised). */
  mass: number;
  /** Gate entropy / ln(numExperts), as in entropyNormalized. */
  entropyNormalized: number;
}

/** One token in one layer: its k experts with their weights, their mass and the normalised gate entropy. */
export function tokenRoute(routing: RoutingView, layer: number, token: number): TokenRoute {
  const { numLayers: L, numTokens: T, topK: K } = routing;
  if (!Number.isInteger(layer) || layer < 0 || layer >= L) throw new Error(`layer ${layer} is not within [0, ${L})`);
  if (!Number.isInteger(token) || token < 0 || token >= T) throw new Error(`token ${token} is not within [0, ${T})`);
  const base = (layer * T + token) * K;
  const experts: number[] = [];
  const weights: number[] = [];
  let mass = 0;
  for (let s = 0; s < K; s++) {
    experts.push(routing.topExperts[base + s]!);
    weights.push(routing.topWeights[base + s]!);
    mass += routing.topWeights[base + s]!;
  }
  return { experts, weights, mass, entropyNormalized: routing.entropy[layer * T + token]! / Math.log(routing.numExperts) };
}

/**
 * Co-activation of one layer over the range's tokens, as in the run summary: row-major E x E,
 * P(b | a) = (tokens whose top-k holds a and b) / (tokens whose top-k holds a), a != b; 0 on the
 * diagonal and in rows of experts no token chose.
 */
export function coactivation(routing: RoutingView, layer: number, tokenRange?: TokenRange): number[] {
  const [start, end] = resolveRange(routing, tokenRange);
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = routing;
  if (!Number.isInteger(layer) || layer < 0 || layer >= L) throw new Error(`layer ${layer} is not within [0, ${L})`);
  const together = new Array<number>(E * E).fill(0);
  const chosen = new Array<number>(E).fill(0);
  for (let t = start; t < end; t++) {
    const base = (layer * T + t) * K;
    for (let i = 0; i < K; i++) {
      const a = expertAt(routing, base + i);
      chosen[a]!++;
      for (let j = 0; j < K; j++) {
        if (j !== i) together[a * E + expertAt(routing, base + j)]!++;
      }
    }
  }
  for (let a = 0; a < E; a++) {
    const c = chosen[a]!;
    for (let b = 0; b < E; b++) together[a * E + b] = c > 0 ? together[a * E + b]! / c : 0;
  }
  return together;
}
