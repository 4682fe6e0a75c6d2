/**
 * Model families as small descriptors: how a Hugging Face config.json maps onto one shared MoE decoder
 * architecture, and where each tensor lives in the checkpoint. The graph builder knows only
 * `MoeArchitecture` and `TensorNames`; adding a family means adding a descriptor here.
 */
import { InputError } from '../../shared/inputError';
import { MOE_FAMILIES, type ModelFamilyName } from '../../shared/protocol';
import { configDefault, configFieldNames, configFieldsProblem, type ConfigFieldName } from '../../shared/configFields';
import { readRope, RopeConfigError, type RopeSettings } from './rope';
import type { GraphRouter, MlaAttention } from './familyFeatures';
import { EXTENDED_FAMILIES } from './familiesExtended';

export interface MoeArchitecture {
  family: ModelFamilyName;
  modelType: string;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  numExperts: number;
  topK: number;
  expertIntermediate: number;
  vocabSize: number;
  maxPositions: number;
  /** Rotary embedding: type, theta (and where it came from), inverse frequencies, cos/sin scale. */
  rope: RopeSettings;
  rmsNormEps: number;
  /** Rescale the k chosen softmax values to sum to 1 (Mixtral, Qwen with norm_topk_prob). */
  normTopKProb: boolean;
  /**
   * RMSNorm on queries and keys before RoPE: 'full' (OLMoE) over the whole q and k projections before
   * the split into heads; 'per-head' (Qwen3-MoE) over each head's head_dim values with one shared weight.
   */
  qkNorm: 'full' | 'per-head' | null;
  tieWordEmbeddings: boolean;
  clipQkv: number | null;
  /**
   * Qwen2-MoE: a dense expert every token goes through, scaled by sigmoid(shared_expert_gate(x)). count: how
   * many shared experts it stands for (DeepSeek's n_shared_experts, fused into one MLP); absent: one.
   */
  sharedExpert: { intermediate: number; count?: number } | null;
  /** Biases on the q, k and v projections (Qwen2-MoE). */
  qkvBias: boolean;
  /** Mixtral, Qwen3-MoE with use_sliding_window: a key is visible from query t only when t - window < key position. */
  slidingWindow: number | null;
  /** Decoder-layer index of each MoE layer (absent: every layer); the others are dense MLPs of denseIntermediate. */
  moeLayers?: number[];
  denseIntermediate?: number;
  /** Routing the MoE operator's own softmax cannot express, computed in the graph (familyFeatures.ts). */
  router?: GraphRouter;
  /** Multi-head latent attention (DeepSeek-V2/V3); headDim is then its rotary part. */
  mla?: MlaAttention;
  /** Rotary embedding on the first rotaryDim values of each head only (GLM-4.5); absent: all of headDim. */
  rotaryDim?: number;
  /** Rotated pairs are adjacent values (x0, x1), (x2, x3) ... (DeepSeek) instead of the two halves. */
  ropeInterleaved?: boolean;
  /** Norms on each sublayer's output instead of its input (FlexOlmo: post_attention / post_feedforward). */
  postNorm?: boolean;
  /** LayerNorm without bias (DBRX) instead of RMSNorm, everywhere. */
  layerNorm?: boolean;
  /** Per-head QK-norm applied after the rotary embedding (HunYuan), not before. */
  qkNormAfterRope?: boolean;
  /** Granite's scalars: embeddings x embedding, sublayer outputs x residual, attention scores x attention, logits / logitsDivisor. */
  multipliers?: { embedding: number; residual: number; attention: number; logitsDivisor: number };
}

export interface ExpertTensorNames {
  gate: string;
  up: string;
  down: string;
}

