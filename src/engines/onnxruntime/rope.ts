/**
 * Rotary position embeddings as a Hugging Face config.json describes them, in both spellings: top-level
 * rope_theta / rope_scaling (transformers 4 and older checkpoints) and rope_parameters (transformers 5).
 * As in transformers, a rope_scaling object replaces rope_parameters, and a theta missing from the dict
 * comes from the top-level rope_theta, else the family's default.
 *
 * Implemented: 'default', 'linear' (positions divided by factor) and 'yarn' (per-frequency blend of
 * interpolation and extrapolation, cos/sin scaled by an attention factor; Qwen3 long-context configs).
 * Every other type or key is refused by name, since a silently different RoPE changes every number.
 */
export type RopeType = 'default' | 'linear' | 'yarn';

export interface RopeSettings {
  type: RopeType;
  theta: number;
  /** Where theta came from ("rope_parameters.rope_theta", "rope_theta", "default 10000"). */
  thetaSource: string;
  /** Inverse frequency of each rotated pair, head_dim / 2 values. */
  invFreq: number[];
  /** Multiplies cos and sin (yarn's attention factor; 1 otherwise). */
  attentionScale: number;
}

export class RopeConfigError extends Error {}

type Dict = Record<string, unknown>;

const KEYS: Record<RopeType, readonly string[]> = {
  default: ['rope_theta', 'rope_type', 'type', 'partial_rotary_factor'],
  linear: ['rope_theta', 'rope_type', 'type', 'partial_rotary_factor', 'factor'],
  yarn: [
    'rope_theta',
    'rope_type',
    'type',
    'partial_rotary_factor',
    'factor',
    'attention_factor',
    'beta_fast',
    'beta_slow',
    'mscale',
    'mscale_all_dim',
    'original_max_position_embeddings',
    'truncate',
  ],
};

function refuse(field: string, value: unknown, why: string): never {
  throw new RopeConfigError(`"${field}": ${JSON.stringify(value)} is not supported: ${why}`);
}

/** `where` is the dict's name in config.json ('' for the top level), for messages. */
function positiveNumber(dict: Dict, key: string, where: string): number | undefined {
  const v = dict[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw new RopeConfigError(`"${where ? `${where}.` : ''}${key}" must be a finite number > 0, got ${JSON.stringify(v)}`);
  return v;
}

function asDict(value: unknown, where: string): Dict | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw new RopeConfigError(`"${where}" must be an object, got ${JSON.stringify(value)}`);
  return value as Dict;
}

export function readRope(config: Dict, defaultTheta: number, headDim: number, maxPositions: number): RopeSettings {
  const params = asDict(config.rope_parameters, 'rope_parameters');
  const scaling = asDict(config.rope_scaling, 'rope_scaling');
  const topTheta = positiveNumber(config, 'rope_theta', '');
  const [dict, where] = scaling ? [scaling, 'rope_scaling'] : [params ?? {}, 'rope_parameters'];
  const typeKey = dict.rope_type !== undefined ? 'rope_type' : 'type';
  const type = dict[typeKey] ?? 'default';
  if (type !== 'default' && type !== 'linear' && type !== 'yarn') {
    refuse(`${where}.${typeKey}`, type, 'implemented rotary embeddings are default, linear and yarn (not dynamic, longrope, llama3 or others)');
  }
  for (const [k, v] of Object.entries(dict))
    if (!KEYS[type].includes(k) && v !== null) refuse(`${where}.${k}`, v, `not a setting of the ${type} rotary embedding MoE Scope implements`);
  const prf = dict.partial_rotary_factor ?? config.partial_rotary_factor;
  if (prf !== undefined && prf !== null && prf !== 1)
    refuse(
      dict.partial_rotary_factor !== undefined ? `${where}.partial_rotary_factor` : 'partial_rotary_factor',
      prf,
      'only full-width rotary embeddings are implemented',
    );

  const dictTheta = positiveNumber(dict, 'rope_theta', where);
  if (dictTheta !== undefined && topTheta !== undefined && dictTheta !== topTheta) {
    throw new RopeConfigError(`"rope_theta" (${topTheta}) and "${where}.rope_theta" (${dictTheta}) disagree; remove one of them`);
  }
  const theta = dictTheta ?? topTheta ?? defaultTheta;
  const thetaSource = dictTheta !== undefined ? `${where}.rope_theta` : topTheta !== undefined ? 'rope_theta' : `default ${defaultTheta}`;
  const half = headDim / 2;
  const base = Array.from({ length: half }, (_, i) => Math.pow(theta, -(2 * i) / headDim));
  if (type === 'default') return { type, theta, thetaSource, invFreq: base, attentionScale: 1 };

  const factor = positiveNumber(dict, 'factor', where);
  if (type === 'linear') {
    if (factor === undefined) throw new RopeConfigError(`"${where}.factor" is missing (linear RoPE scaling needs it)`);
    return { type, theta, thetaSource, invFreq: base.map((f) => f / factor), attentionScale: 1 };
  }
  return yarn(dict, where, config, { theta, thetaSource, base, headDim, factor, maxPositions });
}

