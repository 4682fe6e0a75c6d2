/**
 * McNemar's exact test against hand-computed cases, and compareRuns on two synthetic runs built through
 * the real accumulator with a designed answer (accuracies, discordant pairs, activation shares).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareRuns, mcnemar, mcnemarExactP, mcnemarInWords, type RunForComparison } from '../../src/analysis/compare';
import { addRecord, createAccumulator, summarizeAccumulator } from '../../src/analysis/accumulator';
import type { RunSummary } from '../../src/shared/protocol';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);

test('McNemar exact p-values match hand computation', () => {
  // b01 = 1, b10 = 7: n = 8, P(X <= 1) = (C(8,0) + C(8,1)) / 2^8 = 9/256, two-sided 18/256.
  close(mcnemarExactP(1, 7), 18 / 256);
  close(mcnemarExactP(7, 1), 18 / 256);
  // b01 = 0, b10 = 5: 2 * (1/32).
  close(mcnemarExactP(0, 5), 2 / 32);
  // b01 = 2, b10 = 10: n = 12, (1 + 12 + 66) / 4096 = 79/4096, two-sided 158/4096.
  close(mcnemarExactP(2, 10), 158 / 4096);
  // Balanced: 2 * (1 + 6 + 15 + 20)/64 > 1, capped at 1; no discordant pairs: 1.
  assert.equal(mcnemarExactP(3, 3), 1);
  assert.equal(mcnemarExactP(0, 0), 1);
  // Large n stays finite: 14,000 discordant questions split 6,800 / 7,200 is far from 1 and above 0.
  const p = mcnemarExactP(6800, 7200);
  assert.ok(p > 0 && p < 0.001 && Number.isFinite(p), `p = ${p}`);
  assert.throws(() => mcnemarExactP(-1, 2), /non-negative integers/);
});

test('McNemar pairs questions by id and counts the four cells', () => {
  const a = [
    { id: 'q1', correct: true },
    { id: 'q2', correct: false },
    { id: 'q3', correct: true },
    { id: 'q4', correct: false },
    { id: 'only-a', correct: true },
  ];
  const b = [
    { id: 'q4', correct: true },
    { id: 'q3', correct: false },
    { id: 'q2', correct: false },
    { id: 'q1', correct: true },
    { id: 'only-b', correct: false },
  ];
  const m = mcnemar(a, b);
  assert.deepEqual({ ...m, pValue: undefined }, { paired: 4, bothCorrect: 1, bothWrong: 1, b01: 1, b10: 1, pValue: undefined, unpaired: 2 });
  assert.equal(m.pValue, 1);
  assert.match(mcnemarInWords(m, 'base', 'pruned'), /no significant difference/);
});

/**
 * A synthetic run: `plan` gives per subject a list of correctness flags; every question routes its
 * answer token to experts `experts(layer)` in every layer.
 */
function syntheticRun(label: string, plan: Record<string, boolean[]>, experts: (layer: number) => number[]): RunForComparison {
  const shape = { numLayers: 2, numExperts: 4, topK: 2 };
  const acc = createAccumulator(shape, 'answer');
  const questions: { id: string; correct: boolean }[] = [];
  for (const [subject, flags] of Object.entries(plan)) {
    flags.forEach((correct, i) => {
      const id = `${subject}/${i}`;
      questions.push({ id, correct });
      const T = 3;
      const topExperts: number[] = [];
      const topWeights: number[] = [];
      for (let l = 0; l < shape.numLayers; l++) {
        for (let t = 0; t < T; t++) {
          topExperts.push(...experts(l));
          topWeights.push(0.3, 0.2);
        }
      }
      addRecord(acc, {
        questionId: id,
        subject,
        correct,
        ...shape,
        numTokens: T,
        topExperts,
        topWeights,
        entropy: new Array(shape.numLayers * T).fill(1),
        questionTokens: [0, 2],
        answerToken: T - 1,
      });
    });
  }
  const analysis = summarizeAccumulator(acc, { categories: { astronomy: 'STEM', virology: 'other' } });
  const summary = {
    version: 1,
    model: { path: '/m', family: 'olmoe', ...shape, demo: true },
    dataset: { path: '/d', split: 'test', fingerprint: 'f' },
    shots: 0,
    complete: true,
    tokens: { computed: 0, padding: 0, prefixReusedTokens: 0 },
    elapsedSeconds: 1,
    ...analysis,
  } as RunSummary;
  return { label, runDir: `/runs/${label}`, summary, questions };
}

