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
import { kvCacheDims, moeLayersOf, ropeDim } from './familyFeatures';
import { buildGraphRouting } from './graphRouting';
import { mlaAttention } from './graphMla';
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

/**
 * Bumped whenever the graph changes, so cached models are rebuilt (the cache is keyed by config.json's text).
 * 8: a field config.json lacks takes transformers' default (src/shared/configFields.ts), which may build another graph.
 */
export const GRAPH_VERSION = 9;

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
  const R = ropeDim(arch);
  const cosIn = g.input('rope_cos', 'float32', ['batch', 1, 'seq', R]);
  const sinIn = g.input('rope_sin', 'float32', ['batch', 1, 'seq', R]);
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
  const half = R / 2;
  const sliceStartsLo = g.constInt64([0]);
  const sliceEndsLo = g.constInt64([half]);
  const sliceStartsHi = g.constInt64([half]);
  const sliceEndsHi = g.constInt64([R]);
  const lastAxis = g.constInt64([3]);
  const scale = g.op('Cast', [g.constFloat([arch.multipliers?.attention ?? 1 / Math.sqrt(D)], [])], { to: T === 'float32' ? 1 : 10 });

  const rmsNorm = (x: string, weightName: string, size: number, output?: string, eps = arch.rmsNormEps) => {
    // Statistics in fp32 whatever the compute dtype, as the reference implementations do.
    const x32 = T === 'float32' ? x : g.op('Cast', [x], { to: 1 });
    // LayerNorm (DBRX, no bias) centres first; RMSNorm does not.
    const centred = arch.layerNorm ? g.op('Sub', [x32, g.op('ReduceMean', [x32], { axes: [-1], keepdims: 1 })]) : x32;
    const meanSq = g.op('ReduceMean', [g.op('Mul', [centred, centred])], { axes: [-1], keepdims: 1 });
    const inv = g.op('Reciprocal', [g.op('Sqrt', [g.op('Add', [meanSq, g.constFloat([eps], [])])])]);
    let normed = g.op('Mul', [centred, inv]);
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
  // Interleaved pairs (x0, x1), (x2, x3) ... are rotated as the halves of [x0, x2, ..., x1, x3, ...]: queries
  // and keys get the same permutation, so every attention score is unchanged.
  const interleave = arch.ropeInterleaved
    ? g.constInt64([...Array.from({ length: half }, (_, i) => 2 * i), ...Array.from({ length: half }, (_, i) => 2 * i + 1)])
    : null;
  const rope = (x: string, width = D) => {
    // Partial rotary embeddings rotate the first R values of each head and pass the rest through.
    const rotary = width > R ? g.op('Slice', [x, sliceStartsLo, sliceEndsHi, lastAxis]) : x;
    const r = interleave ? g.op('Gather', [rotary, interleave], { axis: 3 }) : rotary;
    const lo = g.op('Slice', [r, sliceStartsLo, sliceEndsLo, lastAxis]);
    const hi = g.op('Slice', [r, sliceStartsHi, sliceEndsHi, lastAxis]);
    const rotated = g.op('Concat', [g.op('Neg', [hi]), lo], { axis: 3 });
    const out = g.op('Add', [g.op('Mul', [r, cos]), g.op('Mul', [rotated, sin])]);
    return width > R ? g.op('Concat', [out, g.op('Slice', [x, sliceEndsHi, g.constInt64([width]), lastAxis])], { axis: 3 }) : out;
  };
  const toFloat32 = (x: string) => (T === 'float32' ? x : g.op('Cast', [x], { to: 1 }));
  /** down(SiLU(gate(x)) * up(x)): dense layers and shared experts. */
  const swiglu = (x: string, m: { gate: string; up: string; down: string }, inter: number) => {
    const gate = linear(x, m.gate, inter, H);
    return linear(g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), linear(x, m.up, inter, H)]), m.down, H, inter);
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
  const m = arch.multipliers;
  const scaled = (x: string, factor: number | undefined) =>
    factor === undefined || factor === 1 ? x : g.op('Mul', [x, g.op('Cast', [g.constFloat([factor], [])], { to: T === 'float32' ? 1 : 10 })]);
  h = scaled(h, m?.embedding);
  /** A sublayer's output onto the residual stream: post-norm (FlexOlmo) and residual multiplier (Granite) where the family has them. */
  const addToResidual = (x: string, postNorm: string | undefined) => g.op('Add', [h, scaled(arch.postNorm ? rmsNorm(x, postNorm!, H) : x, m?.residual)]);
  const rep = arch.numHeads / arch.numKvHeads;

  const moeLayers = new Set(moeLayersOf(arch));
  const cache = kvCacheDims(arch);
  for (let l = 0; l < arch.numLayers; l++) {
    const n = names.layer(l);
    const pastK = g.input(`past_key_${l}`, 'float32', ['batch', cache.heads, 'past', cache.keyDim]);
    const pastV = g.input(`past_value_${l}`, 'float32', ['batch', cache.heads, 'past', cache.valueDim]);

    const xn = arch.postNorm ? h : rmsNorm(h, n.inputNorm, H);
    if (arch.mla) {
      const attnOut = mlaAttention({ g, arch, n, xn, bs, pastK, pastV, bias, layer: l, dtype: T, w, linear, rmsNorm, rope, toCompute });
      h = addToResidual(attnOut, n.postAttentionNorm);
    } else {
      const fused = n.qkvFused ? linear(xn, n.qkvFused, qDim + 2 * kvDim, H) : null;
      const part = (from: number, to: number) => g.op('Slice', [fused!, g.constInt64([from]), g.constInt64([to]), g.constInt64([1])]);
      let q = fused ? part(0, qDim) : linear(xn, n.q, qDim, H, n.qkvBias?.q);
      let k = fused ? part(qDim, qDim + kvDim) : linear(xn, n.k, kvDim, H, n.qkvBias?.k);
      const v = clip(fused ? part(qDim + kvDim, qDim + 2 * kvDim) : linear(xn, n.v, kvDim, H, n.qkvBias?.v));
      if (arch.qkNormAfterRope) {
        // normalised after the rotary embedding, below
      } else if (arch.qkNorm === 'full') {
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
      let qh = rope(heads(q, qShape));
      let kNew = rope(heads(k, kvShape));
      if (arch.qkNormAfterRope) {
        // HunYuan normalises each head's rotated queries and keys (the last axis is head_dim).
        qh = rmsNorm(qh, n.qNorm!, D);
        kNew = rmsNorm(kNew, n.kNorm!, D);
      }
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
      h = addToResidual(linear(merged, n.o, H, qDim), n.postAttentionNorm);
    }

    const isMoe = moeLayers.has(l);
    // The MoE block's input and its routed output are outputs too: the all-experts analysis reads them.
    const moeInputName = isMoe && T === 'float32' ? `moe_input_${l}` : undefined;
    // Post-norm layers (FlexOlmo) feed the residual stream itself to the MLP.
    const xm = arch.postNorm ? g.op('Identity', [h], {}, { output: moeInputName }) : rmsNorm(h, n.postAttentionNorm, H, moeInputName);
    if (!isMoe) {
      // A dense layer: no router, no routing row.
      h = addToResidual(swiglu(xm, n.denseMlp!, arch.denseIntermediate!), n.postFeedforwardNorm);
      continue;
    }
    expose(xm, `moe_input_${l}`, ['tokens', H]);
    // The router's Gemm output itself is a graph output: exposing it adds no node and no copy.
    const routerName = opts.exposeRouter && T === 'float32' ? `router_logits_${l}` : undefined;
    const inGraphRouting = !!arch.router;
    let routerLogits = g.op(
      'Gemm',
      [xm, w(n.router, [arch.numExperts, H])],
      { transB: 1 },
      { output: opts.routerInputs && !inGraphRouting ? undefined : routerName },
    );
    const interventionRow = opts.routerInputs ? g.input(`router_bias_${l}`, 'float32', [arch.numExperts]) : undefined;
    if (interventionRow && !inGraphRouting) {
      // The exposed logits are the intervened ones: the routing reported is the routing used.
      routerLogits = g.op('Add', [routerLogits, toCompute(interventionRow)], {}, { output: routerName });
    }
    if (opts.exposeRouter) {
      if (T !== 'float32') g.op('Cast', [routerLogits], { to: 1 }, { output: `router_logits_${l}` });
      g.output(`router_logits_${l}`, 'float32', ['tokens', arch.numExperts]);
    }
    let expertRouterInput = routerLogits;
    let weightSum: string | null = null;
    if (arch.router) {
      const routed = buildGraphRouting(g, {
        logits: T === 'float32' ? routerLogits : g.op('Cast', [routerLogits], { to: 1 }),
        numExperts: arch.numExperts,
        topK: arch.topK,
        router: arch.router,
        choiceBias: n.routerChoiceBias ? toFloat32(w(n.routerChoiceBias, arch.router.choiceBiasAsRow ? [1, arch.numExperts] : [arch.numExperts])) : undefined,
        interventionBias: interventionRow,
      });
      g.op('Identity', [routed.indices], {}, { output: `topk_index_${l}` });
      g.output(`topk_index_${l}`, 'int64', ['tokens', arch.topK]);
      g.op('Identity', [routed.weights], {}, { output: `topk_weight_${l}` });
      g.output(`topk_weight_${l}`, 'float32', ['tokens', arch.topK]);
      expertRouterInput = toCompute(routed.operatorInput);
      weightSum = toCompute(routed.weightSum);
    }
    // With in-graph routing the experts renormalise the weights they are given and the sum is multiplied back.
    const expertArch = arch.router ? { ...arch, normTopKProb: true } : arch;
    const moeOutput = T === 'float32' ? `moe_output_${l}` : undefined;
    const ex = opts.quantized ? null : weights.experts(l);
    if (ex) {
      g.external(`w:experts.${l}.fc1`, T, ex.fc1Dims, ex.fc1);
      g.external(`w:experts.${l}.fc2`, T, ex.fc2Dims, ex.fc2);
    }
    const moeInputs = [xm, expertRouterInput, `w:experts.${l}.fc1`, '', `w:experts.${l}.fc2`];
    const moeAttrs: Record<string, number | string> = { k: arch.topK, normalize_routing_weights: expertArch.normTopKProb ? 1 : 0 };
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
          routerLogits: expertRouterInput,
          weights: opts.quantized,
          numExperts: arch.numExperts,
          hiddenSize: H,
          intermediate: arch.expertIntermediate,
          topK: arch.topK,
          normTopKProb: expertArch.normTopKProb,
          output: weightSum ? undefined : moeOutput,
        })
      : opts.experts === 'dense-gated' || opts.experts === 'grouped'
        ? (opts.experts === 'grouped' ? groupedExperts : denseGatedExperts)(g, {
            layer: l,
            x: xm,
            routerLogits: expertRouterInput,
            arch: expertArch,
            dtype: T,
            output: weightSum ? undefined : moeOutput,
          })
        : g.op('MoE', moeInputs, moeAttrs, { domain: 'com.microsoft', output: weightSum ? undefined : moeOutput });
    if (weightSum) moe = g.op('Mul', [moe, weightSum], {}, { output: moeOutput });
    expose(moe, `moe_output_${l}`, ['tokens', H]);
    if (n.sharedFused && arch.sharedExpert) {
      // Granite's shared MLP: one projection to [gate | up], SiLU(gate) * up, then down.
      const si = arch.sharedExpert.intermediate;
      const both = linear(xm, n.sharedFused.gateUp, 2 * si, H);
      const gate = g.op('Slice', [both, g.constInt64([0]), g.constInt64([si]), g.constInt64([1])]);
      const up = g.op('Slice', [both, g.constInt64([si]), g.constInt64([2 * si]), g.constInt64([1])]);
      moe = g.op('Add', [moe, linear(g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]), n.sharedFused.down, H, si)]);
    }
    if (n.shared && arch.sharedExpert) {
      const shared = swiglu(xm, n.shared, arch.sharedExpert.intermediate);
      moe = g.op('Add', [moe, n.shared.gateScale ? g.op('Mul', [shared, g.op('Sigmoid', [linear(xm, n.shared.gateScale, 1, H)])]) : shared]);
    }
    h = addToResidual(moe, n.postFeedforwardNorm);
  }

  const final = rmsNorm(h, names.finalNorm, H);
  const selected = g.op('Gather', [final, logitsIndex], { axis: 0 });
  let logits = linear(selected, names.lmHead, arch.vocabSize, H);
  if (m?.logitsDivisor !== undefined && m.logitsDivisor !== 1) logits = scaled(logits, 1 / m.logitsDivisor);
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
  // One block per routing row (MoE layer); inputs and outputs are numbered by row.
  for (const [row, l] of moeLayersOf(arch).entries()) {
    const x32 = g.input(`x_${row}`, 'float32', ['tokens', H]);
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
      g.op('Identity', [all], {}, { output: `outputs_${row}` });
      g.output(`outputs_${row}`, 'float32', [E, 'tokens', H]);
    }
    const norms = g.op('ReduceL2', [all], { axes: [-1], keepdims: 1 }); // [E, T, 1]
    g.op('Squeeze', [norms, g.constInt64([2])], {}, { output: `norms_${row}` });
    g.output(`norms_${row}`, 'float32', [E, 'tokens']);
    const unit = g.op('Transpose', [g.op('Div', [all, g.op('Max', [norms, eps])])], { perm: [1, 0, 2] }); // [T, E, H]
    const cos = g.op('MatMul', [unit, g.op('Transpose', [unit], { perm: [0, 2, 1] })]); // [T, E, E]
    const angular = g.op('Sub', [one, g.op('Mul', [g.op('Acos', [g.op('Min', [g.op('Max', [cos, minusOne]), one])]), invPi])]);
    // The diagonal contributes exactly E (angle 0); the caller subtracts it.
    g.op('ReduceSum', [angular, g.constInt64([1, 2])], { keepdims: 0 }, { output: `angsum_${row}` });
    g.output(`angsum_${row}`, 'float32', ['tokens']);
  }
  return g.toBytes({ producer: 'moe-scope', docString: `MoE Scope all-experts analysis graph v${GRAPH_VERSION} for ${arch.modelType}` });
}