export interface LayerTensorNames {
  inputNorm: string;
  postAttentionNorm: string;
  q: string;
  k: string;
  v: string;
  o: string;
  qNorm?: string;
  kNorm?: string;
  qkvBias?: { q: string; k: string; v: string };
  router: string;
  expert(e: number): ExpertTensorNames;
  /** Newer transformers pack experts: gate_up [E, 2*inter, hidden] (gate rows first), down [E, hidden, inter]. */
  packed?: { gateUp: string; down: string };
  /** gateScale absent: the shared expert is added ungated (DeepSeek, GLM-4.5, dots.llm1). */
  shared?: { gate: string; up: string; down: string; gateScale?: string };
  /** DBRX: experts as w1 (gate), v1 (up), w2 (down, transposed) each [experts * intermediate, hidden]. */
  stackedRows?: { gate: string; up: string; down: string };
  /** DBRX: one [q | k | v] projection (Wqkv). */
  qkvFused?: string;
  /** Granite's shared MLP: one [2 * intermediate, hidden] projection to gate then up, and down. */
  sharedFused?: { gateUp: string; down: string };
  /** FlexOlmo's norm on the MLP's output (postNorm architectures). */
  postFeedforwardNorm?: string;
  /** A dense layer's MLP (SwiGLU of denseIntermediate). */
  denseMlp?: { gate: string; up: string; down: string };
  /** A bias added to the router scores only to choose experts (e_score_correction_bias). */
  routerChoiceBias?: string;
  /** Q/K/V biases with q absent where the family has none (MLA). */
  mla?: MlaTensorNames;
}

export interface MlaTensorNames {
  /** q_proj when there is no q LoRA, else q_a_proj / q_a_layernorm / q_b_proj. */
  q?: string;
  qA?: string;
  qANorm?: string;
  qB?: string;
  kvA: string;
  kvANorm: string;
  kvB: string;
}

export interface TensorNames {
  embed: string;
  finalNorm: string;
  lmHead: string;
  layer(l: number): LayerTensorNames;
}

export interface FamilyDescriptor {
  name: ModelFamilyName;
  modelTypes: readonly string[];
  architecture(config: HfConfig, file: string): MoeArchitecture;
  tensorNames(arch: MoeArchitecture): TensorNames;
}

export type HfConfig = Record<string, unknown>;

export class ConfigError extends InputError {}

/**
 * A checkpoint this engine does not build (a family or a config field it does not implement), as opposed
 * to a malformed one: `auto` engine selection hands these to the PyTorch engine.
 */
export class UnsupportedByEngineError extends ConfigError {}

/** How to run what the ONNX Runtime engine refuses. */
export const PYTORCH_HINT = 'run it with the PyTorch engine (--engine pytorch, or the setting moeScope.engine "pytorch")';

