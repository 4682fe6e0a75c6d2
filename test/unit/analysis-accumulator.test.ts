import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TokenScope } from '../../src/shared/protocol';
import {
  addRecord,
  clearAccumulator,
  cloneAccumulator,
  createAccumulator,
  decodeDelta,
  encodeDelta,
  histogramQuantile,
  mergeInto,
  mergeAccumulators,
  summarizeAccumulator,
  toDelta,
  type AccumulatorShape,
  type AnalysisSummary,
  type RunAccumulator,
} from '../../src/analysis/accumulator';
import type { RoutingRecord } from '../../src/analysis/types';
import { mulberry32 as rng } from '../../src/engines/onnxruntime/demo/random';

// ---------------------------------------------------------------------------------------------------
// A hand-checkable fixture: 2 layers, 4 experts, top-2, three questions.
//
// Each token is [experts, weights, normalised entropy]; entropy is stored in nats (x ln 4) as the engine
// does. Normalised entropies sit in the middle of a 1/1000 histogram bin (0.5005 -> bin 500) so that
// rounding cannot move them to a neighbouring bin.
//
// Layer 0: weights [0.6, 0.3] everywhere; entropy 0.5005, except 0.2505 at answer positions.
// Layer 1: weights [0.7, 0.1], at answer positions [0.5, 0.5]; entropy 0.9005 everywhere.
//
//                 Q1 algebra, correct      Q2 algebra, wrong        Q3 biology, correct
//                 question [1,3) answer 3  question [1,3) answer 3  question [0,2) answer 2
//   layer 0  t0   [3,0] header             [3,1] header             [2,0] question
//            t1   [2,0] question           [2,1] question           [0,2] question
//            t2   [0,2] question           [1,2] question           [0,1] answer
//            t3   [0,1] answer             [1,0] answer
//   layer 1  t0   [0,1]                    [0,1]                    [1,2]
//            t1   [1,0]                    [0,1]                    [2,1]
//            t2   [1,2]                    [1,0]                    [2,1] answer
//            t3   [2,1] answer             [2,0] answer
//
// Expert 3 appears only in header tokens of layer 0, expert 2 of layer 0 only outside answer positions,
// and expert 3 of layer 1 never: so the never-activated experts differ between all three scopes.

type Tok = [experts: number[], weights: number[], entropy: number];
const SHAPE: AccumulatorShape = { numLayers: 2, numExperts: 4, topK: 2 };

function makeRecord(
  questionId: string,
  subject: string,
  correct: boolean,
  questionTokens: [number, number],
  answerToken: number,
  layers: Tok[][],
  shape: AccumulatorShape = SHAPE,
): RoutingRecord {
  const numTokens = layers[0]!.length;
  const topExperts: number[] = [];
  const topWeights: number[] = [];
  const entropy: number[] = [];
  for (const tokens of layers) {
    assert.equal(tokens.length, numTokens);
    for (const [experts, weights, h] of tokens) {
      topExperts.push(...experts);
      topWeights.push(...weights);
      entropy.push(h * Math.log(shape.numExperts));
    }
  }
  return { questionId, subject, correct, ...shape, numTokens, topExperts, topWeights, entropy, questionTokens, answerToken };
}

const w0 = [0.6, 0.3];
const w1 = [0.7, 0.1];
const w1a = [0.5, 0.5];
const Q1 = makeRecord('q1', 'algebra', true, [1, 3], 3, [
  [
    [[3, 0], w0, 0.5005],
    [[2, 0], w0, 0.5005],
    [[0, 2], w0, 0.5005],
    [[0, 1], w0, 0.2505],
  ],
  [
    [[0, 1], w1, 0.9005],
    [[1, 0], w1, 0.9005],
    [[1, 2], w1, 0.9005],
    [[2, 1], w1a, 0.9005],
  ],
]);
const Q2 = makeRecord('q2', 'algebra', false, [1, 3], 3, [
  [
    [[3, 1], w0, 0.5005],
    [[2, 1], w0, 0.5005],
    [[1, 2], w0, 0.5005],
    [[1, 0], w0, 0.2505],
  ],
  [
    [[0, 1], w1, 0.9005],
    [[0, 1], w1, 0.9005],
    [[1, 0], w1, 0.9005],
    [[2, 0], w1a, 0.9005],
  ],
]);
const Q3 = makeRecord('q3', 'biology', true, [0, 2], 2, [
  [
    [[2, 0], w0, 0.5005],
    [[0, 2], w0, 0.5005],
    [[0, 1], w0, 0.2505],
  ],
  [
    [[1, 2], w1, 0.9005],
    [[2, 1], w1, 0.9005],
    [[2, 1], w1a, 0.9005],
  ],
]);
const FIXTURE = [Q1, Q2, Q3];

