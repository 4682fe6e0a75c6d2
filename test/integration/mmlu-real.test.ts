/**
 * The full MMLU (vendored in data/mmlu, or $MMLU_DIR; test/support/mmlu.ts): the original CSV tree, and the same questions
 * converted here to cais-style JSONL and Parquet and read back through the readers.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { MMLU_CATEGORIES } from '../../src/mmlu/categories';
import { loadDataset } from '../../src/mmlu/load';
import { buildPrompt, devShotsFor, pyStrip } from '../../src/mmlu/prompt';
import { findQuestionAtCursor } from '../../src/mmlu/questionAtCursor';
import type { MmluDataset, MmluQuestion } from '../../src/mmlu/types';
import { mmluDir } from '../support/mmlu';

const MMLU = mmluDir();

const EXPECTED = { test: 14042, val: 1531, dev: 285 } as const;
const SPLITS = ['dev', 'val', 'test'] as const;
const HF_NAME = { dev: 'dev', val: 'validation', test: 'test' } as const;

let tree: Promise<{ ds: MmluDataset; ms: number }> | undefined;
function loadTree() {
  tree ??= (async () => {
    const t0 = performance.now();
    const ds = await loadDataset(MMLU);
    return { ds, ms: performance.now() - t0 };
  })();
  return tree;
}

let tmp: string | undefined;
async function tempDir(): Promise<string> {
  tmp ??= await mkdtemp(join(tmpdir(), 'moe-scope-mmlu-'));
  return tmp;
}
after(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const bySplit = (qs: MmluQuestion[], s: string) => qs.filter((q) => q.split === s);
const essence = (q: MmluQuestion) => ({ id: q.id, subject: q.subject, split: q.split, question: q.question, choices: q.choices, answer: q.answer });

/** Checked against the CSV files by hand (a Python csv reader gave the same rows and lines). */
const SPOT_CHECKS: { id: string; line: number; question: string; choices: string[]; answer: number }[] = [
  {
    id: 'abstract_algebra/test/0',
    line: 1,
    question: 'Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.',
    choices: ['0', '4', '2', '6'],
    answer: 1,
  },
  {
    id: 'nutrition/test/0',
    line: 1,
    question: 'Which foods tend to be consumed in lower quantities in Wales and Scotland (as of 2020)?\n',
    choices: ['Meat', 'Confectionary', 'Fruits and vegetables', 'Potatoes'],
    answer: 2,
  },
  {
    id: 'nutrition/test/305',
    line: 614,
    question: 'Which statement about the oral phase of digestion is INCORRECT?\n',
    choices: [
      'About 2% of the energy content of food is expended during the action of chewing and swallowing it.',
      'Swallowing involves contraction and relaxation of at least 14 groups of muscles in about 10 seconds in healthy subjects',
      'The biofilm covering tooth enamel contains several salivary and bacterial enzymes',
      'Salivary amylase digests the dextran film on tooth enamel formed from dietary sucrose',
    ],
    answer: 3,
  },
  {
    id: 'college_mathematics/dev/2',
    line: 3,
    question:
      'Let A be a real 2x2 matrix. Which of the following statements must be true?\r\nI. All of the entries of A^2 are nonnegative.\r\nII. The determinant of A^2 is nonnegative.\r\nIII. If A has two distinct eigenvalues, then A^2 has two distinct eigenvalues.',
    choices: ['I only', 'II only', 'III only', 'II and III only'],
    answer: 1,
  },
  {
    // The one row of the release with a quote inside an unquoted field; kept as Python's csv reads it.
    id: 'college_medicine/val/5',
    line: 6,
    question: 'Which of the following would be the most accurate definition of Nietzsche\u2019s Will to Truth?"',
    choices: [
      'An intrinsic desire to know the truth.',
      'Moral drive to act toward what is good.',
      'A subset of our ego that acts towards what is right.',
      'Our desire for love.',
    ],
    answer: 0,
  },
];

