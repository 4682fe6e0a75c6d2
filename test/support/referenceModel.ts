/**
 * Independent reference forward pass for the Mixture-of-Experts decoders MoE Scope supports
 * (Hugging Face model_type "olmoe", "mixtral", "qwen2_moe", "qwen3_moe").
 *
 * Written from the architecture descriptions and Hugging Face transformers' modeling code
 * (modeling_olmoe.py / modular_olmoe.py, modeling_mixtral.py / modular_mixtral.py,
 * modular_qwen2_moe.py, modeling_qwen3_moe.py, their configuration classes, masking_utils.py), NOT from the engine.
 * Everything is straightforward loops in float64 so that it can serve as ground truth for the
 * ONNX Runtime engine on small generated checkpoints.
 *
 * Decoder layer (every family here, Llama layout):
 *   h   = x + o_proj(attention(input_layernorm(x)))
 *   out = h + mlp(post_attention_layernorm(h))          mlp = sparse MoE block (or dense MLP, qwen2_moe only)
 * then model.norm and lm_head (or the embedding matrix when tie_word_embeddings is true).
 */

export interface RefTensor {
  shape: number[];
  data: Float32Array;
}

/** Returns a tensor already converted to float32. May throw (or return undefined) for unknown names. */
export type TensorGetter = (name: string) => RefTensor;

export type HfConfig = Record<string, unknown>;

export type RefModelType = 'olmoe' | 'mixtral' | 'qwen2_moe' | 'qwen3_moe';

export interface ReferenceOptions {
  /** Existence test for tensor names. Without it, existence is probed by calling getTensor inside try/catch. */
  hasTensor?: (name: string) => boolean;
  /**
   * Values added to layer l's router logits before softmax and top-k (-Infinity removes an expert);
   * undefined leaves the layer alone. Models expert ablation / router steering experiments.
   */
  routerLogitOffsets?: (layer: number) => ArrayLike<number> | undefined;
}

/** The config values the reference actually uses, after defaults (taken from the HF config classes). */
export interface ResolvedRefConfig {
  modelType: RefModelType;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  numExperts: number;
  topK: number;
  /** Divide the chosen k softmax probabilities by their sum (always true for Mixtral). */
  normTopKProb: boolean;
  /** Routed-expert intermediate size (intermediate_size; moe_intermediate_size for qwen2_moe). */
  expertIntermediateSize: number;
  /** qwen2_moe only: shared_expert_intermediate_size. */
  sharedExpertIntermediateSize: number | null;
  /** qwen2_moe only: intermediate_size of the dense MLP used by non-sparse layers. */
  denseIntermediateSize: number | null;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  /** OLMoE only: clamp q, k, v to [-clip, clip] after the projections (and after QK-norm). */
  clipQkv: number | null;
  /** OLMoE only: RMSNorm over the full q and k projections before the head split. */
  /** "full": OLMoE, over the whole projection; "per-head": Qwen3, over each head. */
  qkNorm: 'full' | 'per-head' | null;
  /** q/k/v projection biases (qwen2_moe qkv_bias, default true; olmoe attention_bias). */
  qkvBias: boolean;
  /** o_proj bias (olmoe attention_bias only). */
  oBias: boolean;
  /** Mixtral sliding_window: key s is visible from query t iff t - window < s <= t. */
  slidingWindow: number | null;
  /** Per layer: true = sparse MoE block, false = dense MLP (qwen2_moe decoder_sparse_step / mlp_only_layers). */
  sparseLayers: boolean[];
}

export interface ReferenceResult {
  config: ResolvedRefConfig;
  /** [T][vocab] logits for every position. */
  logits: Float64Array[];
  /** [layer][token][expert] softmax over ALL experts. Empty array ([]) for dense (non-MoE) layers. */
  routerProbs: number[][][];
  /** [layer][token][k] chosen experts, descending probability, ties -> lower index first. [] for dense layers. */
  topExperts: number[][][];
  /** [layer][token][k] the weights actually multiplied into the expert outputs. [] for dense layers. */
  topWeights: number[][][];
  /** [layer][token] input of the MLP/MoE block, i.e. post_attention_layernorm output. */
  hiddenBeforeMoe: Float64Array[][];
  /** [layer][token] output of the MLP/MoE block (before the residual add), shared expert included. */
  mlpOutputs: Float64Array[][];
  /** Unweighted output of one routed expert for the MoE input of (layer, token). Throws for dense layers. */
  expertOutputs: (layer: number, token: number, expert: number) => Float64Array;
}

