/**
 * transformers itself as the reference: tiny random checkpoints written by transformers' own model
 * classes and save_pretrained (test/support/hf_reference.py), traced by the ONNX engine and compared with
 * transformers' fp32 forward (output_router_logits): last-position logits and router probabilities within
 * 1e-4, identical top-k sets except exact ties. Also: config.json RoPE settings transformers 5 writes
 * (rope_parameters) give the right numbers, and RoPE variants the engine does not implement are refused
 * by name.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { Checkpoint, CheckpointError } from '../../src/engines/onnxruntime/checkpoint';
import { loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { EngineFailure } from '../../src/shared/protocol';
import { testPython } from '../support/python';
import { parityGap } from '../support/parity';
import { makeModel, tempDir, REPO_ROOT, SAMPLE_QUESTION } from '../support/models';

const TOL = 1e-4;
/** Every variant hf_reference.py writes; the test fails if one is missing. */
const VARIANTS = [
  'olmoe',
  'olmoe-bf16-sharded',
  'mixtral-gqa',
  'mixtral-sliding',
  'qwen2_moe',
  'qwen3_moe',
  'qwen3_moe-yarn',
  'qwen3_moe-sliding',
  'olmoe-linear-legacy',
  'qwen3_moe-bf16-sharded',
];

interface HfReference {
  name: string;
  transformers: string;
  lastLogits: number[];
  routerProbs: number[][][];
  topExperts: number[][][];
}

let root = '';
let ids: number[] = [];

before(async () => {
  const python = testPython();
  root = tempDir('hf-parity');
  // A real byte-level BPE tokenizer (the demo generator's) gives the checkpoints a tokenizer.json the
  // engine can load and a realistic id sequence; a 1-layer demo model is the cheapest way to get one.
  const tokDir = makeModel({ family: 'olmoe', overrides: { layers: 1, experts: 2, topK: 1 } });
  const vocab = (JSON.parse(fs.readFileSync(path.join(tokDir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  ids = (await loadTokenizer(tokDir)).encode(SAMPLE_QUESTION).ids;
  assert.ok(ids.length > 20, 'the sample question is long enough for the sliding window to matter');
  execFileSync(
    python,
    [
      path.join(REPO_ROOT, 'test', 'support', 'hf_reference.py'),
      '--out',
      root,
      '--vocab',
      String(vocab),
      '--ids',
      JSON.stringify(ids),
      '--tokenizer-dir',
      tokDir,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' } },
  );
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'variants.json'), 'utf8')), VARIANTS);
});

after(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

async function traceIds(dir: string) {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: path.join(root, 'cache') });
    return await engine.trace({ ids }, { includeProbs: true, includeLastLogits: true });
  } finally {
    await engine.dispose();
  }
}

for (const name of VARIANTS) {
  test(`ONNX engine matches transformers' forward: ${name}`, async (t) => {
    const dir = path.join(root, name);
    const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as HfReference;
    const r = await traceIds(dir);
    const { numLayers: L, numTokens: T, topK: K } = r.routing;
    assert.equal(L, ref.routerProbs.length, 'layer count');
    assert.equal(T, ids.length);
    const { maxLogit, maxProb, topkDiffs } = parityGap(r, ref);
    t.diagnostic(
      `${name}: max |logit diff| ${maxLogit.toExponential(2)}, max |router prob diff| ${maxProb.toExponential(2)}, top-k differences ${topkDiffs} over ${L * T} (layer, token) places`,
    );
    assert.ok(maxLogit < TOL, `${name}: last-position logits differ from transformers ${ref.transformers} by ${maxLogit}`);
    assert.ok(maxProb < TOL, `${name}: router probabilities differ from transformers ${ref.transformers} by ${maxProb}`);
    assert.equal(topkDiffs, 0, `${name}: top-${K} expert sets differ from transformers' at ${topkDiffs} (layer, token) places`);
  });
}