function assertSpotChecks(qs: MmluQuestion[], withLines: boolean) {
  for (const s of SPOT_CHECKS) {
    const q = qs.find((x) => x.id === s.id);
    assert.ok(q, `${s.id} present`);
    assert.equal(q.question, s.question, s.id);
    assert.deepEqual(q.choices, s.choices, s.id);
    assert.equal(q.answer, s.answer, s.id);
    if (withLines) assert.equal(q.source.line, s.line, s.id);
  }
}

test('real MMLU, CSV tree: 14,042 / 1,531 / 285 questions over 57 subjects, no issues, one warning', async (t) => {
  const { ds, ms } = await loadTree();
  t.diagnostic(`CSV tree: ${ds.questions.length} questions from ${ds.files?.length} files in ${ms.toFixed(0)} ms`);
  assert.equal(ds.format, 'mmlu-tree');
  assert.deepEqual(ds.issues, []);
  assert.deepEqual(
    ds.warnings?.map((w) => [w.file, w.line]),
    [[join(MMLU, 'data/val/college_medicine_val.csv'), 6]],
  );
  for (const s of SPLITS) {
    const qs = bySplit(ds.questions, s);
    assert.equal(qs.length, EXPECTED[s], s);
    assert.equal(new Set(qs.map((q) => q.subject)).size, 57, s);
  }
  assert.equal(ds.questions.length, 14042 + 1531 + 285);
  assert.equal(ds.files?.length, 57 * 3);
  assert.equal(new Set(ds.questions.map((q) => q.id)).size, ds.questions.length, 'ids are unique');
  for (const subject of Object.keys(MMLU_CATEGORIES)) {
    assert.equal(ds.questions.filter((q) => q.split === 'dev' && q.subject === subject).length, 5, subject);
  }
  assert.equal(ds.questions.filter((q) => q.subject === 'professional_law' && q.split === 'test').length, 1534);
  assert.match(ds.fingerprint, /^[0-9a-f]{64}$/);
  assertSpotChecks(ds.questions, true);
  // categories.json sits beside data/ and agrees with the embedded copy.
  assert.deepEqual(ds.categories, { ...MMLU_CATEGORIES });
});

