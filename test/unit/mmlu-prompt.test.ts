import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDataset } from '../../src/mmlu/load';
import { buildPrompt, devShotsFor, fitPrompt, pyStrip, type PromptQuestion } from '../../src/mmlu/prompt';
import type { MmluQuestion } from '../../src/mmlu/types';
import { mmluDir } from '../support/mmlu';

const MMLU = mmluDir();

let cached: Promise<{ dev: MmluQuestion[]; test: MmluQuestion[] }> | undefined;
function realData() {
  cached ??= Promise.all([loadDataset(MMLU, { split: 'dev' }), loadDataset(MMLU, { split: 'test' })]).then(([d, t]) => ({
    dev: d.questions,
    test: t.questions,
  }));
  return cached;
}

// Written out by hand from data/dev/abstract_algebra_dev.csv (rows 1-5) and the first row of
// data/test/abstract_algebra_test.csv, following the harness template.
const ABSTRACT_ALGEBRA_5_SHOT = [
  'The following are multiple choice questions (with answers) about abstract algebra.',
  '',
  'Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.',
  'A. 0',
  'B. 1',
  'C. 2',
  'D. 3',
  'Answer: B',
  '',
  'Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K are subgroups of G then HK is a subgroup of G.',
  'A. True, True',
  'B. False, False',
  'C. True, False',
  'D. False, True',
  'Answer: B',
  '',
  'Statement 1 | Every element of a group generates a cyclic subgroup of the group. Statement 2 | The symmetric group S_10 has 10 elements.',
  'A. True, True',
  'B. False, False',
  'C. True, False',
  'D. False, True',
  'Answer: C',
  '',
  'Statement 1| Every function from a finite set onto itself must be one to one. Statement 2 | Every subgroup of an abelian group is abelian.',
  'A. True, True',
  'B. False, False',
  'C. True, False',
  'D. False, True',
  'Answer: A',
  '',
  'Find the characteristic of the ring 2Z.',
  'A. 0',
  'B. 3',
  'C. 12',
  'D. 30',
  'Answer: A',
  '',
  'Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.',
  'A. 0',
  'B. 4',
  'C. 2',
  'D. 6',
  'Answer:',
].join('\n');

// From data/dev/nutrition_dev.csv rows 1-2 and data/test/nutrition_test.csv row 1. In the file every
// one of these questions ends with a line break inside its quotes, which the harness strips.
const NUTRITION_2_SHOT = [
  'The following are multiple choice questions (with answers) about nutrition.',
  '',
  'In a cohort study, the risk ratio of developing diabetes was 0.86 when comparing consumers of tea (the exposed) to those who did not drink tea (the unexposed). Which one statement is correct (according to knowledge in 2020)?',
  'A. The tea drinkers have lower risk of developing diabetes.',
  'B. The tea drinkers have higher risk of developing diabetes.',
  'C. Based on the information given we cannot tell if the observed difference in disease risk is the result of chance.',
  'D. The risk ratio is close to the value one, so there is no difference in disease risk between the two groups.',
  'Answer: C',
  '',
  'Which of the following statements is correct (according to knowledge in 2020)?',
  'A. Consumers with phenylketonuria must avoid the consumption of the sweetener aspartame',
  'B. Consumers with phenylketonuria must avoid the consumption of the sweetener saccharin',
  'C. Consumers with phenylketonuria must avoid the consumption of the sweetener sucralose',
  'D. Consumers with phenylketonuria must avoid the consumption of the sweetener acesulfame K',
  'Answer: A',
  '',
  'Which foods tend to be consumed in lower quantities in Wales and Scotland (as of 2020)?',
  'A. Meat',
  'B. Confectionary',
  'C. Fruits and vegetables',
  'D. Potatoes',
  'Answer:',
].join('\n');

test('golden: abstract_algebra test question 0 with 5 dev shots, character for character', async () => {
  const { dev, test: tst } = await realData();
  const q = tst.find((x) => x.id === 'abstract_algebra/test/0')!;
  const p = buildPrompt(q, devShotsFor('abstract_algebra', dev), 5);
  assert.equal(p.text, ABSTRACT_ALGEBRA_5_SHOT);
  assert.equal(p.shotsUsed, 5);
  const itemStart = ABSTRACT_ALGEBRA_5_SHOT.indexOf('Find the degree');
  assert.equal(p.prefix, ABSTRACT_ALGEBRA_5_SHOT.slice(0, itemStart));
  assert.deepEqual(p.questionRange, [itemStart, ABSTRACT_ALGEBRA_5_SHOT.length - '\nAnswer:'.length]);
  assert.equal(p.text.slice(...p.questionRange), 'Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6');
});

