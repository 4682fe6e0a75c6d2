/**
 * Multi-head latent attention (DeepSeek-V2/V3) as in transformers: queries through an optional low-rank
 * projection (q_a_proj, RMSNorm, q_b_proj), keys and values from one compressed latent (kv_a_proj_with_mqa
 * -> [latent | shared rotary key], RMSNorm on the latent, kv_b_proj -> per head [key without position |
 * value]). Each head's key is [its non-rotary part | the shared rotary part]; the rotary embedding covers
 * only the rotary parts. The cache holds the expanded keys [B, heads, P, nope + rope] and values
 * [B, heads, P, v]: more memory than the latent, but the same numbers.
 */
import type { OnnxElemType, OnnxGraphBuilder } from './formats/onnxWriter';
import type { LayerTensorNames, MoeArchitecture } from './families';

export interface MlaContext {
  g: OnnxGraphBuilder;
  arch: MoeArchitecture;
  n: LayerTensorNames;
  /** The attention input [B*S, hidden] (compute dtype). */
  xn: string;
  /** Shape of input_ids, [B, S]. */
  bs: string;
  pastK: string;
  pastV: string;
  /** Additive attention mask [B, 1, S, total] (compute dtype). */
  bias: string;
  layer: number;
  dtype: OnnxElemType;
  w: (name: string, dims: number[]) => string;
  linear: (x: string, name: string, out: number, inp: number, biasName?: string) => string;
  rmsNorm: (x: string, weightName: string, size: number, output?: string, eps?: number) => string;
  rope: (x: string, width?: number) => string;
  toCompute: (x: string) => string;
}

/** DeepSeek's q_a_layernorm and kv_a_layernorm are built with RMSNorm's default eps, not config.rms_norm_eps. */
const LATENT_NORM_EPS = 1e-6;

/** Returns the attention output after o_proj, [B*S, hidden]; declares present_key_L / present_value_L. */
export function mlaAttention(c: MlaContext): string {
  const { g, arch, n } = c;
  const mla = arch.mla!;
  const names = n.mla!;
  const H = arch.hiddenSize;
  const heads = arch.numHeads;
  const qk = mla.nopeDim + mla.ropeDim;
  const T = c.dtype;
  const axis3 = g.constInt64([3]);
  const slice3 = (x: string, from: number, to: number) => g.op('Slice', [x, g.constInt64([from]), g.constInt64([to]), axis3]);
  const toHeads = (x: string, count: number, width: number) =>
    g.op('Transpose', [g.op('Reshape', [x, g.op('Concat', [c.bs, g.constInt64([count, width])], { axis: 0 })])], { perm: [0, 2, 1, 3] });

  let q: string;
  if (mla.qLoraRank === null) q = c.linear(c.xn, names.q!, heads * qk, H);
  else {
    const r = mla.qLoraRank;
    q = c.linear(c.rmsNorm(c.linear(c.xn, names.qA!, r, H), names.qANorm!, r, undefined, LATENT_NORM_EPS), names.qB!, heads * qk, r);
  }
  const qh = toHeads(q, heads, qk); // [B, heads, S, qk]
  const query = g.op('Concat', [slice3(qh, 0, mla.nopeDim), c.rope(slice3(qh, mla.nopeDim, qk), mla.ropeDim)], { axis: 3 });

  const kvA = c.linear(c.xn, names.kvA, mla.kvLoraRank + mla.ropeDim, H); // [B*S, latent + rope]
  const axis1 = g.constInt64([1]);
  const latent = c.rmsNorm(
    g.op('Slice', [kvA, g.constInt64([0]), g.constInt64([mla.kvLoraRank]), axis1]),
    names.kvANorm,
    mla.kvLoraRank,
    undefined,
    LATENT_NORM_EPS,
  );
  const kRope = c.rope(
    toHeads(g.op('Slice', [kvA, g.constInt64([mla.kvLoraRank]), g.constInt64([mla.kvLoraRank + mla.ropeDim]), axis1]), 1, mla.ropeDim),
    mla.ropeDim,
  );
  const kv = toHeads(c.linear(latent, names.kvB, heads * (mla.nopeDim + mla.valueDim), mla.kvLoraRank), heads, mla.nopeDim + mla.valueDim);
  const kRopeAll = g.op('Expand', [kRope, g.constInt64([1, heads, 1, 1])]);
  const key = g.op('Concat', [slice3(kv, 0, mla.nopeDim), kRopeAll], { axis: 3 });
  const value = slice3(kv, mla.nopeDim, mla.nopeDim + mla.valueDim);

  const l = c.layer;
  const as32 = (x: string) => (T === 'float32' ? x : g.op('Cast', [x], { to: 1 }));
  const kAll32 = g.op('Concat', [c.pastK, as32(key)], { axis: 2 }, { output: `present_key_${l}` });
  const vAll32 = g.op('Concat', [c.pastV, as32(value)], { axis: 2 }, { output: `present_value_${l}` });
  g.output(kAll32, 'float32', ['batch', heads, 'total', qk]);
  g.output(vAll32, 'float32', ['batch', heads, 'total', mla.valueDim]);
  const scale = g.op('Cast', [g.constFloat([mla.scale], [])], { to: T === 'float32' ? 1 : 10 });
  const scores = g.op('Add', [g.op('Mul', [g.op('MatMul', [query, g.op('Transpose', [c.toCompute(kAll32)], { perm: [0, 1, 3, 2] })]), scale]), c.bias]);
  const attn = g.op('MatMul', [g.op('Softmax', [scores], { axis: -1 }), c.toCompute(vAll32)]);
  const merged = g.op('Reshape', [g.op('Transpose', [attn], { perm: [0, 2, 1, 3] }), g.constInt64([-1, heads * mla.valueDim])]);
  return c.linear(merged, n.o, H, heads * mla.valueDim);
}
