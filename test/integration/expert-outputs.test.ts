/** The all-experts analysis mode: real expert outputs, consistent with the normal path and the reference. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { SafetensorsFile, writeSafetensors } from '../../src/engines/onnxruntime/formats/safetensors';
import { normVersusScore, similarityByDepth } from '../../src/analysis/expertOutputs';
import { makeModel, reference, tempDir, SAMPLE_QUESTION } from '../support/models';

const shape = { layers: 3, experts: 16, topK: 4 };

async function withEngine<T>(dir: string, fn: (e: Engine) => Promise<T>): Promise<T> {
  const engine = new Engine();
  try {
    await engine.load(dir, { executionProvider: 'cpu', cacheDir: tempDir('cache') });
    return await fn(engine);
  } finally {
    await engine.dispose();
  }
}

test('every expert output agrees with the reference, and the chosen experts weighted by the router equal the normal path', async () => {
  const dir = makeModel({ family: 'olmoe', overrides: shape });
  await withEngine(dir, async (engine) => {
    const ids = engine.tokenize([SAMPLE_QUESTION])[0].ids.slice(0, 24);
    const T = ids.length;
    const io = await engine.moeBlockIO(ids);
    const { stats, outputs } = await engine.expertOutputs(io.moeInputs, T, true);
    const ref = reference(dir, ids);
    const { numLayers: L, numExperts: E, topK: K } = io.routing;
    const H = io.moeInputs[0].length / T;
    for (let l = 0; l < L; l++) {
      for (let t = 0; t < T; t += 5) {
        for (let e = 0; e < E; e++) {
          const want = ref.expertOutputs(l, t, e);
          let norm = 0;
          for (let i = 0; i < H; i++) {
            const got = outputs[l][(e * T + t) * H + i];
            assert.ok(Math.abs(got - want[i]) < 1e-4, `layer ${l} token ${t} expert ${e} dim ${i}: ${got} vs ${want[i]}`);
            norm += want[i] * want[i];
          }
          assert.ok(Math.abs(stats.norms[(l * T + t) * E + e] - Math.sqrt(norm)) < 1e-4);
        }
      }
      // Sum over the chosen experts of weight x unweighted output = what the MoE operator produced.
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < H; i++) {
          let sum = 0;
          for (let s = 0; s < K; s++) {
            const e = io.routing.topExperts[(l * T + t) * K + s];
            sum += io.routing.topWeights[(l * T + t) * K + s] * outputs[l][(e * T + t) * H + i];
          }
          assert.ok(Math.abs(sum - io.moeOutputs[l][t * H + i]) < 1e-4, `layer ${l} token ${t} dim ${i}`);
        }
      }
      // Mean angular similarity recomputed from the outputs.
      const t = T - 1;
      let acc = 0;
      for (let a = 0; a < E; a++) {
        for (let b = 0; b < E; b++) {
          if (a === b) continue;
          let dot = 0;
          let na = 0;
          let nb = 0;
          for (let i = 0; i < H; i++) {
            const x = outputs[l][(a * T + t) * H + i];
            const y = outputs[l][(b * T + t) * H + i];
            dot += x * y;
            na += x * x;
            nb += y * y;
          }
          acc += 1 - Math.acos(Math.max(-1, Math.min(1, dot / Math.sqrt(na * nb)))) / Math.PI;
        }
      }
      assert.ok(Math.abs(stats.meanAngularSimilarity[l * T + t] - acc / (E * (E - 1))) < 1e-3);
    }
  });
});

test('an expert whose down projection is scaled up by 5 shows a 5x larger output norm, the others unchanged', async () => {
  const dir = makeModel({ family: 'olmoe', overrides: shape });
  const text = SAMPLE_QUESTION;
  const before = await withEngine(dir, (e) => e.trace({ text }, { includeProbs: true, includeLastLogits: false, allExperts: true }));
  const file = path.join(dir, 'model.safetensors');
  const st = SafetensorsFile.open(file);
  const tensors = [...st.tensors.values()].map((t) => ({ name: t.name, dtype: 'F32' as const, shape: t.shape, data: st.readFloat32(t.name) }));
  tensors.find((t) => t.name === 'model.layers.1.mlp.experts.3.down_proj.weight')!.data.forEach((v, i, a) => (a[i] = v * 5));
  fs.rmSync(file);
  writeSafetensors(file, tensors);
  const after = await withEngine(dir, (e) => e.trace({ text }, { includeProbs: true, includeLastLogits: false, allExperts: true }));
  const { numTokens: T, numExperts: E } = after.expertOutputs!;
  for (let t = 0; t < T; t++) {
    const i = (1 * T + t) * E;
    assert.ok(Math.abs(after.expertOutputs!.norms[i + 3] - 5 * before.expertOutputs!.norms[i + 3]) < 1e-3 * before.expertOutputs!.norms[i + 3] + 1e-5);
    assert.ok(Math.abs(after.expertOutputs!.norms[i + 4] - before.expertOutputs!.norms[i + 4]) < 1e-5, 'other experts of the layer are unchanged');
    // Layer 0 comes before the change.
    assert.ok(Math.abs(after.expertOutputs!.norms[t * E + 3] - before.expertOutputs!.norms[t * E + 3]) < 1e-6);
  }
  const ns = normVersusScore(after.routing, after.expertOutputs!);
  assert.equal(ns.length, 3);
  assert.equal(
    ns[1].counts.reduce((a, b) => a + b, 0),
    T * E,
    'every (token, expert) counted once',
  );
  assert.equal(similarityByDepth(after.expertOutputs!).length, 3);
});
