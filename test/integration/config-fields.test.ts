/**
 * config.json fields per family: honoured fields are read in both spellings transformers has used,
 * numbers are range-checked, and fields that change the math in an unimplemented way are refused with a
 * message naming config.json, the field and its value. Descriptor tests read no weights; the last test
 * loads a generated checkpoint to show the engine refuses before building anything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { familyFor, ConfigError, type HfConfig, type MoeArchitecture } from '../../src/engines/onnxruntime/families';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { EngineFailure } from '../../src/shared/protocol';
import { makeModel, tempDir } from '../support/models';

const FILE = '/models/x/config.json';

const BASE: Record<string, HfConfig> = {
  olmoe: {
    model_type: 'olmoe',
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    intermediate_size: 16,
    num_experts: 8,
    num_experts_per_tok: 2,
    vocab_size: 128,
  },
  mixtral: {
    model_type: 'mixtral',
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    intermediate_size: 16,
    num_local_experts: 4,
    vocab_size: 128,
  },
  qwen2_moe: {
    model_type: 'qwen2_moe',
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    moe_intermediate_size: 16,
    shared_expert_intermediate_size: 8,
    num_experts: 8,
    vocab_size: 128,
  },
  qwen3_moe: {
    model_type: 'qwen3_moe',
    hidden_size: 32,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 16,
    moe_intermediate_size: 16,
    num_local_experts: 16,
    vocab_size: 128,
  },
};

function arch(config: HfConfig): MoeArchitecture {
  return familyFor(config, FILE).architecture(config, FILE);
}

function refused(config: HfConfig, ...patterns: RegExp[]): void {
  assert.throws(
    () => arch(config),
    (e: Error) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      assert.ok(e.message.startsWith(FILE), `names config.json: ${e.message}`);
      for (const p of patterns) assert.match(e.message, p);
      return true;
    },
  );
}

test('RoPE theta: rope_parameters, top-level rope_theta, else the family default transformers uses', () => {
  for (const [family, fallback] of [
    ['olmoe', 10000],
    ['mixtral', 1e6],
    ['qwen2_moe', 10000],
    ['qwen3_moe', 10000],
  ] as const) {
    const base = BASE[family];
    assert.equal(arch(base).rope.theta, fallback, `${family} default`);
    assert.equal(arch({ ...base, rope_theta: 123456 }).rope.theta, 123456, `${family} top-level`);
    const a = arch({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 654321 } });
    assert.equal(a.rope.theta, 654321, `${family} rope_parameters`);
    assert.equal(a.rope.thetaSource, 'rope_parameters.rope_theta');
    assert.equal(arch({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 5e5 }, rope_theta: 5e5 }).rope.theta, 5e5, 'both spellings agreeing');
  }
});

test('RoPE variants the engine does not implement are refused by field and value', () => {
  for (const base of Object.values(BASE)) {
    refused({ ...base, rope_parameters: { rope_type: 'longrope', rope_theta: 1e6, factor: 4 } }, /rope_parameters\.rope_type/, /"longrope"/);
    refused({ ...base, rope_parameters: { rope_type: 'yarn', rope_theta: 1e6, factor: 4, low_freq_factor: 1 } }, /rope_parameters\.low_freq_factor/);
    refused({ ...base, rope_parameters: { rope_type: 'linear', rope_theta: 1e6 } }, /rope_parameters\.factor" is missing/);
    refused({ ...base, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /rope_scaling\.rope_type/, /llama3/);
    refused({ ...base, rope_scaling: { type: 'dynamic', factor: 2 } }, /rope_scaling\.type/, /dynamic/);
    refused({ ...base, rope_parameters: { rope_type: 'default', rope_theta: 1e4, factor: 2 } }, /rope_parameters\.factor/, /2/);
    refused({ ...base, rope_parameters: { rope_theta: 1e4, partial_rotary_factor: 0.5 } }, /partial_rotary_factor/, /0\.5/);
    refused({ ...base, partial_rotary_factor: 0.25 }, /"partial_rotary_factor"/, /0\.25/);
    refused({ ...base, rope_parameters: 'default' }, /rope_parameters/, /must be an object/);
  }
});

test('config numbers are range-checked: theta and eps > 0 and finite, sizes positive integers', () => {
  const b = BASE.olmoe;
  refused({ ...b, rope_theta: 0 }, /"rope_theta"/, /> 0/, /got 0/);
  refused({ ...b, rope_theta: -5 }, /"rope_theta"/, /got -5/);
  refused({ ...b, rope_parameters: { rope_type: 'default', rope_theta: 0 } }, /rope_parameters\.rope_theta/, /got 0/);
  refused({ ...b, rope_theta: 'big' }, /"rope_theta"/, /"big"/);
  refused({ ...b, rms_norm_eps: -1e-5 }, /"rms_norm_eps"/, /got -0\.00001/);
  refused({ ...b, rms_norm_eps: 0 }, /"rms_norm_eps"/, /got 0/);
  refused({ ...b, rms_norm_eps: 5 }, /"rms_norm_eps"/, /small number/);
  refused({ ...b, clip_qkv: 0 }, /"clip_qkv"/, /got 0/);
  refused({ ...b, hidden_size: 32.5 }, /"hidden_size"/, /positive integer/);
  refused({ ...b, num_hidden_layers: -2 }, /"num_hidden_layers"/, /-2/);
  refused({ ...BASE.mixtral, sliding_window: -4 }, /"sliding_window"/, /-4/);
  refused({ ...b, tie_word_embeddings: 'yes' }, /"tie_word_embeddings"/, /true or false/);
  refused({ ...b, norm_topk_prob: 1 }, /"norm_topk_prob"/, /true or false/);
});

test('fields that change the math and are not implemented are refused by name and value', () => {
  for (const base of Object.values(BASE)) {
    refused({ ...base, hidden_act: 'gelu' }, /"hidden_act"/, /"gelu"/);
    refused({ ...base, quantization_config: { quant_method: 'gptq' } }, /"quantization_config"/, /gptq/);
  }
  refused({ ...BASE.olmoe, attention_bias: true }, /"attention_bias": true/);
  refused({ ...BASE.qwen3_moe, attention_bias: true }, /"attention_bias": true/);
  for (const q of [BASE.qwen2_moe, BASE.qwen3_moe]) {
    // Dense layers are built (test/integration/onnx-family-parity checks them against transformers); a
    // list that names no decoder layer, or leaves no MoE layer, is refused by name.
    assert.deepEqual(arch({ ...q, decoder_sparse_step: 2, intermediate_size: 64 }).moeLayers, [1]);
    assert.deepEqual(arch({ ...q, mlp_only_layers: [1], intermediate_size: 64 }).moeLayers, [0]);
    refused({ ...q, mlp_only_layers: [7], intermediate_size: 64 }, /"mlp_only_layers"/, /\[7\]/);
    refused({ ...q, mlp_only_layers: [0, 1], intermediate_size: 64 }, /no MoE layer/);
  }
  refused({ ...BASE.qwen2_moe, use_sliding_window: true }, /"use_sliding_window": true/);
  refused({ ...BASE.qwen3_moe, use_sliding_window: true, sliding_window: null }, /"sliding_window"/);
  refused({ ...BASE.qwen2_moe, layer_types: ['full_attention', 'sliding_attention'] }, /"layer_types"/, /sliding_attention/);
  refused({ ...BASE.qwen3_moe, num_experts: 8, num_local_experts: 16 }, /"num_experts" \(8\) and "num_local_experts" \(16\) disagree/);
});

test('honoured fields: what transformers 5 writes by default loads', () => {
  const q3 = arch({
    ...BASE.qwen3_moe,
    norm_topk_prob: true,
    mlp_only_layers: [],
    decoder_sparse_step: 1,
    use_sliding_window: false,
    sliding_window: 4096,
    attention_bias: false,
  });
  assert.equal(q3.family, 'qwen3_moe');
  assert.equal(q3.qkNorm, 'per-head');
  assert.equal(q3.numExperts, 16, 'num_local_experts, as transformers saves Qwen3-MoE');
  assert.equal(q3.headDim, 16, 'head_dim need not be hidden_size / heads');
  assert.equal(q3.normTopKProb, true);
  assert.equal(q3.sharedExpert, null);
  assert.equal(q3.slidingWindow, null, 'sliding_window without use_sliding_window is ignored, as transformers does');
  assert.equal(arch({ ...BASE.qwen3_moe, use_sliding_window: true, sliding_window: 128 }).slidingWindow, 128);
  const q2 = arch({ ...BASE.qwen2_moe, layer_types: ['full_attention', 'full_attention'], sliding_window: 0, use_sliding_window: false, qkv_bias: false });
  assert.equal(q2.qkvBias, false);
  assert.equal(q2.sharedExpert?.intermediate, 8);
  assert.equal(arch({ ...BASE.mixtral, sliding_window: 4096, head_dim: null }).slidingWindow, 4096);
  assert.equal(arch({ ...BASE.olmoe, clip_qkv: 8 }).clipQkv, 8);
  assert.equal(arch({ ...BASE.olmoe, hidden_act: 'silu', rope_scaling: null, rope_parameters: { rope_type: 'default', rope_theta: 10000 } }).rope.theta, 10000);
});

test('loading a checkpoint whose config.json says rope_theta 0 or a negative rms_norm_eps fails at once, naming the field', async () => {
  const dir = makeModel({ family: 'qwen3_moe', overrides: { layers: 1 } });
  const file = path.join(dir, 'config.json');
  const original = JSON.parse(fs.readFileSync(file, 'utf8')) as HfConfig;
  for (const [edit, pattern] of [
    [{ rope_theta: 0 }, /config\.json: "rope_theta" must be a finite number > 0, got 0/],
    [{ rms_norm_eps: -1e-6 }, /config\.json: "rms_norm_eps" must be a finite number > 0, got -0\.000001/],
    [{ rope_theta: undefined, rope_parameters: { rope_type: 'dynamic', factor: 2 } }, /config\.json: "rope_parameters\.rope_type": "dynamic" is not supported/],
  ] as const) {
    fs.writeFileSync(file, JSON.stringify({ ...original, ...edit }));
    const engine = new Engine();
    try {
      await assert.rejects(
        engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') }),
        (e: Error) => e instanceof EngineFailure && e.code === 'bad-model' && pattern.test(e.message),
      );
    } finally {
      await engine.dispose();
    }
  }
});

test('linear and yarn RoPE are read from either spelling; rope_scaling replaces rope_parameters as in transformers', () => {
  const b = BASE.qwen3_moe;
  const plain = arch(b).rope;
  const linear = arch({ ...b, rope_scaling: { type: 'linear', factor: 4 } }).rope;
  assert.equal(linear.type, 'linear');
  linear.invFreq.forEach((f, i) => assert.ok(Math.abs(f - plain.invFreq[i]! / 4) < 1e-15));
  const yarn = arch({
    ...b,
    max_position_embeddings: 4096,
    rope_parameters: { rope_type: 'yarn', rope_theta: 10000, factor: 4, original_max_position_embeddings: 1024 },
  }).rope;
  assert.equal(yarn.type, 'yarn');
  assert.ok(Math.abs(yarn.attentionScale - (0.1 * Math.log(4) + 1)) < 1e-12, 'default attention factor 0.1 ln(factor) + 1');
  // The highest frequencies are extrapolated (kept), the lowest interpolated (divided by factor).
  assert.equal(yarn.invFreq[0], plain.invFreq[0]);
  assert.ok(Math.abs(yarn.invFreq.at(-1)! - plain.invFreq.at(-1)! / 4) < 1e-18);
  const replaced = arch({
    ...b,
    rope_theta: 5e5,
    rope_parameters: { rope_type: 'default', rope_theta: 5e5 },
    rope_scaling: { type: 'linear', factor: 2 },
  }).rope;
  assert.equal(replaced.type, 'linear');
  assert.equal(replaced.theta, 5e5);
  assert.equal(replaced.thetaSource, 'rope_theta');
});
