/**
 * The two engines on the same generated checkpoints, fp32 on the CPU: the PyTorch worker (transformers'
 * own forward pass) against the ONNX Runtime engine. Router probabilities and logits within 1e-4,
 * identical top-k except exact ties, identical tokens and UTF-16 offsets, and the same scores with a
 * reused prefix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DemoModelOptions } from '../../src/engines/onnxruntime/demo/makeDemoModel';
import type { TraceResult } from '../../src/shared/protocol';
import { makeModel, tempDir, SAMPLE_QUESTION } from '../support/models';
import { engineClient } from '../support/engines';

const TOL = 1e-4;
const CASES: { name: string; opts: DemoModelOptions }[] = [
  { name: 'OLMoE f32', opts: { family: 'olmoe' } },
  { name: 'OLMoE bf16 sharded over 3 files', opts: { family: 'olmoe', dtype: 'BF16', shards: 3 } },
  { name: 'Mixtral (grouped-query attention, renormalised top-2)', opts: { family: 'mixtral' } },
  { name: 'Qwen2-MoE (shared expert)', opts: { family: 'qwen2_moe' } },
];
// Non-ASCII text checks the UTF-16 offsets: an astral character shifts every offset after it.
const TEXT = `${SAMPLE_QUESTION.replace('cell membrane', 'cell membrane (𝛼-helix, “lipid” rafts, café)')}`;

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Top-k sets must match, except where the k-th and (k+1)-th probabilities tie within the tolerance. */
function assertSameTopK(a: TraceResult, b: TraceResult): void {
  const r = a.routing;
  const E = r.numExperts;
  const K = r.topK;
  for (let lt = 0; lt < r.numLayers * r.numTokens; lt++) {
    const x = Array.from(a.routing.topExperts.subarray(lt * K, (lt + 1) * K));
    const y = Array.from(b.routing.topExperts.subarray(lt * K, (lt + 1) * K));
    if (x.join() === y.join()) continue;
    const p = Array.from(a.routing.probs!.subarray(lt * E, (lt + 1) * E)).sort((u, v) => v - u);
    assert.ok(K < E && Math.abs(p[K - 1] - p[K]) <= TOL, `layer*token ${lt}: top-k ${x} vs ${y} without a tie`);
  }
}

for (const c of CASES) {
  test(`PyTorch engine vs ONNX Runtime engine, fp32: ${c.name}`, async () => {
    const dir = makeModel(c.opts);
    const onnx = engineClient('onnxruntime');
    const torch = engineClient('pytorch');
    try {
      const opts = { executionProvider: 'cpu' as const, cacheDir: tempDir('cache') };
      const [io, it] = await Promise.all([onnx.load(dir, opts), torch.load(dir, opts)]);
      for (const k of ['family', 'numLayers', 'numExperts', 'topK', 'normTopKProb', 'sharedExperts', 'vocabSize', 'answerScoring'] as const)
        assert.deepEqual(it[k], io[k], k);
      assert.equal(it.dtype, 'float32');
      assert.equal(it.engine, 'pytorch');
      const options = { includeProbs: true, includeLastLogits: true };
      const [a, b] = await Promise.all([onnx.call('trace', { input: { text: TEXT }, options }), torch.call('trace', { input: { text: TEXT }, options })]);
      assert.deepEqual(
        b.tokens.map((t) => [t.id, t.start, t.end]),
        a.tokens.map((t) => [t.id, t.start, t.end]),
        'same tokens and UTF-16 offsets',
      );
      assert.ok(maxDiff(a.routing.probs!, b.routing.probs!) <= TOL, `router probabilities differ by ${maxDiff(a.routing.probs!, b.routing.probs!)}`);
      assert.ok(maxDiff(a.lastLogits!, b.lastLogits!) <= TOL, `logits differ by ${maxDiff(a.lastLogits!, b.lastLogits!)}`);
      assert.ok(maxDiff(a.routing.entropy, b.routing.entropy) <= TOL, 'entropy');
      assertSameTopK(a, b);
      assert.ok(maxDiff(a.routing.topWeights, b.routing.topWeights) <= TOL, 'weights actually applied');
      assert.ok(maxDiff(a.answerLogProbs, b.answerLogProbs) <= TOL, 'answer log-probabilities');

      const ids = a.tokens.map((t) => t.id);
      const P = 20;
      const params = {
        prefix: { key: 'p', ids: ids.slice(0, P) },
        items: [
          { key: 'x', ids: ids.slice(P) },
          { key: 'y', ids: ids.slice(P, -3) },
        ],
        routingPositions: 'item' as const,
      };
      const [sa, sb] = await Promise.all([onnx.call('score', params), torch.call('score', params)]);
      for (let i = 0; i < 2; i++) {
        assert.ok(maxDiff(sa.items[i].answerLogProbs, sb.items[i].answerLogProbs) <= TOL, `score item ${i} log-probabilities`);
        assert.equal(sb.items[i].routingStart, sa.items[i].routingStart);
        assert.ok(maxDiff(sa.items[i].routing.topWeights, sb.items[i].routing.topWeights) <= TOL, `score item ${i} weights`);
      }
      assert.equal(sb.computedTokens, sa.computedTokens);
      assert.equal(sb.paddingTokens, sa.paddingTokens);
    } finally {
      await Promise.all([onnx.dispose(), torch.dispose()]);
    }
  });
}
