/**
 * Builds the ONNX graph of an MoE decoder from a family-neutral architecture description.
 *
 * Inputs (B = batch, S = new tokens, P = cached tokens, T = P + S, M = positions whose logits are wanted):
 *   input_ids [B, S] int64, rope_cos / rope_sin [B, 1, S, head_dim], attention_bias [B, 1, S, T]
 *   (additive: 0 or -1e9, so causality, padding and the cached prefix are all decided by the caller),
 *   past_key_L / past_value_L [B, kv_heads, P, head_dim], logits_index [M] (rows of the flattened B*S).
 * Outputs: logits [M, vocab]; router_logits_L [B*S, experts] per layer (unless exposeRouter is off, for
 *   the cost benchmark); moe_input_L / moe_output_L [B*S, hidden], the MoE block's input and its routed
 *   experts' weighted output (read only by the all-experts analysis); present_key_L / present_value_L [B, kv_heads, T, head_dim] for prefix reuse.
 *
 * The hidden stream is kept 2-D ([B*S, hidden]) so every projection is a Gemm with transB=1 reading the
 * checkpoint's [out, in] matrices as they are stored, without a transposed copy. Expert compute uses the
 * com.microsoft MoE operator: it takes router logits, applies softmax and top-k itself, and runs only
 * the chosen experts, so cost grows with k rather than with the number of experts.
 */
import { OnnxGraphBuilder, type OnnxElemType } from './formats/onnxWriter';
import type { MoeArchitecture, TensorNames } from './families';
import type { PreparedWeights, ExpertPacking } from './weights';
import type { ComputeDType, ExpertFormulation } from '../../shared/protocol';
import { denseGatedExperts, groupedExperts } from './graphExpertsStandardOps';
import { quantizedExperts, quantizedLinear, type QuantizedGraphWeights } from './precision/graphHooks';

export interface GraphOptions {
  dtype: ComputeDType;
  packing: ExpertPacking;
  exposeRouter: boolean;
  /**
   * Default 'moe-op'. 'dense-gated' / 'grouped' (WebGPU, which has no MoE kernel): the experts as
   * standard ops reading the same fc1/fc2/fc3 initializers ('dense-gated' needs them declared as stacked
   * [E*I, H] gate/up views: stackedExpertViews).
   */
  experts?: ExpertFormulation;
  /**
   * Adds inputs router_bias_L [experts] (float32) added to layer L's router logits before the MoE
   * operator's softmax and top-k (-inf masks an expert). Built as a separate graph file so that runs
   * without an intervention carry no extra node.
   */
  routerInputs?: boolean;
  /** int8 / int4: experts through QMoE and the projections it lists through MatMulNBits (precision/). */
  quantized?: QuantizedGraphWeights;
}

/** Bumped whenever the graph changes, so cached models are rebuilt. */
export const GRAPH_VERSION = 6;

