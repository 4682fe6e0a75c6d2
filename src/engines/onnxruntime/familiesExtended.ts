/**
 * Families beyond the original four, on the features of familyFeatures.ts: DeepSeek-V3-style routing
 * (sigmoid scores, a correction bias to choose, group-limited top-k, routed scaling), dense first layers,
 * ungated shared experts and multi-head latent attention. Imported only by families.ts (its FAMILIES
 * list); the helpers it uses from there are functions, so the import cycle is harmless.
 */
import type { ModelFamilyName } from '../../shared/protocol';
import {
  common,
  ConfigError,
  countOf,
  defaultOf,
  denseMlpNames,
  flagDefaultOf,
  flag,
  globalNames,
  int,
  layerCount,
  llamaStyleLayer,
  mlpExpert,
  noAttentionBias,
  packedExperts,
  PLAIN_LAYER_FEATURES,
  positive,
  refuse,
  requireExperts,
  requireFullAttentionLayers,
  standardAttentionNames,
  swigluNames,
  type FamilyDescriptor,
  type HfConfig,
  type LayerTensorNames,
  type MoeArchitecture,
  type TensorNames,
} from './families';
import { readRope, RopeConfigError } from './rope';
import type { GraphRouter, MlaAttention } from './familyFeatures';

/** The rotary settings over `dim` values of each head, partial_rotary_factor already applied by the caller. */
function ropeOver(config: HfConfig, file: string, dim: number, maxPositions: number, defaultTheta: number) {
  const stripped: HfConfig = { ...config };
  delete stripped.partial_rotary_factor;
  if (stripped.rope_parameters && typeof stripped.rope_parameters === 'object' && !Array.isArray(stripped.rope_parameters)) {
    const params = { ...(stripped.rope_parameters as Record<string, unknown>) };
    delete params.partial_rotary_factor;
    stripped.rope_parameters = params;
  }
  try {
    return readRope(stripped, defaultTheta, dim, maxPositions);
  } catch (e) {
    if (e instanceof RopeConfigError) throw new ConfigError(file, e.message);
    throw e;
  }
}

/** A field that must be absent or hold the one value the implemented rule matches. */
function expectValue(config: HfConfig, file: string, key: string, allowed: readonly unknown[], why: string): void {
  const v = config[key];
  if (v !== undefined && v !== null && !allowed.includes(v)) refuse(file, key, v, why);
}

function nonNegativeInt(config: HfConfig, file: string, key: string, fallback: number): number {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new ConfigError(file, `"${key}" must be an integer >= 0, got ${JSON.stringify(v)}`);
  return v;
}

/** first_k_dense_replace: the first k decoder layers are dense MLPs, the rest MoE. */
function firstKDense(config: HfConfig, file: string, family: ModelFamilyName, numLayers: number): number[] {
  const k = countOf(config, file, family, 'first_k_dense_replace');
  if (k >= numLayers) throw new ConfigError(file, `"first_k_dense_replace" (${k}) leaves no MoE layer of the ${numLayers}`);
  expectValue(config, file, 'moe_layer_freq', [1], 'only every layer after first_k_dense_replace being MoE (moe_layer_freq 1) is implemented');
  return Array.from({ length: numLayers - k }, (_, i) => k + i);
}

function groupLimits(config: HfConfig, file: string, family: ModelFamilyName, experts: number, topK: number, score: 'max' | 'top2-sum', maskedScore: number) {
  const n = int(config, file, 'n_group', defaultOf(family, 'n_group'));
  const topk = int(config, file, 'topk_group', defaultOf(family, 'topk_group'));
  if (experts % n !== 0) throw new ConfigError(file, `"n_routed_experts" (${experts}) is not a multiple of "n_group" (${n})`);
  if (topk > n) throw new ConfigError(file, `"topk_group" (${topk}) exceeds "n_group" (${n})`);
  if (topk * (experts / n) < topK) throw new ConfigError(file, `"topk_group" ${topk} of ${n} groups hold fewer experts than num_experts_per_tok (${topK})`);
  if (score === 'top2-sum' && experts / n < 2) throw new ConfigError(file, `groups of one expert: the group score sums each group's best two experts`);
  return { n, topk, score, maskedScore };
}

