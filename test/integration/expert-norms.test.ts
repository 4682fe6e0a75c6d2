/**
 * MAN / MSAN against transformers: checkpoints written by transformers' own classes (test/support/hf_reference.py),
 * scored by the ONNX engine with expertOutputNorms (one prompt with a cached prefix, so the prefix's norms are
 * checked too) and folded by the run accumulator over every token; the reference calls transformers' expert
 * modules once per (token, slot) with weight 1 (test/support/hf_expert_norms.py). Counts must be identical and
 * MAN / MSAN agree within 1e-4 (relative above 1).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { addRecord, createAccumulator, summarizeAccumulator } from '../../src/analysis/accumulator';
import { testPython } from '../support/python';
import { makeModel, tempDir, REPO_ROOT, SAMPLE_QUESTION } from '../support/models';

const TOL = 1e-4;
const VARIANTS: Record<string, string> = { olmoe: 'OlmoeForCausalLM', qwen3_moe: 'Qwen3MoeForCausalLM', 'mixtral-gqa': 'MixtralForCausalLM' };
const env = { ...process.env, HF_HUB_OFFLINE: '1', TRANSFORMERS_VERBOSITY: 'error' };

let root = '';
let python = '';
let prompts: number[][] = [];

before(async () => {
  python = testPython();
  root = tempDir('hf-norms');
  const tokDir = makeModel({ family: 'olmoe', overrides: { layers: 1, experts: 2, topK: 1 } });
  const vocab = (JSON.parse(fs.readFileSync(path.join(tokDir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
  const tok = await loadTokenizer(tokDir);
  prompts = [tok.encode(SAMPLE_QUESTION).ids, tok.encode('Which planet is known as the red planet?\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn\nAnswer:').ids];
  execFileSync(
    python,
    [
      path.join(REPO_ROOT, 'test', 'support', 'hf_reference.py'),
      '--out',
      root,
      '--vocab',
      String(vocab),
      '--ids',
      JSON.stringify(prompts[0]),
      '--tokenizer-dir',
      tokDir,
      '--only',
      Object.keys(VARIANTS).join(','),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], env },
  );
});

after(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

for (const [name, cls] of Object.entries(VARIANTS)) {
  test(`MAN and MSAN of the ONNX engine match transformers' experts: ${name}`, async () => {
    const dir = path.join(root, name);
    const ref = JSON.parse(
      execFileSync(
        python,
        [path.join(REPO_ROOT, 'test', 'support', 'hf_expert_norms.py'), '--model', dir, '--class', cls, '--prompts', JSON.stringify(prompts)],
        {
          encoding: 'utf8',
          env,
          maxBuffer: 1 << 26,
        },
      ),
    ) as { count: number[][]; normSum: number[][]; normSqSum: number[][] };
    const engine = new Engine();
    try {
      const model = await engine.load(dir, { executionProvider: 'cpu', cacheDir: path.join(root, 'cache') });
      const acc = createAccumulator({ numLayers: model.numLayers, numExperts: model.numExperts, topK: model.topK }, 'all');
      // The first prompt after a cached prefix of its first 12 tokens, the second without a prefix.
      const cut = 12;
      const calls = [
        { prefix: { key: 'p', ids: prompts[0]!.slice(0, cut) }, items: [{ key: 'a', ids: prompts[0]!.slice(cut) }] },
        { prefix: null, items: [{ key: 'b', ids: prompts[1]! }] },
      ];
      for (const call of calls) {
        const res = await engine.score({ ...call, routingPositions: 'all', expertOutputNorms: true });
        for (const r of res.items) {
          assert.ok(r.expertOutputNorms, 'the engine returns the chosen experts’ norms');
          const T = r.routing.numTokens;
          assert.equal(T, r.promptTokens, 'all positions, prefix included');
          addRecord(acc, {
            questionId: r.key,
            subject: 's',
            correct: false,
            numLayers: r.routing.numLayers,
            numExperts: r.routing.numExperts,
            topK: r.routing.topK,
            numTokens: T,
            topExperts: r.routing.topExperts,
            topWeights: r.routing.topWeights,
            entropy: r.routing.entropy,
            questionTokens: [0, T],
            answerToken: T - 1,
            expertOutputNorms: r.expertOutputNorms,
          });
        }
      }
      const layers = summarizeAccumulator(acc).layers;
      let compared = 0;
      layers.forEach((ls, l) => {
        assert.deepEqual(ls.activationCounts, ref.count[l], `layer ${l}: the same (token, slot) assignments as transformers`);
        const s = ls.expertScores!;
        for (let e = 0; e < model.numExperts; e++) {
          const n = ref.count[l]![e]!;
          if (n === 0) {
            assert.equal(s.meanOutputNorm[e], null);
            continue;
          }
          const man = ref.normSum[l]![e]! / n;
          const msan = ref.normSqSum[l]![e]! / n;
          assert.ok(Math.abs(s.meanOutputNorm[e]! - man) <= TOL * Math.max(1, man), `layer ${l} expert ${e}: MAN ${s.meanOutputNorm[e]} vs ${man}`);
          assert.ok(
            Math.abs(s.meanSquaredOutputNorm[e]! - msan) <= TOL * Math.max(1, msan),
            `layer ${l} expert ${e}: MSAN ${s.meanSquaredOutputNorm[e]} vs ${msan}`,
          );
          assert.ok(man > 0);
          compared++;
        }
      });
      assert.ok(compared >= model.numLayers * model.topK, `compared ${compared} experts`);
    } finally {
      await engine.dispose();
    }
  });
}