function accumulate(records: RoutingRecord[], scope: TokenScope, shape: AccumulatorShape = SHAPE): RunAccumulator {
  const acc = createAccumulator(shape, scope);
  for (const r of records) addRecord(acc, r);
  return acc;
}

function summary(scope: TokenScope): AnalysisSummary {
  return summarizeAccumulator(accumulate(FIXTURE, scope), { categories: { algebra: 'STEM', biology: 'other' } });
}

function close(actual: number | null | undefined, expected: number, what: string, eps = 1e-12): void {
  assert.ok(typeof actual === 'number' && Math.abs(actual - expected) <= eps, `${what}: ${actual} != ${expected}`);
}

function closeArray(actual: readonly (number | null)[], expected: readonly (number | null)[], what: string, eps = 1e-12): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  expected.forEach((e, i) => {
    if (e === null) assert.equal(actual[i], null, `${what}[${i}]`);
    else close(actual[i], e, `${what}[${i}]`, eps);
  });
}

// ---------------------------------------------------------------------------------------------------

test('activation counts and never-activated experts under each token scope', () => {
  // answer: layer 0 answer tokens [0,1] [1,0] [0,1] -> e0 3, e1 3, e2 0, e3 0 -> never {2, 3}
  //         layer 1 answer tokens [2,1] [2,0] [2,1] -> e0 1, e1 2, e2 3, e3 0 -> never {3}; total 3
  const answer = summary('answer');
  assert.deepEqual(answer.layers[0]!.activationCounts, [3, 3, 0, 0]);
  assert.deepEqual(answer.layers[0]!.neverActivated, [2, 3]);
  assert.deepEqual(answer.layers[1]!.activationCounts, [1, 2, 3, 0]);
  assert.deepEqual(answer.layers[1]!.neverActivated, [3]);
  assert.equal(answer.neverActivatedTotal, 3);

  // question: layer 0 [2,0] [0,2] | [2,1] [1,2] | [2,0] [0,2] -> e0 4, e1 2, e2 6, e3 0 -> never {3}
  //           layer 1 [1,0] [1,2] | [0,1] [1,0] | [1,2] [2,1] -> e0 3, e1 6, e2 3, e3 0 -> never {3}; total 2
  const question = summary('question');
  assert.deepEqual(question.layers[0]!.activationCounts, [4, 2, 6, 0]);
  assert.deepEqual(question.layers[0]!.neverActivated, [3]);
  assert.deepEqual(question.layers[1]!.activationCounts, [3, 6, 3, 0]);
  assert.deepEqual(question.layers[1]!.neverActivated, [3]);
  assert.equal(question.neverActivatedTotal, 2);

  // all: layer 0 e0 = Q1 4 + Q2 1 + Q3 3 = 8, e1 = 1 + 4 + 1 = 6, e2 = 2 + 2 + 2 = 6, e3 = 1 + 1 = 2
  //      (11 tokens x 2 slots = 22) -> never {}
  //      layer 1 e0 = 2 + 4 + 0 = 6, e1 = 4 + 3 + 3 = 10, e2 = 2 + 1 + 3 = 6, e3 = 0 -> never {3}; total 1
  const all = summary('all');
  assert.deepEqual(all.layers[0]!.activationCounts, [8, 6, 6, 2]);
  assert.deepEqual(all.layers[0]!.neverActivated, []);
  assert.deepEqual(all.layers[1]!.activationCounts, [6, 10, 6, 0]);
  assert.deepEqual(all.layers[1]!.neverActivated, [3]);
  assert.equal(all.neverActivatedTotal, 1);

  assert.equal(all.tokenScope, 'all');
  assert.equal(answer.questions, 3);
});