test('compareRuns on two synthetic runs gives the designed deltas, McNemar cells and activation shares', () => {
  // astronomy: A 3/4 right, B 1/4 (two questions lost); virology: A 1/2, B 2/2 (one gained).
  const A = syntheticRun('base', { astronomy: [true, true, true, false], virology: [true, false] }, () => [0, 1]);
  const B = syntheticRun('pruned', { astronomy: [true, false, false, false], virology: [true, true] }, (l) => (l === 0 ? [2, 3] : [0, 1]));
  const c = compareRuns(A, B);
  close(c.accuracy.micro.a!, 4 / 6);
  close(c.accuracy.micro.b!, 3 / 6);
  close(c.accuracy.micro.delta!, 3 / 6 - 4 / 6);
  close(c.accuracy.macro.delta!, (1 / 4 + 1) / 2 - (3 / 4 + 1 / 2) / 2);
  const astro = c.accuracy.perSubject.find((s) => s.subject === 'astronomy')!;
  close(astro.delta!, 1 / 4 - 3 / 4);
  assert.equal(astro.category, 'STEM');
  assert.deepEqual(Object.fromEntries(c.accuracy.perCategory.map((x) => [x.category, x.delta])), { STEM: 1 / 4 - 3 / 4, other: 1 - 1 / 2 });
  assert.deepEqual(
    { paired: c.mcnemar.paired, b01: c.mcnemar.b01, b10: c.mcnemar.b10, bothCorrect: c.mcnemar.bothCorrect, bothWrong: c.mcnemar.bothWrong },
    { paired: 6, b01: 1, b10: 2, bothCorrect: 2, bothWrong: 1 },
  );
  // n = 3, min = 1: 2 * (1 + 3) / 8 = 1.
  assert.equal(c.mcnemar.pValue, 1);
  // Layer 0 moved all its assignments from experts 0,1 to 2,3; layer 1 did not change.
  assert.deepEqual(c.activation.shareA[0], [0.5, 0.5, 0, 0]);
  assert.deepEqual(c.activation.deltaShare[0], [-0.5, -0.5, 0.5, 0.5]);
  assert.deepEqual(c.activation.deltaShare[1], [0, 0, 0, 0]);
  assert.deepEqual(c.warnings, []);
});

test('compareRuns warns about runs that are not like for like and refuses different model shapes', () => {
  const A = syntheticRun('base', { astronomy: [true, false] }, () => [0, 1]);
  const B = syntheticRun('other', { astronomy: [true] }, () => [0, 1]);
  B.summary = { ...B.summary, shots: 5, complete: false };
  const c = compareRuns(A, B);
  assert.ok(c.warnings.some((w) => /different shots: 0 vs 5/.test(w)));
  assert.ok(c.warnings.some((w) => /other is not complete/.test(w)));
  assert.ok(c.warnings.some((w) => /1 questions were answered by only one run/.test(w)));
  const onOther = compareRuns({ ...A, engine: { kind: 'onnxruntime', dtype: 'float32' } }, { ...B, engine: { kind: 'pytorch', dtype: 'float32' } });
  assert.ok(onOther.warnings.some((w) => /different engines: onnxruntime float32 vs pytorch float32/.test(w)));
  const wide = { ...B, summary: { ...B.summary, model: { ...B.summary.model, numExperts: 8 } } };
  assert.throws(() => compareRuns(A, wide), /cannot be compared/);
});
