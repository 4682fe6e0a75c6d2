/**
 * The int8 / int4 nodes of the decoder graph (graph.ts calls these where a weight is quantised): every
 * quantised matrix, experts included, is a com.microsoft.MatMulNBits.
 *
 * Why not com.microsoft.QMoE, which takes all of a layer's experts in one node: ONNX Runtime 1.30's CPU
 * QMoE kernel dequantises each expert to float32 and multiplies with SGEMM, so it can only be slower than
 * the float MoE operator once a prompt is long enough for the multiply to dominate (measured on OLMoE's
 * widths, 600 tokens: 475 ms a layer against float32's 435). MatMulNBits at accuracy_level 4 multiplies
 * in int8 (activations quantised per block as they arrive; VNNI where the CPU has it): measured 2.2x
 * faster than float32 Gemm on one expert's [75, 2048] x [2048, 2048] and 4x faster than its own
 * accuracy_level 0, which dequantises the whole matrix at every call (bench/precision.ts, BENCHMARKS.md).
 * The experts are therefore written out: each token's top-k assignments are grouped by expert, each
 * expert multiplies only its rows, and the weighted outputs are added back per token.
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

export function quantizedExperts(
  g: OnnxGraphBuilder,
  opts: {
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
    accuracy?: ComputeAccuracy;
  },
): string {
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
  const weighted = g.op('Mul', [g.op('Concat', outputs, { axis: 0 }), weight]); // [N, H]
  const zeros = g.op('Expand', [g.constFloat([0], []), g.op('Shape', [opts.x])]);
  return g.op('ScatterND', [zeros, g.op('Unsqueeze', [token, g.constInt64([1])]), weighted], { reduction: 'add' }, { output: opts.output });
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