test('normalised entropy, its quantiles, top-1 weight and top-k mass', () => {
  // all, layer 0: 8 tokens at 0.5005 and 3 answer tokens at 0.2505 -> mean (8 x 0.5005 + 3 x 0.2505) / 11.
  // Quantiles from the histogram, N = 11: bins 250 (3 tokens) and 500 (8 tokens); rank r = q N, and a
  // bin's tokens are spread evenly across it:
  //   p05 r = 0.55 -> (250 + 0.55/3) / 1000;   p25 r = 2.75 -> (250 + 2.75/3) / 1000;
  //   p50 r = 5.5  -> (500 + (5.5 - 3)/8) / 1000; p75 r = 8.25 -> (500 + 5.25/8) / 1000;
  //   p95 r = 10.45 -> (500 + 7.45/8) / 1000.
  const all = summary('all');
  const l0 = all.layers[0]!;
  close(l0.entropyNormalized, (8 * 0.5005 + 3 * 0.2505) / 11, 'entropy');
  close(l0.entropyQuantiles.p05, (250 + 0.55 / 3) / 1000, 'p05');
  close(l0.entropyQuantiles.p25, (250 + 2.75 / 3) / 1000, 'p25');
  close(l0.entropyQuantiles.p50, (500 + 2.5 / 8) / 1000, 'p50');
  close(l0.entropyQuantiles.p75, (500 + 5.25 / 8) / 1000, 'p75');
  close(l0.entropyQuantiles.p95, (500 + 7.45 / 8) / 1000, 'p95');
  // Layer 0 weights are [0.6, 0.3] on every token.
  close(l0.meanTop1Weight, 0.6, 'top1');
  close(l0.meanTopKMass, 0.9, 'mass');
  // Layer 1: 8 tokens with [0.7, 0.1], 3 answer tokens with [0.5, 0.5].
  const l1 = all.layers[1]!;
  close(l1.entropyNormalized, 0.9005, 'entropy l1');
  close(l1.meanTop1Weight, (8 * 0.7 + 3 * 0.5) / 11, 'top1 l1');
  close(l1.meanTopKMass, (8 * 0.8 + 3 * 1.0) / 11, 'mass l1');

  // answer: 3 tokens, all 0.2505 in layer 0 -> p50 r = 1.5 -> (250 + 1.5/3) / 1000 = 0.2505.
  const answer = summary('answer');
  close(answer.layers[0]!.entropyNormalized, 0.2505, 'answer entropy');
  close(answer.layers[0]!.entropyQuantiles.p50, 0.2505, 'answer p50');
  close(answer.layers[1]!.meanTop1Weight, 0.5, 'answer top1 l1');
  close(answer.layers[1]!.meanTopKMass, 1.0, 'answer mass l1');

  // question: 6 tokens at 0.5005 in layer 0 -> p05 r = 0.3 -> (500 + 0.3/6) / 1000; weights [0.7, 0.1] in layer 1.
  const question = summary('question');
  close(question.layers[0]!.entropyNormalized, 0.5005, 'question entropy');
  close(question.layers[0]!.entropyQuantiles.p05, (500 + 0.3 / 6) / 1000, 'question p05');
  close(question.layers[1]!.meanTop1Weight, 0.7, 'question top1 l1');
  close(question.layers[1]!.meanTopKMass, 0.8, 'question mass l1');
});

test('histogramQuantile spreads a bin evenly and clamps to the data', () => {
  // 4 bins over [0, 1]: 2 values in bin 1 ([0.25, 0.5)), 2 in bin 3 ([0.75, 1)).
  const hist = [0, 2, 0, 2];
  close(histogramQuantile(hist, 0, 4, 0.25), (1 + 1 / 2) / 4, 'q25'); // rank 1 of 2 in bin 1
  close(histogramQuantile(hist, 0, 4, 0.5), (1 + 2 / 2) / 4, 'q50'); // the top of bin 1
  close(histogramQuantile(hist, 0, 4, 0.75), (3 + 1 / 2) / 4, 'q75');
  assert.equal(histogramQuantile([0, 0, 0, 0], 0, 4, 0.5), 0);
});

test('per-expert accuracy at the answer position and token-weighted over the scope', () => {
  // Correct: Q1 yes, Q2 no, Q3 yes.
  // Answer position, layer 0: Q1 {0,1}, Q2 {1,0}, Q3 {0,1} -> e0 2/3 (3), e1 2/3 (3), e2 and e3 unused.
  //                  layer 1: Q1 {2,1}, Q2 {2,0}, Q3 {2,1} -> e0 0/1, e1 2/2, e2 2/3, e3 unused.
  // The same under every scope.
  for (const scope of ['all', 'question', 'answer'] as const) {
    const s = summary(scope);
    closeArray(s.layers[0]!.expertAccuracy, [2 / 3, 2 / 3, null, null], `${scope} l0`);
    assert.deepEqual(s.layers[0]!.expertAccuracyCount, [3, 3, 0, 0]);
    closeArray(s.layers[1]!.expertAccuracy, [0, 1, 2 / 3, null], `${scope} l1`);
    assert.deepEqual(s.layers[1]!.expertAccuracyCount, [1, 2, 3, 0]);
  }

  // Token-weighted, all tokens. Layer 0: n_q(e) for Q1, Q2, Q3 ->
  //   e0 4, 1, 3 -> (4 + 3) / 8 = 7/8;  e1 1, 4, 1 -> 2/6;  e2 2, 2, 2 -> 4/6;  e3 1, 1, 0 -> 1/2.
  // Layer 1: e0 2, 4, 0 -> 2/6;  e1 4, 3, 3 -> 7/10;  e2 2, 1, 3 -> 5/6;  e3 none -> null.
  const all = summary('all');
  closeArray(all.layers[0]!.expertAccuracyTokenWeighted, [7 / 8, 2 / 6, 4 / 6, 1 / 2], 'all l0');
  closeArray(all.layers[1]!.expertAccuracyTokenWeighted, [2 / 6, 7 / 10, 5 / 6, null], 'all l1');

  // Question tokens, layer 0: e0 2, 0, 2 -> 4/4;  e1 0, 2, 0 -> 0/2;  e2 2, 2, 2 -> 4/6;  e3 null.
  const question = summary('question');
  closeArray(question.layers[0]!.expertAccuracyTokenWeighted, [1, 0, 4 / 6, null], 'question l0');
});

