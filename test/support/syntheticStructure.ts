/**
 * Deterministic synthetic data for the expert-structure view and the all-experts trace section (tests and
 * screenshots). No model involved: experts are random vectors with a shared direction whose weight grows
 * with depth and small clusters of related experts; router rows are a noisy linear image of the experts, so
 * the router-vs-expert R² is real (computed by OLS over the pairs, like the engine does) and varies by layer.
 */
import type { ExpertOutputStats, LayerWeightSimilarity, TracePayload, WeightAnalysis } from '../../src/shared/protocol';
import { meanOffDiagonal, olsFit, upperPairs } from '../../src/analysis/pairStats';
import { mulberry32, syntheticTrace } from './synthetic';
import { summarizeByDepth } from '../../src/analysis/weightDepth';

function gaussian(rnd: () => number): number {
  const u = Math.max(1e-12, rnd());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}

/** E x E cosine similarity of the rows of `vecs` (row-major). */
export function cosineMatrix(vecs: readonly (readonly number[])[]): number[] {
  const E = vecs.length;
  const norms = vecs.map((v) => Math.sqrt(v.reduce((a, x) => a + x * x, 0)));
  const out = new Array<number>(E * E).fill(0);
  for (let a = 0; a < E; a++)
    for (let b = a; b < E; b++) {
      let d = 0;
      const va = vecs[a]!;
      const vb = vecs[b]!;
      for (let i = 0; i < va.length; i++) d += va[i]! * vb[i]!;
      const c = norms[a]! && norms[b]! ? d / (norms[a]! * norms[b]!) : 0;
      out[a * E + b] = c;
      out[b * E + a] = c;
    }
  return out;
}

export function syntheticWeightAnalysis(opts: { numLayers?: number; numExperts?: number; dim?: number; seed?: number } = {}): WeightAnalysis {
  const L = opts.numLayers ?? 16;
  const E = opts.numExperts ?? 64;
  const D = opts.dim ?? 96;
  const rnd = mulberry32(opts.seed ?? 5);
  const vec = (n = D) => Array.from({ length: n }, () => gaussian(rnd));
  const layers: LayerWeightSimilarity[] = [];
  for (let l = 0; l < L; l++) {
    const depth = L > 1 ? l / (L - 1) : 0;
    const clusters = Array.from({ length: Math.ceil(E / 4) }, () => vec());
    const make = (shared: number, cluster: number) => {
      const s = vec();
      return Array.from({ length: E }, (_, e) => {
        const c = clusters[Math.floor(e / 4)]!;
        return vec().map((x, i) => x + shared * s[i]! + cluster * c[i]!);
      });
    };
    const gate = make(0.15 + 0.5 * depth, 0.7 * (1 - depth) + 0.1);
    const up = make(0.1 + 0.35 * depth, 0.6 * (1 - depth) + 0.1);
    const down = make(0.05 + 0.25 * depth, 0.5 * (1 - depth) + 0.1);
    const all = gate.map((g, e) => [...g, ...up[e]!, ...down[e]!]);
    // router row = a fixed random projection of the expert + noise whose weight grows with depth
    const proj = Array.from({ length: 32 }, () => vec(3 * D).map((x) => x / Math.sqrt(3 * D)));
    const noise = 0.4 + 2.2 * depth;
    const router = all.map((v) => proj.map((p) => p.reduce((a, x, i) => a + x * v[i]!, 0) + noise * gaussian(rnd)));
    const rowMean = make(0.05, 0.25);
    const colMean = make(0.3 + 0.2 * depth, 0.1);
    const m = { gate: cosineMatrix(gate), up: cosineMatrix(up), down: cosineMatrix(down), all: cosineMatrix(all), router: cosineMatrix(router) };
    const neuron = { rowMean: cosineMatrix(rowMean), colMean: cosineMatrix(colMean) };
    const p = upperPairs(E, m.all, m.router);
    const fit = olsFit(p.x, p.y);
    const frob = (vs: number[][]) => vs.map((v) => Math.sqrt(v.reduce((a, x) => a + x * x, 0)));
    layers.push({
      layer: l,
      ...m,
      neuronRowMean: neuron.rowMean,
      neuronColMean: neuron.colMean,
      neuronUp: { rowMean: cosineMatrix(make(0.05, 0.2)), colMean: cosineMatrix(make(0.25 + 0.2 * depth, 0.1)) },
      neuronDown: { rowMean: cosineMatrix(make(0.2 + 0.2 * depth, 0.1)), colMean: cosineMatrix(make(0.05, 0.2)) },
      routerVsExpertR2: fit.r2,
      routerVsExpertFit: { slope: fit.slope, intercept: fit.intercept, r2: fit.r2, pairs: fit.pairs },
      norms: { gate: frob(gate), up: frob(up), down: frob(down), router: frob(router) },
      meanOffDiagonal: {
        gate: meanOffDiagonal(m.gate, E),
        up: meanOffDiagonal(m.up, E),
        down: meanOffDiagonal(m.down, E),
        all: meanOffDiagonal(m.all, E),
        router: meanOffDiagonal(m.router, E),
        neuronRowMean: meanOffDiagonal(neuron.rowMean, E),
        neuronColMean: meanOffDiagonal(neuron.colMean, E),
      },
    });
  }
  const byDepth = summarizeByDepth(layers);

  return { modelPath: '/models/olmoe-1b-7b', numExperts: E, layers, byDepth, ms: 48213 };
}