// ---------------------------------------------------------------------------------------------
// Config
// ---------------------------------------------------------------------------------------------

const SUPPORTED: readonly RefModelType[] = ['olmoe', 'mixtral', 'qwen2_moe', 'qwen3_moe'];

function optNumber(config: HfConfig, key: string): number | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`config.${key} must be a finite number, got ${JSON.stringify(v)}`);
  return v;
}

function reqInt(config: HfConfig, key: string): number {
  const v = optNumber(config, key);
  if (v === undefined || !Number.isInteger(v) || v <= 0) throw new Error(`config.${key} must be a positive integer, got ${JSON.stringify(config[key])}`);
  return v;
}

function optBool(config: HfConfig, key: string): boolean | undefined {
  const v = config[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw new Error(`config.${key} must be a boolean, got ${JSON.stringify(v)}`);
  return v;
}

export function resolveRefConfig(config: HfConfig): ResolvedRefConfig {
  const modelType = config.model_type as RefModelType;
  if (!SUPPORTED.includes(modelType)) {
    throw new Error(`reference model: unsupported model_type ${JSON.stringify(config.model_type)} (supported: ${SUPPORTED.join(', ')})`);
  }
  const act = config.hidden_act;
  if (act !== undefined && act !== null && act !== 'silu') throw new Error(`reference model: hidden_act ${JSON.stringify(act)} unsupported (only silu)`);

  const hiddenSize = reqInt(config, 'hidden_size');
  const numLayers = reqInt(config, 'num_hidden_layers');
  const numHeads = reqInt(config, 'num_attention_heads');
  // HF defaults when the key is absent: OlmoeConfig None -> num_heads, MixtralConfig 8, Qwen2MoeConfig 16.
  // Qwen3MoeConfig 4.
  const kvDefault = modelType === 'mixtral' ? 8 : modelType === 'qwen2_moe' ? 16 : modelType === 'qwen3_moe' ? 4 : numHeads;
  const numKvHeads = optNumber(config, 'num_key_value_heads') ?? kvDefault;
  if (!Number.isInteger(numKvHeads) || numKvHeads <= 0 || numHeads % numKvHeads !== 0) {
    throw new Error(`num_attention_heads (${numHeads}) must be a multiple of num_key_value_heads (${numKvHeads})`);
  }
  const headDim = optNumber(config, 'head_dim') ?? hiddenSize / numHeads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new Error(`head_dim must be an even integer, got ${headDim}`);

  const numExperts =
    modelType === 'mixtral'
      ? (optNumber(config, 'num_local_experts') ?? optNumber(config, 'num_experts') ?? 8)
      : (optNumber(config, 'num_experts') ?? optNumber(config, 'num_local_experts') ?? (modelType === 'olmoe' ? 64 : modelType === 'qwen3_moe' ? 128 : 60));
  const topK = optNumber(config, 'num_experts_per_tok') ?? (modelType === 'mixtral' ? 2 : modelType === 'qwen2_moe' ? 4 : 8);
  if (!Number.isInteger(topK) || topK <= 0 || topK > numExperts) throw new Error(`num_experts_per_tok ${topK} invalid for ${numExperts} experts`);

  // Mixtral always renormalises the top-k; OLMoE and Qwen2-MoE read norm_topk_prob (HF default false).
  const normTopKProb = modelType === 'mixtral' ? true : (optBool(config, 'norm_topk_prob') ?? false);

  const qwen = modelType === 'qwen2_moe' || modelType === 'qwen3_moe';
  const expertIntermediateSize = qwen ? reqInt(config, 'moe_intermediate_size') : reqInt(config, 'intermediate_size');
  const sharedExpertIntermediateSize = modelType === 'qwen2_moe' ? reqInt(config, 'shared_expert_intermediate_size') : null;
  const denseIntermediateSize = qwen ? (optNumber(config, 'intermediate_size') ?? null) : null;

  const rmsNormEps = optNumber(config, 'rms_norm_eps') ?? (qwen ? 1e-6 : 1e-5);

  // rope: legacy rope_theta / rope_scaling, or the newer rope_parameters dict.
  const ropeParams = (config.rope_parameters ?? null) as Record<string, unknown> | null;
  const ropeScaling = (config.rope_scaling ?? null) as Record<string, unknown> | null;
  for (const rp of [ropeParams, ropeScaling]) {
    if (rp === null) continue;
    const kind = rp.rope_type ?? rp.type ?? 'default';
    if (kind !== 'default') throw new Error(`reference model: rope type ${JSON.stringify(kind)} unsupported (only default)`);
  }
  const ropeThetaFromParams = ropeParams && typeof ropeParams.rope_theta === 'number' ? ropeParams.rope_theta : undefined;
  const ropeTheta = optNumber(config, 'rope_theta') ?? ropeThetaFromParams ?? (modelType === 'mixtral' ? 1e6 : 10000);
  const prf = optNumber(config, 'partial_rotary_factor');
  if (prf !== undefined && prf !== 1) throw new Error('reference model: partial_rotary_factor != 1 unsupported');

  const tieWordEmbeddings = optBool(config, 'tie_word_embeddings') ?? false;

  const clipQkv = modelType === 'olmoe' ? (optNumber(config, 'clip_qkv') ?? null) : null;
  const attentionBias = modelType === 'olmoe' || modelType === 'qwen3_moe' ? (optBool(config, 'attention_bias') ?? false) : false;
  const qkvBias = modelType === 'qwen2_moe' ? (optBool(config, 'qkv_bias') ?? true) : attentionBias;

  let slidingWindow: number | null = null;
  if (modelType === 'mixtral') {
    slidingWindow = optNumber(config, 'sliding_window') ?? null;
  } else if (qwen && optBool(config, 'use_sliding_window') === true) {
    throw new Error(`reference model: ${modelType} use_sliding_window=true unsupported`);
  }

  const sparseLayers: boolean[] = [];
  for (let l = 0; l < numLayers; l++) {
    if (!qwen) {
      sparseLayers.push(true);
      continue;
    }
    // Qwen2MoeDecoderLayer / Qwen3MoeDecoderLayer: sparse iff (l not in mlp_only_layers) and num_experts > 0 and (l + 1) % decoder_sparse_step == 0.
    const mlpOnly = Array.isArray(config.mlp_only_layers) ? (config.mlp_only_layers as unknown[]) : [];
    const step = optNumber(config, 'decoder_sparse_step') ?? 1;
    sparseLayers.push(!mlpOnly.includes(l) && numExperts > 0 && (l + 1) % step === 0);
  }
  if (sparseLayers.includes(false) && denseIntermediateSize === null) {
    throw new Error(`${modelType}: dense layers need config.intermediate_size`);
  }

  return {
    modelType,
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    numExperts,
    topK,
    normTopKProb,
    expertIntermediateSize,
    sharedExpertIntermediateSize,
    denseIntermediateSize,
    rmsNormEps,
    ropeTheta,
    tieWordEmbeddings,
    clipQkv,
    qkNorm: modelType === 'olmoe' ? 'full' : modelType === 'qwen3_moe' ? 'per-head' : null,
    qkvBias,
    oBias: attentionBias,
    slidingWindow,
    sparseLayers,
  };
}

// ---------------------------------------------------------------------------------------------
// Weights
// ---------------------------------------------------------------------------------------------

/** A [rows, cols] row-major matrix inside a float32 buffer (lets packed expert tensors be sliced without copying). */
export interface MatView {
  name: string;
  data: Float32Array;
  offset: number;
  rows: number;
  cols: number;
}

class WeightStore {
  private readonly cache = new Map<string, RefTensor | null>();
  constructor(
    private readonly getTensor: TensorGetter,
    private readonly hasTensor?: (name: string) => boolean,
  ) {}

  has(name: string): boolean {
    if (this.hasTensor) return this.hasTensor(name);
    if (!this.cache.has(name)) {
      let t: RefTensor | null;
      try {
        t = this.getTensor(name) ?? null;
      } catch {
        t = null;
      }
      this.cache.set(name, t);
    }
    return this.cache.get(name) !== null;
  }

  /** The tensor as stored, without a shape check. */
  raw(name: string): RefTensor {
    let t = this.cache.get(name);
    if (t === undefined || t === null) {
      t = this.getTensor(name) ?? null;
      if (t === null) throw new Error(`reference model: missing tensor ${name}`);
      this.cache.set(name, t);
    }
    return t;
  }

  get(name: string, shape: number[]): RefTensor {
    const t = this.raw(name);
    const expected = shape.reduce((a, b) => a * b, 1);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]) || t.data.length !== expected) {
      throw new Error(`reference model: tensor ${name} has shape [${t.shape}] (${t.data.length} values), expected [${shape}]`);
    }
    return t;
  }

  matrix(name: string, rows: number, cols: number): MatView {
    return { name, data: this.get(name, [rows, cols]).data, offset: 0, rows, cols };
  }

  vector(name: string, len: number): Float32Array {
    return this.get(name, [len]).data;
  }
}