/** YaRN (arXiv 2309.00071) as transformers computes it (_compute_yarn_parameters). */
function yarn(
  dict: Dict,
  where: string,
  config: Dict,
  p: { theta: number; thetaSource: string; base: number[]; headDim: number; factor: number | undefined; maxPositions: number },
): RopeSettings {
  // transformers prefers a top-level original_max_position_embeddings, then the dict's, then max_position_embeddings.
  const topOriginal = positiveNumber(config, 'original_max_position_embeddings', '');
  const original = topOriginal ?? positiveNumber(dict, 'original_max_position_embeddings', where) ?? p.maxPositions;
  const factor = p.factor ?? p.maxPositions / original;
  const mscaleOf = (scale: number, m = 1) => (scale <= 1 ? 1 : 0.1 * m * Math.log(scale) + 1);
  const mscale = positiveNumber(dict, 'mscale', where);
  const mscaleAll = positiveNumber(dict, 'mscale_all_dim', where);
  const attentionScale =
    positiveNumber(dict, 'attention_factor', where) ?? (mscale && mscaleAll ? mscaleOf(factor, mscale) / mscaleOf(factor, mscaleAll) : mscaleOf(factor));
  const betaFast = positiveNumber(dict, 'beta_fast', where) ?? 32;
  const betaSlow = positiveNumber(dict, 'beta_slow', where) ?? 1;
  const truncate = dict.truncate ?? true;
  if (typeof truncate !== 'boolean') throw new RopeConfigError(`"${where}.truncate" must be true or false, got ${JSON.stringify(truncate)}`);
  const dim = p.headDim;
  const correctionDim = (rotations: number) => (dim * Math.log(original / (rotations * 2 * Math.PI))) / (2 * Math.log(p.theta));
  let low = correctionDim(betaFast);
  let high = correctionDim(betaSlow);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  low = Math.max(low, 0);
  high = Math.min(high, dim - 1);
  if (low === high) high += 0.001;
  const invFreq = p.base.map((extrapolation, i) => {
    const ramp = Math.min(1, Math.max(0, (i - low) / (high - low)));
    const extrapolationWeight = 1 - ramp;
    return (extrapolation / factor) * (1 - extrapolationWeight) + extrapolation * extrapolationWeight;
  });
  return { type: 'yarn', theta: p.theta, thetaSource: p.thetaSource, invFreq, attentionScale };
}

/** Rotary tables for positions P..P+S-1, rotate-half layout: angle(p, d) = p * invFreq[d mod D/2]. */
export function ropeTables(
  rope: Pick<RopeSettings, 'invFreq' | 'attentionScale'>,
  headDim: number,
  B: number,
  S: number,
  P: number,
): { cos: Float32Array; sin: Float32Array } {
  const D = headDim;
  const half = D / 2;
  const cos = new Float32Array(B * S * D);
  const sin = new Float32Array(B * S * D);
  for (let i = 0; i < S; i++) {
    const pos = P + i;
    for (let d = 0; d < D; d++) {
      const angle = pos * rope.invFreq[d % half];
      cos[i * D + d] = Math.cos(angle) * rope.attentionScale;
      sin[i * D + d] = Math.sin(angle) * rope.attentionScale;
    }
  }
  for (let b = 1; b < B; b++) {
    cos.copyWithin(b * S * D, 0, S * D);
    sin.copyWithin(b * S * D, 0, S * D);
  }
  return { cos, sin };
}
