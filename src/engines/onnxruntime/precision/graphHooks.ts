/**
 * The int8 / int4 nodes of the decoder graph (graph.ts calls these where a weight is quantised).
 *
 * ONNX Runtime 1.30's CPU QMoE kernel always rescales the k chosen softmax weights to sum to 1, whatever
 * normalize_routing_weights says (measured: its output equals the float MoE operator's with
 * normalize_routing_weights=1 to 3e-8). For families that do not renormalise (OLMoE), the output is
 * multiplied back by each token's top-k probability mass, which is exact: the kernel's output is
 * sum_e (p_e / mass) * expert_e(x).
 */
import type { OnnxGraphBuilder } from '../formats/onnxWriter';
import type { QuantizedExpertRefs, QuantizedLinearRef } from './prepareQuantized';
import type { QuantBits } from './quantize';

export interface QuantizedGraphWeights {
  bits: QuantBits;
  linear(name: string): QuantizedLinearRef | undefined;
  quantizedExperts(layer: number): QuantizedExpertRefs;
}

/** x [tokens, K] times the quantised [N, K] matrix transposed: [tokens, N], like Gemm with transB=1. */
export function quantizedLinear(g: OnnxGraphBuilder, x: string, name: string, ref: QuantizedLinearRef, bias?: string): string {
  const bits = ref.bits;
  const id = `q:${name}`;
  if (!g.has(id)) {
    g.external(id, 'uint8', [ref.N, ref.K / ref.block, (ref.block * bits) / 8], ref.packed);
    g.external(`qs:${name}`, 'float32', [(ref.N * ref.K) / ref.block], ref.scales);
  }
  const y = g.op('MatMulNBits', [x, id, `qs:${name}`], { K: ref.K, N: ref.N, bits, block_size: ref.block }, { domain: 'com.microsoft' });
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
  },
): string {
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
