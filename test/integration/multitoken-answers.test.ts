/**
 * A checkpoint whose tokenizer spells the answer letters " A".." D" as two tokens each: tracing and a
 * 5-shot evaluation still work, each letter scored by the summed log-probability of its full
 * continuation (as lm-evaluation-harness does), checked against the independent reference forward pass;
 * summary.json says which scoring method was used.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Engine } from '../../src/engines/onnxruntime/engine';
import { runEvaluation } from '../../src/eval/runner';
import { ANSWER_SCORING_DEFINITIONS, type RunSummary } from '../../src/shared/protocol';
import { loadDataset } from '../../src/mmlu/load';
import { buildPrompt } from '../../src/mmlu/prompt';
import { makeModel, reference, tempDir, DEMO_CORPUS, SAMPLE_QUESTION } from '../support/models';

const TOL = 1e-4;
const model = makeModel({ family: 'mixtral', multiTokenLetters: true, overrides: { layers: 3 } });
const singleTokenModel = makeModel({ family: 'mixtral', overrides: { layers: 3 } });
const cache = tempDir('cache');
const engine = new Engine();
after(() => engine.dispose());

function logSoftmax(row: Float64Array, id: number): number {
  let max = -Infinity;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  return row[id] - max - Math.log(sum);
}

/** The harness's definition, on the reference forward pass: sum over the letter's tokens of log P(token | everything before it). */
function referenceLetterLogProb(ids: number[], letter: number[]): number {
  const ref = reference(model, [...ids, ...letter.slice(0, -1)]);
  return letter.reduce((acc, id, j) => acc + logSoftmax(ref.logits[ids.length - 1 + j], id), 0);
}

test('the generated tokenizer spells every answer letter as two tokens; the model info says continuation scoring', async () => {
  const info = await engine.load(model, { executionProvider: 'cpu', cacheDir: cache });
  assert.equal(info.answerScoring.method, 'continuation');
  for (const ids of info.answerScoring.letterTokenIds) assert.equal(ids.length, 2);
  const other = new Engine();
  try {
    assert.equal((await other.load(singleTokenModel, { executionProvider: 'cpu', cacheDir: cache })).answerScoring.method, 'single-token');
  } finally {
    await other.dispose();
  }
});

test('a trace scores each letter by the summed log-probability of its continuation, matching the reference', async () => {
  const info = await engine.load(model, { executionProvider: 'cpu', cacheDir: cache });
  const r = await engine.trace({ text: SAMPLE_QUESTION }, { includeProbs: false, includeLastLogits: false });
  const ids = r.tokens.map((t) => t.id);
  assert.equal(r.model.answerScoring.method, 'continuation');
  assert.equal(r.routing.numTokens, ids.length, 'routing covers the prompt only');
  info.answerScoring.letterTokenIds.forEach((letter, i) => {
    const expected = referenceLetterLogProb(ids, letter);
    assert.ok(Math.abs(r.answerLogProbs[i] - expected) < TOL, `letter ${'ABCD'[i]}: ${r.answerLogProbs[i]} vs reference ${expected}`);
  });
  assert.ok(Math.abs(r.answerProbs.reduce((a, b) => a + b, 0) - 1) < 1e-9);
});

test('a 5-shot evaluation on that checkpoint scores with continuations, records them and says so in summary.json', async () => {
  const runDir = tempDir('run-multitoken');
  const subject = 'high_school_biology';
  const out = await runEvaluation(engine, {
    modelPath: model,
    load: { executionProvider: 'cpu', cacheDir: cache },
    dataPath: DEMO_CORPUS,
    split: 'test',
    shots: 5,
    subjects: [subject],
    limitPerSubject: 3,
    tokenScope: 'answer',
    batchSize: 2,
    runDir,
  });
  assert.equal(out.summary.questions, 3);
  assert.equal(out.summary.complete, true);
  assert.equal(out.summary.shots, 5);
  const onDisk = JSON.parse(fs.readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as RunSummary;
  assert.equal(onDisk.answerScoring, 'continuation');
  assert.equal(onDisk.definitions.answerScoring, ANSWER_SCORING_DEFINITIONS.continuation);

  // Every recorded question's log-probabilities equal a direct trace of its full 5-shot prompt: the batched
  // path (cached prefix, padded batch, each row's own keys and values) adds nothing and loses nothing.
  const records = fs
    .readFileSync(path.join(runDir, 'records.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => JSON.parse(l).questions) as { id: string; logProbs: number[]; shotsUsed: number }[];
  assert.equal(records.length, 3);
  const test_ = (await loadDataset(DEMO_CORPUS, { split: 'test' })).questions.filter((q) => q.subject === subject);
  const dev = (await loadDataset(DEMO_CORPUS, { split: 'dev' })).questions.filter((q) => q.subject === subject && q.split === 'dev');
  for (const rec of records) {
    assert.equal(rec.shotsUsed, 5);
    const q = test_.find((x) => x.id === rec.id)!;
    const direct = await engine.trace({ text: buildPrompt(q, dev, 5).text }, { includeProbs: false, includeLastLogits: false });
    rec.logProbs.forEach((lp, i) =>
      assert.ok(Math.abs(lp - direct.answerLogProbs[i]) < TOL, `${rec.id} letter ${'ABCD'[i]}: recorded ${lp}, traced ${direct.answerLogProbs[i]}`),
    );
  }
});

test('summary.json of a single-token checkpoint says single-token', async () => {
  const runDir = tempDir('run-singletoken');
  const other = new Engine();
  try {
    const out = await runEvaluation(other, {
      modelPath: singleTokenModel,
      load: { executionProvider: 'cpu', cacheDir: cache },
      dataPath: DEMO_CORPUS,
      split: 'test',
      shots: 0,
      subjects: ['marketing'],
      limitPerSubject: 2,
      tokenScope: 'answer',
      batchSize: 2,
      runDir,
    });
    assert.equal(out.summary.answerScoring, 'single-token');
  } finally {
    await other.dispose();
  }
});