test('golden: nutrition test question 0 with 2 shots strips the questions as the harness does', async () => {
  const { dev, test: tst } = await realData();
  const q = tst.find((x) => x.id === 'nutrition/test/0')!;
  assert.ok(q.question.endsWith('\n'), 'the data really has the trailing line break');
  assert.equal(buildPrompt(q, devShotsFor('nutrition', dev), 2).text, NUTRITION_2_SHOT);
});

test('prefix is shared by the questions of a subject and ends where the item starts', async () => {
  const { dev, test: tst } = await realData();
  const shots = devShotsFor('abstract_algebra', dev);
  const [a, b] = tst.filter((x) => x.subject === 'abstract_algebra');
  const pa = buildPrompt(a, shots, 5);
  const pb = buildPrompt(b, shots, 5);
  assert.equal(pa.prefix, pb.prefix);
  assert.ok(pb.text.startsWith(pb.prefix));
  assert.equal(pb.questionRange[0], pb.prefix.length);
  assert.ok(pb.text.endsWith('\nAnswer:'));
});

const item = (question: string, answer: 0 | 1 | 2 | 3 | null, subject = 'x'): PromptQuestion => ({
  subject,
  question,
  choices: ['a', 'b', 'c', 'd'],
  answer,
});

test('zero-shot prompt of a made-up question: header with spaces for underscores, Python-style strip', () => {
  // U+0085 is whitespace to Python and stripped; U+FEFF is not, and stays.
  const p = buildPrompt(item('\u0085 \tWhat?\n\uFEFF\n', null, 'high_school_us_history'), [], 5);
  assert.equal(
    p.text,
    'The following are multiple choice questions (with answers) about high school us history.\n\nWhat?\n\uFEFF\nA. a\nB. b\nC. c\nD. d\nAnswer:',
  );
  assert.equal(p.shotsUsed, 0);
  assert.equal(pyStrip('\x1c x \x85'), 'x');
  assert.equal(pyStrip('\uFEFFx'), '\uFEFFx');
});

test('a shot identical to the question is passed over; shots without answers are refused', () => {
  const shots = [item('S0', 0), item('S1', 1), item('S2', 2)];
  const p = buildPrompt(item('S0', 0), shots, 2);
  assert.equal(p.shotsUsed, 2);
  assert.ok(p.prefix.includes('S1\n') && p.prefix.includes('S2\n') && !p.prefix.includes('S0'));
  assert.throws(() => buildPrompt(item('T', 0), [item('S', null)], 1), /needs an answer/);
  assert.throws(() => buildPrompt(item('T', 0), shots, -1), RangeError);
});

test('fitPrompt drops shots from the last until the prompt fits a chars/4 budget', () => {
  const header = 'The following are multiple choice questions (with answers) about x.\n\n';
  const shotText = (n: number) => `Q${n}\nA. a\nB. b\nC. c\nD. d\nAnswer: A\n\n`; // 34 characters
  const target = 'T?\nA. a\nB. b\nC. c\nD. d\nAnswer:'; // 30 characters
  const shots = [1, 2, 3, 4, 5].map((n) => item(`Q${n}`, 0));
  const count = (s: string) => Math.ceil(s.length / 4);
  const expectedText = (n: number) => header + [1, 2, 3, 4, 5].slice(0, n).map(shotText).join('') + target;

  const budget3 = Math.ceil(expectedText(3).length / 4);
  const r = fitPrompt(item('T?', 2), shots, 5, count, budget3);
  assert.ok(r.fits);
  assert.equal(r.prompt.shotsUsed, 3);
  assert.equal(r.fits && r.shotsDropped, 2);
  assert.equal(r.prompt.text, expectedText(3));
  assert.equal(r.tokens, budget3);

  const all = fitPrompt(item('T?', 2), shots, 5, count, 10_000);
  assert.ok(all.fits && all.shotsDropped === 0 && all.prompt.shotsUsed === 5);

  const none = fitPrompt(item('T?', 2), shots, 5, count, 5);
  assert.equal(none.fits, false);
  assert.equal(none.prompt.shotsUsed, 0);
  assert.equal(none.prompt.text, expectedText(0));
  assert.match(!none.fits ? none.message : '', /more than the limit of 5/);
});

test('fitPrompt on a real question keeps as many shots as fit and no more', async () => {
  const { dev, test: tst } = await realData();
  const q = tst.find((x) => x.id === 'abstract_algebra/test/0')!;
  const shots = devShotsFor('abstract_algebra', dev);
  const count = (s: string) => Math.ceil(s.length / 4);
  const r = fitPrompt(q, shots, 5, count, 200);
  assert.ok(r.fits);
  assert.ok(r.tokens <= 200);
  assert.ok(r.prompt.shotsUsed < 5);
  assert.ok(count(ABSTRACT_ALGEBRA_5_SHOT) > 200);
  assert.ok(count(buildPrompt(q, shots, r.prompt.shotsUsed + 1).text) > 200);
});
