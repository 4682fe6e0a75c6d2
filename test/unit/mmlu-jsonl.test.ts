import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonl, readCaisRecord } from '../../src/mmlu/jsonl';

const row = (o: Record<string, unknown>) => JSON.stringify(o);
const good = { question: 'Q?', subject: 'anatomy', choices: ['a', 'b', 'c', 'd'], answer: 2 };

test('jsonl: cais rows, answer as index or letter, split from the file name, ids per subject', () => {
  const text = [
    row(good),
    row({ ...good, subject: 'virology', answer: 'D' }),
    row({ ...good, question: 'Second anatomy?', answer: 0 }),
    row({ ...good, answer: null, question: 'No key?' }),
  ].join('\r\n');
  const r = parseJsonl(text, '/x/validation-00000-of-00001.jsonl');
  assert.deepEqual(r.issues, []);
  assert.deepEqual(
    r.questions.map((q) => [q.id, q.split, q.answer, q.source.line]),
    [
      ['anatomy/val/0', 'val', 2, 1],
      ['virology/val/0', 'val', 3, 2],
      ['anatomy/val/1', 'val', 0, 3],
      ['anatomy/val/2', 'val', null, 4],
    ],
  );
});

test('jsonl: a "split" field wins over the file name; without either the fallback or "test" applies', () => {
  const r = parseJsonl(`${row({ ...good, split: 'dev' })}\n${row(good)}\n`, 'test.jsonl');
  assert.deepEqual(
    r.questions.map((q) => q.split),
    ['dev', 'test'],
  );
  assert.equal(parseJsonl(row(good), 'mine.jsonl', { split: 'dev' }).questions[0].split, 'dev');
  assert.equal(parseJsonl(row(good), 'mine.jsonl').questions[0].split, 'test');
});

test('jsonl: malformed lines are reported with file, line and reason; good lines around them are kept', () => {
  const lines = [
    row(good), // 1
    '{"question": "Unclosed', // 2
    row({ ...good, choices: ['a', 'b', 'c'] }), // 3
    row({ ...good, answer: 4 }), // 4
    '', // 5: blank, ignored
    row({ ...good, answer: 'E' }), // 6
    row({ question: 'No subject', choices: ['a', 'b', 'c', 'd'], answer: 1 }), // 7
    '[1, 2]', // 8
    row({ ...good, choices: ['a', 'b', 3, 'd'] }), // 9
    row({ ...good, question: '   ' }), // 10
    row({ subject: 'x', choices: ['a', 'b', 'c', 'd'], answer: 1 }), // 11
    row({ ...good, question: 'Last good' }), // 12
  ];
  const r = parseJsonl(lines.join('\n'), 'bad.jsonl');
  assert.deepEqual(
    r.issues.map((i) => [i.file, i.line]),
    [2, 3, 4, 6, 7, 8, 9, 10, 11].map((l) => ['bad.jsonl', l]),
  );
  const reasons = r.issues.map((i) => i.reason);
  assert.match(reasons[0], /^invalid JSON: /);
  assert.match(reasons[1], /"choices" must hold 4 strings, found 3/);
  assert.match(reasons[2], /"answer" must be 0-3 or a letter A-D, found 4/);
  assert.match(reasons[3], /found "E"/);
  assert.match(reasons[4], /missing "subject"/);
  assert.match(reasons[5], /expected a JSON object/);
  assert.match(reasons[6], /"choices"\[2\] must be a string, found 3/);
  assert.match(reasons[7], /empty question/);
  assert.match(reasons[8], /missing "question"/);
  assert.deepEqual(
    r.questions.map((q) => [q.source.line, q.question]),
    [
      [1, 'Q?'],
      [12, 'Last good'],
    ],
  );
});

test('jsonl: a JSON array file is named as such', () => {
  const r = parseJsonl(`[\n${row(good)},\n]`, 'all.json');
  assert.match(r.issues[0].reason, /looks like a JSON array/);
});

test('jsonl: BOM on the first line; question text kept verbatim', () => {
  const r = parseJsonl(`\uFEFF${row({ ...good, question: ' Lead and trail\n' })}`, 'a.jsonl');
  assert.deepEqual(r.issues, []);
  assert.equal(r.questions[0].question, ' Lead and trail\n');
});

test('cais record check accepts bigint answers as Parquet readers return them', () => {
  const r = readCaisRecord({ ...good, answer: 3n });
  assert.ok(r.ok);
  assert.equal(r.ok && r.answer, 3);
  assert.equal(readCaisRecord({ ...good, answer: 7n }).ok, false);
});
