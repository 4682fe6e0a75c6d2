import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parquetWriteBuffer } from 'hyparquet-writer';
import { parseParquet } from '../../src/mmlu/parquet';

type Row = { question: string | null; subject: string | null; choices: (string | null)[] | null; answer: bigint | null; split?: string };

/** The cais/mmlu layout: strings, a list<string> and an int64 class label. */
function caisParquet(rows: Row[], withSplit = false): ArrayBuffer {
  const columnData = [
    { name: 'question', data: rows.map((r) => r.question) },
    { name: 'subject', data: rows.map((r) => r.subject) },
    { name: 'choices', data: rows.map((r) => r.choices) },
    { name: 'answer', data: rows.map((r) => r.answer) },
    ...(withSplit ? [{ name: 'split', data: rows.map((r) => r.split ?? null) }] : []),
  ];
  const str = (name: string) => ({ name, type: 'BYTE_ARRAY' as const, converted_type: 'UTF8' as const, repetition_type: 'OPTIONAL' as const });
  return parquetWriteBuffer({
    columnData,
    schema: [
      { name: 'root', num_children: columnData.length },
      str('question'),
      str('subject'),
      { name: 'choices', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      str('element'),
      { name: 'answer', type: 'INT64', repetition_type: 'OPTIONAL' },
      ...(withSplit ? [str('split')] : []),
    ],
  });
}

const ok: Row = { question: 'Q, "quoted"\nmulti-line?', subject: 'anatomy', choices: ['a', 'b,', 'c', 'd'], answer: 1n };

test('parquet: cais schema read back exactly; split from the file name', async () => {
  const buf = caisParquet([ok, { ...ok, subject: 'virology', answer: 3n }]);
  const r = await parseParquet(buf, '/hf/mmlu/all/validation-00000-of-00001.parquet');
  assert.deepEqual(r.issues, []);
  assert.equal(r.rows, 2);
  assert.deepEqual(
    r.questions.map((q) => [q.id, q.subject, q.split, q.question, q.choices, q.answer, q.source.line]),
    [
      ['anatomy/val/0', 'anatomy', 'val', ok.question, ['a', 'b,', 'c', 'd'], 1, 1],
      ['virology/val/0', 'virology', 'val', ok.question, ['a', 'b,', 'c', 'd'], 3, 2],
    ],
  );
});

test('parquet: a split column wins; the argument applies when neither column nor name says', async () => {
  const buf = caisParquet(
    [
      { ...ok, split: 'dev' },
      { ...ok, split: 'test' },
    ],
    true,
  );
  const r = await parseParquet(buf, 'x/test-00000-of-00001.parquet');
  assert.deepEqual(
    r.questions.map((q) => q.split),
    ['dev', 'test'],
  );
  const plain = await parseParquet(caisParquet([ok]), 'mine.parquet', { split: 'dev' });
  assert.equal(plain.questions[0].split, 'dev');
});

test('parquet: bad rows are issues naming the row; good rows kept', async () => {
  const buf = caisParquet([
    ok,
    { ...ok, choices: ['a', 'b', 'c'] },
    { ...ok, answer: 9n },
    { ...ok, question: null },
    { ...ok, choices: ['a', null, 'c', 'd'] },
    { ...ok, question: 'Last' },
  ]);
  const r = await parseParquet(buf, 'test-00000-of-00001.parquet');
  assert.deepEqual(
    r.issues.map((i) => [i.file, i.line]),
    [2, 3, 4, 5].map((l) => ['test-00000-of-00001.parquet', l]),
  );
  assert.match(r.issues[0].reason, /^row 2: "choices" must hold 4 strings, found 3/);
  assert.match(r.issues[1].reason, /^row 3: "answer" must be 0-3/);
  assert.match(r.issues[2].reason, /^row 4: "question" must be a string, found null/);
  assert.match(r.issues[3].reason, /^row 5: "choices"\[1\] must be a string/);
  assert.deepEqual(
    r.questions.map((q) => [q.source.line, q.question]),
    [
      [1, ok.question],
      [6, 'Last'],
    ],
  );
});

test('parquet: not Parquet, or without the cais columns: an error naming the file', async () => {
  await assert.rejects(
    parseParquet(new TextEncoder().encode('question,A\n'), '/d/fake.parquet'),
    /\/d\/fake\.parquet: not a readable Parquet file \(11 bytes\)/,
  );
  const other = parquetWriteBuffer({ columnData: [{ name: 'text', data: ['x'] }] });
  await assert.rejects(parseParquet(other, 'o.parquet'), /o\.parquet: Parquet file lacks the column\(s\) question, choices, answer .*it has: text/);
});
