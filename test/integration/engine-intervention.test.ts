/**
 * Router interventions in the ONNX Runtime engine against the independent reference forward pass with
 * the same values added to its router logits (-Infinity for masked experts): logits and router
 * probabilities within 1e-4, identical top-k, masked experts never chosen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { EngineFailure, type RouterIntervention, type TraceResult } from '../../src/shared/protocol';
import { makeModel, reference, tempDir, SAMPLE_QUESTION } from '../support/models';

const TOL = 1e-4;

/** Builds the reference's per-layer offsets by hand (not with the code under test). */
function offsetsFor(iv: RouterIntervention, numExperts: number): (layer: number) => number[] | undefined {
  return (layer) => {
    const row = new Array<number>(numExperts).fill(0);
    let touched = false;
    for (const [l, e, b] of iv.bias) {
      if (l !== layer) continue;
      row[e] += b;
      touched = true;
    }
    for (const [l, e] of iv.mask) {
      if (l !== layer) continue;
      row[e] = -Infinity;
      touched = true;
    }
    return touched ? row : undefined;
  };
}

function assertMatchesReference(dir: string, r: TraceResult, iv: RouterIntervention): void {
  const { numLayers: L, numTokens: T, numExperts: E, topK: K } = r.routing;
  const ref = reference(
    dir,
    r.tokens.map((t) => t.id),
    offsetsFor(iv, E),
  );
  let maxLogit = 0;
  const last = ref.logits[T - 1];
  for (let v = 0; v < last.length; v++) maxLogit = Math.max(maxLogit, Math.abs(r.lastLogits![v] - last[v]));
  assert.ok(maxLogit < TOL, `last-position logits differ from the reference by ${maxLogit}`);
  let maxProb = 0;
  for (let l = 0; l < L; l++) {
    for (let t = 0; t < T; t++) {
      for (let e = 0; e < E; e++) maxProb = Math.max(maxProb, Math.abs(r.routing.probs![(l * T + t) * E + e] - ref.routerProbs[l][t][e]));
      const ours = [...r.routing.topExperts.subarray((l * T + t) * K, (l * T + t + 1) * K)].sort((a, b) => a - b);
      const theirs = [...ref.topExperts[l][t]].sort((a, b) => a - b);
      assert.deepEqual(ours, theirs, `top-k at layer ${l}, token ${t}`);
    }
  }
  assert.ok(maxProb < TOL, `router probabilities differ from the reference by ${maxProb}`);
}

test('masking and biasing router logits in the ONNX engine equals the reference forward with those logits changed', async () => {
  const dir = makeModel({ family: 'olmoe' });
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
    const plain = await engine.trace({ text: SAMPLE_QUESTION }, { includeProbs: true, includeLastLogits: true });
    const { numTokens: T, numExperts: E, topK: K } = plain.routing;
    const last = T - 1;
    // Mask the experts the plain run chose first at the last token in three layers (so the mask changes
    // what happens), plus three more in layer 0; steer two experts of layer 3.
    const firstChoice = (l: number) => plain.routing.topExperts[(l * T + last) * K];
    const mask: [number, number][] = [
      [0, firstChoice(0)],
      [5, firstChoice(5)],
      [15, firstChoice(15)],
    ];
    for (let e = 0; mask.length < 6; e++) if (e !== firstChoice(0)) mask.push([0, e]);
    mask.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const steered = [...Array(E).keys()].filter((e) => !plain.routing.topExperts.subarray((3 * T + last) * K, (3 * T + last + 1) * K).includes(e)).slice(0, 2);
    const iv: RouterIntervention = { mask, bias: steered.map((e) => [3, e, 4] as [number, number, number]) };

    const r = await engine.trace({ text: SAMPLE_QUESTION }, { includeProbs: true, includeLastLogits: true, intervention: iv });
    assertMatchesReference(dir, r, iv);
    for (const [l, e] of mask) {
      for (let t = 0; t < T; t++) {
        assert.equal(r.routing.probs![(l * T + t) * E + e], 0, `masked expert ${e} of layer ${l} has probability 0 at token ${t}`);
        assert.ok(!r.routing.topExperts.subarray((l * T + t) * K, (l * T + t + 1) * K).includes(e), `masked expert ${e} of layer ${l} is never chosen`);
      }
    }
    // The intervention really changed something, and the steered experts gained probability.
    assert.notDeepEqual(Array.from(r.lastLogits!.subarray(0, 50)), Array.from(plain.lastLogits!.subarray(0, 50)));
    for (const e of steered) assert.ok(r.routing.probs![(3 * T + last) * E + e] > plain.routing.probs![(3 * T + last) * E + e]);

    // Without an intervention the engine is back on the plain graph, with the plain results.
    const again = await engine.trace({ text: SAMPLE_QUESTION }, { includeProbs: true, includeLastLogits: true, intervention: { mask: [], bias: [] } });
    assert.deepEqual(Array.from(again.lastLogits!), Array.from(plain.lastLogits!));

    // Scoring with a cached prefix under the intervention gives the traced answer; a prefix cached
    // without the intervention is not reused for it.
    const ids = r.tokens.map((t) => t.id);
    const P = Math.floor(ids.length / 2);
    const prefix = { key: 'p', ids: ids.slice(0, P) };
    const items = [{ key: 'q', ids: ids.slice(P) }];
    await engine.score({ prefix, items });
    const scored = await engine.score({ prefix, items, intervention: iv });
    assert.equal(scored.prefixReused, false, 'a prefix computed without the intervention is not reused under it');
    scored.items[0].answerLogProbs.forEach((v, i) => assert.ok(Math.abs(v - r.answerLogProbs[i]) < TOL, `answer ${i}: ${v} vs traced ${r.answerLogProbs[i]}`));
    const reused = await engine.score({ prefix, items, intervention: iv });
    assert.equal(reused.prefixReused, true);
    assert.deepEqual(reused.items[0].answerLogProbs, scored.items[0].answerLogProbs);
  } finally {
    await engine.dispose();
  }
});

test('the engine refuses an intervention that leaves a layer fewer than top_k experts or names experts that do not exist', async () => {
  const dir = makeModel({ family: 'mixtral' });
  const engine = new Engine();
  try {
    const info = await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
    const E = info.numExperts;
    const tooMany: RouterIntervention = { mask: Array.from({ length: E - info.topK + 1 }, (_, e) => [1, e] as [number, number]), bias: [] };
    await assert.rejects(
      engine.trace({ text: 'hello' }, { includeProbs: false, includeLastLogits: false, intervention: tooMany }),
      (e: unknown) => e instanceof EngineFailure && e.code === 'bad-input' && /layer 1 would keep \d+ of \d+ experts, fewer than the \d+/.test(e.message),
    );
    await assert.rejects(
      engine.trace({ text: 'hello' }, { includeProbs: false, includeLastLogits: false, intervention: { mask: [[0, E]], bias: [] } }),
      (e: unknown) => e instanceof EngineFailure && /expert \d+ of layer 0 does not exist/.test(e.message),
    );
    // Mixtral renormalises over its k chosen experts: masking E - k of them leaves exactly k, each used.
    const keepK: RouterIntervention = { mask: Array.from({ length: E - info.topK }, (_, e) => [2, e] as [number, number]), bias: [] };
    const r = await engine.trace({ text: SAMPLE_QUESTION }, { includeProbs: true, includeLastLogits: true, intervention: keepK });
    assertMatchesReference(dir, r, keepK);
  } finally {
    await engine.dispose();
  }
});