// ---------------------------------------------------------------------------------------------
// Small numeric building blocks (float64)
// ---------------------------------------------------------------------------------------------

/** y = W x (+ b), W a [rows, cols] matrix stored [out, in] as in nn.Linear. */
export function matVec(w: MatView, x: ArrayLike<number>, bias?: ArrayLike<number>): Float64Array {
  if (x.length !== w.cols) throw new Error(`matVec ${w.name}: input length ${x.length} != ${w.cols}`);
  const y = new Float64Array(w.rows);
  for (let r = 0; r < w.rows; r++) {
    let acc = 0;
    const base = w.offset + r * w.cols;
    for (let c = 0; c < w.cols; c++) acc += w.data[base + c] * x[c];
    y[r] = bias ? acc + bias[r] : acc;
  }
  return y;
}

/** RMSNorm: x / sqrt(mean(x^2) + eps) * weight. */
export function rmsNorm(x: ArrayLike<number>, weight: ArrayLike<number>, eps: number): Float64Array {
  if (weight.length !== x.length) throw new Error(`rmsNorm: weight length ${weight.length} != ${x.length}`);
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i] * x[i];
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  const y = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) y[i] = x[i] * inv * weight[i];
  return y;
}

export function silu(v: number): number {
  return v / (1 + Math.exp(-v));
}

