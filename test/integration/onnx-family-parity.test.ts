/**
 * The ONNX Runtime engine on every family it builds beyond the original four, against transformers
 * itself: tiny random checkpoints written by transformers (test/support/hf_families.py, routing-bias
 * buffers non-zero, dense first layers where the family has them), and as the reference the
 * (top_k_index, top_k_weights) each MoE layer's experts module received in transformers' fp32 forward.
 * Required: the same top-k set at every (MoE layer, token), each chosen expert's applied weight within
 * 1e-5, last-position logits within 1e-4, and routing rows labelled by their decoder layer.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { Checkpoint } from '../../src/engines/onnxruntime/checkpoint';
import { loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { decoderLayerOfRows } from '../../src/analysis/layers';
import { testPython } from '../support/python';
import type { TraceResult } from '../../src/shared/protocol';
import { makeModel, tempDir, REPO_ROOT, SAMPLE_QUESTION } from '../support/models';

/** Every variant hf_families.py writes, with the routing kind the engine must report. */
const VARIANTS: Record<string, string> = {
  olmoe: 'softmax-topk',
  mixtral: 'softmax-topk-renorm',
  deepseek_v3: 'sigmoid-bias-group',
  deepseek_v2: 'softmax-group-scaled',
  'deepseek_v2-greedy': 'softmax-group-scaled',
  glm4_moe: 'sigmoid-bias-group',
  dots1: 'sigmoid-bias-group',
  ernie4_5_moe: 'softmax-bias-choice',
  'qwen2_moe-dense': 'softmax-topk',
  'qwen3_moe-dense': 'softmax-topk-renorm',
  flex_olmo: 'softmax-topk',
  granitemoe: 'softmax-topk-renorm',
  granitemoeshared: 'softmax-topk-renorm',
  dbrx: 'softmax-topk-renorm',
  hunyuan_v1_moe: 'softmax-topk-renorm',
};
const LOGIT_TOL = 1e-4;
const WEIGHT_TOL = 1e-5;

interface RoutingReference {
  lastLogits: number[];
  /** [MoE layer][token][slot] */
  topIndex: number[][][];
  topWeights: number[][][];
}

interface FamilyReference extends RoutingReference {
  name: string;
  modelType: string;
  transformers: string;
  numDecoderLayers: number;
  moeLayers: number[];
  /** The same forward with one expert masked (its correction bias at -inf), for some variants. */
  masked?: RoutingReference & { row: number; expert: number };
}

/** Our routing and last logits against a reference: top-k set differences, weight and logit differences. */
function compareRouting(r: TraceResult, ref: RoutingReference) {
  const { numLayers: L, numTokens: T, topK: K, numExperts: E } = r.routing;
  let maxLogit = 0;
  for (let v = 0; v < ref.lastLogits.length; v++) maxLogit = Math.max(maxLogit, Math.abs(r.lastLogits![v] - ref.lastLogits[v]));
  let setDiffs = 0;
  let maxWeight = 0;
  let maxProbSumError = 0;
  for (let row = 0; row < L; row++) {
    for (let tok = 0; tok < T; tok++) {
      const at = (row * T + tok) * K;
      const ours = new Map<number, number>();
      for (let s = 0; s < K; s++) ours.set(r.routing.topExperts[at + s], r.routing.topWeights[at + s]);
      const theirs = ref.topIndex[row][tok];
      if (ours.size !== K || theirs.some((e) => !ours.has(e))) {
        setDiffs++;
        continue;
      }
      theirs.forEach((e, s) => (maxWeight = Math.max(maxWeight, Math.abs(ours.get(e)! - ref.topWeights[row][tok][s]))));
      let sum = 0;
      for (let e = 0; e < E; e++) sum += r.routing.probs![(row * T + tok) * E + e];
      maxProbSumError = Math.max(maxProbSumError, Math.abs(sum - 1));
    }
  }
  return { setDiffs, maxWeight, maxLogit, maxProbSumError };
}

let root = '';
let ids: number[] = [];

