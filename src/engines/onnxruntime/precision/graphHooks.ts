/**
 * The int8 / int4 nodes of the decoder graph (graph.ts calls these where a weight is quantised). The
 * projections are com.microsoft.MatMulNBits; the experts run on their bit width's kernel
 * (prepareQuantized.ts, EXPERT_KERNEL):
 *
 * - int8, MatMulNBits per expert. ONNX Runtime 1.30's CPU QMoE kernel dequantises each expert to float32
 *   and multiplies with SGEMM, so it can only be slower than the float MoE operator once a prompt is long
 *   enough for the multiply to dominate. MatMulNBits at accuracy_level 4 multiplies in int8 (activations
 *   quantised per block as they arrive; VNNI where the CPU has it), several times faster than float32 on
 *   one expert's rows, while its accuracy_level 0 dequantises the whole matrix at every call
 *   (bench/quantizedExperts.ts, BENCHMARKS.md). So the experts are written out: each token's top-k
 *   assignments are grouped by expert, each expert multiplies only its rows, and the weighted outputs are
 *   added back per token.
 * - int4, QMoE. It runs without prepacking; MatMulNBits' 4-bit prepacked copy would cost int4 the memory
 *   it exists to save. The CPU kernel always rescales the k chosen softmax weights to sum to 1, whatever
 *   normalize_routing_weights says (measured: its output equals the float MoE operator's with
 *   normalize_routing_weights=1 to 3e-8). For families that do not renormalise (OLMoE), the output is
 *   multiplied back by each token's top-k probability mass, which is exact: the kernel's output is
 *   sum_e (p_e / mass) * expert_e(x).
 */
import type { ExternalRef, OnnxGraphBuilder } from '../formats/onnxWriter';
import type { QuantizedExpertRefs, QuantizedLinearRef } from './prepareQuantized';
import type { QuantBits } from './quantize';

export interface QuantizedGraphWeights {
  bits: QuantBits;
  linear(name: string): QuantizedLinearRef | undefined;
  quantizedExperts(layer: number): QuantizedExpertRefs;
}

/**
 * MatMulNBits' accuracy_level: 4 computes in int8 (the product's); 0 computes in float32 on the
 * dequantised weights (the kernel tests' exact reference for the layout).
 */
export type ComputeAccuracy = 0 | 4;
export const COMPUTE_ACCURACY: ComputeAccuracy = 4;

/** x [tokens, K] times the quantised [N, K] matrix transposed: [tokens, N], like Gemm with transB=1. */
export function quantizedLinear(
  g: OnnxGraphBuilder,
  x: string,
  name: string,
  ref: QuantizedLinearRef,
  bias?: string,
  accuracy: ComputeAccuracy = COMPUTE_ACCURACY,
): string {
  const bits = ref.bits;
  const id = `q:${name}`;
  if (!g.has(id)) {
    g.external(id, 'uint8', [ref.N, ref.K / ref.block, (ref.block * bits) / 8], ref.packed);
    g.external(`qs:${name}`, 'float32', [(ref.N * ref.K) / ref.block], ref.scales);
  }
  const y = g.op(
    'MatMulNBits',
    [x, id, `qs:${name}`],
    { K: ref.K, N: ref.N, bits, block_size: ref.block, accuracy_level: accuracy },
    { domain: 'com.microsoft' },
  );
  return bias ? g.op('Add', [y, bias]) : y;
}

export interface QuantizedExpertsInput {
  layer: number;
  x: string;
  routerLogits: string;
  weights: QuantizedGraphWeights;
  numExperts: number;
  hiddenSize: number;
  intermediate: number;
  topK: number;
  normTopKProb: boolean;
  output?: string;
  /** MatMulNBits experts only (the kernel tests' float32 reference). */
  accuracy?: ComputeAccuracy;
}

/** The layer's routed experts on their bit width's kernel. */
export function quantizedExperts(g: OnnxGraphBuilder, opts: QuantizedExpertsInput): string {
  return opts.weights.quantizedExperts(opts.layer).kernel === 'qmoe' ? qmoeExperts(g, opts) : matMulNBitsExperts(g, opts);
}

