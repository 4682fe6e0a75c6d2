/**
 * How much a weight precision changed the routing: two routings of the same tokens (fp32 and another
 * precision) compared set by set. Pure: used by `moe-scope precision-check`, the benchmark and tests.
 */
import type { Routing } from '../shared/protocol';

export interface RoutingAgreement {
  /** (layer, token) pairs compared. */
  sets: number;
  /** Fraction of (layer, token) top-k sets that are identical as sets (order ignored). */
  setAgreement: number;
  /** Fraction of chosen experts shared: |A ∩ B| / k averaged over the sets. */
  expertOverlap: number;
  /** Top-k set agreement per layer. */
  perLayer: number[];
  /** Largest |p_a - p_b| over every router probability (NaN when either side has no probabilities). */
  maxProbDiff: number;
}

export function compareRouting(a: Routing, b: Routing): RoutingAgreement {
  if (a.numLayers !== b.numLayers || a.numTokens !== b.numTokens || a.numExperts !== b.numExperts || a.topK !== b.topK) {
    throw new Error(
      `routings of different shapes: ${a.numLayers}x${a.numTokens}x${a.numExperts} top-${a.topK} vs ${b.numLayers}x${b.numTokens}x${b.numExperts} top-${b.topK}`,
    );
  }
  const { numLayers: L, numTokens: T, topK: K } = a;
  const perLayer: number[] = [];
  let same = 0;
  let overlap = 0;
  for (let l = 0; l < L; l++) {
    let sameHere = 0;
    for (let t = 0; t < T; t++) {
      const base = (l * T + t) * K;
      const setA = new Set(a.topExperts.subarray(base, base + K));
      let shared = 0;
      for (let s = 0; s < K; s++) if (setA.has(b.topExperts[base + s])) shared++;
      overlap += shared / K;
      if (shared === K) sameHere++;
    }
    same += sameHere;
    perLayer.push(T ? sameHere / T : 1);
  }
  let maxProbDiff = NaN;
  if (a.probs && b.probs) {
    maxProbDiff = 0;
    for (let i = 0; i < a.probs.length; i++) maxProbDiff = Math.max(maxProbDiff, Math.abs(a.probs[i] - b.probs[i]));
  }
  const sets = L * T;
  return { sets, setAgreement: sets ? same / sets : 1, expertOverlap: sets ? overlap / sets : 1, perLayer, maxProbDiff };
}

/** Merges agreements of several prompts, weighting by their sets. */
export function mergeAgreements(parts: RoutingAgreement[]): RoutingAgreement {
  const sets = parts.reduce((s, p) => s + p.sets, 0);
  const weighted = (f: (p: RoutingAgreement) => number) => (sets ? parts.reduce((s, p) => s + f(p) * p.sets, 0) / sets : 1);
  const layers = parts[0]?.perLayer.length ?? 0;
  return {
    sets,
    setAgreement: weighted((p) => p.setAgreement),
    expertOverlap: weighted((p) => p.expertOverlap),
    perLayer: Array.from({ length: layers }, (_, l) => weighted((p) => p.perLayer[l])),
    maxProbDiff: parts.reduce((m, p) => Math.max(m, p.maxProbDiff), 0),
  };
}