before(async () => {
  const python = testPython();
  root = tempDir('hf-families');
  const tokDir = makeModel({ family: 'olmoe', overrides: { layers: 1, experts: 2, topK: 1 } });
  const vocab = (JSON.parse(fs.readFileSync(path.join(tokDir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  // A shorter prompt than the whole question keeps the references small; 40 tokens exercise every path.
  ids = (await loadTokenizer(tokDir)).encode(SAMPLE_QUESTION).ids.slice(0, 40);
  execFileSync(
    python,
    [
      path.join(REPO_ROOT, 'test', 'support', 'hf_families.py'),
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
  assert.deepEqual(JSON.parse(fs.readFileSync(path.join(root, 'variants.json'), 'utf8')), Object.keys(VARIANTS));
});

after(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

for (const [name, kind] of Object.entries(VARIANTS)) {
  test(`ONNX engine routes ${name} exactly as transformers' experts received it`, async (t) => {
    const dir = path.join(root, name);
    const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as FamilyReference;
    const ckpt = Checkpoint.open(dir);
    for (const l of ref.moeLayers) {
      const bias = ckpt.names.layer(l).routerChoiceBias;
      if (bias)
        assert.ok(
          ckpt.readFloat32(bias).some((v) => v !== 0),
          `${name}: ${bias} is zero, so a rule ignoring it would pass by accident`,
        );
    }
    const engine = new Engine();
    try {
      const info = await engine.load(dir, { executionProvider: 'cpu', cacheDir: path.join(root, 'cache') });
      assert.deepEqual(info.moeLayers, ref.moeLayers, 'MoE layers');
      assert.equal(info.numDecoderLayers, ref.numDecoderLayers);
      assert.equal(info.numLayers, ref.moeLayers.length, 'numLayers counts routing rows');
      assert.deepEqual(decoderLayerOfRows(info), ref.moeLayers, 'rows are labelled by decoder layer');
      assert.equal(info.routing?.kind, kind);
      const r = await engine.trace({ ids }, { includeProbs: true, includeLastLogits: true });
      const { numLayers: L, numTokens: T, topK: K, numExperts: E } = r.routing;
      assert.equal(L, ref.moeLayers.length);
      assert.equal(T, ids.length);
      const c = compareRouting(r, ref);
      t.diagnostic(
        `${name}: top-k set differences ${c.setDiffs} of ${L * T}, max |weight diff| ${c.maxWeight.toExponential(2)}, max |logit diff| ${c.maxLogit.toExponential(2)} (transformers ${ref.transformers})`,
      );
      assert.equal(c.setDiffs, 0, `${name}: top-${K} sets differ from transformers' at ${c.setDiffs} (layer, token) places`);
      assert.ok(c.maxWeight < WEIGHT_TOL, `${name}: applied weights differ from transformers' by ${c.maxWeight}`);
      assert.ok(c.maxLogit < LOGIT_TOL, `${name}: last-position logits differ from transformers' by ${c.maxLogit}`);
      assert.ok(c.maxProbSumError < 1e-5, `${name}: the reported score distribution does not sum to 1 (off by ${c.maxProbSumError})`);
      assert.ok(E > K);

      if (ref.masked) {
        const { row, expert } = ref.masked;
        const chosenBefore = r.routing.topExperts.subarray(row * T * K, (row + 1) * T * K).filter((e) => e === expert).length;
        assert.ok(chosenBefore > 0, `${name}: the expert to mask (${expert}) was chosen before`);
        const m = await engine.trace({ ids }, { includeProbs: true, includeLastLogits: true, intervention: { mask: [[row, expert]], bias: [] } });
        const chosenAfter = m.routing.topExperts.subarray(row * T * K, (row + 1) * T * K).filter((e) => e === expert).length;
        assert.equal(chosenAfter, 0, `${name}: masked expert ${expert} of routing row ${row} is still chosen`);
        const cm = compareRouting(m, ref.masked);
        t.diagnostic(
          `${name} with expert ${expert} of row ${row} masked (chosen ${chosenBefore} times before): top-k set differences ${cm.setDiffs}, max |weight diff| ${cm.maxWeight.toExponential(2)}, max |logit diff| ${cm.maxLogit.toExponential(2)}`,
        );
        assert.equal(cm.setDiffs, 0, `${name} masked: top-${K} sets differ from transformers' with the same mask at ${cm.setDiffs} places`);
        assert.ok(cm.maxWeight < WEIGHT_TOL, `${name} masked: applied weights differ by ${cm.maxWeight}`);
        assert.ok(cm.maxLogit < LOGIT_TOL, `${name} masked: logits differ by ${cm.maxLogit}`);
      }
    } finally {
      await engine.dispose();
    }
  });
}

test('the weight analysis covers the MoE layers by decoder-layer index, whatever the expert layout', async () => {
  for (const name of ['deepseek_v3', 'granitemoeshared', 'qwen3_moe-dense']) {
    const dir = path.join(root, name);
    const ref = JSON.parse(fs.readFileSync(path.join(dir, 'reference.json'), 'utf8')) as FamilyReference;
    const engine = new Engine();
    try {
      await engine.load(dir, { executionProvider: 'cpu', cacheDir: path.join(root, 'cache') });
      const analysis = await engine.analyzeWeights(undefined);
      assert.deepEqual(
        analysis.layers.map((l) => l.layer),
        ref.moeLayers,
        name,
      );
      for (const l of analysis.layers) assert.ok(l.all.every(Number.isFinite), `${name} layer ${l.layer}: non-finite similarities`);
      const dense = Array.from({ length: ref.numDecoderLayers }, (_, i) => i).find((i) => !ref.moeLayers.includes(i));
      if (dense !== undefined) await assert.rejects(engine.analyzeWeights([dense]), /is a dense layer/);
    } finally {
      await engine.dispose();
    }
  }
});

test('a cached prefix (keys and values of MLA, partial-rotary and post-norm layers) gives the routing and answer of one pass', async () => {
  for (const name of ['deepseek_v3', 'deepseek_v2', 'glm4_moe', 'flex_olmo', 'granitemoeshared']) {
    const dir = path.join(root, name);
    const engine = new Engine();
    try {
      await engine.load(dir, { executionProvider: 'cpu', cacheDir: path.join(root, 'cache') });
      const whole = await engine.trace({ ids }, { includeProbs: false, includeLastLogits: false });
      const cut = 25;
      // Two items of different lengths after the same prefix: right-padding and the shared cache both in play.
      const res = await engine.score({
        prefix: { key: 'p', ids: ids.slice(0, cut) },
        items: [
          { key: 'full', ids: ids.slice(cut) },
          { key: 'short', ids: ids.slice(cut, cut + 5) },
        ],
      });
      const r = res.items[0].routing;
      const K = r.topK;
      assert.equal(r.numTokens, ids.length, name);
      let diffs = 0;
      let maxWeight = 0;
      for (let i = 0; i < r.topExperts.length; i++) {
        if (r.topExperts[i] !== whole.routing.topExperts[i]) diffs++;
        maxWeight = Math.max(maxWeight, Math.abs(r.topWeights[i] - whole.routing.topWeights[i]));
      }
      assert.equal(diffs, 0, `${name}: ${diffs} of ${r.topExperts.length / K} (layer, token, slot) choices differ between the cached prefix and one pass`);
      assert.ok(maxWeight < 1e-5, `${name}: weights differ by ${maxWeight}`);
      const maxLogp = Math.max(...whole.answerLogProbs.map((v, i) => Math.abs(v - res.items[0].answerLogProbs[i])));
      assert.ok(maxLogp < 1e-4, `${name}: answer log-probabilities differ by ${maxLogp}`);
      const short = await engine.trace({ ids: ids.slice(0, cut + 5) }, { includeProbs: false, includeLastLogits: false });
      const maxShort = Math.max(...short.answerLogProbs.map((v, i) => Math.abs(v - res.items[1].answerLogProbs[i])));
      assert.ok(maxShort < 1e-4, `${name}: the padded item's answer differs by ${maxShort}`);
    } finally {
      await engine.dispose();
    }
  }
});
