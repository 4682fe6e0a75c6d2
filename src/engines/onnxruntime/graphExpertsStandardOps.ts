/**
 * The MoE block's routed experts written with standard ONNX ops, for execution providers that have no
 * com.microsoft.MoE kernel (WebGPU): every node here has a WebGPU kernel, so the experts run on the GPU.
 *
 * 'dense-gated': every expert computes every token and the outputs are weighted by a [tokens, experts]
 * gate matrix that is zero outside each token's top-k. Three large products per layer (gate and up as
 * one Gemm each over all experts' rows, down as one batched MatMul), E/k times the useful work but no
 * data-dependent shapes: on a GPU at the token counts MoE Scope runs (1-600 per call) this is bound by
 * reading the weights once, which any formulation must do (measured in bench/gpu/webgpu.sh).
 *
 * Weights: the 'fc1-gate-fc3-up' packing (gate and up [E, I, H], down [E, H, I]), declared here as
 * gate/up [E*I, H] (the same bytes) so that one Gemm computes all experts' projections.
 */
import type { OnnxGraphBuilder, OnnxElemType } from './formats/onnxWriter';
import type { MoeArchitecture } from './families';
import type { PreparedWeights } from './weights';

/**
 * The 'fc1-gate-fc3-up' weights with gate (fc1) and up (fc3) declared as [E*I, H]: the same bytes as
 * [E, I, H], so the decoder graph's existing initializers serve the stacked Gemms without a copy.
 */
export function stackedExpertViews(weights: PreparedWeights, arch: MoeArchitecture): PreparedWeights {
  const rows = arch.numExperts * arch.expertIntermediate;
  return {
    ...weights,
    ref: (name) => weights.ref(name),
    experts: (l) => {
      const ex = weights.experts(l);
      if (!ex.fc3) throw new Error('the dense-gated expert formulation needs the fc1-gate-fc3-up packing');
      return { ...ex, fc1Dims: [rows, arch.hiddenSize], fc3Dims: [rows, arch.hiddenSize] };
    },
  };
}

export interface StandardOpsMoeInput {
  layer: number;
  /** The MoE block's input [tokens, hidden] in the compute dtype. */
  x: string;
  /** Router logits [tokens, experts] in the compute dtype. */
  routerLogits: string;
  arch: MoeArchitecture;
  dtype: OnnxElemType;
  /** Name for the block's output value (so it can be a graph output without a copy). */
  output?: string;
}

/**
 * The gate matrix [tokens, experts] in float32: the softmax probability of each top-k expert
 * (renormalised over the k when normTopKProb), 0 elsewhere. Selection is "probability >= the k-th
 * largest", which equals top-k except when the k-th and (k+1)-th probabilities are exactly equal.
 */
function topKGates(g: OnnxGraphBuilder, logits32: string, k: number, normTopKProb: boolean): string {
  const probs = g.op('Softmax', [logits32], { axis: -1 });
  const [vals] = g.opN('TopK', [probs, g.constInt64([k])], 2, { axis: -1, largest: 1, sorted: 1 });
  const kth = g.op('Slice', [vals, g.constInt64([k - 1]), g.constInt64([k]), g.constInt64([1])]);
  const chosen = g.op('GreaterOrEqual', [probs, kth]);
  let gates = g.op('Where', [chosen, probs, g.constFloat([0], [])]);
  if (normTopKProb) gates = g.op('Div', [gates, g.op('ReduceSum', [vals, g.constInt64([-1])], { keepdims: 1 })]);
  return gates;
}

/** Reads the layer's initializers w:experts.L.fc1 / fc3 ([E*I, H], see stackedExpertViews) and fc2 ([E, H, I]). */
export function denseGatedExperts(g: OnnxGraphBuilder, m: StandardOpsMoeInput): string {
  const { numExperts: E, expertIntermediate: I } = m.arch;
  const T = m.dtype;
  const toCompute = (x: string) => (T === 'float32' ? x : g.op('Cast', [x], { to: 10 }));
  const logits32 = T === 'float32' ? m.routerLogits : g.op('Cast', [m.routerLogits], { to: 1 });
  const gates = toCompute(topKGates(g, logits32, m.arch.topK, m.arch.normTopKProb)); // [T, E]

  const gate = g.op('Gemm', [m.x, `w:experts.${m.layer}.fc1`], { transB: 1 }); // [T, E*I]
  const up = g.op('Gemm', [m.x, `w:experts.${m.layer}.fc3`], { transB: 1 });
  const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
  // Weighting before the down projection is the same as after it (linear) and touches I, not H, values.
  const weighted = g.op('Mul', [g.op('Reshape', [act, g.constInt64([-1, E, I])]), g.op('Unsqueeze', [gates, g.constInt64([2])])]); // [T, E, I]
  const perExpert = g.op('MatMul', [`w:experts.${m.layer}.fc2`, g.op('Transpose', [weighted], { perm: [1, 2, 0] })]); // [E, H, T]
  const summed = g.op('ReduceSum', [perExpert, g.constInt64([0])], { keepdims: 0 }); // [H, T]
  return g.op('Transpose', [summed], { perm: [1, 0] }, { output: m.output });
}

