/**
 * Routing as the decoder graph computed it (in-graph routing, graphRouting.ts): the chosen experts and
 * applied weights are read from the graph's outputs, never re-derived. The full distribution for charts
 * and entropy is the router's scores under the family's score function; sigmoid scores, which do not sum
 * to 1, are normalised over the experts (the entropy of a sigmoid router is that of its normalised scores).
 */
import type { Routing } from '../../shared/protocol';

export interface ObservedSelection {
  /** Per routing row: [tokens, k] int64 expert ids as the graph chose them. */
  indices: BigInt64Array[];
  /** Per routing row: [tokens, k] weights as applied to the experts' outputs. */
  weights: Float32Array[];
}

export function routingFromSelection(
  logits: readonly Float32Array[],
  selection: ObservedSelection,
  rows: ArrayLike<number>,
  shape: { numExperts: number; topK: number; score: 'softmax' | 'sigmoid' },
  includeProbs: boolean,
): Routing {
  const E = shape.numExperts;
  const K = shape.topK;
  const T = rows.length;
  const L = logits.length;
  const probs = includeProbs ? new Float32Array(L * T * E) : undefined;
  const topExperts = new Uint16Array(L * T * K);
  const topWeights = new Float32Array(L * T * K);
  const entropy = new Float32Array(L * T);
  const p = new Float64Array(E);
  for (let l = 0; l < L; l++) {
    for (let t = 0; t < T; t++) {
      const base = rows[t] * E;
      let sum = 0;
      if (shape.score === 'softmax') {
        let max = -Infinity;
        for (let e = 0; e < E; e++) max = Math.max(max, logits[l][base + e]);
        for (let e = 0; e < E; e++) sum += p[e] = Math.exp(logits[l][base + e] - max);
      } else {
        for (let e = 0; e < E; e++) sum += p[e] = 1 / (1 + Math.exp(-logits[l][base + e]));
      }
      let h = 0;
      for (let e = 0; e < E; e++) {
        p[e] /= sum;
        if (p[e] > 0) h -= p[e] * Math.log(p[e]);
      }
      const lt = l * T + t;
      entropy[lt] = h;
      if (probs) for (let e = 0; e < E; e++) probs[lt * E + e] = p[e];
      for (let s = 0; s < K; s++) {
        topExperts[lt * K + s] = Number(selection.indices[l][rows[t] * K + s]);
        topWeights[lt * K + s] = selection.weights[l][rows[t] * K + s];
      }
    }
  }
  return { numLayers: L, numTokens: T, numExperts: E, topK: K, probs, topExperts, topWeights, entropy };
}
