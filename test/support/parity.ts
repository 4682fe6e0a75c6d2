/** How far an engine's trace is from transformers' own forward on the same ids (the numerics standard's three measures). */
import type { TraceResult } from '../../src/shared/protocol';

export interface ForwardReference {
  lastLogits: number[];
  /** [layer][token][expert] */
  routerProbs: number[][][];
  /** [layer][token][slot] */
  topExperts: number[][][];
}

export interface ParityGap {
  maxLogit: number;
  maxProb: number;
  /** (layer, token) places whose top-k set differs, not counting an exact tie at the k-th place (either choice is right). */
  topkDiffs: number;
}

export function parityGap(r: Pick<TraceResult, 'routing' | 'lastLogits'>, ref: ForwardReference): ParityGap {
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = r.routing;
  let maxLogit = 0;
  for (let v = 0; v < ref.lastLogits.length; v++) maxLogit = Math.max(maxLogit, Math.abs(r.lastLogits![v] - ref.lastLogits[v]));
  let maxProb = 0;
  let topkDiffs = 0;
  for (let l = 0; l < L; l++) {
    for (let t = 0; t < T; t++) {
      const refProbs = ref.routerProbs[l][t];
      for (let e = 0; e < E; e++) maxProb = Math.max(maxProb, Math.abs(r.routing.probs![(l * T + t) * E + e] - refProbs[e]));
      const ours = [...r.routing.topExperts.subarray((l * T + t) * K, (l * T + t + 1) * K)].sort((a, b) => a - b).join();
      const theirs = [...ref.topExperts[l][t]].sort((a, b) => a - b).join();
      if (ours !== theirs) {
        const sorted = [...refProbs].sort((a, b) => b - a);
        if (sorted[K - 1] !== sorted[K]) topkDiffs++;
      }
    }
  }
  return { maxLogit, maxProb, topkDiffs };
}