export function buildDecoderGraph(arch: MoeArchitecture, names: TensorNames, weights: PreparedWeights, opts: GraphOptions): Uint8Array {
  const g = new OnnxGraphBuilder(`moe-scope-${arch.family}`);
  const T: OnnxElemType = opts.dtype;
  const H = arch.hiddenSize;
  const D = arch.headDim;
  const qDim = arch.numHeads * D;
  const kvDim = arch.numKvHeads * D;

  const w = (name: string, dims: number[]) => {
    const id = `w:${name}`;
    if (!registered.has(id)) {
      g.external(id, T, dims, weights.ref(name));
      registered.add(id);
    }
    return id;
  };
  const registered = new Set<string>();

  const inputIds = g.input('input_ids', 'int64', ['batch', 'seq']);
  const cosIn = g.input('rope_cos', 'float32', ['batch', 1, 'seq', D]);
  const sinIn = g.input('rope_sin', 'float32', ['batch', 1, 'seq', D]);
  const biasIn = g.input('attention_bias', 'float32', ['batch', 1, 'seq', 'total']);
  const logitsIndex = g.input('logits_index', 'int64', ['selected']);
  const toCompute = (x: string) => (T === 'float32' ? x : g.op('Cast', [x], { to: 10 }));
  const cos = toCompute(cosIn);
  const sin = toCompute(sinIn);
  const bias = toCompute(biasIn);

  const bs = g.op('Shape', [inputIds]); // [B, S]
  const shape4 = (heads: number) => g.op('Concat', [bs, g.constInt64([heads, D])], { axis: 0 });
  const qShape = shape4(arch.numHeads);
  const kvShape = shape4(arch.numKvHeads);
  const flatQ = g.constInt64([-1, qDim]);
  const flatKv = g.constInt64([-1, kvDim]);
  const perHead = g.constInt64([-1, D]);
  const half = D / 2;
  const sliceStartsLo = g.constInt64([0]);
  const sliceEndsLo = g.constInt64([half]);
  const sliceStartsHi = g.constInt64([half]);
  const sliceEndsHi = g.constInt64([D]);
  const lastAxis = g.constInt64([3]);
  const scale = g.op('Cast', [g.constFloat([1 / Math.sqrt(D)], [])], { to: T === 'float32' ? 1 : 10 });

  const rmsNorm = (x: string, weightName: string, size: number, output?: string) => {
    // Statistics in fp32 whatever the compute dtype, as the reference implementations do.
    const x32 = T === 'float32' ? x : g.op('Cast', [x], { to: 1 });
    const meanSq = g.op('ReduceMean', [g.op('Mul', [x32, x32])], { axes: [-1], keepdims: 1 });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, g.constFloat([arch.rmsNormEps], [])])])]);
    let normed = g.op('Mul', [x32, inv]);
    if (T !== 'float32') normed = g.op('Cast', [normed], { to: 10 });
    return g.op('Mul', [normed, w(weightName, [size])], {}, { output });
  };
  /** Declares an intermediate value as a float32 graph output (by name, so float32 graphs add no node). */
  const expose = (value: string, name: string, dims: (number | string)[]) => {
    if (T !== 'float32') g.op('Cast', [value], { to: 1 }, { output: name });
    g.output(name, 'float32', dims);
  };
  const linear = (x: string, name: string, out: number, inp: number, biasName?: string) => {
    const q = opts.quantized?.linear(name);
    if (q) return quantizedLinear(g, x, name, q, biasName ? w(biasName, [out]) : undefined);
    return g.op('Gemm', biasName ? [x, w(name, [out, inp]), w(biasName, [out])] : [x, w(name, [out, inp])], { transB: 1 });
  };
  const rope = (x: string) => {
    const lo = g.op('Slice', [x, sliceStartsLo, sliceEndsLo, lastAxis]);
    const hi = g.op('Slice', [x, sliceStartsHi, sliceEndsHi, lastAxis]);
    const rotated = g.op('Concat', [g.op('Neg', [hi]), lo], { axis: 3 });
    return g.op('Add', [g.op('Mul', [x, cos]), g.op('Mul', [rotated, sin])]);
  };
  const clip = (x: string) => {
    if (arch.clipQkv === null) return x;
    const c = arch.clipQkv;
    return g.op('Clip', [
      x,
      g.op('Cast', [g.constFloat([-c], [])], { to: T === 'float32' ? 1 : 10 }),
      g.op('Cast', [g.constFloat([c], [])], { to: T === 'float32' ? 1 : 10 }),
    ]);
  };

  let h = g.op('Reshape', [g.op('Gather', [w(names.embed, [arch.vocabSize, H]), inputIds], { axis: 0 }), g.constInt64([-1, H])]);
  const rep = arch.numHeads / arch.numKvHeads;

  for (let l = 0; l < arch.numLayers; l++) {
    const n = names.layer(l);
    const pastK = g.input(`past_key_${l}`, 'float32', ['batch', arch.numKvHeads, 'past', D]);
    const pastV = g.input(`past_value_${l}`, 'float32', ['batch', arch.numKvHeads, 'past', D]);

    const xn = rmsNorm(h, n.inputNorm, H);
    let q = linear(xn, n.q, qDim, H, n.qkvBias?.q);
    let k = linear(xn, n.k, kvDim, H, n.qkvBias?.k);
    const v = clip(linear(xn, n.v, kvDim, H, n.qkvBias?.v));
    if (arch.qkNorm === 'full') {
      q = rmsNorm(q, n.qNorm!, qDim);
      k = rmsNorm(k, n.kNorm!, kvDim);
    } else if (arch.qkNorm === 'per-head') {
      // Each head's head_dim values are normalised on their own: rows of [tokens * heads, head_dim].
      q = g.op('Reshape', [rmsNorm(g.op('Reshape', [q, perHead]), n.qNorm!, D), flatQ]);
      k = g.op('Reshape', [rmsNorm(g.op('Reshape', [k, perHead]), n.kNorm!, D), flatKv]);
    }
    // OLMoE clamps after the QK-norm.
    q = clip(q);
    k = clip(k);
    const heads = (x: string, shape: string) => g.op('Transpose', [g.op('Reshape', [x, shape])], { perm: [0, 2, 1, 3] });
    const qh = rope(heads(q, qShape));
    const kNew = rope(heads(k, kvShape));
    const vNew = heads(v, kvShape);
    const kAll32 = g.op('Concat', [pastK, T === 'float32' ? kNew : g.op('Cast', [kNew], { to: 1 })], { axis: 2 }, { output: `present_key_${l}` });
    const vAll32 = g.op('Concat', [pastV, T === 'float32' ? vNew : g.op('Cast', [vNew], { to: 1 })], { axis: 2 }, { output: `present_value_${l}` });
    g.output(kAll32, 'float32', ['batch', arch.numKvHeads, 'total', D]);
    g.output(vAll32, 'float32', ['batch', arch.numKvHeads, 'total', D]);
    let kAll = toCompute(kAll32);
    let vAll = toCompute(vAll32);
    if (rep > 1) {
      // Grouped-query attention: each kv head serves `rep` consecutive query heads.
      const expand = (x: string) =>
        g.op('Reshape', [
          g.op('Expand', [g.op('Unsqueeze', [x, g.constInt64([2])]), g.constInt64([1, 1, rep, 1, 1])]),
          g.constInt64([0, arch.numHeads, -1, D]),
        ]);
      kAll = expand(kAll);
      vAll = expand(vAll);
    }
    const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [qh, g.op('Transpose', [kAll], { perm: [0, 1, 3, 2] })]), scale]), bias]);
    const attn = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), vAll]);
    const merged = g.op('Reshape', [g.op('Transpose', [attn], { perm: [0, 2, 1, 3] }), flatQ]);
    h = g.op('Add', [h, linear(merged, n.o, H, qDim)]);

    // The MoE block's input and its routed output are outputs too: the all-experts analysis reads them.
    const xm = rmsNorm(h, n.postAttentionNorm, H, T === 'float32' ? `moe_input_${l}` : undefined);
    expose(xm, `moe_input_${l}`, ['tokens', H]);
    // The router's Gemm output itself is a graph output: exposing it adds no node and no copy.
    const routerName = opts.exposeRouter && T === 'float32' ? `router_logits_${l}` : undefined;
    let routerLogits = g.op('Gemm', [xm, w(n.router, [arch.numExperts, H])], { transB: 1 }, { output: opts.routerInputs ? undefined : routerName });
    if (opts.routerInputs) {
      // The exposed logits are the intervened ones: the routing reported is the routing used.
      const routerBias = toCompute(g.input(`router_bias_${l}`, 'float32', [arch.numExperts]));
      routerLogits = g.op('Add', [routerLogits, routerBias], {}, { output: routerName });
    }
    if (opts.exposeRouter) {
      if (T !== 'float32') g.op('Cast', [routerLogits], { to: 1 }, { output: `router_logits_${l}` });
      g.output(`router_logits_${l}`, 'float32', ['tokens', arch.numExperts]);
    }
    const ex = opts.quantized ? null : weights.experts(l);
    if (ex) {
      g.external(`w:experts.${l}.fc1`, T, ex.fc1Dims, ex.fc1);
      g.external(`w:experts.${l}.fc2`, T, ex.fc2Dims, ex.fc2);
    }
    const moeInputs = [xm, routerLogits, `w:experts.${l}.fc1`, '', `w:experts.${l}.fc2`];
    const moeAttrs: Record<string, number | string> = { k: arch.topK, normalize_routing_weights: arch.normTopKProb ? 1 : 0 };
    if (opts.packing === 'swiglu-interleaved') {
      moeAttrs.activation_type = 'swiglu';
      moeAttrs.swiglu_fusion = 1;
    } else if (ex) {
      g.external(`w:experts.${l}.fc3`, T, ex.fc3Dims!, ex.fc3!);
      moeInputs.push('', `w:experts.${l}.fc3`);
      moeAttrs.activation_type = 'silu';
    }
    let moe = opts.quantized
      ? quantizedExperts(g, {
          layer: l,
          x: xm,
          routerLogits,
          weights: opts.quantized,
          numExperts: arch.numExperts,
          hiddenSize: H,
          intermediate: arch.expertIntermediate,
          topK: arch.topK,
          normTopKProb: arch.normTopKProb,
          output: `moe_output_${l}`,
        })
      : opts.experts === 'dense-gated' || opts.experts === 'grouped'
        ? (opts.experts === 'grouped' ? groupedExperts : denseGatedExperts)(g, {
            layer: l,
            x: xm,
            routerLogits,
            arch,
            dtype: T,
            output: T === 'float32' ? `moe_output_${l}` : undefined,
          })
        : g.op('MoE', moeInputs, moeAttrs, { domain: 'com.microsoft', output: T === 'float32' ? `moe_output_${l}` : undefined });
    expose(moe, `moe_output_${l}`, ['tokens', H]);
    if (n.shared && arch.sharedExpert) {
      const si = arch.sharedExpert.intermediate;
      const gate = linear(xm, n.shared.gate, si, H);
      const act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), linear(xm, n.shared.up, si, H)]);
      const shared = linear(act, n.shared.down, H, si);
      const scaleGate = g.op('Sigmoid', [linear(xm, n.shared.gateScale, 1, H)]);
      moe = g.op('Add', [moe, g.op('Mul', [shared, scaleGate])]);
    }
    h = g.op('Add', [h, moe]);
  }

  const final = rmsNorm(h, names.finalNorm, H);
  const selected = g.op('Gather', [final, logitsIndex], { axis: 0 });
  let logits = linear(selected, names.lmHead, arch.vocabSize, H);
  if (T !== 'float32') logits = g.op('Cast', [logits], { to: 1 });
  g.op('Identity', [logits], {}, { output: 'logits' });
  g.output('logits', 'float32', ['selected', arch.vocabSize]);
  return g.toBytes({
    producer: 'moe-scope',
    docString: `MoE Scope decoder graph v${GRAPH_VERSION} for ${arch.modelType} (${opts.dtype}, ${opts.packing})`,
  });
}

