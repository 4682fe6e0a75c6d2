/**
 * Router interventions on the WebGPU provider, whose experts are standard ops ('dense-gated', 'grouped')
 * rather than the MoE operator: float32 against the reference forward with the same router-logit
 * offsets (-Infinity for masked experts), logits and router probabilities within 1e-4, identical top-k.
 * CI runs it on lavapipe (test/support/webgpu.ts); a missing adapter fails the test with the reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engines/onnxruntime/engine';
import type { ExpertFormulation, RouterIntervention } from '../../src/shared/protocol';
import { makeModel, reference, tempDir, SAMPLE_QUESTION } from '../support/models';
import { requireWebGpu } from '../support/webgpu';

const TOL = 1e-4;
const TEXT = SAMPLE_QUESTION.slice(0, 160);

test('WebGPU float32, both expert formulations: masking and biasing router logits equals the reference with those logits changed', async (t) => {
  const adapter = await requireWebGpu();
  const dir = makeModel({ family: 'olmoe' });
  const cache = tempDir('cache');
  for (const experts of ['dense-gated', 'grouped'] as ExpertFormulation[]) {
    const engine = new Engine();
    try {
      const info = await engine.load(dir, { executionProvider: 'webgpu', cacheDir: cache, webgpuDType: 'float32', webgpuExperts: experts });
      assert.equal(info.executionProvider, 'webgpu', `the engine fell back: ${info.providerNote ?? ''}`);
      const plain = await engine.trace({ text: TEXT }, { includeProbs: true, includeLastLogits: false });
      const { numTokens: T, numExperts: E, topK: K } = plain.routing;
      // Mask what the plain run chose first at the last token in two layers, plus two more; steer one.
      const first = (l: number) => plain.routing.topExperts[(l * T + T - 1) * K];
      const mask: [number, number][] = [
        [0, first(0)],
        [9, first(9)],
        [9, (first(9) + 1) % E],
        [9, (first(9) + 2) % E],
      ];
      const iv: RouterIntervention = { mask, bias: [[4, (first(4) + 5) % E, 3]] };
      const r = await engine.trace({ text: TEXT }, { includeProbs: true, includeLastLogits: true, intervention: iv });
      const ref = reference(
        dir,
        r.tokens.map((x) => x.id),
        (layer) => {
          const row = new Array<number>(E).fill(0);
          for (const [l, e, b] of iv.bias) if (l === layer) row[e] += b;
          for (const [l, e] of iv.mask) if (l === layer) row[e] = -Infinity;
          return row;
        },
      );
      let maxProb = 0;
      for (let l = 0; l < r.routing.numLayers; l++) {
        for (let tok = 0; tok < T; tok++) {
          for (let e = 0; e < E; e++) maxProb = Math.max(maxProb, Math.abs(r.routing.probs![(l * T + tok) * E + e] - ref.routerProbs[l][tok][e]));
          const ours = [...r.routing.topExperts.subarray((l * T + tok) * K, (l * T + tok + 1) * K)].sort((a, b) => a - b);
          assert.deepEqual(
            ours,
            [...ref.topExperts[l][tok]].sort((a, b) => a - b),
            `${experts}: top-k at layer ${l}, token ${tok}`,
          );
        }
      }
      for (const [l, e] of mask) for (let tok = 0; tok < T; tok++) assert.equal(r.routing.probs![(l * T + tok) * E + e], 0);
      let maxLogit = 0;
      for (let v = 0; v < ref.logits[T - 1].length; v++) maxLogit = Math.max(maxLogit, Math.abs(r.lastLogits![v] - ref.logits[T - 1][v]));
      t.diagnostic(`${experts} on ${adapter.name}: max |dp| ${maxProb.toExponential(2)}, max |dlogit| ${maxLogit.toExponential(2)}`);
      assert.ok(maxProb < TOL, `${experts}: router probabilities differ from the reference by ${maxProb}`);
      assert.ok(maxLogit < TOL, `${experts}: last-position logits differ from the reference by ${maxLogit}`);
    } finally {
      await engine.dispose();
    }
  }
});
