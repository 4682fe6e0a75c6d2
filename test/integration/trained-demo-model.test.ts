/**
 * The demo's trained toy (scripts/make-trained-demo-model.sh, python/train_demo_model.py), trained here
 * with fewer, smaller steps than the demo's (60 x 4 x 128 tokens instead of 150 x 8 x 256) to keep the
 * test short:
 * - two trainings write byte-identical weights (the SHA-256 that training.json records);
 * - the training text is MMLU dev+val only (training.json lists the files; test duplicates were dropped);
 * - the folder is what transformers' save_pretrained writes, and the ONNX engine matches transformers'
 *   forward on it (fp32 logits and router probabilities within 1e-4, identical top-k sets);
 * - it is labelled a trained toy (config.json), and the engine reports it so;
 * - its routing has structure the random demo model lacks (python/demo_structure.py on held-out test
 *   questions): lower gate entropy, more information about the token's kind in the top-1 expert, more
 *   experts never chosen at the scored "Answer:" position.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { testPython } from '../support/python';
import { parityGap } from '../support/parity';
import { engineClient } from '../support/engines';
import { makeModel, tempDir, REPO_ROOT, SAMPLE_QUESTION } from '../support/models';

const TOL = 1e-4;
const TRAIN_ARGS = ['--steps', '60', '--batch', '4', '--seq-len', '128'];
const PY_ENV = { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error', HF_HUB_DISABLE_PROGRESS_BARS: '1' };

let root = '';
let python = '';
let trainedA = '';
let trainedB = '';
let random = '';

function train(out: string): void {
  execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'make-trained-demo-model.sh'), out, ...TRAIN_ARGS], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...PY_ENV, MOE_SCOPE_PYTHON: python },
    timeout: 600_000,
  });
}

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function json<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

before(() => {
  python = testPython();
  if (!fs.existsSync(path.join(REPO_ROOT, 'dist', 'cli.js'))) throw new Error('dist/cli.js is missing: build first (node esbuild.mjs)');
  root = tempDir('trained-demo');
  trainedA = path.join(root, 'a');
  trainedB = path.join(root, 'b');
  train(trainedA);
  train(trainedB);
  random = makeModel({ family: 'olmoe' });
});

after(() => {
  for (const dir of [root, random]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

test('two trainings write byte-identical weights, and training.json records their SHA-256', () => {
  const a = sha256(path.join(trainedA, 'model.safetensors'));
  assert.equal(sha256(path.join(trainedB, 'model.safetensors')), a, 'the second training wrote other weights');
  assert.equal(json<{ modelSha256: string }>(path.join(trainedA, 'training.json')).modelSha256, a);
  const randomWeights = sha256(path.join(random, 'model.safetensors'));
  assert.notEqual(a, randomWeights);
});

test('the training text is MMLU dev+val only, with test duplicates dropped; the loss fell', () => {
  const t = json<{ trainingFiles: string[]; questions: number; droppedAsTestDuplicates: number; losses: number[] }>(path.join(trainedA, 'training.json'));
  assert.equal(t.trainingFiles.length, 2 * 57, 'one dev and one val file per MMLU subject');
  for (const f of t.trainingFiles) assert.match(f, /^data\/(dev\/\w+_dev|val\/\w+_val)\.csv$/);
  assert.ok(t.questions > 1700, `${t.questions} questions`);
  assert.ok(t.droppedAsTestDuplicates > 0, 'MMLU has val questions that are also test questions: they are dropped');
  assert.equal(t.losses.length, 60);
  assert.ok(t.losses[59] < t.losses[0] - 2, `loss ${t.losses[0]} -> ${t.losses[59]}`);
});

test('it is labelled a trained toy, not OLMoE, and the ONNX engine matches transformers on it', async (t) => {
  const config = json<Record<string, unknown>>(path.join(trainedA, 'config.json'));
  assert.equal(config.moe_scope_demo_trained, true);
  assert.match(String(config.moe_scope_demo), /TOY trained .* MMLU dev\/val text .*not OLMoE/);
  assert.equal(config.num_hidden_layers, 16);
  assert.equal(config.num_experts, 64);
  assert.equal(config.num_experts_per_tok, 8);

  const ids = (await loadTokenizer(trainedA)).encode(SAMPLE_QUESTION).ids;
  const refFile = path.join(root, 'reference.json');
  execFileSync(python, [path.join(REPO_ROOT, 'test', 'support', 'hf_forward.py'), '--model', trainedA, '--ids', JSON.stringify(ids), '--out', refFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: PY_ENV,
  });
  const ref = json<{ transformers: string; lastLogits: number[]; routerProbs: number[][][]; topExperts: number[][][] }>(refFile);
  const engine = new Engine();
  try {
    const info = await engine.load(trainedA, { executionProvider: 'cpu', cacheDir: path.join(root, 'cache') });
    assert.equal(info.demo?.trained, true, 'the engine reports the trained toy');
    const r = await engine.trace({ ids }, { includeProbs: true, includeLastLogits: true });
    assert.equal(r.routing.numLayers, ref.routerProbs.length);
    assert.equal(r.routing.numTokens, ids.length);
    const { maxLogit, maxProb, topkDiffs } = parityGap(r, ref);
    t.diagnostic(
      `trained demo: max |logit diff| ${maxLogit.toExponential(2)}, max |router prob diff| ${maxProb.toExponential(2)}, top-k differences ${topkDiffs}`,
    );
    assert.ok(maxLogit < TOL, `last-position logits differ from transformers ${ref.transformers} by ${maxLogit}`);
    assert.ok(maxProb < TOL, `router probabilities differ from transformers ${ref.transformers} by ${maxProb}`);
    assert.equal(topkDiffs, 0);
  } finally {
    await engine.dispose();
  }
});

test('the PyTorch engine reports it as the trained toy too', async () => {
  const client = engineClient('pytorch');
  try {
    const info = await client.call('load', { modelPath: trainedA, options: { executionProvider: 'cpu' } });
    assert.equal(info.engine, 'pytorch');
    assert.equal(info.demo?.trained, true);
    assert.match(info.demo?.note ?? '', /not OLMoE/);
  } finally {
    await client.dispose();
  }
});

interface Structure {
  tokens: number;
  meanEntropy: number;
  maxEntropy: number;
  meanKindInformation: number;
  totalNeverActivatedAtAnswer: number;
  entropy: number[];
}

test('the trained toy routes with structure the random demo model lacks', (t) => {
  const mmlu = execFileSync('bash', [path.join(REPO_ROOT, 'scripts', 'unpack-mmlu.sh')], { encoding: 'utf8' }).trim();
  const out = execFileSync(
    python,
    [
      path.join(REPO_ROOT, 'python', 'demo_structure.py'),
      '--mmlu',
      mmlu,
      '--per-subject',
      '1',
      '--model',
      `random=${random}`,
      '--model',
      `trained=${trainedA}`,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: PY_ENV, maxBuffer: 64 << 20 },
  );
  const s = JSON.parse(out) as { random: Structure; trained: Structure };
  for (const [name, m] of Object.entries(s)) {
    t.diagnostic(
      `${name}: ${m.tokens} tokens, gate entropy ${m.meanEntropy} of ${m.maxEntropy} nats, kind information ${m.meanKindInformation}, never chosen at "Answer:" ${m.totalNeverActivatedAtAnswer} (layer, expert) pairs`,
    );
  }
  assert.ok(s.trained.meanEntropy < s.random.meanEntropy - 0.15, `gate entropy: trained ${s.trained.meanEntropy}, random ${s.random.meanEntropy}`);
  assert.ok(
    s.trained.meanKindInformation > s.random.meanKindInformation + 0.03,
    `information of the top-1 expert about the token kind: trained ${s.trained.meanKindInformation}, random ${s.random.meanKindInformation}`,
  );
  assert.ok(
    s.trained.totalNeverActivatedAtAnswer > s.random.totalNeverActivatedAtAnswer + 50,
    `(layer, expert) pairs never chosen at the answer position: trained ${s.trained.totalNeverActivatedAtAnswer}, random ${s.random.totalNeverActivatedAtAnswer}`,
  );
});
