/**
 * From router logits to what the MoE operator did with them: softmax over all experts, the k largest
 * (ties to the lower expert id), their weights (raw softmax values, or rescaled to sum to 1 when the
 * family renormalises), and the gate entropy of the full distribution.
 */
import type { Routing } from '../../shared/protocol';

export interface RoutingRule {
  numExperts: number;
  topK: number;
  normTopKProb: boolean;
}

/**
 * `logits[l]` holds layer l's router logits, rows of numExperts values; `rows` lists which rows to take,
 * in token order (the same rows in every layer).
 */
export function routingFromLogits(logits: readonly Float32Array[], rows: ArrayLike<number>, rule: RoutingRule, includeProbs: boolean): Routing {
  const K = rule.topK;
  const out = emptyRouting(logits.length, rows.length, rule.numExperts, K, includeProbs);
  const p = new Float64Array(rule.numExperts);
  const order = new Int32Array(rule.numExperts);
  forEachGate(logits, rows, 'softmax', p, out, (lt) => {
    selectTopK(p, K, order);
    let kept = 0;
    for (let s = 0; s < K; s++) kept += p[order[s]];
    for (let s = 0; s < K; s++) {
      out.topExperts[lt * K + s] = order[s];
      out.topWeights[lt * K + s] = rule.normTopKProb ? p[order[s]] / kept : p[order[s]];
    }
  });
  return out;
}

/** A routing of L layers x T tokens with every array zeroed. */
export function emptyRouting(L: number, T: number, E: number, K: number, withProbs: boolean): Routing {
  return {
    numLayers: L,
    numTokens: T,
    numExperts: E,
    topK: K,
    probs: withProbs ? new Float32Array(L * T * E) : undefined,
    topExperts: new Uint16Array(L * T * K),
    topWeights: new Float32Array(L * T * K),
    entropy: new Float32Array(L * T),
  };
}

/**
 * For each layer and taken row: the gate's distribution over experts (softmax, or sigmoid scores normalised
 * to sum 1) into p, its entropy and (when kept) probabilities into `out`, then `pick(l * T + t)`.
 */
export function forEachGate(
  logits: readonly Float32Array[],
  rows: ArrayLike<number>,
  score: 'softmax' | 'sigmoid',
  p: Float64Array,
  out: Routing,
  pick: (lt: number, l: number, t: number) => void,
): void {
  const E = out.numExperts;
  const T = rows.length;
  for (let l = 0; l < logits.length; l++) {
    const layer = logits[l];
    for (let t = 0; t < T; t++) {
      const base = rows[t] * E;
      let sum = 0;
      if (score === 'softmax') {
        let max = -Infinity;
        for (let e = 0; e < E; e++) max = Math.max(max, layer[base + e]);
        for (let e = 0; e < E; e++) sum += p[e] = Math.exp(layer[base + e] - max);
      } else {
        for (let e = 0; e < E; e++) sum += p[e] = 1 / (1 + Math.exp(-layer[base + e]));
      }
      let h = 0;
      for (let e = 0; e < E; e++) {
        p[e] /= sum;
        if (p[e] > 0) h -= p[e] * Math.log(p[e]);
      }
      const lt = l * T + t;
      out.entropy[lt] = h;
      if (out.probs) for (let e = 0; e < E; e++) out.probs[lt * E + e] = p[e];
      pick(lt, l, t);
    }
  }
}

/** Writes the indices of the k largest values into order[0..k), largest first, ties to the lower index. */
export function selectTopK(values: ArrayLike<number>, k: number, order: Int32Array): void {
  // One pass, inserting into a sorted list of the best k so far; strict ">" keeps the lower index on ties.
  let filled = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (filled === k && !(v > values[order[k - 1]])) continue;
    let j = filled < k ? filled++ : k - 1;
    while (j > 0 && v > values[order[j - 1]]) {
      order[j] = order[j - 1];
      j--;
    }
    order[j] = i;
  }
}

/** Concatenates routings of consecutive token spans (e.g. a cached prefix and a question) per layer. */
export function concatRouting(parts: Routing[]): Routing {
  const { numLayers: L, numExperts: E, topK: K } = parts[0];
  const T = parts.reduce((a, r) => a + r.numTokens, 0);
  const out = emptyRouting(
    L,
    T,
    E,
    K,
    parts.every((r) => r.probs),
  );
  for (let l = 0; l < L; l++) {
    let t0 = 0;
    for (const r of parts) {
      const n = r.numTokens;
      out.topExperts.set(r.topExperts.subarray(l * n * K, (l + 1) * n * K), (l * T + t0) * K);
      out.topWeights.set(r.topWeights.subarray(l * n * K, (l + 1) * n * K), (l * T + t0) * K);
      out.entropy.set(r.entropy.subarray(l * n, (l + 1) * n), l * T + t0);
      if (out.probs) out.probs.set(r.probs!.subarray(l * n * E, (l + 1) * n * E), (l * T + t0) * E);
      t0 += n;
    }
  }
  return out;
}

/** log-softmax of one row, evaluated at the given ids, in float64. */
export function logSoftmaxAt(logits: Float32Array, offset: number, size: number, ids: readonly number[]): number[] {
  let max = -Infinity;
  for (let i = 0; i < size; i++) max = Math.max(max, logits[offset + i]);
  let sum = 0;
  for (let i = 0; i < size; i++) sum += Math.exp(logits[offset + i] - max);
  const lse = max + Math.log(sum);
  return ids.map((id) => logits[offset + id] - lse);
}

export function softmax4(values: readonly number[]): [number, number, number, number] {
  const m = Math.max(...values);
  const e = values.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s) as [number, number, number, number];
}
