/**
 * Routing as the decoder graph computed it (in-graph routing, graphRouting.ts): the chosen experts and
 * applied weights are read from the graph's outputs, never re-derived. The full distribution for charts
 * and entropy is the router's scores under the family's score function; sigmoid scores, which do not sum
 * to 1, are normalised over the experts (the entropy of a sigmoid router is that of its normalised scores).
 */
import type { Routing } from '../../shared/protocol';
import { emptyRouting, forEachGate } from './routing';

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
  const K = shape.topK;
  const out = emptyRouting(logits.length, rows.length, shape.numExperts, K, includeProbs);
  // Entropy and probabilities from the router's scores; the chosen experts and weights as the model applied them.
  forEachGate(logits, rows, shape.score, new Float64Array(shape.numExperts), out, (lt, l, t) => {
    for (let s = 0; s < K; s++) {
      out.topExperts[lt * K + s] = Number(selection.indices[l][rows[t] * K + s]);
      out.topWeights[lt * K + s] = selection.weights[l][rows[t] * K + s];
    }
  });
  return out;
}
