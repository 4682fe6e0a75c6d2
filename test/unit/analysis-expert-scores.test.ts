import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addRecord,
  clearAccumulator,
  createAccumulator,
  decodeDelta,
  encodeDelta,
  mergeAccumulators,
  summarizeAccumulator,
} from '../../src/analysis/accumulator';
import { absMeanOverRms } from '../../src/analysis/expertScores';
import { derivePruningPlan, PruningPlanError } from '../../src/analysis/pruningPlans';
import type { RoutingRecord } from '../../src/analysis/types';
import type { RunSummary } from '../../src/shared/protocol';

const shape = { numLayers: 2, numExperts: 4, topK: 2 };

/** Two tokens; token 1 is the answer position. Layer l token t chooses experts[l][t] with weights and norms. */
function rec(id: string, experts: number[][][], weights: number[][][], norms?: number[][][]): RoutingRecord {
  const flat = (v: number[][][]) => v.flat(2);
  return {
    questionId: id,
    subject: 's',
    correct: true,
    numLayers: 2,
    numExperts: 4,
    topK: 2,
    numTokens: 2,
    topExperts: flat(experts),
    topWeights: flat(weights),
    entropy: [0.5, 0.5, 0.5, 0.5],
    questionTokens: [0, 2],
    answerToken: 1,
    ...(norms ? { expertOutputNorms: flat(norms) } : {}),
  };
}

const r1 = rec(
  'q1',
  [
    [
      [0, 1],
      [0, 2],
    ],
    [
      [3, 1],
      [3, 2],
    ],
  ],
  [
    [
      [0.6, 0.3],
      [0.5, 0.4],
    ],
    [
      [0.7, 0.2],
      [0.9, 0.05],
    ],
  ],
  [
    [
      [1, 2],
      [3, 4],
    ],
    [
      [5, 6],
      [7, 8],
    ],
  ],
);

test('gate-weighted counts, MAN and MSAN over the in-scope assignments; merged and round-tripped through deltas', () => {
  const a = createAccumulator(shape, 'all');
  addRecord(a, r1);
  const s = summarizeAccumulator(a).layers;
  assert.deepEqual(
    s[0]!.expertScores!.gateWeighted.map((x) => +x.toFixed(9)),
    [1.1, 0.3, 0.4, 0],
  );
  // Layer 0 expert 0: norms 1 and 3 -> MAN 2, MSAN (1 + 9) / 2 = 5.
  assert.equal(s[0]!.expertScores!.meanOutputNorm[0], 2);
  assert.equal(s[0]!.expertScores!.meanSquaredOutputNorm[0], 5);
  assert.equal(s[0]!.expertScores!.meanOutputNorm[3], null);
  assert.deepEqual(s[1]!.expertScores!.outputNormCount, [0, 1, 1, 2]);
  // Answer scope: token 1 only.
  const ans = createAccumulator(shape, 'answer');
  addRecord(ans, r1);
  assert.equal(summarizeAccumulator(ans).layers[0]!.expertScores!.meanOutputNorm[0], 3);
  // Merging two halves equals adding both; the delta codec keeps the sums exactly.
  const b = createAccumulator(shape, 'all');
  addRecord(b, { ...r1, questionId: 'q2', expertOutputNorms: undefined });
  const m = decodeDelta(encodeDelta(mergeAccumulators(a, b)));
  const ms = summarizeAccumulator(m).layers[0]!.expertScores!;
  assert.ok(Math.abs(ms.gateWeighted[0]! - 2.2) < 1e-12);
  assert.equal(ms.outputNormCount[0], 2, 'a record without norms adds weights, not norms');
  assert.equal(ms.meanOutputNorm[0], 2);
});

test('a negative or NaN norm, or norms of the wrong length, are refused and leave the accumulator unchanged', () => {
  const a = createAccumulator(shape, 'all');
  const bad = { ...r1, expertOutputNorms: [...(r1.expertOutputNorms as number[])] };
  bad.expertOutputNorms[3] = NaN;
  assert.throws(() => addRecord(a, bad), /expert output norm NaN/);
  assert.throws(() => addRecord(a, { ...r1, expertOutputNorms: [1, 2] }), /expertOutputNorms has 2 values, expected 8/);
  assert.equal(a.questions, 0);
  assert.deepEqual(a.expertScores.gateWeightSum, new Array(8).fill(0));
});

