/**
 * Every model path against the independent reference forward pass (test/support/referenceModel.ts):
 * router probabilities and last-position logits within 1e-4, identical top-k sets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engines/onnxruntime/engine';
import type { TraceResult } from '../../src/shared/protocol';
import { makeModel, reference, tempDir, SAMPLE_QUESTION } from '../support/models';

const TOL = 1e-4;

async function traceWithEngine(dir: string, text: string): Promise<TraceResult> {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
    return await engine.trace({ text }, { includeProbs: true, includeLastLogits: true });
  } finally {
    await engine.dispose();
  }
}

function compare(dir: string, r: TraceResult): { maxLogit: number; maxProb: number; topkDiffs: number } {
  const ids = r.tokens.map((t) => t.id);
  const ref = reference(dir, ids);
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = r.routing;
  let maxLogit = 0;
  const last = ref.logits[T - 1];
  for (let v = 0; v < last.length; v++) maxLogit = Math.max(maxLogit, Math.abs(r.lastLogits![v] - last[v]));
  let maxProb = 0;
  let topkDiffs = 0;
  for (let l = 0; l < L; l++) {
    for (let t = 0; t < T; t++) {
      for (let e = 0; e < E; e++) maxProb = Math.max(maxProb, Math.abs(r.routing.probs![(l * T + t) * E + e] - ref.routerProbs[l][t][e]));
      const ours = [...r.routing.topExperts.subarray((l * T + t) * K, (l * T + t + 1) * K)].sort((a, b) => a - b);
      const theirs = [...ref.topExperts[l][t]].sort((a, b) => a - b);
      if (ours.join() !== theirs.join()) {
        // An exact tie at the k-th place may legitimately be broken either way.
        const probs = ref.routerProbs[l][t];
        const kth = [...probs].sort((a, b) => b - a);
        if (Math.abs(kth[K - 1] - kth[K]) > 1e-9) topkDiffs++;
      }
      for (let s = 0; s < K; s++) {
        const w = r.routing.topWeights[(l * T + t) * K + s];
        const e = r.routing.topExperts[(l * T + t) * K + s];
        const refSlot = ref.topExperts[l][t].indexOf(e);
        if (refSlot >= 0) assert.ok(Math.abs(w - ref.topWeights[l][t][refSlot]) < TOL, `weight of expert ${e} at layer ${l} token ${t}`);
      }
    }
  }
  return { maxLogit, maxProb, topkDiffs };
}

for (const c of [
  { name: 'OLMoE f32 (16 layers x 64 experts, top-8, QK-norm, no renormalisation)', opts: { family: 'olmoe' as const } },
  { name: 'OLMoE bf16 sharded over 3 files', opts: { family: 'olmoe' as const, dtype: 'BF16' as const, shards: 3 } },
  { name: 'OLMoE with packed expert tensors', opts: { family: 'olmoe' as const, packedExperts: true } },
  { name: 'Mixtral (top-2, renormalised, grouped-query attention)', opts: { family: 'mixtral' as const } },
  { name: 'Qwen2-MoE (shared expert with sigmoid gate, q/k/v biases)', opts: { family: 'qwen2_moe' as const } },
  { name: 'Qwen3-MoE (per-head QK-norm, GQA, renormalised top-8, rope_theta 1e6)', opts: { family: 'qwen3_moe' as const } },
]) {
  test(`parity with the reference: ${c.name}`, async () => {
    const dir = makeModel(c.opts);
    const r = await traceWithEngine(dir, SAMPLE_QUESTION);
    assert.ok(r.tokens.length > 20, 'the sample question tokenizes to a real sequence');
    const d = compare(dir, r);
    assert.ok(d.maxLogit < TOL, `last-position logits differ by ${d.maxLogit}`);
    assert.ok(d.maxProb < TOL, `router probabilities differ by ${d.maxProb}`);
    assert.equal(d.topkDiffs, 0, 'top-k expert sets differ');
    if (c.opts.family === 'olmoe') {
      // OLMoE does not renormalise: the applied weights are the raw softmax values and sum to < 1.
      const K = r.routing.topK;
      const sum = r.routing.topWeights.subarray(0, K).reduce((a, b) => a + b, 0);
      assert.ok(sum < 1 - 1e-6);
    } else if (c.opts.family === 'mixtral' || c.opts.family === 'qwen3_moe') {
      const K = r.routing.topK;
      const sum = r.routing.topWeights.subarray(0, K).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-6);
    }
  });
}

test('scoring with a reused prefix gives the same log-probabilities and routing as a full trace', async () => {
  const dir = makeModel({ family: 'olmoe' });
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
    const prompts = [SAMPLE_QUESTION, SAMPLE_QUESTION.replace('cell membrane', 'nucleus of a eukaryotic cell'), SAMPLE_QUESTION.replace('Which', 'Which one')];
    const enc = engine.tokenize(prompts);
    let P = 0;
    while (enc.every((e) => e.ids[P] === enc[0].ids[P])) P++;
    assert.ok(P > 10, 'the prompts share a prefix');
    const prefix = enc[0].ids.slice(0, P);
    const first = await engine.score({ prefix: { key: 'k', ids: prefix }, items: enc.map((e, i) => ({ key: String(i), ids: e.ids.slice(P) })) });
    assert.equal(first.prefixReused, false);
    const again = await engine.score({ prefix: { key: 'k', ids: prefix }, items: [{ key: '0', ids: enc[0].ids.slice(P) }] });
    assert.equal(again.prefixReused, true, 'the second call reuses the cached prefix');
    assert.ok(first.paddingTokens > 0, 'items of different lengths are padded in one batch');
    for (let i = 0; i < prompts.length; i++) {
      const full = await engine.trace({ ids: enc[i].ids }, { includeProbs: false, includeLastLogits: false });
      const got = first.items[i];
      assert.equal(got.routing.numTokens, enc[i].ids.length);
      for (let a = 0; a < 4; a++) assert.ok(Math.abs(got.answerLogProbs[a] - full.answerLogProbs[a]) < TOL, `answer log-prob ${a} of item ${i}`);
      assert.deepEqual([...got.routing.topExperts], [...full.routing.topExperts], `routing of item ${i}`);
      for (let j = 0; j < got.routing.entropy.length; j++) assert.ok(Math.abs(got.routing.entropy[j] - full.routing.entropy[j]) < TOL);
    }
    assert.ok(Math.abs(again.items[0].answerLogProbs[0] - first.items[0].answerLogProbs[0]) < TOL);
  } finally {
    await engine.dispose();
  }
});