/** The DeepSeek-V3 router as DeepseekV3TopkRouter, Glm4MoeTopkRouter and Dots1TopkRouter compute it. */
function sigmoidBiasGroupRouter(config: HfConfig, file: string, family: ModelFamilyName, experts: number, topK: number): GraphRouter {
  expectValue(config, file, 'scoring_func', ['sigmoid'], 'this family routes with sigmoid scores (transformers reads no other scoring_func)');
  expectValue(config, file, 'topk_method', ['noaux_tc'], 'this family routes with a correction bias and group-limited top-k (noaux_tc)');
  return {
    kind: 'sigmoid-bias-group',
    score: 'sigmoid',
    choiceBias: true,
    groups: groupLimits(config, file, family, experts, topK, 'top2-sum', -Infinity),
    renormalize: flag(config, file, 'norm_topk_prob', flagDefaultOf(family, 'norm_topk_prob')) ? { p: 1, eps: 1e-20 } : null,
    routedScaling: positive(config, file, 'routed_scaling_factor', defaultOf(family, 'routed_scaling_factor') ?? 1),
  };
}

/** Dense layers, routed experts (packed or per expert) with a correction bias, ungated shared experts. */
function deepseekStyleMlp(arch: MoeArchitecture, l: number): Omit<LayerTensorNames, 'inputNorm' | 'postAttentionNorm' | 'q' | 'k' | 'v' | 'o'> {
  const p = `model.layers.${l}`;
  const dense = !(arch.moeLayers ?? []).includes(l);
  return {
    router: `${p}.mlp.gate.weight`,
    routerChoiceBias: !dense && arch.router?.choiceBias ? `${p}.mlp.gate.e_score_correction_bias` : undefined,
    expert: mlpExpert(p),
    packed: packedExperts(p),
    shared: arch.sharedExpert ? swigluNames(`${p}.mlp.shared_experts`) : undefined,
    denseMlp: dense ? swigluNames(`${p}.mlp`) : undefined,
  };
}

/** The shared experts of DeepSeek-style families: one MLP n_shared_experts times moe_intermediate_size wide. */
function sharedExperts(config: HfConfig, file: string, family: ModelFamilyName, expertInter: number): { intermediate: number; count: number } | null {
  const n = countOf(config, file, family, 'n_shared_experts');
  return n > 0 ? { intermediate: n * expertInter, count: n } : null;
}

/** Full attention in every layer, and no sliding window at all. */
function requireFullAttention(config: HfConfig, file: string): void {
  requireFullAttentionLayers(config, file);
  if (flag(config, file, 'use_sliding_window', false)) refuse(file, 'use_sliding_window', true, 'sliding-window attention is not implemented for this family');
}

function deepseekCommon(config: HfConfig, file: string, family: ModelFamilyName) {
  const experts = int(config, file, 'n_routed_experts');
  if (experts < 2) throw new ConfigError(file, `"n_routed_experts" ${experts}: MoE Scope needs a Mixture-of-Experts checkpoint`);
  const topK = int(config, file, 'num_experts_per_tok', defaultOf(family, 'num_experts_per_tok'));
  const expertInter = int(config, file, 'moe_intermediate_size');
  const numLayers = layerCount(config, file, 'num_hidden_layers');
  return { experts, topK, expertInter, moeLayers: firstKDense(config, file, family, numLayers), denseIntermediate: int(config, file, 'intermediate_size') };
}

/** The MoE half of a DeepSeek-style layer stack: shared experts, which layers are MoE, the dense width, the router. */
function deepseekMoeFeatures(
  config: HfConfig,
  file: string,
  family: ModelFamilyName,
  d: ReturnType<typeof deepseekCommon>,
  router: (experts: number, topK: number) => GraphRouter,
): Pick<MoeArchitecture, 'sharedExpert' | 'moeLayers' | 'denseIntermediate' | 'router'> {
  const sharedExpert = sharedExperts(config, file, family, d.expertInter);
  return { sharedExpert, moeLayers: d.moeLayers, denseIntermediate: d.denseIntermediate, router: router(d.experts, d.topK) };
}