test('|mean| / RMS', () => {
  // Expert 0: values [1, 1, 1, 1] -> 1; expert 1: [1, -1, 1, -1] -> 0.
  assert.deepEqual(absMeanOverRms([4, 0], [4, 4], 4), [1, 0]);
  assert.deepEqual(absMeanOverRms([0], [0], 4), [0]);
});

function fakeSummary(counts: number[][], man: (number | null)[][]): Pick<RunSummary, 'layers' | 'model'> {
  const E = counts[0]!.length;
  return {
    model: { path: '', family: 'olmoe', numLayers: counts.length, numExperts: E, topK: 2, demo: true },
    layers: counts.map((c, l) => ({
      layer: l,
      activationCounts: c,
      neverActivated: [],
      entropyNormalized: 0,
      entropyQuantiles: { p05: 0, p25: 0, p50: 0, p75: 0, p95: 0 },
      meanTop1Weight: 0,
      meanTopKMass: 0,
      expertAccuracy: [],
      expertAccuracyCount: [],
      expertAccuracyTokenWeighted: [],
      coactivation: [],
      expertScores: {
        gateWeighted: c.map((x) => x / 2),
        meanOutputNorm: man[l]!,
        meanSquaredOutputNorm: man[l]!.map((x) => (x === null ? null : x * x)),
        outputNormCount: c,
      },
    })),
  };
}

test('plans: per layer, global (no layer below the floor), threshold; routing mass of the preview', () => {
  const s = fakeSummary(
    [
      [10, 0, 5, 1, 4, 4],
      [1, 2, 3, 4, 5, 6],
    ],
    [
      [1, null, 9, 0.5, 2, 3],
      [6, 5, 4, 3, 2, 1],
    ],
  );
  const count = derivePruningPlan(s, { criterion: 'count', mode: 'per-layer', ratio: 0.5 });
  assert.deepEqual(count.mask, [
    [0, 1],
    [0, 3],
    [0, 4],
    [1, 0],
    [1, 1],
    [1, 2],
  ]);
  // Ties (4, 4) go to the lower id: expert 4 before 5.
  assert.deepEqual(count.layers[0]!.pruned, [1, 3, 4]);
  assert.ok(Math.abs(count.layers[0]!.routingMass - 5 / 24) < 1e-12);
  const man = derivePruningPlan(s, { criterion: 'man', mode: 'per-layer', ratio: 0.5 });
  assert.deepEqual(man.layers[0]!.pruned, [1, 3, 0], 'no measured norm scores 0');
  assert.deepEqual(man.layers[1]!.pruned, [5, 4, 3]);
  // Global 0.5 = 6 of 12, at most 6 - 4 = 2 per layer with keepPerLayer 4.
  const g = derivePruningPlan(s, { criterion: 'count', mode: 'global', ratio: 0.5, keepPerLayer: 4 });
  assert.deepEqual(
    g.layers.map((l) => l.pruned),
    [
      [1, 3],
      [0, 1],
    ],
  );
  const t = derivePruningPlan(s, { criterion: 'count', mode: 'threshold', threshold: 4.5 });
  assert.deepEqual(
    t.layers.map((l) => l.pruned),
    [
      [1, 3, 4, 5],
      [0, 1, 2, 3],
    ],
  );
  assert.throws(() => derivePruningPlan(s, { criterion: 'count', mode: 'per-layer', ratio: 1.5 }), PruningPlanError);
  assert.throws(() => derivePruningPlan(s, { criterion: 'count', mode: 'per-layer', ratio: 0.5, keepPerLayer: 1 }), /from top-k = 2/);
  assert.throws(() => derivePruningPlan(s, { criterion: 'weights', mode: 'per-layer', ratio: 0.5 }), /weight analysis/);
  // The weights criterion stored in the summary (eval --weight-scores) serves when none is passed.
  for (const [l, ls] of s.layers.entries()) ls.expertScores!.weightsCriterion = [6, 5, 4, 3, 2, 1].map((x) => x + l);
  assert.deepEqual(derivePruningPlan(s, { criterion: 'weights', mode: 'per-layer', ratio: 0.5 }).layers[1]!.pruned, [5, 4, 3]);
});

test('a batch accumulator reused after clearAccumulator carries no expert scores from the batch before', () => {
  const fresh = createAccumulator(shape, 'all');
  addRecord(fresh, r1);
  const reused = createAccumulator(shape, 'all');
  addRecord(reused, r1);
  addRecord(reused, r1);
  clearAccumulator(reused);
  addRecord(reused, r1);
  assert.deepEqual(JSON.parse(encodeDelta(reused)), JSON.parse(encodeDelta(fresh)));
});
