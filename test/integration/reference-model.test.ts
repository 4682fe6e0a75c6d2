import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyRope,
  referenceForward,
  resolveRefConfig,
  rmsNorm,
  routeTopK,
  type HfConfig,
  type RefTensor,
  type ReferenceResult,
} from '../support/referenceModel';
import { mulberry32 as prng } from '../../src/engines/onnxruntime/demo/random';

// ---------------------------------------------------------------------------------------------
// Tiny in-memory checkpoints
// ---------------------------------------------------------------------------------------------

type Tensors = Map<string, RefTensor>;

interface Spec {
  type: 'olmoe' | 'mixtral' | 'qwen2_moe';
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  experts: number;
  topK: number;
  inter: number;
  vocab: number;
  seed: number;
  sharedInter?: number;
  denseInter?: number;
  extra?: HfConfig;
}

function makeModel(spec: Spec): { config: HfConfig; tensors: Tensors } {
  const rnd = prng(spec.seed);
  const tensors: Tensors = new Map();
  const D = spec.hidden / spec.heads;
  const put = (name: string, shape: number[], scale: number, bias = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = bias + scale * (2 * rnd() - 1);
    tensors.set(name, { shape, data });
  };
  const lin = (name: string, out: number, inp: number) => put(name, [out, inp], Math.sqrt(3 / inp));
  const norm = (name: string, n: number) => put(name, [n], 0.2, 1);

  const config: HfConfig = {
    model_type: spec.type,
    hidden_size: spec.hidden,
    num_hidden_layers: spec.layers,
    num_attention_heads: spec.heads,
    num_key_value_heads: spec.kvHeads,
    num_experts_per_tok: spec.topK,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: false,
    vocab_size: spec.vocab,
    hidden_act: 'silu',
  };
  if (spec.type === 'mixtral') {
    config.num_local_experts = spec.experts;
    config.intermediate_size = spec.inter;
  } else if (spec.type === 'olmoe') {
    config.num_experts = spec.experts;
    config.intermediate_size = spec.inter;
    config.norm_topk_prob = false;
    config.clip_qkv = null;
  } else {
    config.num_experts = spec.experts;
    config.moe_intermediate_size = spec.inter;
    config.shared_expert_intermediate_size = spec.sharedInter ?? 2 * spec.inter;
    config.intermediate_size = spec.denseInter ?? 3 * spec.inter;
    config.norm_topk_prob = false;
  }
  Object.assign(config, spec.extra ?? {});
  const cfg = resolveRefConfig(config);

  put('model.embed_tokens.weight', [spec.vocab, spec.hidden], 1);
  for (let l = 0; l < spec.layers; l++) {
    const p = `model.layers.${l}`;
    norm(`${p}.input_layernorm.weight`, spec.hidden);
    norm(`${p}.post_attention_layernorm.weight`, spec.hidden);
    lin(`${p}.self_attn.q_proj.weight`, spec.heads * D, spec.hidden);
    lin(`${p}.self_attn.k_proj.weight`, spec.kvHeads * D, spec.hidden);
    lin(`${p}.self_attn.v_proj.weight`, spec.kvHeads * D, spec.hidden);
    lin(`${p}.self_attn.o_proj.weight`, spec.hidden, spec.heads * D);
    if (spec.type === 'olmoe') {
      norm(`${p}.self_attn.q_norm.weight`, spec.heads * D);
      norm(`${p}.self_attn.k_norm.weight`, spec.kvHeads * D);
    }
    if (cfg.qkvBias) {
      put(`${p}.self_attn.q_proj.bias`, [spec.heads * D], 0.5);
      put(`${p}.self_attn.k_proj.bias`, [spec.kvHeads * D], 0.5);
      put(`${p}.self_attn.v_proj.bias`, [spec.kvHeads * D], 0.5);
    }
    if (!cfg.sparseLayers[l]) {
      const I = cfg.denseIntermediateSize!;
      lin(`${p}.mlp.gate_proj.weight`, I, spec.hidden);
      lin(`${p}.mlp.up_proj.weight`, I, spec.hidden);
      lin(`${p}.mlp.down_proj.weight`, spec.hidden, I);
      continue;
    }
    const moe = spec.type === 'mixtral' ? `${p}.block_sparse_moe` : `${p}.mlp`;
    const [g, u, d] = spec.type === 'mixtral' ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
    put(`${moe}.gate.weight`, [spec.experts, spec.hidden], 2 / Math.sqrt(spec.hidden));
    for (let e = 0; e < spec.experts; e++) {
      lin(`${moe}.experts.${e}.${g}.weight`, spec.inter, spec.hidden);
      lin(`${moe}.experts.${e}.${u}.weight`, spec.inter, spec.hidden);
      lin(`${moe}.experts.${e}.${d}.weight`, spec.hidden, spec.inter);
    }
    if (spec.type === 'qwen2_moe') {
      const S = cfg.sharedExpertIntermediateSize!;
      lin(`${p}.mlp.shared_expert.gate_proj.weight`, S, spec.hidden);
      lin(`${p}.mlp.shared_expert.up_proj.weight`, S, spec.hidden);
      lin(`${p}.mlp.shared_expert.down_proj.weight`, spec.hidden, S);
      lin(`${p}.mlp.shared_expert_gate.weight`, 1, spec.hidden);
    }
  }
  norm('model.norm.weight', spec.hidden);
  lin('lm_head.weight', spec.vocab, spec.hidden);
  return { config, tensors };
}