/** MLA dims and the attention scale (yarn's mscale_all_dim enters it squared, as in transformers). */
function mlaAttention(config: HfConfig, file: string): MlaAttention {
  if (flag(config, file, 'attention_bias', false))
    refuse(file, 'attention_bias', true, 'multi-head latent attention with projection biases is not implemented');
  const q = config.q_lora_rank;
  const nopeDim = int(config, file, 'qk_nope_head_dim');
  const ropeDim = int(config, file, 'qk_rope_head_dim');
  let scale = 1 / Math.sqrt(nopeDim + ropeDim);
  const params = (config.rope_scaling ?? config.rope_parameters ?? {}) as Record<string, unknown>;
  const type = params.rope_type ?? params.type ?? 'default';
  if (type !== 'default') {
    const all = typeof params.mscale_all_dim === 'number' ? params.mscale_all_dim : 0;
    const factor = typeof params.factor === 'number' ? params.factor : 1;
    if (all) {
      const m = factor <= 1 ? 1 : 0.1 * all * Math.log(factor) + 1;
      scale *= m * m;
    }
  }
  return {
    qLoraRank: q === undefined || q === null ? null : int(config, file, 'q_lora_rank'),
    kvLoraRank: int(config, file, 'kv_lora_rank'),
    nopeDim,
    ropeDim,
    valueDim: int(config, file, 'v_head_dim'),
    scale,
  };
}

function mlaNames(arch: MoeArchitecture): TensorNames {
  return {
    ...globalNames(arch),
    layer(l) {
      const p = `model.layers.${l}`;
      const a = `${p}.self_attn`;
      return {
        ...llamaStyleLayer(l),
        ...deepseekStyleMlp(arch, l),
        mla:
          arch.mla!.qLoraRank === null
            ? { q: `${a}.q_proj.weight`, kvA: `${a}.kv_a_proj_with_mqa.weight`, kvANorm: `${a}.kv_a_layernorm.weight`, kvB: `${a}.kv_b_proj.weight` }
            : {
                qA: `${a}.q_a_proj.weight`,
                qANorm: `${a}.q_a_layernorm.weight`,
                qB: `${a}.q_b_proj.weight`,
                kvA: `${a}.kv_a_proj_with_mqa.weight`,
                kvANorm: `${a}.kv_a_layernorm.weight`,
                kvB: `${a}.kv_b_proj.weight`,
              },
      };
    },
  };
}

function mlaArchitecture(
  config: HfConfig,
  file: string,
  family: 'deepseek_v2' | 'deepseek_v3',
  router: (experts: number, topK: number) => GraphRouter,
  interleaved: boolean,
): MoeArchitecture {
  const d = deepseekCommon(config, file, family);
  const ropeDim = int(config, file, 'qk_rope_head_dim');
  // The rotary part is what the rotary tables cover: head_dim here means qk_rope_head_dim.
  const base = common({ ...config, head_dim: ropeDim, num_key_value_heads: config.num_attention_heads }, file, family, d.experts, d.topK, d.expertInter);
  return {
    ...base,
    ...PLAIN_LAYER_FEATURES,
    normTopKProb: false,
    ...deepseekMoeFeatures(config, file, family, d, router),
    ropeInterleaved: interleaved,
    mla: mlaAttention(config, file),
  };
}

export const DEEPSEEK_V3: FamilyDescriptor = {
  name: 'deepseek_v3',
  modelTypes: ['deepseek_v3'],
  architecture(config, file) {
    return mlaArchitecture(
      config,
      file,
      'deepseek_v3',
      (e, k) => sigmoidBiasGroupRouter(config, file, 'deepseek_v3', e, k),
      flag(config, file, 'rope_interleave', true),
    );
  },
  tensorNames: mlaNames,
};