export function int(config: HfConfig, file: string, key: string, fallback?: number): number {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(file, `missing "${key}" (a positive integer)`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(file, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** A finite number > 0 (eps, theta, clip): zero or negative values turn the forward pass into NaN. */
export function positive(config: HfConfig, file: string, key: string, fallback: number): number {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new ConfigError(file, `"${key}" must be a finite number > 0, got ${JSON.stringify(v)}`);
  return v;
}

/** Refuses a field that changes the math in a way MoE Scope does not implement, naming it and its value. */
export function refuse(file: string, key: string, value: unknown, why: string): never {
  throw new UnsupportedByEngineError(file, `"${key}": ${JSON.stringify(value)} is not supported by the ONNX Runtime engine: ${why}; ${PYTORCH_HINT}`);
}

export function flag(config: HfConfig, file: string, key: string, fallback: boolean): boolean {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw new ConfigError(file, `"${key}" must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

/**
 * transformers' default for a table field of this family (src/shared/configFields.ts); undefined where it
 * has none, so that int() and friends call the field missing.
 */
export function defaultOf(family: ModelFamilyName, field: ConfigFieldName): number | undefined {
  const v = configDefault(family, field);
  if (v === undefined) throw new Error(`configFields.ts has no default of "${field}" for ${family}`);
  return typeof v === 'number' ? v : undefined;
}

export function flagDefaultOf(family: ModelFamilyName, field: ConfigFieldName): boolean {
  const v = configDefault(family, field);
  if (typeof v !== 'boolean') throw new Error(`configFields.ts has no boolean default of "${field}" for ${family}`);
  return v;
}

/** A count >= 0 (shared experts), transformers' default when absent; required where transformers has none. */
export function countOf(config: HfConfig, file: string, family: ModelFamilyName, key: ConfigFieldName): number {
  const v = config[key];
  if (v === undefined || v === null) {
    const fallback = defaultOf(family, key);
    if (fallback === undefined) throw new ConfigError(file, `missing "${key}" (an integer >= 0)`);
    return fallback;
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(file, `"${key}" must be an integer >= 0, got ${JSON.stringify(v)}`);
  return v;
}

/** Fields of any family whose non-default values change the math and are not implemented. */
function refuseUnsupportedCommon(config: HfConfig, file: string): void {
  const act = config.hidden_act ?? config.hidden_activation;
  if (act !== undefined && act !== null && act !== 'silu' && act !== 'swish')
    refuse(file, config.hidden_act !== undefined ? 'hidden_act' : 'hidden_activation', act, 'the experts are computed as down(SiLU(gate(x)) * up(x))');
  for (const key of ['quantization_config', 'attn_logit_softcapping', 'final_logit_softcapping']) {
    if (config[key] !== undefined && config[key] !== null) refuse(file, key, config[key], 'MoE Scope reads unquantized weights and implements no soft-capping');
  }
}

export function common(config: HfConfig, file: string, family: ModelFamilyName, experts: number, topK: number, expertInter: number) {
  refuseUnsupportedCommon(config, file);
  // Every field of the config table this family reads, under each of its names (the worker runs the same check).
  const tableProblem = configFieldsProblem(config, family);
  if (tableProblem) throw new ConfigError(file, tableProblem);
  const hiddenSize = int(config, file, 'hidden_size');
  const numHeads = int(config, file, 'num_attention_heads');
  const numKvHeads = int(config, file, 'num_key_value_heads', numHeads);
  const headDim = int(config, file, 'head_dim', Math.floor(hiddenSize / numHeads));
  if (numHeads % numKvHeads !== 0) throw new ConfigError(file, `num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  if (headDim % 2 !== 0) throw new ConfigError(file, `head_dim ${headDim} must be even for rotary embeddings`);
  if (topK > experts) throw new ConfigError(file, `num_experts_per_tok (${topK}) exceeds the number of experts (${experts})`);
  const eps = positive(config, file, 'rms_norm_eps', defaultOf(family, 'rms_norm_eps') ?? 1e-5);
  if (eps >= 1) throw new ConfigError(file, `"rms_norm_eps" must be a small number > 0, got ${eps}`);
  const clip = config.clip_qkv === undefined || config.clip_qkv === null ? null : positive(config, file, 'clip_qkv', NaN);
  const maxPositions = int(config, file, 'max_position_embeddings', defaultOf(family, 'max_position_embeddings'));
  let rope: RopeSettings;
  try {
    rope = readRope(config, defaultOf(family, 'rope_theta') ?? 10000, headDim, maxPositions);
  } catch (e) {
    if (e instanceof RopeConfigError)
      throw /is not supported/.test(e.message) ? new UnsupportedByEngineError(file, `${e.message}; ${PYTORCH_HINT}`) : new ConfigError(file, e.message);
    throw e;
  }
  return {
    family,
    modelType: String(config.model_type),
    hiddenSize,
    numLayers: int(config, file, 'num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    numExperts: experts,
    topK,
    expertIntermediate: expertInter,
    vocabSize: int(config, file, 'vocab_size'),
    maxPositions,
    rope,
    rmsNormEps: eps,
    tieWordEmbeddings: flag(config, file, 'tie_word_embeddings', flagDefaultOf(family, 'tie_word_embeddings')),
    clipQkv: clip,
  };
}

/**
 * Qwen-style dense layers, as transformers builds them: layer l is MoE unless it is in mlp_only_layers or
 * (l + 1) is not a multiple of decoder_sparse_step; dense layers are MLPs of intermediate_size.
 */
export function qwenDenseLayers(config: HfConfig, file: string): Pick<MoeArchitecture, 'moeLayers' | 'denseIntermediate'> {
  const mlpOnly = config.mlp_only_layers ?? [];
  if (Array.isArray(mlpOnly) && mlpOnly.length === 0 && (config.decoder_sparse_step ?? 1) === 1) return {};
  const numLayers = layerCount(config, file, 'num_hidden_layers');
  if (!Array.isArray(mlpOnly) || mlpOnly.some((l) => !Number.isInteger(l) || l < 0 || l >= numLayers))
    throw new ConfigError(file, `"mlp_only_layers" must list decoder layers 0..${numLayers - 1}, got ${JSON.stringify(mlpOnly)}`);
  const step = int(config, file, 'decoder_sparse_step', 1);
  const moeLayers = Array.from({ length: numLayers }, (_, l) => l).filter((l) => !mlpOnly.includes(l) && (l + 1) % step === 0);
  if (moeLayers.length === 0) throw new ConfigError(file, `mlp_only_layers and decoder_sparse_step leave no MoE layer: a dense model`);
  if (moeLayers.length === numLayers) return {};
  return { moeLayers, denseIntermediate: int(config, file, 'intermediate_size') };
}

/**
 * A layer count to list layers of (dense/MoE patterns), before the tensors have confirmed it: bounded so
 * that an absurd config.json fails with a message instead of exhausting memory.
 */
export function layerCount(config: HfConfig, file: string, key: string): number {
  const n = int(config, file, key);
  if (n > 100_000) throw new ConfigError(file, `"${key}" is ${n}: more decoder layers than any checkpoint has`);
  return n;
}

/** A SwiGLU MLP's three projections under one prefix: PREFIX.{gate,up,down}_proj.weight (experts, shared and dense MLPs). */
export function swigluNames(prefix: string): ExpertTensorNames {
  return { gate: `${prefix}.gate_proj.weight`, up: `${prefix}.up_proj.weight`, down: `${prefix}.down_proj.weight` };
}

/** Experts packed as transformers 5 saves them: mlp.experts.gate_up_proj [E, 2*inter, hidden] and mlp.experts.down_proj. */
export function packedExperts(layerPrefix: string): NonNullable<LayerTensorNames['packed']> {
  return { gateUp: `${layerPrefix}.mlp.experts.gate_up_proj`, down: `${layerPrefix}.mlp.experts.down_proj` };
}

/** A dense layer's MLP under model.layers.N.mlp (Qwen, DeepSeek, ERNIE); undefined for MoE layers. */
export function denseMlpNames(arch: MoeArchitecture, l: number): LayerTensorNames['denseMlp'] {
  if (!arch.moeLayers || arch.moeLayers.includes(l)) return undefined;
  return swigluNames(`model.layers.${l}.mlp`);
}

/** The layer features most families lack, for descriptors to override: no QK-norm, shared expert, q/k/v bias or window. */
export const PLAIN_LAYER_FEATURES: Pick<MoeArchitecture, 'qkNorm' | 'sharedExpert' | 'qkvBias' | 'slidingWindow'> = {
  qkNorm: null,
  sharedExpert: null,
  qkvBias: false,
  slidingWindow: null,
};

export function noAttentionBias(config: HfConfig, file: string, family: string): void {
  if (flag(config, file, 'attention_bias', false)) refuse(file, 'attention_bias', true, `only ${family} attention without projection biases is implemented`);
}

/** Layer types other than full attention (sliding windows per layer) are not implemented. */
export function requireFullAttentionLayers(config: HfConfig, file: string): void {
  const types = config.layer_types;
  if (Array.isArray(types) && types.some((t) => t !== 'full_attention'))
    refuse(file, 'layer_types', types, 'only full attention in every layer is implemented');
}

/**
 * The expert count under any of its names in this family (configFields.ts's aliases: transformers maps
 * num_experts and num_local_experts onto each other for Qwen3-MoE, saved with num_local_experts, and others).
 */
export function requireExperts(config: HfConfig, file: string, family: ModelFamilyName, key: 'num_experts' | 'num_local_experts'): number {
  const names = configFieldNames(family, 'num_experts');
  const group = names.includes(key) ? [key, ...names.filter((n) => n !== key)] : [key];
  const has = (k: string) => config[k] !== undefined && config[k] !== null;
  const given = group.filter(has);
  for (const other of given.slice(1)) {
    if (config[other] !== config[given[0]!])
      throw new ConfigError(file, `"${given[0]}" (${JSON.stringify(config[given[0]!])}) and "${other}" (${JSON.stringify(config[other])}) disagree`);
  }
  const used = given[0] ?? key;
  const v = config[used];
  if (v === undefined || v === null || v === 0 || v === 1) {
    throw new ConfigError(
      file,
      `model_type "${String(config.model_type)}" without "${key}" > 1 is a dense model: MoE Scope needs a Mixture-of-Experts checkpoint`,
    );
  }
  return int(config, file, used);
}

export function llamaStyleLayer(l: number): Omit<LayerTensorNames, 'router' | 'expert'> {
  const p = `model.layers.${l}`;
  return {
    inputNorm: `${p}.input_layernorm.weight`,
    postAttentionNorm: `${p}.post_attention_layernorm.weight`,
    q: `${p}.self_attn.q_proj.weight`,
    k: `${p}.self_attn.k_proj.weight`,
    v: `${p}.self_attn.v_proj.weight`,
    o: `${p}.self_attn.o_proj.weight`,
  };
}

/** OLMoE and Qwen2-MoE name their experts alike: model.layers.N.mlp.experts.M.{gate,up,down}_proj. */
export const mlpExpert =
  (p: string) =>
  (e: number): ExpertTensorNames =>
    swigluNames(`${p}.mlp.experts.${e}`);

/** Llama-style attention with the optional QK-norm (q_norm / k_norm) and q/k/v biases the architecture says it has. */
export function standardAttentionNames(arch: MoeArchitecture, l: number): Omit<LayerTensorNames, 'router' | 'expert'> {
  const p = `model.layers.${l}`;
  return {
    ...llamaStyleLayer(l),
    qNorm: arch.qkNorm ? `${p}.self_attn.q_norm.weight` : undefined,
    kNorm: arch.qkNorm ? `${p}.self_attn.k_norm.weight` : undefined,
    qkvBias: arch.qkvBias ? { q: `${p}.self_attn.q_proj.bias`, k: `${p}.self_attn.k_proj.bias`, v: `${p}.self_attn.v_proj.bias` } : undefined,
  };
}

export const globalNames = (arch: MoeArchitecture) => ({
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: arch.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
});

/** OLMoE and Qwen3-MoE name their tensors alike: q/k norms, router `mlp.gate`, experts under `mlp.experts`. */
function qkNormMlpTensorNames(arch: MoeArchitecture): TensorNames {
  return {
    ...globalNames(arch),
    layer(l) {
      const p = `model.layers.${l}`;
      return {
        ...llamaStyleLayer(l),
        qNorm: `${p}.self_attn.q_norm.weight`,
        kNorm: `${p}.self_attn.k_norm.weight`,
        router: `${p}.mlp.gate.weight`,
        expert: mlpExpert(p),
        packed: packedExperts(p),
        denseMlp: denseMlpNames(arch, l),
      };
    },
  };
}

export const OLMOE: FamilyDescriptor = {
  name: 'olmoe',
  modelTypes: ['olmoe'],
  architecture(config, file) {
    const experts = requireExperts(config, file, 'olmoe', 'num_experts');
    noAttentionBias(config, file, 'OLMoE');
    return {
      ...common(
        config,
        file,
        'olmoe',
        experts,
        int(config, file, 'num_experts_per_tok', defaultOf('olmoe', 'num_experts_per_tok')),
        int(config, file, 'intermediate_size'),
      ),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: flag(config, file, 'norm_topk_prob', flagDefaultOf('olmoe', 'norm_topk_prob')),
      qkNorm: 'full',
    };
  },
  tensorNames: qkNormMlpTensorNames,
};

export const MIXTRAL: FamilyDescriptor = {
  name: 'mixtral',
  modelTypes: ['mixtral'],
  architecture(config, file) {
    const experts = requireExperts(config, file, 'mixtral', 'num_local_experts');
    return {
      // transformers' MixtralConfig defaults rope_theta to 1e6 (configFields.ts).
      ...common(
        config,
        file,
        'mixtral',
        experts,
        int(config, file, 'num_experts_per_tok', defaultOf('mixtral', 'num_experts_per_tok')),
        int(config, file, 'intermediate_size'),
      ),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: true,
      slidingWindow: config.sliding_window === undefined || config.sliding_window === null ? null : int(config, file, 'sliding_window'),
    };
  },
  tensorNames(arch) {
    return {
      ...globalNames(arch),
      layer(l) {
        const p = `model.layers.${l}`;
        return {
          ...llamaStyleLayer(l),
          router: `${p}.block_sparse_moe.gate.weight`,
          expert: (e) => ({
            gate: `${p}.block_sparse_moe.experts.${e}.w1.weight`,
            up: `${p}.block_sparse_moe.experts.${e}.w3.weight`,
            down: `${p}.block_sparse_moe.experts.${e}.w2.weight`,
          }),
        };
      },
    };
  },
};

export const QWEN2_MOE: FamilyDescriptor = {
  name: 'qwen2_moe',
  modelTypes: ['qwen2_moe'],
  architecture(config, file) {
    const experts = requireExperts(config, file, 'qwen2_moe', 'num_experts');
    const dense = qwenDenseLayers(config, file);
    if (flag(config, file, 'use_sliding_window', false)) refuse(file, 'use_sliding_window', true, "Qwen2-MoE's per-layer sliding windows are not implemented");
    requireFullAttentionLayers(config, file);
    // A missing size means transformers' default, i.e. a shared expert whose tensors must be there.
    const sharedInter = countOf(config, file, 'qwen2_moe', 'shared_expert_intermediate_size');
    return {
      ...common(
        config,
        file,
        'qwen2_moe',
        experts,
        int(config, file, 'num_experts_per_tok', defaultOf('qwen2_moe', 'num_experts_per_tok')),
        int(config, file, 'moe_intermediate_size'),
      ),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: flag(config, file, 'norm_topk_prob', flagDefaultOf('qwen2_moe', 'norm_topk_prob')),
      sharedExpert: sharedInter > 0 ? { intermediate: sharedInter } : null,
      // Qwen2's attention carries q/k/v biases unless qkv_bias says otherwise (transformers' default: true).
      qkvBias: flag(config, file, 'qkv_bias', true),
      ...dense,
    };
  },
  tensorNames(arch) {
    return {
      ...globalNames(arch),
      layer(l) {
        const p = `model.layers.${l}`;
        return {
          ...standardAttentionNames(arch, l),
          router: `${p}.mlp.gate.weight`,
          expert: mlpExpert(p),
          denseMlp: denseMlpNames(arch, l),
          shared: arch.sharedExpert ? { ...swigluNames(`${p}.mlp.shared_expert`), gateScale: `${p}.mlp.shared_expert_gate.weight` } : undefined,
        };
      },
    };
  },
};

/** Qwen3-MoE (Qwen3-30B-A3B and family): per-head q/k RMSNorm, no shared expert, no q/k/v biases. */
export const QWEN3_MOE: FamilyDescriptor = {
  name: 'qwen3_moe',
  modelTypes: ['qwen3_moe'],
  architecture(config, file) {
    const experts = requireExperts(config, file, 'qwen3_moe', 'num_experts');
    const dense = qwenDenseLayers(config, file);
    noAttentionBias(config, file, 'Qwen3-MoE');
    // transformers' Qwen3-MoE applies one window in every layer when use_sliding_window is set.
    const window = flag(config, file, 'use_sliding_window', false) ? int(config, file, 'sliding_window') : null;
    return {
      ...common(
        config,
        file,
        'qwen3_moe',
        experts,
        int(config, file, 'num_experts_per_tok', defaultOf('qwen3_moe', 'num_experts_per_tok')),
        int(config, file, 'moe_intermediate_size'),
      ),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: flag(config, file, 'norm_topk_prob', flagDefaultOf('qwen3_moe', 'norm_topk_prob')),
      qkNorm: 'per-head',
      slidingWindow: window,
      ...dense,
    };
  },
  tensorNames: qkNormMlpTensorNames,
};

export const FAMILIES: readonly FamilyDescriptor[] = [OLMOE, MIXTRAL, QWEN2_MOE, QWEN3_MOE, ...EXTENDED_FAMILIES];

/** Dense relatives users may point at by mistake; named so the message can say what they are. */
const KNOWN_DENSE = ['olmo', 'olmo2', 'olmo3', 'llama', 'mistral', 'qwen2', 'qwen3', 'gpt2', 'gpt_neox', 'phi3', 'gemma', 'gemma2'];

export function supportedModelTypes(): string[] {
  return FAMILIES.flatMap((f) => [...f.modelTypes]);
}

export function familyFor(config: HfConfig, file: string): FamilyDescriptor {
  const type = config.model_type;
  if (typeof type !== 'string') throw new ConfigError(file, `no "model_type": expected one of ${supportedModelTypes().join(', ')}`);
  const family = FAMILIES.find((f) => f.modelTypes.includes(type));
  if (family) return family;
  if (KNOWN_DENSE.includes(type)) {
    throw new ConfigError(
      file,
      `model_type "${type}" is a dense model (no experts): MoE Scope needs a Mixture-of-Experts checkpoint; supported model types: ${supportedModelTypes().join(', ')}`,
    );
  }
  if ((MOE_FAMILIES as readonly string[]).includes(type) || type === 'llama4_text' || type === 'qwen3_5_moe_text')
    throw new UnsupportedByEngineError(
      file,
      `model_type "${type}" is a Mixture-of-Experts family the ONNX Runtime engine does not build; ${PYTORCH_HINT}. The ONNX Runtime engine builds: ${supportedModelTypes().join(', ')}`,
    );
  throw new ConfigError(
    file,
    `unsupported model_type "${type}"; the ONNX Runtime engine builds: ${supportedModelTypes().join(', ')}; the PyTorch engine (--engine pytorch) runs the MoE families transformers implements`,
  );
}