/** Getter that throws for unknown names, like a safetensors reader would. */
function getter(tensors: Tensors): (name: string) => RefTensor {
  return (name) => {
    const t = tensors.get(name);
    if (!t) throw new Error(`no tensor ${name}`);
    return t;
  };
}

function run(config: HfConfig, tensors: Tensors, ids: number[]): ReferenceResult {
  return referenceForward(config, getter(tensors), ids, { hasTensor: (n) => tensors.has(n) });
}

/**
 * Rewrites per-expert tensors into the packed layout of newer transformers:
 * experts.gate_up_proj [E, 2I, H] (gate rows first, then up rows), experts.down_proj [E, H, I];
 * Mixtral's block is renamed block_sparse_moe -> mlp. swapHalves packs up first (a deliberately wrong layout).
 */
function packExperts(config: HfConfig, tensors: Tensors, swapHalves = false): Tensors {
  const cfg = resolveRefConfig(config);
  const out: Tensors = new Map(tensors);
  const { hiddenSize: H, expertIntermediateSize: I, numExperts: E } = cfg;
  for (let l = 0; l < cfg.numLayers; l++) {
    if (!cfg.sparseLayers[l]) continue;
    const src = cfg.modelType === 'mixtral' ? `model.layers.${l}.block_sparse_moe` : `model.layers.${l}.mlp`;
    const dst = `model.layers.${l}.mlp`;
    const [g, u, d] = cfg.modelType === 'mixtral' ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
    const gateUp = new Float32Array(E * 2 * I * H);
    const down = new Float32Array(E * H * I);
    for (let e = 0; e < E; e++) {
      const first = tensors.get(`${src}.experts.${e}.${swapHalves ? u : g}.weight`)!.data;
      const second = tensors.get(`${src}.experts.${e}.${swapHalves ? g : u}.weight`)!.data;
      gateUp.set(first, e * 2 * I * H);
      gateUp.set(second, e * 2 * I * H + I * H);
      down.set(tensors.get(`${src}.experts.${e}.${d}.weight`)!.data, e * H * I);
      for (const part of [g, u, d]) out.delete(`${src}.experts.${e}.${part}.weight`);
    }
    out.set(`${dst}.experts.gate_up_proj`, { shape: [E, 2 * I, H], data: gateUp });
    out.set(`${dst}.experts.down_proj`, { shape: [E, H, I], data: down });
    const router = tensors.get(`${src}.gate.weight`)!;
    out.delete(`${src}.gate.weight`);
    out.set(`${dst}.gate.weight`, router);
  }
  return out;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what: string): void {
  const d = maxAbsDiff(a, b);
  assert.ok(d <= tol, `${what}: max |diff| ${d} > ${tol}`);
}

function assertResultsClose(a: ReferenceResult, b: ReferenceResult, tol: number, what: string): void {
  assert.equal(a.logits.length, b.logits.length);
  a.logits.forEach((row, t) => assertClose(row, b.logits[t], tol, `${what} logits[${t}]`));
  a.routerProbs.forEach((layer, l) => layer.forEach((p, t) => assertClose(p, b.routerProbs[l][t], tol, `${what} probs[${l}][${t}]`)));
  assert.deepEqual(a.topExperts, b.topExperts, `${what}: top experts`);
}

const SPECS: Record<'olmoe' | 'mixtral' | 'qwen2_moe', Spec> = {
  olmoe: { type: 'olmoe', layers: 2, hidden: 16, heads: 4, kvHeads: 4, experts: 8, topK: 3, inter: 8, vocab: 40, seed: 1 },
  mixtral: { type: 'mixtral', layers: 2, hidden: 16, heads: 4, kvHeads: 2, experts: 6, topK: 2, inter: 12, vocab: 40, seed: 2 },
  qwen2_moe: { type: 'qwen2_moe', layers: 2, hidden: 16, heads: 4, kvHeads: 2, experts: 8, topK: 3, inter: 6, vocab: 40, seed: 3 },
};
const TYPES = Object.keys(SPECS) as (keyof typeof SPECS)[];
const IDS = [3, 17, 0, 39, 8, 8, 21, 5, 12, 30];

// ---------------------------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------------------------