export function sigmoid(v: number): number {
  return 1 / (1 + Math.exp(-v));
}

/** Numerically stable softmax in float64. */
export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] - max);
    sum += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= sum;
  return p;
}

/**
 * Llama-convention RoPE, in place, on x[offset .. offset+headDim): the two halves of the head are
 * rotated together (rotate_half), inv_freq[i] = 1 / theta^(2i/headDim), angle = pos * inv_freq[i]:
 *   out[i]        = x[i] cos - x[i+half] sin
 *   out[i + half] = x[i+half] cos + x[i] sin
 */
export function applyRope(x: Float64Array, offset: number, headDim: number, pos: number, theta: number): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = pos / Math.pow(theta, (2 * i) / headDim);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    const a = x[offset + i];
    const b = x[offset + i + half];
    x[offset + i] = a * c - b * s;
    x[offset + i + half] = b * c + a * s;
  }
}

export interface Routing {
  probs: Float64Array;
  experts: number[];
  weights: number[];
}

/** softmax over all experts -> top-k (descending prob, ties -> lower index) -> optional renormalisation. */
export function routeTopK(routerLogits: ArrayLike<number>, k: number, normTopKProb: boolean): Routing {
  const probs = softmax(routerLogits);
  const order = Array.from(probs.keys()).sort((a, b) => (probs[b] !== probs[a] ? probs[b] - probs[a] : a - b));
  const experts = order.slice(0, k);
  let weights = experts.map((e) => probs[e]);
  if (normTopKProb) {
    const sum = weights.reduce((a, b) => a + b, 0);
    weights = weights.map((v) => v / sum);
  }
  return { probs, experts, weights };
}

export interface SwiGluWeights {
  gate: MatView;
  up: MatView;
  down: MatView;
}

/** expert(x) = down(SiLU(gate(x)) * up(x)). */
export function swiGlu(w: SwiGluWeights, x: ArrayLike<number>): Float64Array {
  const g = matVec(w.gate, x);
  const u = matVec(w.up, x);
  const a = new Float64Array(g.length);
  for (let i = 0; i < g.length; i++) a[i] = silu(g[i]) * u[i];
  return matVec(w.down, a);
}

// ---------------------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------------------

function perHeadRmsNorm(x: Float64Array, heads: number, D: number, weight: ArrayLike<number>, eps: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let h = 0; h < heads; h++) out.set(rmsNorm(x.subarray(h * D, (h + 1) * D), weight, eps), h * D);
  return out;
}

