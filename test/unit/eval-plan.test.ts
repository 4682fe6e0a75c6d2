/**
 * The plan from what differs (src/eval/plan.ts): each prefix and each item tokenized once, the join checked
 * for every question, against the whole-prompt plan on the demo data with toy tokenizers that do and do
 * not cut at the join. The full split with real tokenizers: test/integration/eval-plan.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { planByWholePrompts, planEvaluation, joinWindow } from '../../src/eval/plan';
import { selectQuestions } from '../../src/eval/runner';
import type { TokenizeResult } from '../../src/shared/protocol';
import { planDifferences, tokenizerBackend } from '../support/plans';
import { REPO_ROOT } from '../support/models';

const DEMO_MMLU = path.join(REPO_ROOT, 'media', 'demo-data', 'mmlu');

/** A toy tokenizer: one token per match of `pattern`, ids from a shared vocabulary, a BOS first when asked. */
function toyTokenizer(pattern: RegExp, bos: boolean) {
  const vocab = new Map<string, number>();
  return (text: string): TokenizeResult => {
    const tokens = bos ? [{ id: 0, text: '<s>', start: 0, end: 0 }] : [];
    for (const m of text.matchAll(pattern)) {
      let id = vocab.get(m[0]);
      if (id === undefined) vocab.set(m[0], (id = vocab.size + 1));
      tokens.push({ id, text: m[0], start: m.index, end: m.index + m[0].length });
    }
    return { ids: tokens.map((t) => t.id), tokens };
  };
}

async function bothPlans(encode: (t: string) => TokenizeResult, maxPositions = 4096) {
  const { questions, dev } = await selectQuestions(DEMO_MMLU, 'test', undefined, 0, () => {});
  const backend = tokenizerBackend(encode);
  const joined = await planEvaluation(backend, { maxPositions }, questions, dev, 5);
  const whole = await planByWholePrompts(backend, { maxPositions }, questions, dev, 5);
  return { joined, whole, questions };
}

test("joinWindow is the prefix's last line with its blank line, or the whole header without shots", () => {
  assert.equal(joinWindow('Header.\n\nQ1\nA. x\nAnswer: B\n\n'), 'Answer: B\n\n');
  assert.equal(
    joinWindow('The following are multiple choice questions (with answers).\n\n'),
    'The following are multiple choice questions (with answers).\n\n',
  );
});

test('a tokenizer that cuts at the join: every question joined, the plan identical to the whole-prompt plan, far fewer tokens', async () => {
  const { joined, whole, questions } = await bothPlans(toyTokenizer(/\w+|\s+|[^\w\s]/g, true));
  assert.deepEqual(planDifferences(joined, whole), []);
  assert.equal(joined.tokenization.wholePrompt, 0);
  assert.equal(joined.tokenization.joined, questions.length);
  assert.ok(
    joined.tokenization.tokenizedTokens < whole.tokenization.tokenizedTokens / 3,
    `${joined.tokenization.tokenizedTokens} tokens tokenized vs ${whole.tokenization.tokenizedTokens}`,
  );
});

test('a tokenizer whose tokens cross the join for some questions: those fall back to whole prompts, counted, and the plan is still identical', async () => {
  // Whitespace joins the word after it when the word starts with W, T or A (as "\n\nThe" would in a tokenizer with such merges).
  const { joined, whole } = await bothPlans(toyTokenizer(/\s*[WTA]\w*|\w+|\s+|[^\w\s]/g, false));
  assert.deepEqual(planDifferences(joined, whole), []);
  assert.ok(joined.tokenization.wholePrompt > 0, 'some questions fell back');
  assert.ok(joined.tokenization.joined > 0, 'others were joined');
});

test('a tokenizer whose split at the join depends on more than the window: the anchor check refuses the join, the plan is still identical', async () => {
  // The blank line before an item is one token only when the prompt holds more than 600 characters before it:
  // context the window cannot see, so the window's tokens disagree with the anchor's.
  const base = toyTokenizer(/\w+|\n|[^\w\s]| /g, false);
  const encode = (text: string): TokenizeResult => {
    const r = base(text);
    const ids: number[] = [];
    const tokens: TokenizeResult['tokens'] = [];
    for (let i = 0; i < r.tokens.length; i++) {
      const t = r.tokens[i];
      const n = r.tokens[i + 1];
      if (t.text === '\n' && n?.text === '\n' && t.start > 600) {
        tokens.push({ id: 99999, text: '\n\n', start: t.start, end: n.end });
        i++;
      } else tokens.push(t);
    }
    for (const t of tokens) ids.push(t.id);
    return { ids, tokens };
  };
  const { joined, whole } = await bothPlans(encode);
  assert.deepEqual(planDifferences(joined, whole), []);
  assert.ok(joined.tokenization.wholePrompt > 0, 'the window could not reproduce the prompt: whole prompts');
});

test('prompts too long for the context lose shots the same way in both plans', async () => {
  const encode = toyTokenizer(/\w+|\s+|[^\w\s]/g, true);
  const { joined, whole } = await bothPlans(encode, 500);
  assert.deepEqual(planDifferences(joined, whole), []);
  const shots = new Set(joined.groups.flatMap((g) => g.questions.map((q) => q.shotsUsed)));
  assert.ok(shots.size > 1, `prompts with different numbers of shots (${[...shots]})`);
  assert.ok(joined.skipped.length === whole.skipped.length);
});