export const DEEPSEEK_V2: FamilyDescriptor = {
  name: 'deepseek_v2',
  modelTypes: ['deepseek_v2'],
  architecture(config, file) {
    if (flag(config, file, 'mlp_bias', false)) refuse(file, 'mlp_bias', true, 'MLPs with biases are not implemented');
    return mlaArchitecture(
      config,
      file,
      'deepseek_v2',
      (experts, topK) => {
        const method = config.topk_method ?? 'greedy';
        if (method !== 'greedy' && method !== 'group_limited_greedy')
          refuse(file, 'topk_method', method, 'DeepSeek-V2 routing is implemented as transformers has it: greedy or group_limited_greedy');
        expectValue(config, file, 'scoring_func', ['softmax'], 'DeepSeek-V2 routes with softmax scores');
        return {
          kind: 'softmax-group-scaled',
          score: 'softmax',
          choiceBias: false,
          // transformers' DeepseekV2TopkRouter ignores norm_topk_prob: the weights are never renormalised.
          groups: method === 'group_limited_greedy' ? groupLimits(config, file, 'deepseek_v2', experts, topK, 'max', 0) : null,
          renormalize: null,
          routedScaling: positive(config, file, 'routed_scaling_factor', defaultOf('deepseek_v2', 'routed_scaling_factor') ?? 1),
        };
      },
      // transformers rotates DeepSeek-V2's rotary part as complex pairs (x0 + i x1, ...).
      true,
    );
  },
  tensorNames: mlaNames,
};

const standardAttentionDeepseekMlpNames = (arch: MoeArchitecture): TensorNames => ({
  ...globalNames(arch),
  layer: (l) => ({ ...standardAttentionNames(arch, l), ...deepseekStyleMlp(arch, l) }),
});

/** GLM-4.5 / 4.6 (Glm4MoeForCausalLM): partial rotary embeddings, optional q/k/v biases and per-head QK-norm. */
export const GLM4_MOE: FamilyDescriptor = {
  name: 'glm4_moe',
  modelTypes: ['glm4_moe'],
  architecture(config, file) {
    const d = deepseekCommon(config, file, 'glm4_moe');
    requireFullAttention(config, file);
    const params = (config.rope_parameters ?? {}) as Record<string, unknown>;
    const prf = params.partial_rotary_factor ?? config.partial_rotary_factor ?? 0.5;
    if (typeof prf !== 'number' || !(prf > 0 && prf <= 1))
      throw new ConfigError(file, `"partial_rotary_factor" must be a number in (0, 1], got ${JSON.stringify(prf)}`);
    const base = common(
      { ...config, partial_rotary_factor: undefined, rope_parameters: { ...params, partial_rotary_factor: undefined } },
      file,
      'glm4_moe',
      d.experts,
      d.topK,
      d.expertInter,
    );
    const rotaryDim = Math.floor(base.headDim * prf);
    if (rotaryDim % 2 !== 0) throw new ConfigError(file, `partial_rotary_factor ${prf} of head_dim ${base.headDim} gives an odd rotary width ${rotaryDim}`);
    return {
      ...base,
      rope: ropeOver(config, file, rotaryDim, base.maxPositions, defaultOf('glm4_moe', 'rope_theta') ?? 10000),
      rotaryDim,
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: false,
      qkNorm: flag(config, file, 'use_qk_norm', false) ? 'per-head' : null,
      qkvBias: flag(config, file, 'attention_bias', false),
      ...deepseekMoeFeatures(config, file, 'glm4_moe', d, (e, k) => sigmoidBiasGroupRouter(config, file, 'glm4_moe', e, k)),
    };
  },
  tensorNames: standardAttentionDeepseekMlpNames,
};

/** dots.llm1 (Dots1ForCausalLM): Qwen3-style attention with per-head QK-norm, DeepSeek-V3 routing. */
export const DOTS1: FamilyDescriptor = {
  name: 'dots1',
  modelTypes: ['dots1'],
  architecture(config, file) {
    const d = deepseekCommon(config, file, 'dots1');
    requireFullAttention(config, file);
    noAttentionBias(config, file, 'dots.llm1');
    return {
      ...common(config, file, 'dots1', d.experts, d.topK, d.expertInter),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: false,
      qkNorm: 'per-head',
      ...deepseekMoeFeatures(config, file, 'dots1', d, (e, k) => sigmoidBiasGroupRouter(config, file, 'dots1', e, k)),
    };
  },
  tensorNames: standardAttentionDeepseekMlpNames,
};