test('rmsNorm: x / sqrt(mean(x^2) + eps) * w', () => {
  // x = [3, 4]: mean(x^2) = 12.5; + eps 1 = 13.5 -> y = [3, 4] / sqrt(13.5) * [1, 2]
  const y = rmsNorm([3, 4], [1, 2], 1);
  assertClose(y, [3 / Math.sqrt(13.5), 8 / Math.sqrt(13.5)], 1e-15, 'rmsNorm');
});

test('applyRope: Llama rotate_half with inv_freq = 1/theta^(2i/d)', () => {
  // head_dim 4, theta 100, pos 3: inv_freq = [1, 100^(-1/2) = 0.1]; angles [3, 0.3].
  // pairs are (x0, x2) and (x1, x3): out0 = x0 cos3 - x2 sin3, out2 = x2 cos3 + x0 sin3, etc.
  const x = Float64Array.from([9, 1, 2, 3, 4, 7]); // offset 1: the head is [1, 2, 3, 4]
  applyRope(x, 1, 4, 3, 100);
  const c3 = Math.cos(3),
    s3 = Math.sin(3),
    c03 = Math.cos(0.3),
    s03 = Math.sin(0.3);
  assertClose(x, [9, 1 * c3 - 3 * s3, 2 * c03 - 4 * s03, 3 * c3 + 1 * s3, 4 * c03 + 2 * s03, 7], 1e-14, 'rope');
});

test('routeTopK: descending, ties to the lower index, optional renormalisation', () => {
  const r = routeTopK([0, 2, 1, 2], 3, false);
  assert.deepEqual(r.experts, [1, 3, 2]);
  const z = Math.exp(0) + 2 * Math.exp(2) + Math.exp(1);
  assertClose(r.weights, [Math.exp(2) / z, Math.exp(2) / z, Math.exp(1) / z], 1e-15, 'raw weights');
  const n = routeTopK([0, 2, 1, 2], 3, true);
  const s = 2 * Math.exp(2) + Math.exp(1);
  assertClose(n.weights, [Math.exp(2) / s, Math.exp(2) / s, Math.exp(1) / s], 1e-15, 'renormalised weights');
});

// ---------------------------------------------------------------------------------------------
// Hand-computable model
// ---------------------------------------------------------------------------------------------

