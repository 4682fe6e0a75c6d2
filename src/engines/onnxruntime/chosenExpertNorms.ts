/**
 * The chosen experts' unweighted output norms for a score call (MAN / MSAN, src/analysis/expertScores.ts):
 * the MoE inputs of the positions whose routing is returned are gathered into one sequence, every expert's
 * output norm is computed on it by the all-experts session (Engine.expertOutputs), and the norms of the
 * top-k experts actually chosen are picked out, aligned with the routing's topExperts.
 */
import type { Routing } from '../../shared/protocol';

/** Per layer, rows `rows` of [*, hidden] MoE inputs, concatenated in that order. */
export function gatherRows(moeInputs: Float32Array[], rows: readonly number[], hidden: number): Float32Array[] {
  return moeInputs.map((x) => {
    const out = new Float32Array(rows.length * hidden);
    rows.forEach((r, i) => out.set(x.subarray(r * hidden, (r + 1) * hidden), i * hidden));
    return out;
  });
}

/**
 * [layers][tokens][topK] norms of the chosen experts of `routing`, whose token t is token offset + t of a
 * [layers][T][experts] norm table.
 */
export function pickChosenNorms(
  norms: Float32Array,
  T: number,
  offset: number,
  routing: Pick<Routing, 'numLayers' | 'numTokens' | 'numExperts' | 'topK' | 'topExperts'>,
): Float32Array {
  const { numLayers: L, numTokens: n, numExperts: E, topK: K } = routing;
  const out = new Float32Array(L * n * K);
  for (let l = 0; l < L; l++) {
    for (let t = 0; t < n; t++) {
      const src = (l * T + offset + t) * E;
      const dst = (l * n + t) * K;
      for (let s = 0; s < K; s++) out[dst + s] = norms[src + routing.topExperts[dst + s]];
    }
  }
  return out;
}

/** Concatenates [layers][n_i][K] slot tables along tokens (as concatRouting does for routing). */
export function concatSlots(parts: { values: Float32Array; numTokens: number }[], L: number, K: number): Float32Array {
  const T = parts.reduce((a, p) => a + p.numTokens, 0);
  const out = new Float32Array(L * T * K);
  for (let l = 0; l < L; l++) {
    let t0 = 0;
    for (const p of parts) {
      out.set(p.values.subarray(l * p.numTokens * K, (l + 1) * p.numTokens * K), (l * T + t0) * K);
      t0 += p.numTokens;
    }
  }
  return out;
}
