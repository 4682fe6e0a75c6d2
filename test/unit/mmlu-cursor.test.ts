import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findQuestionAtCursor, type CursorResult } from '../../src/mmlu/questionAtCursor';

const GENERIC =
  'The selection is not an MMLU question: expected a CSV row "question,A,B,C,D,answer", a JSONL line with question/choices/answer, or a question followed by lines "A. …" to "D. …".';

/** Cursor (empty selection) just after the first occurrence of `marker`. */
function at(text: string, fileName: string, marker: string, selectTo?: string): CursorResult {
  const i = text.indexOf(marker);
  assert.ok(i >= 0, `marker ${marker} in text`);
  const start = i + marker.length;
  const end = selectTo === undefined ? start : text.indexOf(selectTo) + selectTo.length;
  return findQuestionAtCursor({ text, fileName, selectionStart: start, selectionEnd: end });
}

function ok(r: CursorResult) {
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r;
}

// ---------------------------------------------------------------------------------------------------
// CSV

const CSV_ROWS = ['What is 2+2?,3,4,5,6,B', '"A quoted, multi-line', 'question with ""quotes""?",x,"y, z",w,v,D', 'Last?,a,b,c,d,A'];
const CSV = `\uFEFF${CSV_ROWS.join('\r\n')}\r\n\r\n`;

test('csv: the record under the cursor, including a quoted multi-line record, with its extent', () => {
  const r = ok(at(CSV, '/w/data/test/elementary_mathematics_test.csv', 'question with'));
  assert.deepEqual(r.question, {
    question: 'A quoted, multi-line\r\nquestion with "quotes"?',
    choices: ['x', 'y, z', 'w', 'v'],
    answer: 3,
    subject: 'elementary_mathematics',
  });
  assert.equal(CSV.slice(...r.range), `${CSV_ROWS[1]}\r\n${CSV_ROWS[2]}`);

  // Anywhere in the record, from its first character to just after its last, finds the same record.
  const first = CSV.indexOf('"A quoted');
  const last = CSV.indexOf(',D') + 2;
  for (const pos of [first, first + 5, last]) {
    const again = ok(findQuestionAtCursor({ text: CSV, fileName: 'x_test.csv', selectionStart: pos, selectionEnd: pos }));
    assert.deepEqual(again.range, r.range);
  }
  const firstRow = ok(at(CSV, 'elementary_mathematics_test.csv', ''));
  assert.equal(firstRow.question.question, 'What is 2+2?');
  assert.deepEqual(firstRow.range, [1, 1 + CSV_ROWS[0].length], 'the BOM is not part of the row');
});

test('csv: a selection over several rows picks the row where it starts, in either direction', () => {
  const from = CSV.indexOf('What is');
  const to = CSV.indexOf('Last?') + 2;
  const forward = ok(findQuestionAtCursor({ text: CSV, fileName: 'a_dev.csv', selectionStart: from, selectionEnd: to }));
  const backward = ok(findQuestionAtCursor({ text: CSV, fileName: 'a_dev.csv', selectionStart: to, selectionEnd: from }));
  assert.equal(forward.question.question, 'What is 2+2?');
  assert.deepEqual(backward, forward);
  assert.equal(forward.question.subject, 'a');
});

test('csv: a file name without <subject>_<split> gives no subject', () => {
  const r = ok(at(CSV, 'questions.csv', 'Last'));
  assert.equal(r.question.subject, undefined);
  assert.equal(r.question.answer, 0);
});

