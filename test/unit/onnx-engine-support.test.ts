/**
 * What the ONNX Runtime engine refuses and what `auto` then does: an MoE family it does not build, or a
 * routing field it does not implement, is refused by name with the PyTorch engine named as the way to run
 * it, and `auto` picks the PyTorch engine whenever its Python is usable (GPU or not).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { onnxEngineRefusal } from '../../src/engines/onnxruntime/support';
import { familyFor, UnsupportedByEngineError, type HfConfig } from '../../src/engines/onnxruntime/families';
import { chooseEngine } from '../../src/engines/client/pythonWorker';
import type { PythonEnvironment } from '../../src/shared/protocol';
import { tempDir } from '../support/models';

const DEEPSEEK_V3: HfConfig = {
  model_type: 'deepseek_v3',
  hidden_size: 64,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  intermediate_size: 96,
  moe_intermediate_size: 32,
  n_routed_experts: 16,
  num_experts_per_tok: 4,
  n_group: 4,
  topk_group: 2,
  first_k_dense_replace: 1,
  n_shared_experts: 1,
  kv_lora_rank: 16,
  q_lora_rank: 24,
  qk_nope_head_dim: 8,
  qk_rope_head_dim: 8,
  v_head_dim: 12,
  routed_scaling_factor: 2.5,
  norm_topk_prob: true,
  vocab_size: 300,
};

function folderWith(config: unknown): string {
  const dir = tempDir('onnx-support');
  fs.writeFileSync(path.join(dir, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return dir;
}

function refusal(config: HfConfig): string {
  try {
    familyFor(config, 'config.json').architecture(config, 'config.json');
  } catch (e) {
    assert.ok(e instanceof UnsupportedByEngineError, `expected an UnsupportedByEngineError, got ${String(e)}`);
    return e.message;
  }
  assert.fail(`${JSON.stringify(config.model_type)} was not refused`);
}

test('an MoE family the ONNX Runtime engine does not build is refused, naming the PyTorch engine', async () => {
  for (const type of ['jamba', 'phimoe', 'llama4_text', 'qwen3_next', 'longcat_flash']) {
    const msg = refusal({ model_type: type });
    assert.match(msg, new RegExp(`model_type "${type}" is a Mixture-of-Experts family the ONNX Runtime engine does not build`));
    assert.match(msg, /--engine pytorch/);
    assert.match(msg, /deepseek_v3/, 'the families it does build are listed');
    assert.match((await onnxEngineRefusal(folderWith({ model_type: type })))!, /--engine pytorch/);
  }
});

test('routing fields the ONNX Runtime engine does not implement are refused by name', () => {
  assert.match(refusal({ ...DEEPSEEK_V3, scoring_func: 'softmax' }), /"scoring_func": "softmax" is not supported by the ONNX Runtime engine.*--engine pytorch/);
  assert.match(refusal({ ...DEEPSEEK_V3, topk_method: 'greedy' }), /"topk_method": "greedy"/);
  assert.match(refusal({ ...DEEPSEEK_V3, moe_layer_freq: 2 }), /"moe_layer_freq": 2/);
  assert.match(refusal({ ...DEEPSEEK_V3, attention_bias: true }), /"attention_bias": true/);
  assert.match(refusal({ ...DEEPSEEK_V3, model_type: 'deepseek_v2', topk_method: 'noaux_tc' }), /"topk_method": "noaux_tc"/);
  assert.match(
    refusal({ ...DEEPSEEK_V3, model_type: 'hunyuan_v1_moe', num_experts: [8, 8, 8], moe_topk: 2, intermediate_size: 32 }),
    /"num_experts": \[8,8,8\]/,
  );
  assert.match(refusal({ ...DEEPSEEK_V3, model_type: 'glm4_moe', layer_types: ['full_attention', 'sliding_attention', 'full_attention'] }), /"layer_types"/);
});

test('an absurd layer count with dense layers fails with a message instead of listing a billion layers', () => {
  for (const c of [
    { ...DEEPSEEK_V3, num_hidden_layers: 1e9 },
    { ...DEEPSEEK_V3, model_type: 'ernie4_5_moe', moe_num_experts: 8, moe_k: 2, num_hidden_layers: 1e9 },
  ])
    assert.throws(
      () => familyFor(c, 'config.json').architecture(c, 'config.json'),
      /"num_hidden_layers" is 1000000000: more decoder layers than any checkpoint has/,
    );
});

test('what it builds is described: MoE layers, decoder layers and the routing kind', () => {
  const a = familyFor(DEEPSEEK_V3, 'config.json').architecture(DEEPSEEK_V3, 'config.json');
  assert.deepEqual(a.moeLayers, [1, 2]);
  assert.equal(a.router?.kind, 'sigmoid-bias-group');
  assert.deepEqual(a.router?.groups, { n: 4, topk: 2, score: 'top2-sum', maskedScore: -Infinity });
  assert.equal(a.router?.routedScaling, 2.5);
  assert.equal(a.mla?.ropeDim, 8);
});

test('onnxEngineRefusal: null for what the engine builds and for malformed folders (the load reports those)', async () => {
  assert.equal(await onnxEngineRefusal(folderWith(DEEPSEEK_V3)), null);
  assert.equal(await onnxEngineRefusal(folderWith('{ not json')), null);
  assert.equal(await onnxEngineRefusal(folderWith({ ...DEEPSEEK_V3, hidden_size: -1 })), null);
  assert.equal(await onnxEngineRefusal(path.join(tempDir('onnx-support'), 'missing')), null);
});

const env = (over: Partial<PythonEnvironment>): PythonEnvironment => ({
  python: '3.11',
  executable: '/py',
  torch: '2.5',
  transformers: '5.0',
  problems: [],
  usable: true,
  gpu: false,
  devices: [],
  ...over,
});

test('auto: a model the ONNX Runtime engine refuses goes to a usable PyTorch engine, even without a GPU', async () => {
  const why = await onnxEngineRefusal(folderWith({ model_type: 'jamba' }));
  const cpu = chooseEngine(env({}), why);
  assert.equal(cpu.engine, 'pytorch');
  assert.match(cpu.why, /does not build this model.*jamba/);
  // Without a usable Python the ONNX Runtime engine is chosen; its load then names the PyTorch engine.
  assert.equal(chooseEngine(env({ usable: false, problems: ['no torch'] }), why).engine, 'onnxruntime');
  // A model it builds keeps the usual rule (no GPU: ONNX Runtime).
  assert.equal(chooseEngine(env({}), await onnxEngineRefusal(folderWith(DEEPSEEK_V3))).engine, 'onnxruntime');
});