test('a Mixtral checkpoint with rope_parameters uses its theta (1e6), not 10000', () => {
  const dir = path.join(root, 'mixtral-gqa');
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.rope_theta, undefined, 'transformers 5 writes no top-level rope_theta');
  const theta = (config.rope_parameters as { rope_theta: number }).rope_theta;
  const arch = Checkpoint.open(dir).arch;
  assert.equal(arch.rope.theta, theta);
  assert.equal(arch.rope.thetaSource, 'rope_parameters.rope_theta');
  // The numbers themselves are checked against transformers above ("mixtral-gqa").
});

function variantWith(from: string, edit: (config: Record<string, unknown>) => void): string {
  const dir = tempDir('hf-edited');
  for (const f of fs.readdirSync(path.join(root, from))) fs.copyFileSync(path.join(root, from, f), path.join(dir, f));
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  edit(config);
  fs.writeFileSync(file, JSON.stringify(config));
  return dir;
}

async function loadError(dir: string): Promise<string> {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: path.join(root, 'cache') });
  } catch (e) {
    assert.ok(e instanceof EngineFailure, `expected an EngineFailure, got ${String(e)}`);
    assert.equal(e.code, 'bad-model');
    return e.message;
  } finally {
    await engine.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assert.fail(`${dir} loaded although its config.json should be refused`);
}

test('an unknown rope type is refused with its name', async () => {
  const message = await loadError(
    variantWith('mixtral-gqa', (c) => {
      c.rope_parameters = { rope_type: 'zigzag_rope', rope_theta: 1e6, factor: 4 };
    }),
  );
  assert.match(message, /config\.json/);
  assert.match(message, /rope_parameters\.rope_type/);
  assert.match(message, /zigzag_rope/);
});

test('an unimplemented rope type in the legacy rope_scaling spelling is refused with its type', async () => {
  const message = await loadError(
    variantWith('olmoe', (c) => {
      c.rope_scaling = { type: 'dynamic', factor: 2 };
    }),
  );
  assert.match(message, /rope_scaling\.type/);
  assert.match(message, /dynamic/);
});

test('the RoPE variants above were read as what they are', () => {
  const yarn = Checkpoint.open(path.join(root, 'qwen3_moe-yarn')).arch.rope;
  assert.equal(yarn.type, 'yarn');
  assert.ok(yarn.attentionScale > 1, 'YaRN scales cos/sin by its attention factor');
  assert.ok(ids.length > 32, 'the traced sequence is longer than original_max_position_embeddings');
  const legacy = JSON.parse(fs.readFileSync(path.join(root, 'olmoe-linear-legacy', 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(legacy.rope_parameters, undefined, 'written in the legacy spelling');
  assert.deepEqual(legacy.rope_scaling, { type: 'linear', factor: 3 });
  const linear = Checkpoint.open(path.join(root, 'olmoe-linear-legacy')).arch.rope;
  assert.equal(linear.type, 'linear');
  assert.equal(linear.theta, 20000);
  assert.equal(linear.thetaSource, 'rope_theta');
});

test('Qwen3-MoE dense layers (decoder_sparse_step, mlp_only_layers) the weights do not hold are refused, naming the missing tensor', async () => {
  assert.equal(
    Checkpoint.open(path.join(root, 'qwen3_moe-sliding')).arch.slidingWindow,
    9,
    'use_sliding_window is honoured (checked against transformers above)',
  );
  // Dense layers themselves run (test/integration/onnx-family-parity.test.ts); here the checkpoint has experts there.
  assert.match(await loadError(variantWith('qwen3_moe', (c) => void (c.decoder_sparse_step = 2))), /model\.layers\.0\.mlp\.gate_proj\.weight" is missing/);
  assert.match(await loadError(variantWith('qwen3_moe', (c) => void (c.mlp_only_layers = [0]))), /model\.layers\.0\.mlp\.gate_proj\.weight" is missing/);
});

test('the top-level and rope_parameters theta must agree', () => {
  const dir = variantWith('mixtral-gqa', (c) => void (c.rope_theta = 10000));
  try {
    assert.throws(
      () => Checkpoint.open(dir),
      (e: Error) => e instanceof CheckpointError && /rope_theta.*10000.*rope_parameters\.rope_theta.*1000000/.test(e.message),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
