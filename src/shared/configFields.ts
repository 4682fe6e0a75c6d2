/**
 * config.json fields both engines read, as one table: each field's type, its default per family and the other
 * names transformers maps onto it. The ONNX Runtime engine (src/engines/onnxruntime/families.ts) reads its
 * defaults and aliases from here and checks every field of the table it meets with `checkConfigFields`; the
 * PyTorch engine gets the table in protocol_names.json, checks config.json with the same rules and messages
 * before transformers reads it (python/moe_scope_worker/config_fields.py), and takes its defaults from
 * transformers, which python/tests/test_config_fields.py holds equal to this table. The cases where the two
 * engines used to disagree are in test/support/config-cases.json, run by both test suites.
 */
import type { ModelFamilyName } from './protocol';

export type ConfigFieldType = 'boolean' | 'positive-integer' | 'non-negative-integer' | 'positive-number';

export type ConfigValue = boolean | number;

export const CONFIG_FIELD_TYPES = {
  norm_topk_prob: 'boolean',
  tie_word_embeddings: 'boolean',
  routed_scaling_factor: 'positive-number',
  max_position_embeddings: 'positive-integer',
  num_experts_per_tok: 'positive-integer',
  num_experts: 'positive-integer',
  n_shared_experts: 'non-negative-integer',
  moe_num_shared_experts: 'non-negative-integer',
  shared_expert_intermediate_size: 'non-negative-integer',
  shared_intermediate_size: 'non-negative-integer',
  n_group: 'positive-integer',
  topk_group: 'positive-integer',
  first_k_dense_replace: 'non-negative-integer',
  rms_norm_eps: 'positive-number',
  rope_theta: 'positive-number',
} as const satisfies Record<string, ConfigFieldType>;

export type ConfigFieldName = keyof typeof CONFIG_FIELD_TYPES;

/**
 * transformers' default for each family that reads the field, when config.json lacks it; null: transformers
 * has none that works (the field is required). DBRX's max_position_embeddings is its max_seq_len.
 */
export const CONFIG_DEFAULTS: { readonly [F in ConfigFieldName]?: Partial<Record<ModelFamilyName, ConfigValue | null>> } = {
  norm_topk_prob: { olmoe: false, flex_olmo: false, qwen2_moe: false, qwen3_moe: false, deepseek_v3: true, glm4_moe: true, dots1: false },
  tie_word_embeddings: {
    olmoe: false,
    flex_olmo: false,
    mixtral: false,
    qwen2_moe: false,
    qwen3_moe: false,
    deepseek_v2: false,
    deepseek_v3: false,
    glm4_moe: false,
    dots1: false,
    ernie4_5_moe: true,
    granitemoe: false,
    granitemoeshared: false,
    hunyuan_v1_moe: false,
    dbrx: false,
  },
  routed_scaling_factor: { deepseek_v2: 1, deepseek_v3: 2.5, glm4_moe: 1, dots1: 1 },
  max_position_embeddings: {
    olmoe: 4096,
    flex_olmo: 4096,
    mixtral: 131072,
    qwen2_moe: 32768,
    qwen3_moe: 32768,
    deepseek_v2: 2048,
    deepseek_v3: 4096,
    glm4_moe: 131072,
    dots1: 2048,
    ernie4_5_moe: 131072,
    granitemoe: 2048,
    granitemoeshared: 2048,
    hunyuan_v1_moe: 2048,
    dbrx: 2048,
  },
  num_experts_per_tok: {
    olmoe: 8,
    flex_olmo: 5,
    mixtral: 2,
    qwen2_moe: 4,
    qwen3_moe: 8,
    deepseek_v2: null,
    deepseek_v3: 8,
    glm4_moe: 8,
    dots1: null,
    ernie4_5_moe: 6,
    granitemoe: 2,
    granitemoeshared: 2,
  },
  n_shared_experts: { deepseek_v2: 2, deepseek_v3: 1, glm4_moe: 1, dots1: null },
  moe_num_shared_experts: { ernie4_5_moe: 2 },
  shared_expert_intermediate_size: { qwen2_moe: 5632 },
  shared_intermediate_size: { granitemoeshared: 0 },
  // DeepSeek-V2 reads the groups only with topk_method group_limited_greedy, and has no default for them.
  n_group: { deepseek_v2: null, deepseek_v3: 8, glm4_moe: 1, dots1: 1 },
  topk_group: { deepseek_v2: null, deepseek_v3: 4, glm4_moe: 1, dots1: 1 },
  first_k_dense_replace: { deepseek_v2: 0, deepseek_v3: 3, glm4_moe: 1, dots1: 0 },
  // DBRX's norms are LayerNorms at torch's default eps (its config has no such field).
  rms_norm_eps: {
    olmoe: 1e-5,
    flex_olmo: 1e-6,
    mixtral: 1e-5,
    qwen2_moe: 1e-6,
    qwen3_moe: 1e-6,
    deepseek_v2: 1e-6,
    deepseek_v3: 1e-6,
    glm4_moe: 1e-5,
    dots1: 1e-6,
    ernie4_5_moe: 1e-5,
    granitemoe: 1e-6,
    granitemoeshared: 1e-6,
    hunyuan_v1_moe: 1e-5,
    dbrx: 1e-5,
  },
  // Where config.json has neither rope_theta nor rope_parameters.rope_theta.
  rope_theta: {
    olmoe: 10000,
    flex_olmo: 500000,
    mixtral: 1e6,
    qwen2_moe: 10000,
    qwen3_moe: 10000,
    deepseek_v2: 10000,
    deepseek_v3: 10000,
    glm4_moe: 10000,
    dots1: 10000,
    ernie4_5_moe: 500000,
    granitemoe: 10000,
    granitemoeshared: 10000,
    hunyuan_v1_moe: 10000,
    dbrx: 10000,
  },
};