test('hand-computed OLMoE: 1 layer, hidden 2, 2 experts, top-1, 2 tokens', () => {
  const T = (shape: number[], values: number[]): RefTensor => ({ shape, data: Float32Array.from(values) });
  const config: HfConfig = {
    model_type: 'olmoe',
    vocab_size: 2,
    hidden_size: 2,
    num_hidden_layers: 1,
    num_attention_heads: 1,
    num_key_value_heads: 1,
    num_experts: 2,
    num_experts_per_tok: 1,
    intermediate_size: 1,
    rms_norm_eps: 0,
    rope_theta: 10000,
    norm_topk_prob: false,
    tie_word_embeddings: false,
    clip_qkv: null,
  };
  const p = 'model.layers.0';
  const tensors: Tensors = new Map([
    ['model.embed_tokens.weight', T([2, 2], [1, -1, 1, 1])],
    [`${p}.input_layernorm.weight`, T([2], [1, 1])],
    [`${p}.self_attn.q_proj.weight`, T([2, 2], [2, 0, 0, 2])],
    [`${p}.self_attn.k_proj.weight`, T([2, 2], [3, 0, 0, 3])],
    [`${p}.self_attn.v_proj.weight`, T([2, 2], [1, 0, 0, 1])],
    [`${p}.self_attn.o_proj.weight`, T([2, 2], [1, 0, 0, 1])],
    [`${p}.self_attn.q_norm.weight`, T([2], [1, 2])],
    [`${p}.self_attn.k_norm.weight`, T([2], [1, 1])],
    [`${p}.post_attention_layernorm.weight`, T([2], [1, 1])],
    [`${p}.mlp.gate.weight`, T([2, 2], [1, 0, 0, 1])],
    [`${p}.mlp.experts.0.gate_proj.weight`, T([1, 2], [1, 0])],
    [`${p}.mlp.experts.0.up_proj.weight`, T([1, 2], [1, 0.5])],
    [`${p}.mlp.experts.0.down_proj.weight`, T([2, 1], [1, 2])],
    [`${p}.mlp.experts.1.gate_proj.weight`, T([1, 2], [0, 1])],
    [`${p}.mlp.experts.1.up_proj.weight`, T([1, 2], [1, 0])],
    [`${p}.mlp.experts.1.down_proj.weight`, T([2, 1], [-1, 1])],
    ['model.norm.weight', T([2], [1, 1])],
    ['lm_head.weight', T([2, 2], [1, 0, 1, 1])],
  ]);
  const r = run(config, tensors, [0, 1]);

  const silu = (v: number) => v / (1 + Math.exp(-v));
  const sig = (v: number) => 1 / (1 + Math.exp(-v));
  const c = Math.cos(1),
    s = Math.sin(1);
  // Embeddings x0 = [1, -1], x1 = [1, 1]; both have rms 1, so input_layernorm (w = 1, eps 0) leaves them: h0 = x0, h1 = x1.
  // q = 2h, k = 3h; QK-norm over the full projection divides by rms (2 resp. 3) and multiplies the weight
  // (q_norm [1, 2], k_norm [1, 1]), BEFORE RoPE: q0 = [1, -2], q1 = [1, 2], k0 = [1, -1], k1 = [1, 1]. v = h.
  // RoPE, head_dim 2: inv_freq = [1]; position 0 unrotated, position 1 rotated by 1 rad (c = cos 1, s = sin 1):
  //   q1' = [c - 2s, 2c + s], k1' = [c - s, c + s].
  // Token 0 attends only to itself: out0 = v0 = [1, -1].
  // Token 1, scale 1/sqrt(2): s10 = q1'.k0 / sqrt2 = ((c - 2s) - (2c + s)) / sqrt2 = (-c - 3s) / sqrt2;
  //   s11 = q1'.k1' / sqrt2 = q1.k1 / sqrt2 (same rotation) = (1 + 2) / sqrt2 = 3 / sqrt2.
  //   a1 = e^s11 / (e^s10 + e^s11), a0 = 1 - a1.
  const s10 = (-c - 3 * s) / Math.SQRT2,
    s11 = 3 / Math.SQRT2;
  const a1 = Math.exp(s11) / (Math.exp(s10) + Math.exp(s11));
  const a0 = 1 - a1;
  //   out1 = a0 v0 + a1 v1 = [1, a1 - a0] = [1, 2 a1 - 1].  o_proj = I.
  // Residual: r0 = [1, -1] + [1, -1] = [2, -2]; r1 = [1, 1] + [1, 2a1 - 1] = [2, 2 a1].
  const r0 = [2, -2];
  const r1 = [2, 1 + (a1 - a0)];
  // post_attention_layernorm: m0 = r0 / 2 = [1, -1]; m1 = r1 / sqrt((4 + 4 a1^2) / 2).
  const m0 = [1, -1];
  const rms1 = Math.sqrt((r1[0] ** 2 + r1[1] ** 2) / 2);
  const m1 = [r1[0] / rms1, r1[1] / rms1];
  // Router = identity: logits = m. Token 0: softmax([1, -1]) = [sig(2), sig(-2)] -> expert 0, weight sig(2) (no renorm).
  // Token 1: m1[0] > m1[1] (a1 < 1) -> expert 0, weight sig(m1[0] - m1[1]).
  const w0 = sig(2),
    w1 = sig(m1[0] - m1[1]);
  // Expert 0: g = silu(m[0]) * (m[0] + 0.5 m[1]); output down [1, 2] * g = [g, 2g].
  //   token 0: g0 = silu(1) * (1 - 0.5) = 0.5 silu(1).
  const g0 = silu(1) * 0.5;
  const g1 = silu(m1[0]) * (m1[0] + 0.5 * m1[1]);
  // y_t = r_t + w_t [g_t, 2 g_t]; final norm n = y / rms(y); lm_head [[1,0],[1,1]] -> logits [n0, n0 + n1].
  const y0 = [r0[0] + w0 * g0, r0[1] + 2 * w0 * g0];
  const y1 = [r1[0] + w1 * g1, r1[1] + 2 * w1 * g1];
  const logits = (y: number[]) => {
    const rms = Math.sqrt((y[0] ** 2 + y[1] ** 2) / 2);
    const n = [y[0] / rms, y[1] / rms];
    return [n[0], n[0] + n[1]];
  };

  assertClose(r.logits[0], logits(y0), 1e-12, 'logits[0]');
  assertClose(r.logits[1], logits(y1), 1e-12, 'logits[1]');
  assertClose(r.routerProbs[0][0], [sig(2), sig(-2)], 1e-12, 'probs token 0');
  assertClose(r.routerProbs[0][1], [w1, 1 - w1], 1e-12, 'probs token 1');
  assert.deepEqual(r.topExperts, [[[0], [0]]]);
  assertClose(r.topWeights[0][0], [w0], 1e-12, 'weight token 0');
  assertClose(r.topWeights[0][1], [w1], 1e-12, 'weight token 1');
  assertClose(r.hiddenBeforeMoe[0][0], m0, 1e-12, 'MoE input token 0');
  assertClose(r.hiddenBeforeMoe[0][1], m1, 1e-12, 'MoE input token 1');
  // Unchosen expert 1 at token 0: silu(m0[1]) * m0[0] = silu(-1); down [-1, 1].
  assertClose(r.expertOutputs(0, 0, 1), [-silu(-1), silu(-1)], 1e-12, 'expert 1 output');
  assertClose(r.expertOutputs(0, 0, 0), [g0, 2 * g0], 1e-12, 'expert 0 output');
});