function matMulNBitsExperts(g: OnnxGraphBuilder, opts: QuantizedExpertsInput): string {
  const { layer: l, weights, numExperts: E, hiddenSize: H, intermediate: I, topK: K } = opts;
  const bits = weights.bits;
  const ex = weights.quantizedExperts(l);
  const probs = g.op('Softmax', [opts.routerLogits], { axis: -1 });
  const [values, chosen] = g.opN('TopK', [probs, g.constInt64([K])], 2, { axis: -1, largest: 1, sorted: 1 }); // [T, k]
  const gates = opts.normTopKProb ? g.op('Div', [values, g.op('ReduceSum', [values, g.constInt64([-1])], { keepdims: 1 })]) : values;

  // Assignments (token, slot) in row-major order, N = T * k, grouped by expert: key = expert * N + assignment.
  const expertOf = g.op('Reshape', [chosen, g.constInt64([-1])]); // [N]
  const n = g.op('Shape', [expertOf]); // [1]
  const assignment = g.op('Range', [g.constInt64([0], []), g.op('Squeeze', [n, g.constInt64([0])]), g.constInt64([1], [])]);
  const key = g.op('Add', [g.op('Mul', [expertOf, n]), assignment]);
  const [, order] = g.opN('TopK', [key, n], 2, { axis: 0, largest: 0, sorted: 1 }); // [N] assignments by expert
  const perExpert = g.op(
    'ReduceSum',
    [g.op('Cast', [g.op('Equal', [g.op('Unsqueeze', [expertOf, g.constInt64([1])]), g.constInt64(range(E), [1, E])])], { to: 7 }), g.constInt64([0])],
    {
      keepdims: 0,
    },
  ); // [E] int64
  const token = g.op('Div', [order, g.constInt64([K], [])]);
  const rows = g.opN('Split', [g.op('Gather', [opts.x, token], { axis: 0 }), perExpert], E, { axis: 0 });
  const halves = g.constInt64([I, I]);
  const outputs = rows.map((x, e) => {
    const both = quantizedLinear(g, x, `experts.${l}.${e}.fc1`, expertRef(ex.fc1, ex.fc1Scales, e, 2 * I, H, ex.block, bits), undefined, opts.accuracy);
    const [gate, up] = g.opN('Split', [both, halves], 2, { axis: 1 });
    const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
    return quantizedLinear(g, act, `experts.${l}.${e}.fc2`, expertRef(ex.fc2, ex.fc2Scales, e, H, I, ex.block, bits), undefined, opts.accuracy);
  });
  const weight = g.op('Unsqueeze', [g.op('Gather', [g.op('Reshape', [gates, g.constInt64([-1])]), order], { axis: 0 }), g.constInt64([1])]); // [N, 1]
  const weighted = g.op('Mul', [g.op('Concat', outputs, { axis: 0 }), weight]); // [N, H], rows in expert order
  // Back to (token, slot) order through the inverse permutation (each index written once), then the k slots
  // summed per token. Not ScatterND with reduction "add" over the tokens: its CPU kernel adds rows with
  // equal indices from several threads and loses some (measured: outputs off by up to 40% on some calls).
  const where = g.op('ScatterElements', [g.op('Mul', [assignment, g.constInt64([0], [])]), order, assignment], { axis: 0 }); // where[assignment] = row
  const perSlot = g.op('Reshape', [g.op('Gather', [weighted, where], { axis: 0 }), g.constInt64([-1, K, H])]); // [T, k, H]
  return g.op('ReduceSum', [perSlot, g.constInt64([1])], { keepdims: 0 }, { output: opts.output });
}

function qmoeExperts(g: OnnxGraphBuilder, opts: QuantizedExpertsInput): string {
  const { layer: l, weights, numExperts: E, hiddenSize: H, intermediate: I, topK } = opts;
  const bits = weights.bits;
  const pack = 8 / bits;
  const ex = weights.quantizedExperts(l);
  g.external(`q:experts.${l}.fc1`, 'uint8', [E, 2 * I, H / pack], ex.fc1);
  g.external(`qs:experts.${l}.fc1`, 'float32', [E, 2 * I, H / ex.block], ex.fc1Scales);
  g.external(`q:experts.${l}.fc2`, 'uint8', [E, H, I / pack], ex.fc2);
  g.external(`qs:experts.${l}.fc2`, 'float32', [E, H, I / ex.block], ex.fc2Scales);
  const attrs = {
    k: topK,
    normalize_routing_weights: 1,
    activation_type: 'swiglu',
    swiglu_fusion: 1,
    expert_weight_bits: bits,
    block_size: ex.block,
  };
  const inputs = [opts.x, opts.routerLogits, `q:experts.${l}.fc1`, `qs:experts.${l}.fc1`, '', `q:experts.${l}.fc2`, `qs:experts.${l}.fc2`];
  if (opts.normTopKProb) return g.op('QMoE', inputs, attrs, { domain: 'com.microsoft', output: opts.output });
  const renormalised = g.op('QMoE', inputs, attrs, { domain: 'com.microsoft' });
  const probs = g.op('Softmax', [opts.routerLogits], { axis: -1 });
  const [topValues] = g.opN('TopK', [probs, g.constInt64([topK])], 2, { axis: -1, largest: 1, sorted: 0 });
  const mass = g.op('ReduceSum', [topValues, g.constInt64([-1])], { keepdims: 1 });
  return g.op('Mul', [renormalised, mass], {}, { output: opts.output });
}

/** Expert e's slice of a layer's [E, rows, K] quantised tensor and its [E, rows, K / block] scales. */
function expertRef(codes: ExternalRef, scales: ExternalRef, e: number, N: number, K: number, block: number, bits: QuantBits): QuantizedLinearRef {
  const codeBytes = (N * K * bits) / 8;
  const scaleBytes = ((N * K) / block) * 4;
  return {
    packed: { ...codes, offset: codes.offset + e * codeBytes, length: codeBytes },
    scales: { ...scales, offset: scales.offset + e * scaleBytes, length: scaleBytes },
    N,
    K,
    block,
    bits,
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