/** ERNIE 4.5 MoE: softmax weights, a bias (moe_statics) only to choose, MoE layers in a start/end/interval band. */
export const ERNIE4_5_MOE: FamilyDescriptor = {
  name: 'ernie4_5_moe',
  modelTypes: ['ernie4_5_moe'],
  architecture(config, file) {
    if (flag(config, file, 'use_bias', false)) refuse(file, 'use_bias', true, 'ERNIE 4.5 with projection biases is not implemented');
    const pick = (key: string, alias: string) => (config[key] !== undefined && config[key] !== null ? key : alias);
    const experts = int(config, file, pick('moe_num_experts', 'num_experts'));
    if (experts < 2) throw new ConfigError(file, `"moe_num_experts" ${experts}: MoE Scope needs a Mixture-of-Experts checkpoint`);
    const topK = int(config, file, pick('moe_k', 'num_experts_per_tok'), defaultOf('ernie4_5_moe', 'num_experts_per_tok'));
    const expertInter = int(config, file, 'moe_intermediate_size');
    const numLayers = layerCount(config, file, 'num_hidden_layers');
    const start = nonNegativeInt(config, file, 'moe_layer_start_index', 1);
    const endRaw = config.moe_layer_end_index ?? -1;
    const end = endRaw === -1 ? numLayers - 1 : nonNegativeInt(config, file, 'moe_layer_end_index', numLayers - 1);
    const interval = int(config, file, 'moe_layer_interval', 1);
    const moeLayers = Array.from({ length: numLayers }, (_, l) => l).filter((l) => (l + 1) % interval === 0 && l >= start && l <= end);
    if (moeLayers.length === 0) throw new ConfigError(file, `moe_layer_start_index, moe_layer_end_index and moe_layer_interval leave no MoE layer`);
    const shared = countOf(config, file, 'ernie4_5_moe', 'moe_num_shared_experts');
    const normMin = config.moe_norm_min === undefined || config.moe_norm_min === null ? 1e-12 : positive(config, file, 'moe_norm_min', 1e-12);
    return {
      ...common(config, file, 'ernie4_5_moe', experts, topK, expertInter),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: false,
      sharedExpert: shared > 0 ? { intermediate: shared * expertInter, count: shared } : null,
      moeLayers: moeLayers.length === numLayers ? undefined : moeLayers,
      denseIntermediate: int(config, file, 'intermediate_size'),
      // ERNIE rotates adjacent pairs (its rotate_half interleaves).
      ropeInterleaved: true,
      router: {
        kind: 'softmax-bias-choice',
        score: 'softmax',
        choiceBias: true,
        choiceBiasAsRow: true,
        groups: null,
        renormalize: { p: 1, eps: 0, min: normMin },
        routedScaling: 1,
      },
    };
  },
  tensorNames: (arch) => ({
    ...globalNames(arch),
    layer(l) {
      const p = `model.layers.${l}`;
      return {
        ...llamaStyleLayer(l),
        router: `${p}.mlp.gate.weight`,
        routerChoiceBias: `${p}.mlp.moe_statics.e_score_correction_bias`,
        expert: mlpExpert(p),
        packed: packedExperts(p),
        shared: arch.sharedExpert ? swigluNames(`${p}.mlp.shared_experts`) : undefined,
        denseMlp: denseMlpNames(arch, l),
      };
    },
  }),
};

/** A per-layer list (HunYuan's num_experts / moe_topk may be one) is not implemented: one value for every layer. */
function singleInt(config: HfConfig, file: string, key: string, fallback?: number): number {
  if (Array.isArray(config[key])) refuse(file, key, config[key], 'per-layer values are not implemented; one value for every layer is');
  return int(config, file, key, fallback);
}

/** FlexOlmo: OLMo-2-style post-norm layers (norms on the sublayer outputs), full-width QK-norm, softmax top-k. */
export const FLEX_OLMO: FamilyDescriptor = {
  name: 'flex_olmo',
  modelTypes: ['flex_olmo'],
  architecture(config, file) {
    noAttentionBias(config, file, 'FlexOlmo');
    const experts = requireExperts(config, file, 'flex_olmo', 'num_experts');
    return {
      ...common(
        config,
        file,
        'flex_olmo',
        experts,
        int(config, file, 'num_experts_per_tok', defaultOf('flex_olmo', 'num_experts_per_tok')),
        int(config, file, 'intermediate_size'),
      ),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: flag(config, file, 'norm_topk_prob', flagDefaultOf('flex_olmo', 'norm_topk_prob')),
      qkNorm: 'full',
      postNorm: true,
    };
  },
  tensorNames: (arch) => ({
    ...globalNames(arch),
    layer(l) {
      const p = `model.layers.${l}`;
      return {
        ...standardAttentionNames(arch, l),
        postFeedforwardNorm: `${p}.post_feedforward_layernorm.weight`,
        router: `${p}.mlp.gate.weight`,
        expert: mlpExpert(p),
        packed: packedExperts(p),
      };
    },
  }),
};