/**
 * 'grouped': about k/E of the dense work. Each (token, slot) assignment gets a row in its expert's block
 * of a [E, C, H] buffer, C = the largest number of tokens any expert got in this call; the experts then
 * run as batched MatMuls over [E, C] rows and each assignment's output is gathered back and weighted.
 * Row of an assignment: expert * C + (number of earlier assignments to the same expert), counted with an
 * exclusive CumSum over a one-hot [T*k, E] matrix (float: exact up to 2^24 assignments). Unused rows read
 * a zero row appended to the input. Weights as stored: gate/up [E, I, H] (MatMul(W, X^T) gives [E, I, C]
 * without transposing a weight), down [E, H, I].
 */
export function groupedExperts(g: OnnxGraphBuilder, m: StandardOpsMoeInput): string {
  const { numExperts: E, hiddenSize: H, topK: K } = m.arch;
  const T = m.dtype;
  const logits32 = T === 'float32' ? m.routerLogits : g.op('Cast', [m.routerLogits], { to: 1 });
  const probs = g.op('Softmax', [logits32], { axis: -1 });
  const [vals, idx] = g.opN('TopK', [probs, g.constInt64([K])], 2, { axis: -1, largest: 1, sorted: 1 }); // [T, k]
  let weights = vals;
  if (m.arch.normTopKProb) weights = g.op('Div', [vals, g.op('ReduceSum', [vals, g.constInt64([-1])], { keepdims: 1 })]);
  if (T !== 'float32') weights = g.op('Cast', [weights], { to: 10 });

  const flatE = g.op('Reshape', [idx, g.constInt64([-1])]); // [N] int64, N = T * k
  const experts = g.constInt64(
    Array.from({ length: E }, (_, e) => e),
    [1, E],
  );
  const oneHot = g.op('Cast', [g.op('Equal', [g.op('Unsqueeze', [flatE, g.constInt64([1])]), experts])], { to: 1 }); // [N, E]
  const before = g.op('CumSum', [oneHot, g.constInt64([0])], { exclusive: 1 });
  const rank = g.op('ReduceSum', [g.op('Mul', [before, oneHot]), g.constInt64([1])], { keepdims: 0 }); // [N]
  const capacity = g.op('ReduceMax', [g.op('ReduceSum', [oneHot, g.constInt64([0])], { keepdims: 0 })], { keepdims: 1 }); // [1]
  const row = g.op('Cast', [g.op('Add', [g.op('Mul', [g.op('Cast', [flatE], { to: 1 }), capacity]), rank])], { to: 7 }); // [N] int64
  const capacityI = g.op('Cast', [capacity], { to: 7 });

  // Which input row each [E * C] slot reads: its assignment's token, or the zero row T.
  const tokens = g.op('Gather', [g.op('Shape', [m.x]), g.constInt64([0])]); // [1] = T
  const n = g.op('Mul', [tokens, g.constInt64([K])]);
  const tokenOfAssignment = g.op('Div', [
    g.op('Range', [g.constInt64([0], []), g.op('Squeeze', [n, g.constInt64([0])]), g.constInt64([1], [])]),
    g.constInt64([K], []),
  ]);
  const slots = g.op('Mul', [capacityI, g.constInt64([E])]);
  const padRows = g.op('Expand', [tokens, slots]); // [E * C] filled with T
  const source = g.op('ScatterElements', [padRows, row, tokenOfAssignment], { axis: 0 });
  const zeroRow = g.op('Slice', [
    g.op('Mul', [m.x, g.op('Cast', [g.constFloat([0], [])], { to: T === 'float32' ? 1 : 10 })]),
    g.constInt64([0]),
    g.constInt64([1]),
    g.constInt64([0]),
  ]);
  const xPadded = g.op('Concat', [m.x, zeroRow], { axis: 0 }); // [T + 1, H]
  const grouped = g.op('Reshape', [
    g.op('Gather', [xPadded, source], { axis: 0 }),
    g.op('Concat', [g.constInt64([E]), capacityI, g.constInt64([H])], { axis: 0 }),
  ]); // [E, C, H]
  const xt = g.op('Transpose', [grouped], { perm: [0, 2, 1] }); // [E, H, C]

  const gate = g.op('MatMul', [`w:experts.${m.layer}.fc1`, xt]); // [E, I, C]
  const up = g.op('MatMul', [`w:experts.${m.layer}.fc3`, xt]);
  const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
  const out = g.op('MatMul', [`w:experts.${m.layer}.fc2`, act]); // [E, H, C]
  const rows = g.op('Reshape', [g.op('Transpose', [out], { perm: [0, 2, 1] }), g.constInt64([-1, H])]); // [E * C, H]
  const perAssignment = g.op('Reshape', [g.op('Gather', [rows, row], { axis: 0 }), g.constInt64([-1, K, H])]); // [T, k, H]
  const weighted = g.op('Mul', [perAssignment, g.op('Unsqueeze', [weights, g.constInt64([2])])]);
  return g.op('ReduceSum', [weighted, g.constInt64([1])], { keepdims: 0 }, { output: m.output });
}