test('co-activation P(b | a) rows', () => {
  // all, layer 0: pairs per token {3,0} {2,0} {0,2} {0,1} | {3,1} {2,1} {1,2} {1,0} | {2,0} {0,2} {0,1}
  //   -> {0,1} 3, {0,2} 4, {0,3} 1, {1,2} 2, {1,3} 1, {2,3} 0; chosen e0 8, e1 6, e2 6, e3 2.
  //   row 0: [0, 3/8, 4/8, 1/8]; row 1: [3/6, 0, 2/6, 1/6]; row 2: [4/6, 2/6, 0, 0]; row 3: [1/2, 1/2, 0, 0].
  //   With k = 2 each chosen expert's row sums to k - 1 = 1.
  const all = summary('all');
  closeArray(all.layers[0]!.coactivation, [0, 3 / 8, 4 / 8, 1 / 8, 3 / 6, 0, 2 / 6, 1 / 6, 4 / 6, 2 / 6, 0, 0, 1 / 2, 1 / 2, 0, 0], 'all l0');

  // answer, layer 1: {2,1} {2,0} {2,1} -> {1,2} 2, {0,2} 1; chosen e0 1, e1 2, e2 3, e3 0.
  //   row 0: [0, 0, 1, 0]; row 1: [0, 0, 1, 0]; row 2: [1/3, 2/3, 0, 0]; row 3 (never chosen): zeros.
  const answer = summary('answer');
  closeArray(answer.layers[1]!.coactivation, [0, 0, 1, 0, 0, 0, 1, 0, 1 / 3, 2 / 3, 0, 0, 0, 0, 0, 0], 'answer l1');

  // question, layer 0: {2,0} {0,2} {2,1} {1,2} {2,0} {0,2} -> {0,2} 4, {1,2} 2; chosen e0 4, e1 2, e2 6.
  const question = summary('question');
  closeArray(question.layers[0]!.coactivation, [0, 0, 1, 0, 0, 0, 1, 0, 4 / 6, 2 / 6, 0, 0, 0, 0, 0, 0], 'question l0');
});

test("subject specialisation: share of the subject's (token, slot) assignments times k", () => {
  // all, algebra = Q1 + Q2 (8 tokens, 16 assignments per layer):
  //   layer 0: e0 4 + 1 = 5, e1 1 + 4 = 5, e2 2 + 2 = 4, e3 1 + 1 = 2 -> x 2/16 -> [0.625, 0.625, 0.5, 0.25]
  //   layer 1: e0 2 + 4 = 6, e1 4 + 3 = 7, e2 2 + 1 = 3, e3 0        -> [0.75, 0.875, 0.375, 0]
  // biology = Q3 (3 tokens, 6 assignments): layer 0 [3, 1, 2, 0] x 2/6; layer 1 [0, 3, 3, 0] x 2/6.
  const all = summary('all');
  closeArray(all.subjectSpecialisation['algebra']![0]!, [0.625, 0.625, 0.5, 0.25], 'algebra l0');
  closeArray(all.subjectSpecialisation['algebra']![1]!, [0.75, 0.875, 0.375, 0], 'algebra l1');
  closeArray(all.subjectSpecialisation['biology']![0]!, [1, 1 / 3, 2 / 3, 0], 'biology l0');
  closeArray(all.subjectSpecialisation['biology']![1]!, [0, 1, 1, 0], 'biology l1');
  for (const perLayer of Object.values(all.subjectSpecialisation)) {
    for (const row of perLayer)
      close(
        row.reduce((a, b) => a + b, 0),
        2,
        'a layer sums to k',
      );
  }
  // answer, biology: the single answer token [0,1] in layer 0 -> [1, 1, 0, 0].
  closeArray(summary('answer').subjectSpecialisation['biology']![0]!, [1, 1, 0, 0], 'biology answer l0');
});

