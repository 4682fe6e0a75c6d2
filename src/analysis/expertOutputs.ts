/**
 * Dynamic analyses of "A Closer Look into Mixture-of-Experts in Large Language Models", over the
 * all-experts statistics of one traced sequence (pure functions, no I/O).
 */
import type { ExpertOutputStats, Routing } from '../shared/protocol';

export interface NormScoreLayer {
  layer: number;
  /**
   * counts[r * E + n]: tokens where the expert with the r-th highest gate probability has the n-th largest
   * UNWEIGHTED output norm (ranks from 0). A router that prefers large-norm experts concentrates mass
   * near the diagonal's top-left corner.
   */
  counts: number[];
  /** Share of tokens whose top-scored expert also has the largest output norm (uniform chance: 1/E). */
  topScoredHasLargestNorm: number;
  /** Share of tokens whose top-scored expert's norm is among the k largest (chance: k/E). */
  topScoredNormInTopK: number;
}

/** Rank of each index when sorted by value, descending (0 = largest); ties to the lower index. */
function ranks(values: ArrayLike<number>, offset: number, n: number, out: Int32Array): void {
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => values[offset + b] - values[offset + a] || a - b);
  order.forEach((idx, rank) => (out[idx] = rank));
}

export function normVersusScore(
  routing: Pick<Routing, 'numLayers' | 'numTokens' | 'numExperts' | 'topK' | 'probs'>,
  stats: ExpertOutputStats,
): NormScoreLayer[] {
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = routing;
  if (!routing.probs) throw new Error('normVersusScore needs the full gate probabilities (trace with probabilities)');
  if (stats.numLayers !== L || stats.numTokens !== T || stats.numExperts !== E) throw new Error('routing and expert statistics describe different sequences');
  const scoreRank = new Int32Array(E);
  const normRank = new Int32Array(E);
  const layers: NormScoreLayer[] = [];
  for (let l = 0; l < L; l++) {
    const counts = new Array<number>(E * E).fill(0);
    let top = 0;
    let topK = 0;
    for (let t = 0; t < T; t++) {
      const off = (l * T + t) * E;
      ranks(routing.probs, off, E, scoreRank);
      ranks(stats.norms, off, E, normRank);
      for (let e = 0; e < E; e++) counts[scoreRank[e] * E + normRank[e]]++;
      const best = scoreRank.indexOf(0);
      if (normRank[best] === 0) top++;
      if (normRank[best] < K) topK++;
    }
    layers.push({ layer: l, counts, topScoredHasLargestNorm: T ? top / T : 0, topScoredNormInTopK: T ? topK / T : 0 });
  }
  return layers;
}

/**
 * Expert diversity by depth: per layer, the mean over tokens of the mean angular similarity
 * 1 - arccos(cos(out_a, out_b)) / pi over pairs of different experts (1 = identical directions,
 * 0.5 = orthogonal). Lower similarity = more diverse experts.
 */
export function similarityByDepth(stats: ExpertOutputStats): number[] {
  const { numLayers: L, numTokens: T } = stats;
  return Array.from({ length: L }, (_, l) => {
    let s = 0;
    for (let t = 0; t < T; t++) s += stats.meanAngularSimilarity[l * T + t];
    return T ? s / T : 0;
  });
}