function granite(name: 'granitemoe' | 'granitemoeshared'): FamilyDescriptor {
  return {
    name,
    modelTypes: [name],
    architecture(config, file) {
      noAttentionBias(config, file, 'Granite MoE');
      const experts = singleInt(config, file, 'num_local_experts');
      const shared = name === 'granitemoeshared' ? countOf(config, file, name, 'shared_intermediate_size') : 0;
      return {
        ...common(
          config,
          file,
          name,
          experts,
          int(config, file, 'num_experts_per_tok', defaultOf(name, 'num_experts_per_tok')),
          int(config, file, 'intermediate_size'),
        ),
        ...PLAIN_LAYER_FEATURES,
        // top-k of the logits, then a softmax over those k: the softmax probabilities renormalised over the k.
        normTopKProb: true,
        sharedExpert: shared > 0 ? { intermediate: shared } : null,
        multipliers: {
          embedding: positive(config, file, 'embedding_multiplier', 1),
          residual: positive(config, file, 'residual_multiplier', 1),
          attention: positive(config, file, 'attention_multiplier', 1),
          logitsDivisor: positive(config, file, 'logits_scaling', 1),
        },
      };
    },
    tensorNames: (arch) => ({
      ...globalNames(arch),
      layer(l) {
        const p = `model.layers.${l}`;
        return {
          ...llamaStyleLayer(l),
          router: `${p}.block_sparse_moe.router.layer.weight`,
          // Granite stores its experts packed only: input_linear [E, 2 * inter, hidden] (gate rows first), output_linear [E, hidden, inter].
          expert: (e) => ({
            gate: `${p}.block_sparse_moe.experts.${e}.gate`,
            up: `${p}.block_sparse_moe.experts.${e}.up`,
            down: `${p}.block_sparse_moe.experts.${e}.down`,
          }),
          packed: { gateUp: `${p}.block_sparse_moe.input_linear.weight`, down: `${p}.block_sparse_moe.output_linear.weight` },
          sharedFused: arch.sharedExpert ? { gateUp: `${p}.shared_mlp.input_linear.weight`, down: `${p}.shared_mlp.output_linear.weight` } : undefined,
        };
      },
    }),
  };
}

export const GRANITEMOE = granite('granitemoe');
export const GRANITEMOESHARED = granite('granitemoeshared');

/** Hunyuan-A13B (HunYuanMoEV1): QK-norm per head after the rotary embedding, renormalised softmax top-k, a shared MLP. */
export const HUNYUAN_V1_MOE: FamilyDescriptor = {
  name: 'hunyuan_v1_moe',
  modelTypes: ['hunyuan_v1_moe'],
  architecture(config, file) {
    noAttentionBias(config, file, 'HunYuan');
    const experts = singleInt(config, file, 'num_experts');
    const inter = int(config, file, 'intermediate_size');
    return {
      ...common(config, file, 'hunyuan_v1_moe', experts, singleInt(config, file, 'moe_topk'), inter),
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: true,
      qkNorm: 'per-head',
      qkNormAfterRope: true,
      // transformers builds the shared MLP of every MoE block at intermediate_size.
      sharedExpert: { intermediate: inter },
    };
  },
  tensorNames: (arch) => ({
    ...globalNames(arch),
    layer(l) {
      const p = `model.layers.${l}`;
      return {
        ...llamaStyleLayer(l),
        qNorm: `${p}.self_attn.query_layernorm.weight`,
        kNorm: `${p}.self_attn.key_layernorm.weight`,
        router: `${p}.mlp.gate.wg.weight`,
        expert: mlpExpert(p),
        packed: packedExperts(p),
        shared: swigluNames(`${p}.mlp.shared_mlp`),
      };
    },
  }),
};

function dict(config: HfConfig, file: string, key: string): HfConfig {
  const v = config[key];
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigError(file, `"${key}" must be an object, got ${JSON.stringify(v)}`);
  return v as HfConfig;
}

