import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Routing } from '../../src/shared/protocol';
import { coactivation, entropyNormalized, expertCounts, layerStats, meanEntropyNormalized, neverActivated, tokenRoute } from '../../src/analysis/trace';
import { addRecord, createAccumulator, summarizeAccumulator } from '../../src/analysis/accumulator';

// 2 layers, 3 tokens, 4 experts, top-2; [layer][token] = experts, weights, normalised entropy.
//   layer 0: t0 [0,1] [0.6,0.2] 0.5;  t1 [1,2] [0.5,0.3] 0.25;  t2 [1,0] [0.7,0.1] 1.0
//   layer 1: t0 [3,2] [0.5,0.5] 0.75; t1 [3,1] [0.9,0.1] 0.0;   t2 [3,2] [0.6,0.4] 0.5
const LN4 = Math.log(4);
const routing: Routing = {
  numLayers: 2,
  numTokens: 3,
  numExperts: 4,
  topK: 2,
  topExperts: Uint16Array.from([0, 1, 1, 2, 1, 0, 3, 2, 3, 1, 3, 2]),
  topWeights: Float32Array.from([0.6, 0.2, 0.5, 0.3, 0.7, 0.1, 0.5, 0.5, 0.9, 0.1, 0.6, 0.4]),
  entropy: Float32Array.from([0.5, 0.25, 1.0, 0.75, 0.0, 0.5].map((h) => h * LN4)),
};

function close(a: number, b: number, what: string, eps = 1e-6): void {
  assert.ok(Math.abs(a - b) <= eps, `${what}: ${a} != ${b}`);
}

test('expertCounts over every token and over a range', () => {
  // layer 0: e0 t0,t2 = 2; e1 t0,t1,t2 = 3; e2 t1 = 1; e3 0.   layer 1: e1 1, e2 2, e3 3.
  assert.deepEqual(expertCounts(routing), [
    [2, 3, 1, 0],
    [0, 1, 2, 3],
  ]);
  // Tokens 1..2 only.
  assert.deepEqual(expertCounts(routing, [1, 3]), [
    [1, 2, 1, 0],
    [0, 1, 1, 2],
  ]);
  assert.deepEqual(expertCounts(routing, [1, 1]), [
    [0, 0, 0, 0],
    [0, 0, 0, 0],
  ]);
  assert.deepEqual(neverActivated(expertCounts(routing)), [[3], [0]]);
  assert.throws(() => expertCounts(routing, [2, 4]), /token range/);
});

test('entropy normalised by ln(E), per token and as per-layer means', () => {
  const h = entropyNormalized(routing);
  [
    [0.5, 0.25, 1.0],
    [0.75, 0.0, 0.5],
  ].forEach((row, l) => row.forEach((v, t) => close(h[l]![t]!, v, `h[${l}][${t}]`)));
  const means = meanEntropyNormalized(routing);
  close(means[0]!, 1.75 / 3, 'layer 0 mean');
  close(means[1]!, 1.25 / 3, 'layer 1 mean');
  close(meanEntropyNormalized(routing, [0, 2])[1]!, 0.375, 'layer 1 mean over t0..t1');
});

test('layerStats: top-1 weight, top-k mass and distinct experts', () => {
  const [l0, l1] = layerStats(routing) as [ReturnType<typeof layerStats>[0], ReturnType<typeof layerStats>[0]];
  // layer 0 top-1: (0.6 + 0.5 + 0.7) / 3; mass (0.8 + 0.8 + 0.8) / 3.
  close(l0.meanTop1Weight, 1.8 / 3, 'top1 l0');
  close(l0.meanTopKMass, 0.8, 'mass l0');
  assert.equal(l0.activeExperts, 3);
  // layer 1 top-1: (0.5 + 0.9 + 0.6) / 3; mass 1.
  close(l1.meanTop1Weight, 2.0 / 3, 'top1 l1');
  close(l1.meanTopKMass, 1.0, 'mass l1');
  assert.equal(l1.activeExperts, 3);
  assert.equal(layerStats(routing, [0, 0])[0]!.meanTop1Weight, 0);
});

test('tokenRoute returns the experts, weights, top-k mass and normalised entropy of one token', () => {
  const r = tokenRoute(routing, 1, 1);
  assert.deepEqual(r.experts, [3, 1]);
  close(r.weights[0]!, 0.9, 'w0');
  close(r.mass, 1.0, 'mass');
  close(r.entropyNormalized, 0.0, 'entropy');
  const q = tokenRoute(routing, 0, 1);
  close(q.mass, 0.8, 'mass of layer 0, token 1');
  close(q.entropyNormalized, 0.25, 'entropy of layer 0, token 1');
  assert.throws(() => tokenRoute(routing, 2, 0), /layer 2/);
  assert.throws(() => tokenRoute(routing, 0, 3), /token 3/);
});

test('coactivation of one trace layer', () => {
  // layer 1: {3,2} {3,1} {3,2}; chosen e1 1, e2 2, e3 3.
  //   row 1: P(3|1) = 1; row 2: P(3|2) = 1; row 3: P(1|3) = 1/3, P(2|3) = 2/3; row 0 zeros.
  const c = coactivation(routing, 1);
  const expected = [0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 1 / 3, 2 / 3, 0];
  expected.forEach((v, i) => close(c[i]!, v, `c[${i}]`));
});

test('a trace agrees with the run accumulator over the same tokens', () => {
  const acc = createAccumulator({ numLayers: 2, numExperts: 4, topK: 2 }, 'all');
  addRecord(acc, { questionId: 'q', subject: 's', correct: true, ...routing, questionTokens: [0, 2], answerToken: 2 });
  const s = summarizeAccumulator(acc);
  assert.deepEqual(
    s.layers.map((l) => l.activationCounts),
    expertCounts(routing),
  );
  s.layers.forEach((l, i) => {
    close(l.entropyNormalized, meanEntropyNormalized(routing)[i]!, `entropy ${i}`);
    coactivation(routing, i).forEach((v, j) => close(l.coactivation[j]!, v, `coactivation ${i} ${j}`));
  });
});

test('a bad expert id in a trace throws instead of growing a count array', () => {
  const broken: Routing = { ...routing, topExperts: Uint16Array.from([0, 9, 1, 2, 1, 0, 3, 2, 3, 1, 3, 2]) };
  assert.throws(() => expertCounts(broken), /expert id 9/);
  assert.throws(() => coactivation(broken, 0), /expert id 9/);
});
