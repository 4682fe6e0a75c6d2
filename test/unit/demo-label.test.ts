/**
 * The demo checkpoints are named for what they are (issue 24): the random one "random weights", the trained
 * toy "a toy trained on MMLU dev/val text ... not OLMoE", in the status bar, the CLI's comparison and the
 * words the views use.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { demoModelLabel, demoResultsCaveat, isTrainedDemo } from '../../src/shared/demoLabel';
import { statusBarName } from '../../src/host/statusTooltip';
import { describeComparison } from '../../src/cli/experiments';
import type { RunComparison } from '../../src/shared/protocol';
import { finishSummary } from '../../src/eval/runner';
import { createAccumulator } from '../../src/analysis/accumulator';
import type { RunManifest } from '../../src/eval/runFolder';

test('the labels say random weights or trained toy, and never call the toy OLMoE', () => {
  assert.equal(demoModelLabel(false), 'demo model: random weights');
  assert.match(demoModelLabel(true), /toy trained on MMLU dev\/val text.*not OLMoE$/);
  assert.doesNotMatch(demoModelLabel(true), /random/);
  assert.match(demoResultsCaveat(false, 'run'), /say nothing about a trained model/);
  assert.match(demoResultsCaveat(true, 'run'), /near chance/);
});

test('isTrainedDemo reads only an explicit trained: true', () => {
  assert.equal(isTrainedDemo({ note: 'x', trained: true }), true);
  assert.equal(isTrainedDemo({ note: 'x' }), false);
  assert.equal(isTrainedDemo({ note: 'x', trained: 'yes' }), false);
  assert.equal(isTrainedDemo(undefined), false);
  assert.equal(isTrainedDemo(true), false);
});

test('the status bar names the trained toy apart from the random demo model', () => {
  assert.equal(statusBarName({ family: 'olmoe', demo: { note: 'n', trained: true } }, '/m'), 'olmoe (trained toy demo)');
  assert.equal(statusBarName({ family: 'olmoe', demo: { note: 'n' } }, '/m'), 'olmoe (demo)');
  assert.equal(statusBarName({ family: 'olmoe' }, '/m'), 'olmoe');
});

function comparison(aDemo: { demo: boolean; demoTrained?: boolean }, bDemo: { demo: boolean; demoTrained?: boolean }): RunComparison {
  const d = { a: 0.5, b: 0.5, delta: 0, questionsA: 1, questionsB: 1 };
  return {
    a: { label: 'a', runDir: '/a', questions: 1, complete: true, ...aDemo },
    b: { label: 'b', runDir: '/b', questions: 1, complete: true, ...bDemo },
    warnings: [],
    accuracy: { micro: d, macro: d, perCategory: [], perSubject: [] },
    mcnemar: { paired: 1, bothCorrect: 1, bothWrong: 0, b01: 0, b10: 0, pValue: 1, unpaired: 0 },
    activation: { numLayers: 1, tokenScope: 'answer', shareA: [[1]], shareB: [[1]], deltaShare: [[0]] },
  } as unknown as RunComparison;
}

test("compare's note says trained toy only when neither run is the random demo model", () => {
  const note = (c: RunComparison) =>
    describeComparison(c)
      .split('\n')
      .find((l) => l.startsWith('note: ')) ?? '';
  assert.match(note(comparison({ demo: true, demoTrained: true }, { demo: true, demoTrained: true })), /toy trained on MMLU dev\/val text/);
  assert.match(note(comparison({ demo: true, demoTrained: true }, { demo: true })), /random weights/);
  assert.match(note(comparison({ demo: true }, { demo: false })), /random weights/);
  assert.equal(note(comparison({ demo: false }, { demo: false })), '');
});

test('a run summary records the trained toy from the loaded model, and from a merge of its shards', () => {
  const acc = createAccumulator({ numLayers: 1, numExperts: 2, topK: 1 }, 'answer');
  const manifest = { dataset: { name: 'x' }, shots: 0, tokenScope: 'answer' } as unknown as RunManifest;
  const model = { path: '/m', family: 'olmoe', numLayers: 1, numExperts: 2, topK: 1, answerScoring: { method: 'single-token' as const } };
  const tokens = { computed: 0, padding: 0, prefixReused: 0 };
  const fromEngine = finishSummary(acc, manifest, { ...model, demo: { note: 'n', trained: true } }, true, tokens, 0);
  assert.equal(fromEngine.model.demo, true);
  assert.equal(fromEngine.model.demoTrained, true);
  const fromMerge = finishSummary(acc, manifest, { ...model, demo: true, demoTrained: true }, true, tokens, 0);
  assert.equal(fromMerge.model.demoTrained, true);
  const random = finishSummary(acc, manifest, { ...model, demo: { note: 'n' } }, true, tokens, 0);
  assert.equal(random.model.demo, true);
  assert.equal(random.model.demoTrained, undefined);
});
