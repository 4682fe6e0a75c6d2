import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCsv } from '../../src/mmlu/csv';
import { parseChoiceList, parseMmluCsv } from '../../src/mmlu/mmluCsv';

const fieldsOf = (text: string) => parseCsv(text, 'x.csv').records.map((r) => r.fields);

test('csv: plain fields, LF and CRLF record ends, no final line break', () => {
  assert.deepEqual(fieldsOf('a,b,c\n1,2,3'), [
    ['a', 'b', 'c'],
    ['1', '2', '3'],
  ]);
  assert.deepEqual(fieldsOf('a,b\r\n1,2\r\n'), [
    ['a', 'b'],
    ['1', '2'],
  ]);
  // The MMLU files mix both within one file.
  assert.deepEqual(fieldsOf('a,b\r\n1,2\n3,4\r\n'), [
    ['a', 'b'],
    ['1', '2'],
    ['3', '4'],
  ]);
});

test('csv: empty fields, trailing comma, blank lines skipped', () => {
  assert.deepEqual(fieldsOf(',a,,\n\n\nb\n'), [['', 'a', '', ''], ['b']]);
  assert.deepEqual(fieldsOf('""\n'), [['']], 'a quoted empty field is a record, not a blank line');
});

test('csv: quoted fields with commas, doubled quotes and line breaks', () => {
  const text = '"a, b","say ""hi""","line1\nline2\r\nline3",plain\n';
  assert.deepEqual(fieldsOf(text), [['a, b', 'say "hi"', 'line1\nline2\r\nline3', 'plain']]);
  assert.deepEqual(fieldsOf('"",""""\n'), [['', '"']]);
});

test('csv: UTF-8 BOM is skipped, offsets still index the given text', () => {
  const text = '\uFEFFq,"x"\nr,y';
  const { records, issues } = parseCsv(text, 'bom.csv');
  assert.deepEqual(issues, []);
  assert.deepEqual(records[0].fields, ['q', 'x']);
  assert.equal(records[0].start, 1);
  assert.equal(text.slice(records[0].start, records[0].end), 'q,"x"');
  assert.equal(text.slice(records[1].start, records[1].end), 'r,y');
});

test('csv: starting line of each record counts line breaks inside quotes (CRLF once)', () => {
  const text = 'a\r\n"b\r\nb2\r\nb3",c\r\nd\n"e\ne2"\rf';
  const recs = parseCsv(text, 'x.csv').records;
  assert.deepEqual(
    recs.map((r) => [r.line, r.fields[0]]),
    [
      [1, 'a'],
      [2, 'b\r\nb2\r\nb3'],
      [5, 'd'],
      [6, 'e\ne2'],
      [8, 'f'],
    ],
  );
});

test('csv: unterminated quote is an issue with file and line; the lines after it are still read', () => {
  const text = 'ok1,1\n"broken,2\nok2,3\nok3,4\n';
  const { records, issues } = parseCsv(text, 'data/bad.csv');
  assert.equal(issues.length, 1);
  assert.equal(issues[0].file, 'data/bad.csv');
  assert.equal(issues[0].line, 2);
  assert.match(issues[0].reason, /unterminated quoted field/);
  assert.deepEqual(
    records.map((r) => [r.line, r.fields]),
    [
      [1, ['ok1', '1']],
      [3, ['ok2', '3']],
      [4, ['ok3', '4']],
    ],
  );
});

test('csv: a quote inside an unquoted field is kept as a character and reported as a warning', () => {
  // Unambiguous (it cannot open a quoted section); Python's csv and pandas read it the same way.
  const { records, issues, warnings } = parseCsv('a,b\nab"c,d?"\ne,f\n', 'q.csv');
  assert.deepEqual(issues, []);
  assert.deepEqual(
    records.map((r) => r.fields),
    [
      ['a', 'b'],
      ['ab"c', 'd?"'],
      ['e', 'f'],
    ],
  );
  assert.deepEqual(
    warnings.map((w) => [w.file, w.line]),
    [['q.csv', 2]],
  );
  assert.match(warnings[0].reason, /quote inside an unquoted field at line 2, column 3/);
  assert.equal(records[1].warning, warnings[0]);
});

test('csv: text after a closing quote is an issue', () => {
  const { records, issues } = parseCsv('"a"b,c\nd,e\n', 'q.csv');
  assert.equal(issues.length, 1);
  assert.equal(issues[0].line, 1);
  assert.match(issues[0].reason, /after a closing quote/);
  assert.deepEqual(
    records.map((r) => r.fields),
    [['d', 'e']],
  );
});

test('csv: a missing closing quote that pairs with a later quote is reported and the swallowed rows recovered', () => {
  // Line 2 lacks its closing quote, so the parser first pairs it with the opening quote on line 4.
  const text = 'q1,a\n"q2 oops,b\nq3,c\n"q4",d\n';
  const { records, issues } = parseCsv(text, 'm.csv');
  assert.equal(issues.length, 1);
  assert.match(issues[0].reason, /record starting at line 2/);
  assert.deepEqual(
    records.map((r) => [r.line, r.fields]),
    [
      [1, ['q1', 'a']],
      [3, ['q3', 'c']],
      [4, ['q4', 'd']],
    ],
  );
});