/**
 * The all-experts analysis graph ("A Closer Look into MoE"): every expert of every layer applied to every
 * token's MoE input, UNWEIGHTED. Inputs x_L [T, hidden] (moe_input_L of the decoder). Outputs per layer:
 * norms_L [E, T], the L2 norm of each expert's output; angsum_L [T], the sum over ordered expert pairs
 * (a, b), a != b, of the angular similarity 1 - arccos(cos(out_a, out_b)) / pi; and, with includeOutputs,
 * outputs_L [E, T, hidden] (for tests). Each expert is two Gemms reading its slices of experts.bin.
 */
export function buildExpertOutputGraph(
  arch: MoeArchitecture,
  weights: Pick<PreparedWeights, 'experts'>,
  opts: GraphOptions & { includeOutputs: boolean },
): Uint8Array {
  const g = new OnnxGraphBuilder(`moe-scope-${arch.family}-all-experts`);
  const T: OnnxElemType = opts.dtype;
  const H = arch.hiddenSize;
  const I = arch.expertIntermediate;
  const E = arch.numExperts;
  const bytes = T === 'float32' ? 4 : 2;
  const slice = (ref: { location: string; offset: number }, index: number, size: number) => ({
    location: ref.location,
    offset: ref.offset + index * size * bytes,
    length: size * bytes,
  });
  const eps = g.constFloat([1e-12], []);
  const one = g.constFloat([1], []);
  const minusOne = g.constFloat([-1], []);
  const invPi = g.constFloat([1 / Math.PI], []);
  const unsq0 = g.constInt64([0]);
  for (let l = 0; l < arch.numLayers; l++) {
    const x32 = g.input(`x_${l}`, 'float32', ['tokens', H]);
    const x = T === 'float32' ? x32 : g.op('Cast', [x32], { to: 10 });
    const ex = weights.experts(l);
    const outs: string[] = [];
    for (let e = 0; e < E; e++) {
      let act: string;
      if (opts.packing === 'swiglu-interleaved') {
        const w1 = g.external(`w:l${l}.e${e}.fc1`, T, [2 * I, H], slice(ex.fc1, e, 2 * I * H));
        const h = g.op('Reshape', [g.op('Gemm', [x, w1], { transB: 1 }), g.constInt64([-1, I, 2])]);
        const gate = g.op('Squeeze', [g.op('Slice', [h, g.constInt64([0]), g.constInt64([1]), g.constInt64([2])]), g.constInt64([2])]);
        const up = g.op('Squeeze', [g.op('Slice', [h, g.constInt64([1]), g.constInt64([2]), g.constInt64([2])]), g.constInt64([2])]);
        act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
      } else {
        const wg = g.external(`w:l${l}.e${e}.fc1`, T, [I, H], slice(ex.fc1, e, I * H));
        const wu = g.external(`w:l${l}.e${e}.fc3`, T, [I, H], slice(ex.fc3!, e, I * H));
        const gate = g.op('Gemm', [x, wg], { transB: 1 });
        act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), g.op('Gemm', [x, wu], { transB: 1 })]);
      }
      const w2 = g.external(`w:l${l}.e${e}.fc2`, T, [H, I], slice(ex.fc2, e, H * I));
      const y = g.op('Gemm', [act, w2], { transB: 1 });
      outs.push(g.op('Unsqueeze', [T === 'float32' ? y : g.op('Cast', [y], { to: 1 }), unsq0]));
    }
    const all = g.op('Concat', outs, { axis: 0 }); // [E, T, H]
    if (opts.includeOutputs) {
      g.op('Identity', [all], {}, { output: `outputs_${l}` });
      g.output(`outputs_${l}`, 'float32', [E, 'tokens', H]);
    }
    const norms = g.op('ReduceL2', [all], { axes: [-1], keepdims: 1 }); // [E, T, 1]
    g.op('Squeeze', [norms, g.constInt64([2])], {}, { output: `norms_${l}` });
    g.output(`norms_${l}`, 'float32', [E, 'tokens']);
    const unit = g.op('Transpose', [g.op('Div', [all, g.op('Max', [norms, eps])])], { perm: [1, 0, 2] }); // [T, E, H]
    const cos = g.op('MatMul', [unit, g.op('Transpose', [unit], { perm: [0, 2, 1] })]); // [T, E, E]
    const angular = g.op('Sub', [one, g.op('Mul', [g.op('Acos', [g.op('Min', [g.op('Max', [cos, minusOne]), one])]), invPi])]);
    // The diagonal contributes exactly E (angle 0); the caller subtracts it.
    g.op('ReduceSum', [angular, g.constInt64([1, 2])], { keepdims: 0 }, { output: `angsum_${l}` });
    g.output(`angsum_${l}`, 'float32', ['tokens']);
  }
  return g.toBytes({ producer: 'moe-scope', docString: `MoE Scope all-experts analysis graph v${GRAPH_VERSION} for ${arch.modelType}` });
}