test('real MMLU, one split of the tree: only its files are read and fingerprinted', async (t) => {
  const { ds: full } = await loadTree();
  const t0 = performance.now();
  const testOnly = await loadDataset(MMLU, { split: 'test' });
  t.diagnostic(`CSV tree, test split only: ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(testOnly.questions.length, 14042);
  assert.equal(testOnly.files?.length, 57);
  assert.notEqual(testOnly.fingerprint, full.fingerprint);
  assert.deepEqual(testOnly.questions.map(essence), bySplit(full.questions, 'test').map(essence));
});

/** Reads every split of a converted copy back and checks it against the CSV tree; returns the read time in ms. */
async function readBackConverted(original: MmluQuestion[], format: 'jsonl' | 'parquet', fileFor: (split: (typeof SPLITS)[number]) => string): Promise<number> {
  let ms = 0;
  const all: MmluQuestion[] = [];
  for (const s of SPLITS) {
    const t0 = performance.now();
    const back = await loadDataset(fileFor(s));
    ms += performance.now() - t0;
    assert.equal(back.format, format);
    assert.deepEqual(back.issues, []);
    assert.equal(back.questions.length, EXPECTED[s]);
    assert.equal(new Set(back.questions.map((q) => q.subject)).size, 57);
    assert.deepEqual(back.questions.map(essence), bySplit(original, s).map(essence), s);
    all.push(...back.questions);
  }
  assertSpotChecks(all, false);
  return ms;
}

test('real MMLU converted to cais JSONL reads back identically', async (t) => {
  const { ds } = await loadTree();
  const dir = await tempDir();
  for (const s of SPLITS) {
    const lines = bySplit(ds.questions, s).map((q) => JSON.stringify({ question: q.question, subject: q.subject, choices: q.choices, answer: q.answer }));
    await writeFile(join(dir, `${HF_NAME[s]}.jsonl`), `${lines.join('\n')}\n`);
  }
  const ms = await readBackConverted(ds.questions, 'jsonl', (split) => join(dir, `${HF_NAME[split]}.jsonl`));
  t.diagnostic(`JSONL: all three splits read in ${ms.toFixed(0)} ms`);
});

test('real MMLU converted to cais Parquet reads back identically', async (t) => {
  const { ds } = await loadTree();
  const dir = await tempDir();
  for (const s of SPLITS) {
    const qs = bySplit(ds.questions, s);
    const str = (name: string) => ({ name, type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, repetition_type: 'OPTIONAL' as const });
    const buf = parquetWriteBuffer({
      columnData: [
        { name: 'question', data: qs.map((q) => q.question) },
        { name: 'subject', data: qs.map((q) => q.subject) },
        { name: 'choices', data: qs.map((q) => q.choices) },
        { name: 'answer', data: qs.map((q) => BigInt(q.answer!)) },
      ],
      schema: [
        { name: 'schema', num_children: 4 },
        str('question'),
        str('subject'),
        { name: 'choices', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
        { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
        str('element'),
        { name: 'answer', type: 'INT64', repetition_type: 'OPTIONAL' },
      ],
    });
    await writeFile(join(dir, `${HF_NAME[s]}-00000-of-00001.parquet`), new Uint8Array(buf));
  }
  const ms = await readBackConverted(ds.questions, 'parquet', (split) => join(dir, `${HF_NAME[split]}-00000-of-00001.parquet`));
  t.diagnostic(`Parquet: all three splits read in ${ms.toFixed(0)} ms`);
});

test('real MMLU: the target of every 5-shot prompt (all splits) is found again at the cursor, exactly', async (t) => {
  const { ds } = await loadTree();
  const dev = bySplit(ds.questions, 'dev');
  const t0 = performance.now();
  const wrong: string[] = [];
  for (const q of ds.questions) {
    const p = buildPrompt(q, devShotsFor(q.subject, dev), 5);
    const pos = p.questionRange[0] + 1;
    const r = findQuestionAtCursor({ text: p.text, fileName: 'prompt.txt', selectionStart: pos, selectionEnd: pos });
    const same =
      r.ok &&
      r.question.question === pyStrip(q.question) &&
      r.question.choices.every((c, i) => c === q.choices[i]) &&
      r.question.subject === q.subject &&
      r.question.answer === null &&
      r.range[0] === p.questionRange[0] &&
      r.range[1] === p.text.length;
    if (!same) wrong.push(q.id);
  }
  t.diagnostic(`${ds.questions.length} prompts built and searched in ${(performance.now() - t0).toFixed(0)} ms`);
  assert.deepEqual(wrong, []);
});

test('real MMLU: the question at the cursor in a CSV file is the one the loader read from that line', async () => {
  const { ds } = await loadTree();
  // Files with CRLF, mixed line endings, quoted line breaks and the loose quote.
  for (const rel of [
    'data/test/nutrition_test.csv',
    'data/dev/college_mathematics_dev.csv',
    'data/val/college_medicine_val.csv',
    'data/test/high_school_physics_test.csv',
  ]) {
    const file = join(MMLU, rel);
    const text = await readFile(file, 'utf8');
    // Line starts found independently of the CSV parser: after every LF, and after a CR not followed by LF.
    const lineStarts = [0];
    for (let i = 0; i < text.length; i++) {
      if (text[i] === '\n' || (text[i] === '\r' && text[i + 1] !== '\n')) lineStarts.push(i + 1);
    }
    const questions = ds.questions.filter((q) => q.source.file === file);
    assert.ok(questions.length > 0, rel);
    for (const q of questions) {
      const pos = lineStarts[q.source.line - 1];
      const r = findQuestionAtCursor({ text, fileName: file, selectionStart: pos, selectionEnd: pos });
      assert.ok(r.ok, `${q.id}: ${r.ok ? '' : r.message}`);
      assert.deepEqual(r.question, { question: q.question, choices: q.choices, answer: q.answer, subject: q.subject }, q.id);
      assert.equal(r.range[0], pos, q.id);
    }
  }
});