/**
 * Other names of a field, per family, as transformers' attribute_map has them: config.json may use any one;
 * two that disagree are refused by both engines (transformers would silently keep one).
 */
export const CONFIG_ALIASES: { readonly [F in ConfigFieldName]?: Partial<Record<ModelFamilyName, readonly string[]>> } = {
  num_experts: {
    olmoe: ['num_local_experts'],
    flex_olmo: ['num_local_experts'],
    mixtral: ['num_local_experts'],
    qwen3_moe: ['num_local_experts'],
    ernie4_5_moe: ['moe_num_experts'],
  },
  num_experts_per_tok: { ernie4_5_moe: ['moe_k'] },
};

/** The field's names in a family: its own first, then its aliases. */
export function configFieldNames(family: ModelFamilyName, field: ConfigFieldName): string[] {
  return [field, ...(CONFIG_ALIASES[field]?.[family] ?? [])];
}

/** transformers' default for the field in this family; undefined when the family does not read it from the table. */
export function configDefault(family: ModelFamilyName, field: ConfigFieldName): ConfigValue | null | undefined {
  return CONFIG_DEFAULTS[field]?.[family];
}

/** What is wrong with a value of this type, in the words both engines use; null when it is right. */
export function configValueProblem(type: ConfigFieldType, key: string, v: unknown): string | null {
  const ok =
    type === 'boolean'
      ? typeof v === 'boolean'
      : type === 'positive-number'
        ? typeof v === 'number' && Number.isFinite(v) && v > 0
        : typeof v === 'number' && Number.isInteger(v) && (type === 'positive-integer' ? v > 0 : v >= 0);
  if (ok) return null;
  const wanted = {
    boolean: 'true or false',
    'positive-integer': 'a positive integer',
    'non-negative-integer': 'an integer >= 0',
    'positive-number': 'a finite number > 0',
  }[type];
  return `"${key}" must be ${wanted}, got ${JSON.stringify(v)}`;
}

function present(config: Record<string, unknown>, key: string): boolean {
  return config[key] !== undefined && config[key] !== null;
}

/**
 * Every table field of the family that config.json holds, under any of its names: the first problem (a value
 * of the wrong type, two names that disagree) in words, or null. Read by families.ts; config_fields.py is
 * the same loop in Python.
 */
export function configFieldsProblem(config: Record<string, unknown>, family: ModelFamilyName): string | null {
  for (const [field, type] of Object.entries(CONFIG_FIELD_TYPES) as [ConfigFieldName, ConfigFieldType][]) {
    if (!(family in (CONFIG_DEFAULTS[field] ?? {})) && !(family in (CONFIG_ALIASES[field] ?? {}))) continue;
    const names = configFieldNames(family, field).filter((n) => present(config, n));
    for (const n of names) {
      const problem = configValueProblem(type, n, config[n]);
      if (problem) return problem;
    }
    for (const n of names.slice(1))
      if (config[n] !== config[names[0]!]) return `"${names[0]}" (${JSON.stringify(config[names[0]!])}) and "${n}" (${JSON.stringify(config[n])}) disagree`;
  }
  return null;
}