/**
 * DBRX: LayerNorm without bias, one Wqkv projection clamped at clip_qkv, softmax top-k divided by the
 * p-norm of the k (moe_normalize_expert_weights; p = 1 is the usual renormalisation), experts stored as
 * w1 / v1 / w2 rows. Its sizes live in attn_config and ffn_config.
 */
export const DBRX: FamilyDescriptor = {
  name: 'dbrx',
  modelTypes: ['dbrx'],
  architecture(config, file) {
    const attn = dict(config, file, 'attn_config');
    const ffn = dict(config, file, 'ffn_config');
    const act = dict(ffn, file, 'ffn_act_fn').name ?? 'silu';
    if (act !== 'silu') refuse(file, 'ffn_config.ffn_act_fn.name', act, 'the experts are computed as down(SiLU(gate(x)) * up(x))');
    const flat: HfConfig = {
      ...config,
      hidden_size: config.d_model,
      num_attention_heads: config.n_heads,
      num_key_value_heads: attn.kv_n_heads ?? config.n_heads,
      num_hidden_layers: config.n_layers,
      max_position_embeddings: config.max_seq_len,
      clip_qkv: attn.clip_qkv ?? null,
      // transformers 5 writes rope_parameters; older files only attn_config.rope_theta.
      rope_theta: config.rope_parameters ? undefined : attn.rope_theta,
    };
    const experts = int(ffn, file, 'moe_num_experts');
    if (experts < 2) throw new ConfigError(file, `"ffn_config.moe_num_experts" ${experts}: MoE Scope needs a Mixture-of-Experts checkpoint`);
    const topK = int(ffn, file, 'moe_top_k', 1);
    // Absent: transformers' DbrxFFNConfig default (1); an explicit null: no renormalisation, as in DbrxRouter.
    const pRaw = ffn.moe_normalize_expert_weights;
    const p = pRaw === null ? null : positive(ffn, file, 'moe_normalize_expert_weights', 1);
    const base = common(flat, file, 'dbrx', experts, topK, int(ffn, file, 'ffn_hidden_size'));
    return {
      ...base,
      ...PLAIN_LAYER_FEATURES,
      normTopKProb: p === 1,
      layerNorm: true,
      // p = 1 (the default) and no renormalisation are the MoE operator's own rules; another p is routed in the graph.
      router:
        p === null || p === 1
          ? undefined
          : { kind: 'softmax-topk-renorm', score: 'softmax', choiceBias: false, groups: null, renormalize: { p, eps: 0 }, routedScaling: 1 },
    };
  },
  tensorNames: (arch) => ({
    embed: 'transformer.wte.weight',
    finalNorm: 'transformer.norm_f.weight',
    lmHead: arch.tieWordEmbeddings ? 'transformer.wte.weight' : 'lm_head.weight',
    layer(l) {
      const p = `transformer.blocks.${l}`;
      const a = `${p}.norm_attn_norm`;
      return {
        inputNorm: `${a}.norm_1.weight`,
        postAttentionNorm: `${a}.norm_2.weight`,
        q: `${a}.attn.Wqkv.weight`,
        k: `${a}.attn.Wqkv.weight`,
        v: `${a}.attn.Wqkv.weight`,
        qkvFused: `${a}.attn.Wqkv.weight`,
        o: `${a}.attn.out_proj.weight`,
        router: `${p}.ffn.router.layer.weight`,
        expert: (e) => ({ gate: `${p}.ffn.experts.${e}.w1`, up: `${p}.ffn.experts.${e}.v1`, down: `${p}.ffn.experts.${e}.w2` }),
        stackedRows: { gate: `${p}.ffn.experts.mlp.w1`, up: `${p}.ffn.experts.mlp.v1`, down: `${p}.ffn.experts.mlp.w2` },
      };
    },
  }),
};

export const EXTENDED_FAMILIES: readonly FamilyDescriptor[] = [
  DBRX,
  DEEPSEEK_V2,
  DEEPSEEK_V3,
  GLM4_MOE,
  DOTS1,
  ERNIE4_5_MOE,
  FLEX_OLMO,
  GRANITEMOE,
  GRANITEMOESHARED,
  HUNYUAN_V1_MOE,
];