// ---------------------------------------------------------------------------------------------
// Structural properties on random tiny checkpoints
// ---------------------------------------------------------------------------------------------

for (const type of TYPES) {
  test(`${type}: causality - earlier positions do not change when tokens are appended`, () => {
    const { config, tensors } = makeModel(SPECS[type]);
    const short = run(config, tensors, IDS.slice(0, 4));
    const long = run(config, tensors, IDS);
    for (let t = 0; t < 4; t++) {
      assertClose(short.logits[t], long.logits[t], 1e-12, `logits[${t}]`);
      for (let l = 0; l < short.routerProbs.length; l++) {
        assertClose(short.routerProbs[l][t], long.routerProbs[l][t], 1e-12, `probs[${l}][${t}]`);
      }
    }
    // ... while the last position does depend on what came before it.
    const other = run(config, tensors, [9, ...IDS.slice(1)]);
    assert.ok(maxAbsDiff(other.logits[IDS.length - 1], long.logits[IDS.length - 1]) > 1e-6);
  });

  test(`${type}: router probabilities sum to 1 and top-k is sorted`, () => {
    const { config, tensors } = makeModel(SPECS[type]);
    const r = run(config, tensors, IDS);
    const k = SPECS[type].topK;
    for (let l = 0; l < r.routerProbs.length; l++) {
      for (let t = 0; t < IDS.length; t++) {
        const p = r.routerProbs[l][t];
        assert.equal(p.length, SPECS[type].experts);
        assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12);
        const top = r.topExperts[l][t];
        assert.equal(top.length, k);
        assert.equal(new Set(top).size, k);
        for (let j = 1; j < k; j++) assert.ok(p[top[j - 1]] >= p[top[j]]);
        // every unchosen expert has probability <= the k-th chosen one
        for (let e = 0; e < p.length; e++) if (!top.includes(e)) assert.ok(p[e] <= p[top[k - 1]]);
      }
    }
  });
}

test('olmoe: top-k weights are the raw softmax values (sum < 1); mixtral: renormalised (sum 1)', () => {
  for (const type of ['olmoe', 'mixtral'] as const) {
    const { config, tensors } = makeModel(SPECS[type]);
    const r = run(config, tensors, IDS);
    for (let l = 0; l < r.topWeights.length; l++) {
      for (let t = 0; t < IDS.length; t++) {
        const w = r.topWeights[l][t];
        const chosen = r.topExperts[l][t].map((e) => r.routerProbs[l][t][e]);
        const sum = w.reduce((a, b) => a + b, 0);
        if (type === 'olmoe') {
          assert.ok(sum < 1 - 1e-9, `olmoe weights sum ${sum}`);
          assertClose(w, chosen, 1e-15, 'olmoe weights = probs');
        } else {
          assert.ok(Math.abs(sum - 1) < 1e-12, `mixtral weights sum ${sum}`);
          const cs = chosen.reduce((a, b) => a + b, 0);
          assertClose(
            w,
            chosen.map((v) => v / cs),
            1e-15,
            'mixtral weights = probs / sum',
          );
        }
      }
    }
  }
});

test('qwen2_moe: norm_topk_prob from the config; shared expert with sigmoid gate is added', () => {
  const spec = SPECS.qwen2_moe;
  for (const norm of [false, true]) {
    const { config, tensors } = makeModel({ ...spec, extra: { norm_topk_prob: norm } });
    const r = run(config, tensors, IDS);
    for (let l = 0; l < spec.layers; l++) {
      for (let t = 0; t < IDS.length; t++) {
        const sum = r.topWeights[l][t].reduce((a, b) => a + b, 0);
        if (norm) assert.ok(Math.abs(sum - 1) < 1e-12);
        else assert.ok(sum < 1 - 1e-9);
        // MoE output = sum_j w_j expert_j(x) + sigmoid(g . x) * shared(x), recomputed here from the raw tensors.
        const x = r.hiddenBeforeMoe[l][t];
        const expected = new Float64Array(spec.hidden);
        r.topExperts[l][t].forEach((e, j) => {
          const y = r.expertOutputs(l, t, e);
          for (let i = 0; i < expected.length; i++) expected[i] += r.topWeights[l][t][j] * y[i];
        });
        const p = `model.layers.${l}.mlp`;
        const shared = naiveSwiGlu(tensors, `${p}.shared_expert`, ['gate_proj', 'up_proj', 'down_proj'], x);
        const gw = tensors.get(`${p}.shared_expert_gate.weight`)!.data;
        let gl = 0;
        for (let i = 0; i < x.length; i++) gl += gw[i] * x[i];
        const gate = 1 / (1 + Math.exp(-gl));
        for (let i = 0; i < expected.length; i++) expected[i] += gate * shared[i];
        assertClose(r.mlpOutputs[l][t], expected, 1e-12, `qwen2 MoE output [${l}][${t}]`);
      }
    }
  }
});