/**
 * All-experts statistics for a synthetic trace: output norms that grow with the gate logit (more so in the
 * middle layers), and a mean angular similarity that falls with depth with an outlying last layer.
 */
export function syntheticExpertOutputs(p: TracePayload, seed = 9): ExpertOutputStats {
  const R = p.result.routing;
  const { numLayers: L, numTokens: T, numExperts: E } = R;
  if (!R.probs) throw new Error('syntheticExpertOutputs needs routing.probs');
  const rnd = mulberry32(seed);
  const norms = new Float32Array(L * T * E);
  const sim = new Float32Array(L * T);
  const expertScale = Array.from({ length: L }, () => Array.from({ length: E }, () => Math.exp(0.25 * gaussian(rnd))));
  for (let l = 0; l < L; l++) {
    const depth = L > 1 ? l / (L - 1) : 0;
    const lambda = 0.25 + 0.6 * Math.sin(Math.PI * depth);
    for (let t = 0; t < T; t++) {
      const off = (l * T + t) * E;
      for (let e = 0; e < E; e++) {
        const logit = Math.log(Math.max(1e-9, R.probs[off + e]! * E));
        norms[off + e] = expertScale[l]![e]! * Math.exp(lambda * logit + 0.35 * gaussian(rnd)) * (1 + 2 * depth);
      }
      const base = l === L - 1 ? 0.64 : 0.6 - 0.085 * depth;
      sim[l * T + t] = base + 0.015 * gaussian(rnd);
    }
  }
  return { numLayers: L, numTokens: T, numExperts: E, norms, meanAngularSimilarity: sim };
}

/** A synthetic trace with its all-experts statistics attached. */
export function syntheticTraceWithExperts(opts: Parameters<typeof syntheticTrace>[0] = {}): TracePayload {
  const p = syntheticTrace({ ...opts, includeProbs: true });
  p.result.expertOutputs = syntheticExpertOutputs(p, (opts.seed ?? 7) + 2);
  return p;
}

/**
 * Hand-checkable all-experts data: 1 layer, 3 tokens, 4 experts, top-2.
 *   t0: probs .4 .3 .2 .1     -> score ranks e0 0, e1 1, e2 2, e3 3;  norms 4 3 2 1   -> norm ranks 0 1 2 3
 *   t1: probs .1 .2 .3 .4     -> score ranks e0 3, e1 2, e2 1, e3 0;  norms 4 3 2 3.5 -> norm ranks 0 2 3 1
 *   t2: probs .25 .35 .15 .25 -> e0 1, e1 0, e2 3, e3 2 (tie to the lower id); norms 1 5 2 3 -> 3 0 2 1
 * (score, norm) pairs: t0 (0,0) (1,1) (2,2) (3,3); t1 (3,0) (2,2) (1,3) (0,1); t2 (1,3) (0,0) (3,2) (2,1),
 * so counts (0,0)=2 (0,1)=1 (1,1)=1 (1,3)=2 (2,1)=1 (2,2)=2 (3,0)=1 (3,2)=1 (3,3)=1, every other cell 0.
 * The top-scored expert has the largest norm for t0 and t2 (2/3) and a norm among the 2 largest for all (1).
 */
export const HAND_EXPERT_OUTPUTS = {
  routing: { numLayers: 1, numTokens: 3, numExperts: 4, topK: 2, probs: Float32Array.from([0.4, 0.3, 0.2, 0.1, 0.1, 0.2, 0.3, 0.4, 0.25, 0.35, 0.15, 0.25]) },
  stats: {
    numLayers: 1,
    numTokens: 3,
    numExperts: 4,
    norms: Float32Array.from([4, 3, 2, 1, 4, 3, 2, 3.5, 1, 5, 2, 3]),
    meanAngularSimilarity: Float32Array.from([0.5, 0.6, 0.7]),
  } satisfies ExpertOutputStats,
  counts: { '0,0': 2, '0,1': 1, '1,1': 1, '1,3': 2, '2,1': 1, '2,2': 2, '3,0': 1, '3,2': 1, '3,3': 1 } as Readonly<Record<string, number>>,
  top: 2 / 3,
  inTopK: 1,
};

/** A 3-token trace payload (1 layer, 4 experts, top-2) carrying HAND_EXPERT_OUTPUTS. */
export function handTrace(requestId = 1): TracePayload {
  const p = syntheticTrace({ requestId, numTokens: 3, numLayers: 1, numExperts: 4, topK: 2, includeProbs: true });
  const R = p.result.routing;
  const H = HAND_EXPERT_OUTPUTS;
  R.probs = Float32Array.from(H.routing.probs);
  // keep the top-k choice consistent with those probabilities
  for (let t = 0; t < 3; t++) {
    const pr = Array.from(R.probs.subarray(t * 4, t * 4 + 4));
    const order = [0, 1, 2, 3].sort((a, b) => pr[b]! - pr[a]! || a - b);
    for (let s = 0; s < 2; s++) {
      R.topExperts[t * 2 + s] = order[s]!;
      R.topWeights[t * 2 + s] = pr[order[s]!]!;
    }
  }
  p.result.expertOutputs = { ...H.stats, norms: Float32Array.from(H.stats.norms), meanAngularSimilarity: Float32Array.from(H.stats.meanAngularSimilarity) };
  return p;
}
