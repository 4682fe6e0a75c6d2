/**
 * Model families as small descriptors: how a Hugging Face config.json maps onto one shared MoE decoder
 * architecture, and where each tensor lives in the checkpoint. The graph builder knows only
 * `MoeArchitecture` and `TensorNames`; adding a family means adding a descriptor here.
 */
import { InputError } from '../shared/inputError';
import type { ModelFamilyName } from '../shared/protocol';

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
  ropeTheta: number;
  rmsNormEps: number;
  /** Rescale the k chosen softmax values to sum to 1 (Mixtral, Qwen with norm_topk_prob). */
  normTopKProb: boolean;
  /** OLMoE: RMSNorm over the full q and k projections before the split into heads. */
  qkNorm: boolean;
  tieWordEmbeddings: boolean;
  clipQkv: number | null;
  /** Qwen2-MoE: a dense expert every token goes through, scaled by sigmoid(shared_expert_gate(x)). */
  sharedExpert: { intermediate: number } | null;
  /** Biases on the q, k and v projections (Qwen2-MoE). */
  qkvBias: boolean;
  /** Mixtral: a key is visible from query t only when t - window < key position. */
  slidingWindow: number | null;
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
  shared?: { gate: string; up: string; down: string; gateScale: string };
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

function int(config: HfConfig, file: string, key: string, fallback?: number): number {
  const v = config[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(file, `missing "${key}" (a positive integer)`);
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(file, `"${key}" must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function num(config: HfConfig, key: string, fallback: number): number {
  const v = config[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function common(config: HfConfig, file: string, family: ModelFamilyName, experts: number, topK: number, expertInter: number) {
  const hiddenSize = int(config, file, 'hidden_size');
  const numHeads = int(config, file, 'num_attention_heads');
  const numKvHeads = int(config, file, 'num_key_value_heads', numHeads);
  const headDim = int(config, file, 'head_dim', Math.floor(hiddenSize / numHeads));
  if (numHeads % numKvHeads !== 0) throw new ConfigError(file, `num_attention_heads (${numHeads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  if (headDim % 2 !== 0) throw new ConfigError(file, `head_dim ${headDim} must be even for rotary embeddings`);
  if (topK > experts) throw new ConfigError(file, `num_experts_per_tok (${topK}) exceeds the number of experts (${experts})`);
  const clip = config.clip_qkv;
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
    maxPositions: int(config, file, 'max_position_embeddings', 4096),
    ropeTheta: num(config, 'rope_theta', 10000),
    rmsNormEps: num(config, 'rms_norm_eps', 1e-5),
    tieWordEmbeddings: config.tie_word_embeddings === true,
    clipQkv: typeof clip === 'number' ? clip : null,
  };
}

function requireExperts(config: HfConfig, file: string, key: string): number {
  const v = config[key];
  if (v === undefined || v === null || v === 0 || v === 1) {
    throw new ConfigError(
      file,
      `model_type "${String(config.model_type)}" without "${key}" > 1 is a dense model: MoE Scope needs a Mixture-of-Experts checkpoint`,
    );
  }
  return int(config, file, key);
}

function llamaStyleLayer(l: number): Omit<LayerTensorNames, 'router' | 'expert'> {
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
const mlpExpert =
  (p: string) =>
  (e: number): ExpertTensorNames => ({
    gate: `${p}.mlp.experts.${e}.gate_proj.weight`,
    up: `${p}.mlp.experts.${e}.up_proj.weight`,
    down: `${p}.mlp.experts.${e}.down_proj.weight`,
  });

const globalNames = (arch: MoeArchitecture) => ({
  embed: 'model.embed_tokens.weight',
  finalNorm: 'model.norm.weight',
  lmHead: arch.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight',
});

export const OLMOE: FamilyDescriptor = {
  name: 'olmoe',
  modelTypes: ['olmoe'],
  architecture(config, file) {
    const experts = requireExperts(config, file, 'num_experts');
    return {
      ...common(config, file, 'olmoe', experts, int(config, file, 'num_experts_per_tok', 8), int(config, file, 'intermediate_size')),
      normTopKProb: config.norm_topk_prob === true,
      qkNorm: true,
      sharedExpert: null,
      qkvBias: false,
      slidingWindow: null,
    };
  },
  tensorNames(arch) {
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
          packed: { gateUp: `${p}.mlp.experts.gate_up_proj`, down: `${p}.mlp.experts.down_proj` },
        };
      },
    };
  },
};

export const MIXTRAL: FamilyDescriptor = {
  name: 'mixtral',
  modelTypes: ['mixtral'],
  architecture(config, file) {
    const experts = requireExperts(config, file, 'num_local_experts');
    return {
      ...common(config, file, 'mixtral', experts, int(config, file, 'num_experts_per_tok', 2), int(config, file, 'intermediate_size')),
      normTopKProb: true,
      qkNorm: false,
      sharedExpert: null,
      qkvBias: false,
      slidingWindow: typeof config.sliding_window === 'number' && config.sliding_window > 0 ? config.sliding_window : null,
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
    const experts = requireExperts(config, file, 'num_experts');
    const mlpOnly = config.mlp_only_layers;
    if (Array.isArray(mlpOnly) && mlpOnly.length > 0) {
      throw new ConfigError(file, `mlp_only_layers ${JSON.stringify(mlpOnly)}: checkpoints with dense layers are not supported yet`);
    }
    if (num(config, 'decoder_sparse_step', 1) !== 1) throw new ConfigError(file, 'decoder_sparse_step other than 1 is not supported yet');
    const sharedInter = config.shared_expert_intermediate_size;
    return {
      ...common(config, file, 'qwen2_moe', experts, int(config, file, 'num_experts_per_tok', 4), int(config, file, 'moe_intermediate_size')),
      normTopKProb: config.norm_topk_prob === true,
      qkNorm: false,
      sharedExpert: typeof sharedInter === 'number' && sharedInter > 0 ? { intermediate: sharedInter } : null,
      // Qwen2's attention always carries q/k/v biases.
      qkvBias: config.qkv_bias !== false,
      slidingWindow: null,
    };
  },
  tensorNames(arch) {
    return {
      ...globalNames(arch),
      layer(l) {
        const p = `model.layers.${l}`;
        return {
          ...llamaStyleLayer(l),
          router: `${p}.mlp.gate.weight`,
          qkvBias: arch.qkvBias ? { q: `${p}.self_attn.q_proj.bias`, k: `${p}.self_attn.k_proj.bias`, v: `${p}.self_attn.v_proj.bias` } : undefined,
          expert: mlpExpert(p),
          shared: arch.sharedExpert
            ? {
                gate: `${p}.mlp.shared_expert.gate_proj.weight`,
                up: `${p}.mlp.shared_expert.up_proj.weight`,
                down: `${p}.mlp.shared_expert.down_proj.weight`,
                gateScale: `${p}.mlp.shared_expert_gate.weight`,
              }
            : undefined,
        };
      },
    };
  },
};

export const FAMILIES: readonly FamilyDescriptor[] = [OLMOE, MIXTRAL, QWEN2_MOE];

/** Dense relatives users may point at by mistake; named so the message can say what they are. */
const KNOWN_DENSE = ['olmo', 'olmo2', 'llama', 'mistral', 'qwen2', 'qwen3', 'gpt2', 'gpt_neox', 'phi3', 'gemma', 'gemma2'];

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
  throw new ConfigError(file, `unsupported model_type "${type}"; supported model types: ${supportedModelTypes().join(', ')}`);
}