/** Independent SwiGLU from raw [out, in] tensors: down(silu(gate x) * up x). */
function naiveSwiGlu(tensors: Tensors, prefix: string, parts: string[], x: ArrayLike<number>): Float64Array {
  const [g, u, d] = parts.map((n) => tensors.get(`${prefix}.${n}.weight`)!);
  const I = g.shape[0],
    H = g.shape[1];
  const act = new Float64Array(I);
  for (let i = 0; i < I; i++) {
    let a = 0,
      b = 0;
    for (let h = 0; h < H; h++) {
      a += g.data[i * H + h] * x[h];
      b += u.data[i * H + h] * x[h];
    }
    act[i] = (a / (1 + Math.exp(-a))) * b;
  }
  const y = new Float64Array(H);
  for (let h = 0; h < H; h++) for (let i = 0; i < I; i++) y[h] += d.data[h * I + i] * act[i];
  return y;
}

test('olmoe and mixtral: expertOutputs use the right per-expert tensors and MoE output is their weighted sum', () => {
  for (const type of ['olmoe', 'mixtral'] as const) {
    const spec = SPECS[type];
    const { config, tensors } = makeModel(spec);
    const r = run(config, tensors, IDS);
    const parts = type === 'mixtral' ? ['w1', 'w3', 'w2'] : ['gate_proj', 'up_proj', 'down_proj'];
    const block = type === 'mixtral' ? 'block_sparse_moe' : 'mlp';
    for (let l = 0; l < spec.layers; l++) {
      for (let t = 0; t < IDS.length; t++) {
        const x = r.hiddenBeforeMoe[l][t];
        const expected = new Float64Array(spec.hidden);
        r.topExperts[l][t].forEach((e, j) => {
          const y = naiveSwiGlu(tensors, `model.layers.${l}.${block}.experts.${e}`, parts, x);
          assertClose(r.expertOutputs(l, t, e), y, 1e-12, `${type} expert ${e}`);
          for (let i = 0; i < expected.length; i++) expected[i] += r.topWeights[l][t][j] * y[i];
        });
        assertClose(r.mlpOutputs[l][t], expected, 1e-12, `${type} MoE output`);
      }
    }
  }
});

test('olmoe QK-norm normalises the FULL q and k projections (not per head) and a global scale cancels', () => {
  const spec: Spec = { ...SPECS.olmoe, kvHeads: 2, seed: 31 };
  const { config, tensors } = makeModel({ ...spec, extra: { rms_norm_eps: 1e-12 } });
  const base = run(config, tensors, IDS);
  const D = spec.hidden / spec.heads;
  const scaled = (name: string, rows: [number, number], factor: number): Tensors => {
    const t = tensors.get(name)!;
    const data = Float32Array.from(t.data);
    for (let i = rows[0] * spec.hidden; i < rows[1] * spec.hidden; i++) data[i] *= factor;
    return new Map(tensors).set(name, { shape: t.shape, data });
  };
  const q = 'model.layers.0.self_attn.q_proj.weight';
  const k = 'model.layers.0.self_attn.k_proj.weight';
  // Scaling a whole projection by 4 is undone by the norm (up to eps and float32 rounding of the weights; 4 is exact).
  assertResultsClose(base, run(config, scaled(q, [0, spec.heads * D], 4), IDS), 1e-9, 'q scaled');
  assertResultsClose(base, run(config, scaled(k, [0, spec.kvHeads * D], 4), IDS), 1e-9, 'k scaled');
  // Scaling only head 0's rows would also be undone by a per-head norm, but not by the full-projection norm.
  for (const [name, what] of [
    [q, 'q head 0'],
    [k, 'kv head 0'],
  ] as const) {
    const r = run(config, scaled(name, [0, D], 4), IDS);
    assert.ok(maxAbsDiff(r.logits[IDS.length - 1], base.logits[IDS.length - 1]) > 1e-6, `${what} scaled changes the output`);
  }
});

test('packed experts (gate_up_proj [E, 2I, H], down_proj [E, H, I]) give identical results to per-expert tensors', () => {
  for (const type of TYPES) {
    const { config, tensors } = makeModel(SPECS[type]);
    const perExpert = run(config, tensors, IDS);
    const packed = packExperts(config, tensors);
    assert.ok(![...packed.keys()].some((n) => /experts\.\d+\./.test(n)), 'per-expert tensors removed');
    const viaPacked = run(config, packed, IDS);
    assertResultsClose(perExpert, viaPacked, 0, `${type} packed`);
    assertClose(perExpert.expertOutputs(1, 2, 3), viaPacked.expertOutputs(1, 2, 3), 0, `${type} packed expertOutputs`);
    // Packing up before gate is a different model: the check can fail.
    const swapped = run(config, packExperts(config, tensors, true), IDS);
    assert.ok(maxAbsDiff(swapped.logits[IDS.length - 1], perExpert.logits[IDS.length - 1]) > 1e-6, `${type}: swapped halves differ`);
  }
});