test('uniform routing gives specialisation k/E for every expert', () => {
  // OLMoE shape: 64 experts, top-8. Token t of layer l uses experts (8t + 3l + s) mod 64, s = 0..7, so
  // every 8 consecutive tokens use each expert exactly once per layer.
  const shape: AccumulatorShape = { numLayers: 3, numExperts: 64, topK: 8 };
  const uniformRecord = (id: string, subject: string, correct: boolean): RoutingRecord => {
    const layers: Tok[][] = [];
    for (let l = 0; l < 3; l++) {
      const tokens: Tok[] = [];
      for (let t = 0; t < 16; t++) tokens.push([[0, 1, 2, 3, 4, 5, 6, 7].map((s) => (8 * t + 3 * l + s) % 64), new Array(8).fill(0.1), 0.99]);
      layers.push(tokens);
    }
    return makeRecord(id, subject, correct, [0, 16], 15, layers, shape);
  };
  for (const scope of ['all', 'question'] as const) {
    const acc = accumulate([uniformRecord('a', 'law', true), uniformRecord('b', 'law', false), uniformRecord('c', 'art', true)], scope, shape);
    const s = summarizeAccumulator(acc);
    for (const subject of ['law', 'art']) {
      for (const row of s.subjectSpecialisation[subject]!) for (const v of row) close(v, 8 / 64, `${scope} ${subject}`);
    }
    assert.equal(s.neverActivatedTotal, 0);
  }
});

test('accuracy micro vs macro, per subject and per category', () => {
  // algebra 1/2, biology 1/1: micro = 2/3, macro = (0.5 + 1) / 2 = 0.75.
  const s = summary('answer');
  close(s.accuracy.micro, 2 / 3, 'micro');
  close(s.accuracy.macro, 0.75, 'macro');
  assert.deepEqual(s.accuracy.perSubject['algebra'], { subject: 'algebra', category: 'STEM', questions: 2, correct: 1, accuracy: 0.5 });
  assert.deepEqual(s.accuracy.perSubject['biology'], { subject: 'biology', category: 'other', questions: 1, correct: 1, accuracy: 1 });
  assert.deepEqual(s.accuracy.perCategory, {
    STEM: { questions: 2, correct: 1, subjects: 1, accuracy: 0.5 },
    other: { questions: 1, correct: 1, subjects: 1, accuracy: 1 },
  });

  // A function, and a subject without a category: biology gets null and is left out of perCategory.
  const byFunction = summarizeAccumulator(accumulate(FIXTURE, 'answer'), { categories: (subject) => (subject === 'algebra' ? 'STEM' : undefined) });
  assert.equal(byFunction.accuracy.perSubject['biology']!.category, null);
  assert.deepEqual(Object.keys(byFunction.accuracy.perCategory), ['STEM']);

  // Two categories each holding subjects of different sizes: category accuracy is micro within it.
  // Add a third subject to STEM: chemistry with 2 questions, both correct -> STEM = (1 + 2) / (2 + 2).
  const chem = (id: string): RoutingRecord => ({ ...Q3, questionId: id, subject: 'chemistry', correct: true });
  const three = summarizeAccumulator(accumulate([...FIXTURE, chem('c1'), chem('c2')], 'answer'), {
    categories: { algebra: 'STEM', chemistry: 'STEM' },
  });
  assert.deepEqual(three.accuracy.perCategory['STEM'], { questions: 4, correct: 3, subjects: 2, accuracy: 0.75 });
  close(three.accuracy.micro, 4 / 5, 'micro of 5');
  close(three.accuracy.macro, (0.5 + 1 + 1) / 3, 'macro of 3 subjects');
});