test('csv: not a question row, with a message saying why and what was expected', () => {
  const text = 'Good?,a,b,c,d,A\nonly,three,fields\nBad?,a,b,c,d,Z\n\n"never closed,a\n';
  const blank = at(text, 'x_test.csv', 'Z\n');
  assert.equal(blank.ok, false);
  assert.match(
    !blank.ok ? blank.message : '',
    /^The selection is not an MMLU question: the cursor is not on a CSV row \(line 4\); expected a CSV row "question,A,B,C,D,answer"/,
  );
  const short = at(text, 'x_test.csv', 'three');
  assert.match(
    !short.ok ? short.message : '',
    /the CSV row at line 2 does not read as a question \(expected 6 fields \(question, A, B, C, D, answer\), found 3\)/,
  );
  const letter = at(text, 'x_test.csv', 'Bad');
  assert.match(!letter.ok ? letter.message : '', /answer "Z" is not one of A, B, C, D/);
  const open = at(text, 'x_test.csv', 'never');
  assert.match(!open.ok ? open.message : '', /line 5 cannot be read as CSV \(unterminated quoted field/);
});

test('csv: a header row naming the columns; the cursor on the header itself is refused', () => {
  const text = 'question,subject,choices,answer\n"Which?",virology,"[""a"", ""b"", ""c"", ""d""]",2\n';
  const r = ok(at(text, 'export.csv', 'Which'));
  assert.deepEqual(r.question, { question: 'Which?', choices: ['a', 'b', 'c', 'd'], answer: 2, subject: 'virology' });
  const header = at(text, 'export.csv', 'subj');
  assert.match(!header.ok ? header.message : '', /line 1 is the header row/);
  const letters = ok(at('Question,A,B,C,D,Answer\nQ?,1,2,3,4,\n', 'mine.csv', 'Q?'));
  assert.equal(letters.question.answer, null, 'an empty answer cell is a question without a key');
});

// ---------------------------------------------------------------------------------------------------
// JSONL

const JSONL_LINES = [
  JSON.stringify({ question: 'First?', subject: 'anatomy', choices: ['a', 'b', 'c', 'd'], answer: 0 }),
  JSON.stringify({ question: 'Second, the one?', subject: 'virology', choices: ['p', 'q', 'r', 's'], answer: 'C' }),
  '{"question": "broken", ',
  JSON.stringify({ question: 'No choices', subject: 'x', answer: 1 }),
];
const JSONL = `${JSONL_LINES.join('\r\n')}\r\n`;

test('jsonl: the line under the cursor, its extent without the line break', () => {
  const r = ok(at(JSONL, 'mmlu.jsonl', 'the one'));
  assert.deepEqual(r.question, { question: 'Second, the one?', choices: ['p', 'q', 'r', 's'], answer: 2, subject: 'virology' });
  assert.equal(JSONL.slice(...r.range), JSONL_LINES[1]);
  const atEnd = ok(findQuestionAtCursor({ text: JSONL, fileName: 'mmlu.jsonl', selectionStart: r.range[1], selectionEnd: r.range[1] }));
  assert.deepEqual(atEnd.range, r.range);
});

test('jsonl: bad JSON, a wrong schema and an empty line each get a message', () => {
  const bad = at(JSONL, 'mmlu.jsonl', 'broken');
  assert.match(
    !bad.ok ? bad.message : '',
    /^The selection is not an MMLU question: line 3 is not valid JSON \(.+\); expected a JSONL line with question, choices/,
  );
  const schema = at(JSONL, 'mmlu.jsonl', 'No choices');
  assert.match(!schema.ok ? schema.message : '', /line 4 does not have the question schema \(missing "choices"\)/);
  const empty = findQuestionAtCursor({ text: JSONL, fileName: 'mmlu.jsonl', selectionStart: JSONL.length, selectionEnd: JSONL.length });
  assert.match(!empty.ok ? empty.message : '', /line 5 is empty/);
});

// ---------------------------------------------------------------------------------------------------
// Plain text

const NOTES = `# Quiz notes

Some prose about the quiz. It is not a question.

Which planet is known as the Red Planet?
A. Venus
B) Mars
(C) Jupiter
D. Saturn
Answer: B

Question: Which organ pumps blood
through the body?

(A) Lungs
(B) Heart
(C) Liver
(D) Kidneys

More prose after the questions.
`;

test('plain text: question then "A." / "B)" / "(C)" choices and an answer line; any position inside finds it', () => {
  const r = ok(at(NOTES, 'notes.md', 'Red Pl'));
  assert.deepEqual(r.question, { question: 'Which planet is known as the Red Planet?', choices: ['Venus', 'Mars', 'Jupiter', 'Saturn'], answer: 1 });
  assert.equal(NOTES.slice(...r.range), 'Which planet is known as the Red Planet?\nA. Venus\nB) Mars\n(C) Jupiter\nD. Saturn\nAnswer: B');
  for (const marker of ['Jupi', 'Answer: B']) assert.deepEqual(ok(at(NOTES, 'notes.md', marker)).range, r.range);
});

test('plain text: multi-line question with a label, blank line before the choices, no answer', () => {
  const r = ok(at(NOTES, 'notes.txt', 'Kidn'));
  assert.deepEqual(r.question, { question: 'Which organ pumps blood\nthrough the body?', choices: ['Lungs', 'Heart', 'Liver', 'Kidneys'], answer: null });
  assert.ok(NOTES.slice(...r.range).startsWith('Question: Which organ'));
  assert.ok(NOTES.slice(...r.range).endsWith('(D) Kidneys'));
});

test('plain text: prose, headings and blank lines are not questions; the message says what is expected', () => {
  for (const marker of ['Some prose', '# Quiz', 'More prose']) {
    assert.deepEqual(at(NOTES, 'notes.md', marker), { ok: false, message: GENERIC });
  }
  assert.deepEqual(findQuestionAtCursor({ text: '', fileName: 'untitled', selectionStart: 0, selectionEnd: 0 }), { ok: false, message: GENERIC });
  // Choices out of order or incomplete do not make a question.
  assert.deepEqual(at('Q?\nA. a\nC. c\nB. b\nD. d\n', 'x.txt', 'Q'), { ok: false, message: GENERIC });
  assert.deepEqual(at('Q?\nA. a\nB. b\nC. c\n', 'x.txt', 'Q'), { ok: false, message: GENERIC });
});

// The shape buildPrompt produces, typed out by hand.
const PROMPT = [
  'The following are multiple choice questions (with answers) about high school biology.',
  '',
  'What carries genetic information?',
  'A. ATP',
  'B. DNA',
  'C. Glucose',
  'D. Lipids',
  'Answer: B',
  '',
  'Where is chlorophyll found?',
  'A. Mitochondria',
  'B. Nucleus',
  'C. Chloroplasts',
  'D. Ribosomes',
  'Answer: C',
  '',
  'Which process makes ATP from glucose?',
  'A. Photosynthesis',
  'B. Transcription',
  'C. Cellular respiration',
  'D. Osmosis',
  'Answer:',
].join('\n');

test('plain text: in a few-shot prompt, the shot or the target under the cursor, with the subject of the header', () => {
  const shot = ok(at(PROMPT, 'prompt.txt', 'chlorophyll'));
  assert.deepEqual(shot.question, {
    question: 'Where is chlorophyll found?',
    choices: ['Mitochondria', 'Nucleus', 'Chloroplasts', 'Ribosomes'],
    answer: 2,
    subject: 'high_school_biology',
  });
  const target = ok(at(PROMPT, 'prompt.txt', 'Osmo'));
  assert.equal(target.question.question, 'Which process makes ATP from glucose?');
  assert.equal(target.question.answer, null);
  assert.ok(PROMPT.slice(...target.range).endsWith('D. Osmosis\nAnswer:'));
});

test('plain text: a selection that is a question on its own is taken as selected', () => {
  const text = 'Intro line right above.\nHow many legs has a spider?\nA. 6\nB. 8\nC. 10\nD. 12\nAnswer: B\n';
  const whole = ok(at(text, 'x.md', 'spider'));
  assert.equal(whole.question.question, 'Intro line right above.\nHow many legs has a spider?', 'the paragraph, without a selection');
  const sel = ok(at(text, 'x.md', 'above.\n', 'Answer: B'));
  assert.equal(sel.question.question, 'How many legs has a spider?');
  assert.equal(text.slice(...sel.range), 'How many legs has a spider?\nA. 6\nB. 8\nC. 10\nD. 12\nAnswer: B');
});

test('plain text: CRLF line breaks inside a question and a continued choice are kept as they are', () => {
  const text = 'Line one of the question\r\nline two?\r\nA. a\r\nB. b1\r\nb2\r\nC. c\r\nD. d\r\nAnswer: A\r\n';
  const r = ok(at(text, 'q.txt', 'two'));
  assert.deepEqual(r.question, { question: 'Line one of the question\r\nline two?', choices: ['a', 'b1\r\nb2', 'c', 'd'], answer: 0 });
  assert.equal(text.slice(...r.range), text.slice(0, -2));
});