/** The MHA checkpoint equivalent to a GQA one: kv head j's k/v rows (and k_norm/bias entries) repeated for each query head it serves. */
function expandKvHeads(config: HfConfig, tensors: Tensors): { config: HfConfig; tensors: Tensors } {
  const cfg = resolveRefConfig(config);
  const { numHeads, numKvHeads, headDim: D, hiddenSize: H } = cfg;
  const group = numHeads / numKvHeads;
  const out: Tensors = new Map(tensors);
  const expandRows = (t: RefTensor, rowLen: number): RefTensor => {
    const data = new Float32Array(numHeads * D * rowLen);
    for (let h = 0; h < numHeads; h++) {
      const j = Math.floor(h / group);
      data.set(t.data.subarray(j * D * rowLen, (j + 1) * D * rowLen), h * D * rowLen);
    }
    return { shape: rowLen === 1 ? [numHeads * D] : [numHeads * D, rowLen], data };
  };
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}.self_attn`;
    for (const n of ['k_proj.weight', 'v_proj.weight']) out.set(`${p}.${n}`, expandRows(tensors.get(`${p}.${n}`)!, H));
    for (const n of ['k_proj.bias', 'v_proj.bias', 'k_norm.weight']) {
      if (tensors.has(`${p}.${n}`)) out.set(`${p}.${n}`, expandRows(tensors.get(`${p}.${n}`)!, 1));
    }
  }
  return { config: { ...config, num_key_value_heads: numHeads }, tensors: out };
}

test('GQA equals MHA with the kv heads duplicated (kv_heads = 1 and kv_heads = 2 of 4)', () => {
  for (const type of TYPES) {
    for (const kvHeads of [1, 2]) {
      const { config, tensors } = makeModel({ ...SPECS[type], kvHeads, seed: 10 + kvHeads });
      const gqa = run(config, tensors, IDS);
      const mha = expandKvHeads(config, tensors);
      assert.equal(resolveRefConfig(mha.config).numKvHeads, 4);
      assertResultsClose(gqa, run(mha.config, mha.tensors, IDS), 1e-10, `${type} kv=${kvHeads}`);
    }
  }
  // The kv head -> query head mapping matters: interleaving (h % kv) instead of blocks (h / group) changes the result.
  const { config, tensors } = makeModel({ ...SPECS.mixtral, kvHeads: 2, seed: 12 });
  const wrong = new Map(tensors);
  const D = 4,
    H = 16;
  for (let l = 0; l < 2; l++) {
    for (const n of ['k_proj', 'v_proj']) {
      const t = tensors.get(`model.layers.${l}.self_attn.${n}.weight`)!;
      const data = new Float32Array(4 * D * H);
      for (let h = 0; h < 4; h++) data.set(t.data.subarray((h % 2) * D * H, ((h % 2) + 1) * D * H), h * D * H);
      wrong.set(`model.layers.${l}.self_attn.${n}.weight`, { shape: [4 * D, H], data });
    }
  }
  const a = run(config, tensors, IDS);
  const b = run({ ...config, num_key_value_heads: 4 }, wrong, IDS);
  assert.ok(maxAbsDiff(a.logits[IDS.length - 1], b.logits[IDS.length - 1]) > 1e-6);
});

test('qwen2_moe: decoder_sparse_step and mlp_only_layers select dense MLP layers', () => {
  const spec: Spec = { ...SPECS.qwen2_moe, layers: 4, extra: { decoder_sparse_step: 2, mlp_only_layers: [3] } };
  const { config, tensors } = makeModel(spec);
  // sparse iff l not in [3] and (l + 1) % 2 == 0 -> only layer 1
  assert.deepEqual(resolveRefConfig(config).sparseLayers, [false, true, false, false]);
  assert.ok(tensors.has('model.layers.0.mlp.gate_proj.weight'));
  const r = run(config, tensors, IDS);
  assert.deepEqual(
    r.routerProbs.map((l) => l.length),
    [0, IDS.length, 0, 0],
  );
  assert.deepEqual(r.topExperts[0], []);
  assert.throws(() => r.expertOutputs(0, 0, 0), /not a MoE layer/);
  const x = r.hiddenBeforeMoe[2][5];
  assertClose(r.mlpOutputs[2][5], naiveSwiGlu(tensors, 'model.layers.2.mlp', ['gate_proj', 'up_proj', 'down_proj'], x), 1e-12, 'dense MLP');
  // absent keys: all layers sparse
  assert.deepEqual(resolveRefConfig({ ...config, decoder_sparse_step: undefined, mlp_only_layers: undefined }).sparseLayers, [true, true, true, true]);
});

test('tie_word_embeddings uses the embedding matrix as lm_head', () => {
  const { config, tensors } = makeModel(SPECS.olmoe);
  const untied = new Map(tensors);
  untied.set('lm_head.weight', tensors.get('model.embed_tokens.weight')!);
  const tied = new Map(tensors);
  tied.delete('lm_head.weight');
  const a = run(config, untied, IDS);
  const b = run({ ...config, tie_word_embeddings: true }, tied, IDS);
  assertResultsClose(a, b, 0, 'tied');
  assert.throws(() => run(config, tied, IDS), /lm_head\.weight/);
});

test('mixtral sliding_window: position t sees t-w+1..t, and RoPE makes scores depend only on relative position', () => {
  const { config, tensors } = makeModel({ ...SPECS.mixtral, layers: 1, seed: 21 });
  const windowed = { ...config, sliding_window: 2 };
  const long = run(windowed, tensors, IDS.slice(0, 6));
  const short = run(windowed, tensors, IDS.slice(4, 6));
  // With one layer and a window of 2, position 5 of the long sequence sees exactly tokens 4 and 5, at the same relative offsets.
  assertClose(long.logits[5], short.logits[1], 1e-10, 'windowed');
  const full = run(config, tensors, IDS.slice(0, 6));
  assert.ok(maxAbsDiff(full.logits[5], short.logits[1]) > 1e-6, 'without the window position 5 sees more');
  assertClose(full.logits[1], long.logits[1], 1e-12, 'positions < window unaffected');
});

test('olmoe clip_qkv clamps when set and is a no-op when null or huge', () => {
  const { config, tensors } = makeModel(SPECS.olmoe);
  const base = run(config, tensors, IDS);
  assertResultsClose(base, run({ ...config, clip_qkv: 1e9 }, tensors, IDS), 0, 'huge clip');
  const clipped = run({ ...config, clip_qkv: 0.3 }, tensors, IDS);
  assert.ok(maxAbsDiff(clipped.logits[IDS.length - 1], base.logits[IDS.length - 1]) > 1e-6);
});

test('existence probing without hasTensor (getter throws for unknown names) gives the same results', () => {
  for (const type of TYPES) {
    const { config, tensors } = makeModel(SPECS[type]);
    const packed = packExperts(config, tensors);
    const a = referenceForward(config, getter(packed), IDS);
    assertResultsClose(a, run(config, packed, IDS), 0, `${type} probe`);
  }
});

test('config and tensor errors are reported', () => {
  const { config, tensors } = makeModel(SPECS.olmoe);
  assert.throws(() => run({ ...config, model_type: 'llama' }, tensors, IDS), /unsupported model_type/);
  assert.throws(() => run(config, tensors, [40]), /outside/);
  const missing = new Map(tensors);
  missing.delete('model.layers.1.self_attn.q_norm.weight');
  assert.throws(() => run(config, missing, IDS), /q_norm/);
  const wrongShape = new Map(tensors);
  wrongShape.set('model.layers.0.mlp.gate.weight', { shape: [16, 8], data: tensors.get('model.layers.0.mlp.gate.weight')!.data });
  assert.throws(() => run(config, wrongShape, IDS), /shape/);
  const noExperts = new Map([...tensors].filter(([n]) => !n.startsWith('model.layers.0.mlp.experts.')));
  assert.throws(() => run(config, noExperts, IDS), /neither/);
  // qwen2_moe requires the q/k/v biases unless qkv_bias is false
  const q = makeModel(SPECS.qwen2_moe);
  const noBias = new Map([...q.tensors].filter(([n]) => !n.endsWith('_proj.bias')));
  assert.throws(() => run(q.config, noBias, IDS), /q_proj\.bias/);
  run({ ...q.config, qkv_bias: false }, noBias, IDS);
});

test('OLMoE shape: 16 layers x 64 experts (top-8), hidden 64, 16 tokens (time measured in bench/, not asserted)', () => {
  const spec: Spec = { type: 'olmoe', layers: 16, hidden: 64, heads: 4, kvHeads: 4, experts: 64, topK: 8, inter: 32, vocab: 512, seed: 99 };
  const { config, tensors } = makeModel(spec);
  const ids = Array.from({ length: 16 }, (_, i) => (i * 37) % 512);
  const t0 = performance.now();
  const r = run(config, tensors, ids);
  const ms = performance.now() - t0;
  console.log(`reference forward 16x64 experts, 16 tokens: ${ms.toFixed(0)} ms`);
  assert.equal(r.logits.length, 16);
  assert.equal(r.logits[0].length, 512);
  assert.equal(r.routerProbs.length, 16);
});