test('definitions: one per metric, each naming the token scope where it depends on it', () => {
  const s = summary('question');
  const keys = [
    'tokenScope',
    'questions',
    'accuracyMicro',
    'accuracyMacro',
    'accuracyPerSubject',
    'accuracyPerCategory',
    'activationCounts',
    'neverActivated',
    'neverActivatedTotal',
    'entropyNormalized',
    'entropyQuantiles',
    'meanTop1Weight',
    'meanTopKMass',
    'expertAccuracy',
    'expertAccuracyCount',
    'expertAccuracyTokenWeighted',
    'coactivation',
    'subjectSpecialisation',
    'gateWeighted',
    'meanOutputNorm',
    'meanSquaredOutputNorm',
    'outputNormCount',
    'weightsCriterion',
  ];
  assert.deepEqual(Object.keys(s.definitions).sort(), keys.sort());
  for (const k of [
    'activationCounts',
    'neverActivated',
    'neverActivatedTotal',
    'entropyNormalized',
    'entropyQuantiles',
    'meanTop1Weight',
    'meanTopKMass',
    'expertAccuracyTokenWeighted',
    'coactivation',
    'subjectSpecialisation',
    'gateWeighted',
    'meanOutputNorm',
    'meanSquaredOutputNorm',
  ]) {
    assert.match(s.definitions[k]!, /the question's own tokens/, k);
  }
  assert.match(s.definitions['entropyQuantiles']!, /1000 bins of width 0\.001/);
  assert.match(s.definitions['subjectSpecialisation']!, /k\/E = 2\/4 = 0\.5/);
  assert.match(s.definitions['expertAccuracy']!, /answer position/);
  assert.equal(s.tokenScopeDefinition.startsWith("the question's own tokens: "), true);
});

test('an empty accumulator summarises to zeros, not NaN', () => {
  const s = summarizeAccumulator(createAccumulator(SHAPE, 'all'));
  assert.equal(s.questions, 0);
  assert.equal(s.accuracy.micro, 0);
  assert.equal(s.accuracy.macro, 0);
  assert.equal(s.neverActivatedTotal, 8);
  assert.equal(s.layers[0]!.entropyNormalized, 0);
  assert.equal(s.layers[0]!.entropyQuantiles.p50, 0);
  assert.deepEqual(s.layers[0]!.expertAccuracy, [null, null, null, null]);
  assert.ok(!JSON.stringify(s).includes('null,null,null,null,null'));
});

// ---------------------------------------------------------------------------------------------------
// Merging and deltas

function randomRecord(random: () => number, id: string, shape: AccumulatorShape, subjects: string[]): RoutingRecord {
  const { numLayers: L, numExperts: E, topK: K } = shape;
  const T = 5 + Math.floor(random() * 20);
  const qs = Math.floor(random() * (T - 1));
  const qe = qs + Math.floor(random() * (T - qs));
  const topExperts = new Uint16Array(L * T * K);
  const topWeights = new Float32Array(L * T * K);
  const entropy = new Float32Array(L * T);
  const pool = Array.from({ length: E }, (_, i) => i);
  for (let i = 0; i < L * T; i++) {
    // Skewed routing (low expert ids more likely) so that some experts stay unused in small scopes.
    for (let s = 0; s < K; s++) {
      const j = s + Math.floor(random() ** 2 * (E - s));
      [pool[s], pool[j]] = [pool[j]!, pool[s]!];
      topExperts[i * K + s] = pool[s]!;
      topWeights[i * K + s] = (K - s) / (K * 4);
    }
    entropy[i] = random() * Math.log(E);
  }
  return {
    questionId: id,
    subject: subjects[Math.floor(random() * subjects.length)]!,
    correct: random() < 0.6,
    ...shape,
    numTokens: T,
    topExperts,
    topWeights,
    entropy,
    questionTokens: [qs, qe],
    answerToken: T - 1,
  };
}

function assertAccumulatorsEqual(actual: RunAccumulator, expected: RunAccumulator): void {
  const floats = ['entropySum', 'top1Sum', 'topKMassSum'] as const;
  const norm = (a: RunAccumulator) => ({
    ...a,
    entropySum: [],
    top1Sum: [],
    topKMassSum: [],
    subjects: a.subjects.slice().sort((x, y) => x.subject.localeCompare(y.subject)),
  });
  assert.deepStrictEqual(norm(actual), norm(expected));
  for (const f of floats) closeArray(actual[f], expected[f], f, 1e-9);
}

test('merge is associative: batch deltas merged in any grouping equal one accumulator over all records', () => {
  const shape: AccumulatorShape = { numLayers: 3, numExperts: 16, topK: 4 };
  const random = rng(42);
  const records = Array.from({ length: 23 }, (_, i) => randomRecord(random, `r${i}`, shape, ['law', 'art', 'math', 'music']));
  for (const scope of ['all', 'question', 'answer'] as const) {
    const whole = accumulate(records, scope, shape);
    // Batches of uneven size, each persisted and read back as the runner does.
    const bounds = [0, 5, 6, 14, 23];
    const deltas = bounds.slice(1).map((end, i) => decodeDelta(encodeDelta(accumulate(records.slice(bounds[i], end), scope, shape))));
    const [a, b, c, d] = deltas as [RunAccumulator, RunAccumulator, RunAccumulator, RunAccumulator];
    const left = mergeAccumulators(mergeAccumulators(mergeAccumulators(a, b), c), d);
    const right = mergeAccumulators(a, mergeAccumulators(b, mergeAccumulators(c, d)));
    const shuffled = mergeAccumulators(mergeAccumulators(d, b), mergeAccumulators(c, a));
    for (const merged of [left, right, shuffled]) assertAccumulatorsEqual(merged, whole);
    // Merging with an empty accumulator changes nothing; inputs are not mutated.
    const before = encodeDelta(a);
    assertAccumulatorsEqual(mergeAccumulators(createAccumulator(shape, scope), whole), whole);
    assert.equal(encodeDelta(a), before);
    // And the summaries agree.
    const sw = summarizeAccumulator(whole);
    const sm = summarizeAccumulator(shuffled);
    assert.deepEqual(
      sm.layers.map((l) => l.activationCounts),
      sw.layers.map((l) => l.activationCounts),
    );
    assert.deepEqual(sm.accuracy, sw.accuracy);
    sm.layers.forEach((l, i) => close(l.entropyNormalized, sw.layers[i]!.entropyNormalized, 'entropy', 1e-12));
  }
});

test('merge refuses accumulators of different shapes, scopes or bins', () => {
  const a = createAccumulator(SHAPE, 'all');
  assert.throws(() => mergeAccumulators(a, createAccumulator(SHAPE, 'answer')), /scopes/);
  assert.throws(() => mergeAccumulators(a, createAccumulator({ ...SHAPE, topK: 1 }, 'all')), /shapes/);
  assert.throws(() => mergeAccumulators(a, createAccumulator(SHAPE, 'all', { entropyBins: 10 })), /bins/);
});

test('encode/decode round trip is exact, floats included', () => {
  for (const scope of ['all', 'question', 'answer'] as const) {
    const acc = accumulate(FIXTURE, scope);
    const decoded = decodeDelta(encodeDelta(acc));
    assert.deepStrictEqual(decoded, acc);
    // The parsed object form decodes the same way.
    assert.deepStrictEqual(decodeDelta(JSON.parse(JSON.stringify(toDelta(acc)))), acc);
  }
  const random = rng(7);
  const shape: AccumulatorShape = { numLayers: 2, numExperts: 8, topK: 2 };
  const acc = accumulate(
    Array.from({ length: 9 }, (_, i) => randomRecord(random, `x${i}`, shape, ['b', 'a'])),
    'all',
    shape,
  );
  const decoded = decodeDelta(encodeDelta(acc));
  assertAccumulatorsEqual(decoded, acc);
  assert.deepEqual(decoded.entropySum, acc.entropySum); // exact: JSON numbers round-trip doubles
  // A plain JSON round trip of the accumulator itself also works (it is plain data).
  assert.deepStrictEqual(JSON.parse(JSON.stringify(acc)), acc);
});

test('a delta at scope=answer omits zeros and stays small', () => {
  const shape: AccumulatorShape = { numLayers: 16, numExperts: 64, topK: 8 };
  const random = rng(3);
  const records = Array.from({ length: 16 }, (_, i) => randomRecord(random, `q${i}`, shape, ['law']));
  const answer = encodeDelta(accumulate(records, 'answer', shape));
  const all = encodeDelta(accumulate(records, 'all', shape));
  // 16 questions x 16 layers x 8 slots at one token each: at most 16 x 28 pairs per layer are non-zero.
  assert.ok(answer.length < 40_000, `answer delta ${answer.length} bytes`);
  assert.ok(answer.length < all.length, 'the answer delta is smaller than the all-token delta');
});

test('decodeDelta rejects malformed or inconsistent deltas', () => {
  const good = toDelta(accumulate(FIXTURE, 'all'));
  const bad = (patch: Record<string, unknown>) => JSON.stringify({ ...good, ...patch });
  assert.throws(() => decodeDelta('{'), /not JSON/);
  assert.throws(() => decodeDelta('null'), /not an object/);
  assert.throws(() => decodeDelta(bad({ format: 'x' })), /format/);
  assert.throws(() => decodeDelta(bad({ version: 2 })), /version/);
  assert.throws(() => decodeDelta(bad({ scope: 'tokens' })), /scope/);
  assert.throws(() => decodeDelta(bad({ shape: [2, 4] })), /shape/);
  assert.throws(() => decodeDelta(bad({ shape: [2, 4, 5] })), /topK/);
  assert.throws(() => decodeDelta(bad({ shape: [2, 100000, 2] })), /numExperts/);
  assert.throws(() => decodeDelta(bad({ questions: 4 })), /question counts/);
  assert.throws(() => decodeDelta(bad({ correct: -1 })), /correct/);
  assert.throws(() => decodeDelta(bad({ scopeTokens: 12 })), /histogram/);
  assert.throws(() => decodeDelta(bad({ entropySum: [1, null] })), /entropySum/);
  assert.throws(() => decodeDelta(bad({ pairs: 'sZZ' })), /pairs/);
  assert.throws(() => decodeDelta(bad({ subjects: [good.subjects[0], good.subjects[0]] })), /twice/);
  assert.throws(() => decodeDelta(bad({ subjects: [[...good.subjects[0]!.slice(0, 3), 's']] })), /question counts|assignments/);
  assert.throws(() => decodeDelta(bad({ answerCorrect: good.answerUse })), /answerCorrect/);
  assert.throws(() => decodeDelta(bad({ activationCorrect: 'd' + 'f'.repeat(8) })), /activationCorrect exceeds/);
});

test('addRecord validates the record and leaves the accumulator unchanged when it throws', () => {
  const acc = accumulate([Q1], 'all');
  const snapshot = cloneAccumulator(acc);
  const withExperts = (patch: (e: number[]) => void): RoutingRecord => {
    const e = Array.from(Q2.topExperts);
    patch(e);
    return { ...Q2, topExperts: e };
  };
  // The bad slot is the last token of the last layer, so a partial fold would already have happened.
  const last = Q2.topExperts.length - 1;
  assert.throws(
    () =>
      addRecord(
        acc,
        withExperts((e) => (e[last] = 4)),
      ),
    /not in \[0, 4\)/,
  );
  assert.throws(
    () =>
      addRecord(
        acc,
        withExperts((e) => (e[last] = e[last - 1]!)),
      ),
    /chosen twice/,
  );
  assert.throws(() => addRecord(acc, { ...Q2, entropy: [...Array.from(Q2.entropy).slice(0, -1), NaN] }), /entropy/);
  assert.throws(() => addRecord(acc, { ...Q2, topWeights: [...Array.from(Q2.topWeights).slice(0, -1), Infinity] }), /weight/);
  assert.throws(() => addRecord(acc, { ...Q2, numExperts: 5 }), /shape/);
  assert.throws(() => addRecord(acc, { ...Q2, topWeights: [0.5] }), /topWeights/);
  assert.throws(() => addRecord(acc, { ...Q2, answerToken: 4 }), /answerToken/);
  assert.throws(() => addRecord(acc, { ...Q2, questionTokens: [3, 1] }), /questionTokens/);
  assert.deepStrictEqual(acc, snapshot);

  // Under scope=question the answer position is outside the scope but still checked, because
  // answer-position expert accuracy reads it.
  const q = accumulate([Q1], 'question');
  const qSnapshot = cloneAccumulator(q);
  assert.throws(
    () =>
      addRecord(
        q,
        withExperts((e) => (e[last] = 9)),
      ),
    /not in/,
  );
  assert.deepStrictEqual(q, qSnapshot);
});

test('typed arrays from the engine and plain arrays give the same accumulator', () => {
  const typed: RoutingRecord = {
    ...Q1,
    topExperts: Uint16Array.from(Q1.topExperts as number[]),
    topWeights: Float64Array.from(Q1.topWeights as number[]),
    entropy: Float64Array.from(Q1.entropy as number[]),
  };
  assert.deepStrictEqual(accumulate([typed], 'all'), accumulate([Q1], 'all'));
});

test('a batch accumulator tracking its pair cells gives the same deltas, merges and clears as a dense one', () => {
  const shape: AccumulatorShape = { numLayers: 4, numExperts: 16, topK: 4 };
  const random = rng(11);
  for (const scope of ['all', 'answer'] as const) {
    const tracked = createAccumulator(shape, scope, { trackPairCells: true });
    const runTracked = createAccumulator(shape, scope);
    const runDense = createAccumulator(shape, scope);
    for (let batch = 0; batch < 5; batch++) {
      const records = Array.from({ length: 3 + batch }, (_, i) => randomRecord(random, `b${batch}q${i}`, shape, ['law', 'art']));
      const dense = accumulate(records, scope, shape);
      clearAccumulator(tracked);
      for (const r of records) addRecord(tracked, r);
      assert.equal(encodeDelta(tracked), encodeDelta(dense), `batch ${batch}, scope ${scope}: the delta text`);
      assert.deepEqual(tracked.pairs, dense.pairs);
      mergeInto(runTracked, tracked);
      mergeInto(runDense, dense);
      assertAccumulatorsEqual(runTracked, runDense);
    }
    // Cleared, it is an empty accumulator again, and a tracked target of a dense merge stays exact.
    clearAccumulator(tracked);
    assert.equal(encodeDelta(tracked), encodeDelta(createAccumulator(shape, scope)));
    mergeInto(tracked, runDense);
    assert.deepEqual(tracked.pairs, runDense.pairs);
    clearAccumulator(tracked);
    assert.ok(
      tracked.pairs.every((v) => v === 0),
      'clearing a tracked accumulator after a dense merge zeroes every cell',
    );
  }
});