function clampInPlace(v: Float64Array, clip: number): void {
  for (let i = 0; i < v.length; i++) v[i] = Math.min(clip, Math.max(-clip, v[i]));
}

/** Causal multi-head / grouped-query self-attention over the whole (already normed) sequence; returns o_proj output per token. */
function attention(cfg: ResolvedRefConfig, ws: WeightStore, layer: number, xs: Float64Array[]): Float64Array[] {
  const p = `model.layers.${layer}.self_attn`;
  const { hiddenSize: H, numHeads, numKvHeads, headDim: D } = cfg;
  const qDim = numHeads * D;
  const kvDim = numKvHeads * D;
  const wq = ws.matrix(`${p}.q_proj.weight`, qDim, H);
  const wk = ws.matrix(`${p}.k_proj.weight`, kvDim, H);
  const wv = ws.matrix(`${p}.v_proj.weight`, kvDim, H);
  const wo = ws.matrix(`${p}.o_proj.weight`, H, qDim);
  const bq = cfg.qkvBias ? ws.vector(`${p}.q_proj.bias`, qDim) : undefined;
  const bk = cfg.qkvBias ? ws.vector(`${p}.k_proj.bias`, kvDim) : undefined;
  const bv = cfg.qkvBias ? ws.vector(`${p}.v_proj.bias`, kvDim) : undefined;
  const bo = cfg.oBias ? ws.vector(`${p}.o_proj.bias`, H) : undefined;
  const normLen = (full: number) => (cfg.qkNorm === 'full' ? full : D);
  const qNormW = cfg.qkNorm ? ws.vector(`${p}.q_norm.weight`, normLen(qDim)) : undefined;
  const kNormW = cfg.qkNorm ? ws.vector(`${p}.k_norm.weight`, normLen(kvDim)) : undefined;

  const T = xs.length;
  const qs: Float64Array[] = [];
  const ks: Float64Array[] = [];
  const vs: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    let q = matVec(wq, xs[t], bq);
    let k = matVec(wk, xs[t], bk);
    const v = matVec(wv, xs[t], bv);
    if (qNormW && kNormW && cfg.qkNorm === 'full') {
      // OLMoE QK-norm over the FULL projections, before the head split and before RoPE.
      q = rmsNorm(q, qNormW, cfg.rmsNormEps);
      k = rmsNorm(k, kNormW, cfg.rmsNormEps);
    } else if (qNormW && kNormW) {
      // Qwen3 QK-norm: each head's head_dim slice on its own, one weight shared by all heads.
      q = perHeadRmsNorm(q, numHeads, D, qNormW, cfg.rmsNormEps);
      k = perHeadRmsNorm(k, numKvHeads, D, kNormW, cfg.rmsNormEps);
    }
    if (cfg.clipQkv !== null) {
      clampInPlace(q, cfg.clipQkv);
      clampInPlace(k, cfg.clipQkv);
      clampInPlace(v, cfg.clipQkv);
    }
    for (let h = 0; h < numHeads; h++) applyRope(q, h * D, D, t, cfg.ropeTheta);
    for (let h = 0; h < numKvHeads; h++) applyRope(k, h * D, D, t, cfg.ropeTheta);
    qs.push(q);
    ks.push(k);
    vs.push(v);
  }

  const scale = 1 / Math.sqrt(D);
  const groupSize = numHeads / numKvHeads; // query heads served by each kv head (repeat_kv)
  const out: Float64Array[] = [];
  for (let t = 0; t < T; t++) {
    const first = cfg.slidingWindow !== null ? Math.max(0, t - cfg.slidingWindow + 1) : 0;
    const ctx = new Float64Array(qDim);
    for (let h = 0; h < numHeads; h++) {
      const kvh = Math.floor(h / groupSize);
      const scores = new Float64Array(t - first + 1);
      for (let s = first; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += qs[t][h * D + d] * ks[s][kvh * D + d];
        scores[s - first] = dot * scale;
      }
      const probs = softmax(scores);
      for (let s = first; s <= t; s++) {
        const a = probs[s - first];
        for (let d = 0; d < D; d++) ctx[h * D + d] += a * vs[s][kvh * D + d];
      }
    }
    out.push(matVec(wo, ctx, bo));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// MoE block
// ---------------------------------------------------------------------------------------------

interface LayerExperts {
  router: MatView;
  expert: (e: number) => SwiGluWeights;
}

/**
 * Expert weights for one layer. Per-expert tensors are tried first, then the packed layout of newer
 * transformers (MixtralExperts, reused by OLMoE and Qwen2-MoE):
 *   <prefix>.experts.gate_up_proj [E, 2*I, H]  (rows 0..I-1 = gate, rows I..2I-1 = up: .chunk(2, dim=-1) of the output)
 *   <prefix>.experts.down_proj    [E, H, I]
 */
function layerExperts(cfg: ResolvedRefConfig, ws: WeightStore, layer: number): LayerExperts {
  const { hiddenSize: H, numExperts: E, expertIntermediateSize: I } = cfg;
  const l = `model.layers.${layer}`;
  const perExpert =
    cfg.modelType === 'mixtral'
      ? { prefix: `${l}.block_sparse_moe`, gate: 'w1', up: 'w3', down: 'w2' }
      : { prefix: `${l}.mlp`, gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
  const name = (e: number, part: string) => `${perExpert.prefix}.experts.${e}.${part}.weight`;

  if (ws.has(name(0, perExpert.gate))) {
    return {
      router: ws.matrix(`${perExpert.prefix}.gate.weight`, E, H),
      expert: (e) => ({
        gate: ws.matrix(name(e, perExpert.gate), I, H),
        up: ws.matrix(name(e, perExpert.up), I, H),
        down: ws.matrix(name(e, perExpert.down), H, I),
      }),
    };
  }

  const packedPrefix = `${l}.mlp`; // newer transformers name the block "mlp" for Mixtral too
  const gateUpName = `${packedPrefix}.experts.gate_up_proj`;
  const downName = `${packedPrefix}.experts.down_proj`;
  if (!ws.has(gateUpName)) {
    throw new Error(`reference model: layer ${layer} has neither ${name(0, perExpert.gate)} nor ${gateUpName}`);
  }
  const gateUp = ws.get(gateUpName, [E, 2 * I, H]).data;
  const down = ws.get(downName, [E, H, I]).data;
  const routerName = ws.has(`${packedPrefix}.gate.weight`) ? `${packedPrefix}.gate.weight` : `${perExpert.prefix}.gate.weight`;
  return {
    router: ws.matrix(routerName, E, H),
    expert: (e) => ({
      gate: { name: `${gateUpName}[${e}].gate`, data: gateUp, offset: e * 2 * I * H, rows: I, cols: H },
      up: { name: `${gateUpName}[${e}].up`, data: gateUp, offset: e * 2 * I * H + I * H, rows: I, cols: H },
      down: { name: `${downName}[${e}]`, data: down, offset: e * H * I, rows: H, cols: I },
    }),
  };
}

interface MoeOutput {
  out: Float64Array;
  routing: Routing;
}

/** Sparse MoE block for one token: router -> softmax(all) -> top-k -> weighted experts (+ gated shared expert for qwen2_moe). */
function moeBlock(cfg: ResolvedRefConfig, ws: WeightStore, layer: number, experts: LayerExperts, x: Float64Array, offsets?: ArrayLike<number>): MoeOutput {
  const logits = matVec(experts.router, x);
  if (offsets) for (let e = 0; e < logits.length; e++) logits[e] += offsets[e];
  const routing = routeTopK(logits, cfg.topK, cfg.normTopKProb);
  const out = new Float64Array(cfg.hiddenSize);
  routing.experts.forEach((e, j) => {
    const y = swiGlu(experts.expert(e), x);
    for (let i = 0; i < out.length; i++) out[i] += routing.weights[j] * y[i];
  });
  if (cfg.modelType === 'qwen2_moe') {
    const p = `model.layers.${layer}.mlp`;
    const S = cfg.sharedExpertIntermediateSize!;
    const H = cfg.hiddenSize;
    const shared = swiGlu(
      {
        gate: ws.matrix(`${p}.shared_expert.gate_proj.weight`, S, H),
        up: ws.matrix(`${p}.shared_expert.up_proj.weight`, S, H),
        down: ws.matrix(`${p}.shared_expert.down_proj.weight`, H, S),
      },
      x,
    );
    const g = sigmoid(matVec(ws.matrix(`${p}.shared_expert_gate.weight`, 1, H), x)[0]);
    for (let i = 0; i < out.length; i++) out[i] += g * shared[i];
  }
  return { out, routing };
}

/** qwen2_moe dense layer: mlp.{gate,up,down}_proj with intermediate_size. */
function denseMlp(cfg: ResolvedRefConfig, ws: WeightStore, layer: number, x: Float64Array): Float64Array {
  const p = `model.layers.${layer}.mlp`;
  const I = cfg.denseIntermediateSize!;
  const H = cfg.hiddenSize;
  return swiGlu(
    { gate: ws.matrix(`${p}.gate_proj.weight`, I, H), up: ws.matrix(`${p}.up_proj.weight`, I, H), down: ws.matrix(`${p}.down_proj.weight`, H, I) },
    x,
  );
}

// ---------------------------------------------------------------------------------------------
// Forward
// ---------------------------------------------------------------------------------------------

export function referenceForward(config: HfConfig, getTensor: TensorGetter, tokenIds: number[], options: ReferenceOptions = {}): ReferenceResult {
  const cfg = resolveRefConfig(config);
  const ws = new WeightStore(getTensor, options.hasTensor);
  const H = cfg.hiddenSize;
  if (tokenIds.length === 0) throw new Error('reference model: no tokens');

  const vocab = ws.raw('model.embed_tokens.weight').shape[0];
  const embedT = ws.get('model.embed_tokens.weight', [vocab, H]);
  let xs: Float64Array[] = tokenIds.map((id) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new Error(`reference model: token id ${id} outside [0, ${vocab})`);
    return Float64Array.from(embedT.data.subarray(id * H, (id + 1) * H));
  });

  const routerProbs: number[][][] = [];
  const topExperts: number[][][] = [];
  const topWeights: number[][][] = [];
  const hiddenBeforeMoe: Float64Array[][] = [];
  const mlpOutputs: Float64Array[][] = [];
  const expertsByLayer: (LayerExperts | null)[] = [];

  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    const inNorm = ws.vector(`${p}.input_layernorm.weight`, H);
    const postNorm = ws.vector(`${p}.post_attention_layernorm.weight`, H);

    const attnOut = attention(
      cfg,
      ws,
      l,
      xs.map((x) => rmsNorm(x, inNorm, cfg.rmsNormEps)),
    );
    xs = xs.map((x, t) => add(x, attnOut[t]));

    const mlpIn = xs.map((x) => rmsNorm(x, postNorm, cfg.rmsNormEps));
    hiddenBeforeMoe.push(mlpIn);
    const layerProbs: number[][] = [];
    const layerTop: number[][] = [];
    const layerW: number[][] = [];
    let outs: Float64Array[];
    if (cfg.sparseLayers[l]) {
      const experts = layerExperts(cfg, ws, l);
      expertsByLayer.push(experts);
      outs = mlpIn.map((x) => {
        const { out, routing } = moeBlock(cfg, ws, l, experts, x, options.routerLogitOffsets?.(l));
        layerProbs.push(Array.from(routing.probs));
        layerTop.push(routing.experts);
        layerW.push(routing.weights);
        return out;
      });
    } else {
      expertsByLayer.push(null);
      outs = mlpIn.map((x) => denseMlp(cfg, ws, l, x));
    }
    routerProbs.push(layerProbs);
    topExperts.push(layerTop);
    topWeights.push(layerW);
    mlpOutputs.push(outs);
    xs = xs.map((x, t) => add(x, outs[t]));
  }

  const finalNorm = ws.vector('model.norm.weight', H);
  const lmHead = cfg.tieWordEmbeddings ? ws.matrix('model.embed_tokens.weight', vocab, H) : ws.matrix('lm_head.weight', vocab, H);
  const logits = xs.map((x) => matVec(lmHead, rmsNorm(x, finalNorm, cfg.rmsNormEps)));

  const expertOutputs = (layer: number, token: number, expert: number): Float64Array => {
    const experts = expertsByLayer[layer];
    if (!experts) throw new Error(`reference model: layer ${layer} is not a MoE layer`);
    if (!Number.isInteger(expert) || expert < 0 || expert >= cfg.numExperts) throw new Error(`expert ${expert} out of range`);
    return swiGlu(experts.expert(expert), hiddenBeforeMoe[layer][token]);
  };

  return { config: cfg, logits, routerProbs, topExperts, topWeights, hiddenBeforeMoe, mlpOutputs, expertOutputs };
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  const y = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) y[i] = a[i] + b[i];
  return y;
}
