/**
 * Router interventions in the PyTorch engine (python -m moe_scope_worker, offsets on each router's
 * logits; python/moe_scope_worker/capture.py) against the independent reference forward with the same router-logit offsets (-Infinity for
 * masked experts): logits and router probabilities within 1e-4, identical top-k, masked experts never
 * chosen; and the scoring prefix cache is not reused across interventions. Needs .venv (testPython()).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineClient } from '../../src/engines/client/engineClient';
import { pythonChannel } from '../../src/engines/client/pythonWorker';
import { EngineFailure, type RouterIntervention } from '../../src/shared/protocol';
import * as path from 'node:path';
import { makeModel, reference, REPO_ROOT, SAMPLE_QUESTION } from '../support/models';
import { testPython } from '../support/python';

// The test bundle lives outside the repository, so name the worker package's folder.
process.env.MOE_SCOPE_WORKER_DIR ??= path.join(REPO_ROOT, 'python');

const TOL = 1e-4;

test('PyTorch engine: masking and biasing router logits equals the reference forward with those logits changed', async () => {
  const python = testPython();
  const dir = makeModel({ family: 'olmoe' });
  const client = new EngineClient({ channel: pythonChannel(python) });
  try {
    const info = await client.call('load', { modelPath: dir, options: { executionProvider: 'cpu' } });
    assert.equal(info.dtype, 'float32');
    const plain = await client.call('trace', { input: { text: SAMPLE_QUESTION }, options: { includeProbs: true, includeLastLogits: true } });
    const { numTokens: T, numExperts: E, topK: K, numLayers: L } = plain.routing;
    const first = (l: number) => plain.routing.topExperts[(l * T + T - 1) * K];
    const mask: [number, number][] = [
      [0, first(0)],
      [7, first(7)],
      [7, (first(7) + 1) % E],
      [15, first(15)],
    ];
    const steered = (first(3) + 9) % E;
    const iv: RouterIntervention = { mask, bias: [[3, steered, 4]] };
    const r = await client.call('trace', { input: { text: SAMPLE_QUESTION }, options: { includeProbs: true, includeLastLogits: true, intervention: iv } });
    const ref = reference(
      dir,
      r.tokens.map((t) => t.id),
      (layer) => {
        const row = new Array<number>(E).fill(0);
        for (const [l, e, b] of iv.bias) if (l === layer) row[e] += b;
        for (const [l, e] of iv.mask) if (l === layer) row[e] = -Infinity;
        return row;
      },
    );
    let maxProb = 0;
    for (let l = 0; l < L; l++) {
      for (let t = 0; t < T; t++) {
        for (let e = 0; e < E; e++) maxProb = Math.max(maxProb, Math.abs(r.routing.probs![(l * T + t) * E + e] - ref.routerProbs[l][t][e]));
        const ours = [...r.routing.topExperts.subarray((l * T + t) * K, (l * T + t + 1) * K)].sort((a, b) => a - b);
        assert.deepEqual(
          ours,
          [...ref.topExperts[l][t]].sort((a, b) => a - b),
          `top-k at layer ${l}, token ${t}`,
        );
      }
    }
    assert.ok(maxProb < TOL, `router probabilities differ from the reference by ${maxProb}`);
    let maxLogit = 0;
    for (let v = 0; v < ref.logits[T - 1].length; v++) maxLogit = Math.max(maxLogit, Math.abs(r.lastLogits![v] - ref.logits[T - 1][v]));
    assert.ok(maxLogit < TOL, `last-position logits differ from the reference by ${maxLogit}`);
    for (const [l, e] of mask) for (let t = 0; t < T; t++) assert.equal(r.routing.probs![(l * T + t) * E + e], 0, `masked expert ${e} of layer ${l}`);
    assert.ok(r.routing.probs![(3 * T + T - 1) * E + steered] > plain.routing.probs![(3 * T + T - 1) * E + steered], 'the steered expert gained probability');

    // Back to the plain model: the hook is off again.
    const again = await client.call('trace', { input: { text: SAMPLE_QUESTION }, options: { includeProbs: false, includeLastLogits: true } });
    let back = 0;
    for (let v = 0; v < again.lastLogits!.length; v++) back = Math.max(back, Math.abs(again.lastLogits![v] - plain.lastLogits![v]));
    assert.ok(back < 1e-5, `without the intervention the logits return to the plain ones (max diff ${back})`);

    // Scoring: a prefix computed without the intervention is not reused under it; the result matches the trace.
    const ids = r.tokens.map((t) => t.id);
    const P = Math.floor(ids.length / 2);
    const prefix = { key: 'p', ids: ids.slice(0, P) };
    const items = [{ key: 'q', ids: ids.slice(P) }];
    await client.call('score', { prefix, items });
    const scored = await client.call('score', { prefix, items, intervention: iv });
    assert.equal(scored.prefixReused, false);
    scored.items[0].answerLogProbs.forEach((v, i) => assert.ok(Math.abs(v - r.answerLogProbs[i]) < TOL, `answer ${i}: ${v} vs traced ${r.answerLogProbs[i]}`));
    assert.equal((await client.call('score', { prefix, items, intervention: iv })).prefixReused, true);

    const tooMany: RouterIntervention = { mask: Array.from({ length: E - K + 1 }, (_, e) => [2, e] as [number, number]), bias: [] };
    await assert.rejects(
      client.call('trace', { input: { text: 'hello' }, options: { includeProbs: false, includeLastLogits: false, intervention: tooMany } }),
      (e: unknown) => e instanceof EngineFailure && e.code === 'bad-input' && /layer 2 would keep 7 of 64 experts, fewer than the 8/.test(e.message),
    );
  } finally {
    await client.call('shutdown', {}).catch(() => {});
    await client.dispose();
  }
});