test('mmlu csv: subject and split from the file name, answers as indices, verbatim text', () => {
  const text = 'What is 2+2?,3,4,5,6,B\r\n"Which, with comma?","x ""y""",b,c,"d\nd",D\r\n';
  const r = parseMmluCsv(text, '/data/test/elementary_mathematics_test.csv');
  assert.deepEqual(r.issues, []);
  assert.equal(r.questions.length, 2);
  const [q0, q1] = r.questions;
  assert.equal(q0.id, 'elementary_mathematics/test/0');
  assert.equal(q0.subject, 'elementary_mathematics');
  assert.equal(q0.split, 'test');
  assert.equal(q0.answer, 1);
  assert.deepEqual(q0.choices, ['3', '4', '5', '6']);
  assert.deepEqual(q0.source, { file: '/data/test/elementary_mathematics_test.csv', line: 1 });
  assert.equal(q1.id, 'elementary_mathematics/test/1');
  assert.equal(q1.question, 'Which, with comma?');
  assert.deepEqual(q1.choices, ['x "y"', 'b', 'c', 'd\nd']);
  assert.equal(q1.answer, 3);
  assert.equal(q1.source.line, 2);
});

test('mmlu csv: without a matching name, subject and split come from the arguments', () => {
  const r = parseMmluCsv('Q?,a,b,c,d,A\n', 'my questions.csv', { subject: 'virology', split: 'validation' });
  assert.equal(r.questions[0].subject, 'virology');
  assert.equal(r.questions[0].split, 'val');
  assert.equal(r.questions[0].id, 'virology/val/0');
});

test('mmlu csv: malformed rows are reported with file, line and reason; good rows around them are kept', () => {
  const text = [
    'Good one?,a,b,c,d,A', // 1
    'Too few,a,b,c,A', // 2
    'Bad letter?,a,b,c,d,E', // 3
    ',a,b,c,d,B', // 4: empty question
    '"Multi', // 5
    'line?",a,b,c,d,C', // 6
    'Loose "quote,a,b,c,d,D', // 7: read, with a warning
    'Too many,a,b,c,d,e,A', // 8
    'Lower case?,a,b,c,d,b', // 9
    'Last good?,a,b,c,d,D', // 10
  ].join('\n');
  const r = parseMmluCsv(text, 'astronomy_dev.csv');
  assert.deepEqual(
    r.issues.map((i) => [i.file, i.line]),
    [
      ['astronomy_dev.csv', 2],
      ['astronomy_dev.csv', 3],
      ['astronomy_dev.csv', 4],
      ['astronomy_dev.csv', 8],
      ['astronomy_dev.csv', 9],
    ],
  );
  assert.match(r.issues[0].reason, /expected 6 fields .* found 5/);
  assert.match(r.issues[1].reason, /answer "E" is not one of A, B, C, D/);
  assert.match(r.issues[2].reason, /empty question/);
  assert.match(r.issues[3].reason, /found 7/);
  assert.match(r.issues[4].reason, /answer "b" is not one of A, B, C, D/);
  assert.deepEqual(
    r.questions.map((q) => [q.source.line, q.question, q.answer, q.id]),
    [
      [1, 'Good one?', 0, 'astronomy/dev/0'],
      [5, 'Multi\nline?', 2, 'astronomy/dev/1'],
      [7, 'Loose "quote', 3, 'astronomy/dev/2'],
      [10, 'Last good?', 3, 'astronomy/dev/3'],
    ],
  );
  assert.deepEqual(
    r.warnings.map((w) => [w.file, w.line]),
    [['astronomy_dev.csv', 7]],
  );
});

test('mmlu csv: a header row is read by name (letters or indices, list-valued choices)', () => {
  const byLetters = parseMmluCsv('Question,A,B,C,D,Answer\nQ1?,a,b,c,d,C\n', 'set.csv', { subject: 's' });
  assert.deepEqual(byLetters.issues, []);
  assert.equal(byLetters.layout.kind, 'header');
  assert.deepEqual([byLetters.questions[0].question, byLetters.questions[0].answer, byLetters.questions[0].source.line], ['Q1?', 2, 2]);

  // pandas writes an unnamed index column and numpy reprs for array cells.
  const cais = parseMmluCsv(
    ',question,subject,choices,answer\n0,Q?,anatomy,"[\'x\' \'y, z\' ""w"" \'v\']",3\n1,R?,anatomy,"[""1"", ""2"", ""3"", ""4""]",0\n2,S?,anatomy,"[\'only\', \'three\', \'x\']",1\n',
    'export.csv',
  );
  assert.deepEqual(
    cais.questions.map((q) => [q.subject, q.question, q.choices, q.answer]),
    [
      ['anatomy', 'Q?', ['x', 'y, z', 'w', 'v'], 3],
      ['anatomy', 'R?', ['1', '2', '3', '4'], 0],
    ],
  );
  assert.deepEqual(
    cais.issues.map((i) => i.line),
    [4],
  );
  assert.match(cais.issues[0].reason, /expected 4 choices, found 3/);
});

test('choice list literals: JSON, Python with escapes, numpy repr; anything else is refused', () => {
  assert.deepEqual(parseChoiceList('["a", "b \\"q\\"", "c", "d"]'), ['a', 'b "q"', 'c', 'd']);
  assert.deepEqual(parseChoiceList("['it\\'s', \"x\", 'caf\\xe9', '\\u00e9\\n']"), ["it's", 'x', 'café', 'é\n']);
  assert.deepEqual(parseChoiceList("['a' 'b'\n 'c' 'd']"), ['a', 'b', 'c', 'd']);
  for (const bad of ['a, b', "['a', b]", "['unclosed]", "['\\xZZ']", '[1, 2]']) assert.equal(parseChoiceList(bad), null, bad);
});
