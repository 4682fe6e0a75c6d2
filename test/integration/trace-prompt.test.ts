/** The trace command's question finding, prompt and editor <-> token mapping, as the extension uses them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findQuestionAtCursor } from '../../src/mmlu/questionAtCursor';
import { buildTracePrompt, docRangesOfToken, tokenAtDocOffset } from '../../src/host/tracePrompt';
import { loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { makeModel, DEMO_CORPUS } from '../support/models';

const csvFile = path.join(DEMO_CORPUS, 'data', 'test', 'high_school_biology_test.csv');
const csv = fs.readFileSync(csvFile, 'utf8');

test('a selected CSV row becomes the harness prompt for its subject, ending in "Answer:"', () => {
  const lineStart = csv.indexOf('\n', csv.indexOf('\n') + 1) + 1; // third row
  const found = findQuestionAtCursor({ text: csv, fileName: csvFile, selectionStart: lineStart + 3, selectionEnd: lineStart + 10 });
  assert.ok(found.ok, found.ok ? '' : found.message);
  const { text, segments } = buildTracePrompt(found.question, csv, found.range);
  assert.ok(text.startsWith('The following are multiple choice questions (with answers) about high school biology.\n\n'));
  assert.ok(text.endsWith('\nAnswer:'));
  assert.equal(found.question.subject, 'high_school_biology');
  // Every copied piece reads the same in the prompt and in the document.
  assert.ok(segments.length >= 4, `${segments.length} segments`);
  for (const s of segments) assert.equal(text.slice(s.promptStart, s.promptEnd), csv.slice(s.docStart, s.docStart + s.promptEnd - s.promptStart));
});

test('tokens map to document ranges and back, through a real tokenizer', async () => {
  const dir = makeModel({ family: 'olmoe', overrides: { layers: 1, experts: 4, topK: 2 } });
  const tok = await loadTokenizer(dir);
  const doc = 'Notes first.\n\nWhich organelle makes ATP?\nA. ribosome\nB. mitochondrion\nC. nucleus\nD. vacuole\nAnswer: B\n\nMore notes.';
  const cursor = doc.indexOf('organelle');
  const found = findQuestionAtCursor({ text: doc, fileName: 'notes.md', selectionStart: cursor, selectionEnd: cursor });
  assert.ok(found.ok);
  assert.equal(found.question.answer, 1);
  const { text, segments } = buildTracePrompt(found.question, doc, found.range);
  const tokens = tok.encode(text).tokens;
  const i = tokenAtDocOffset(segments, tokens, doc.indexOf('mitochondrion') + 3);
  assert.ok(i !== null);
  const ranges = docRangesOfToken(segments, tokens[i!]);
  assert.ok(ranges.length >= 1);
  for (const [a, b] of ranges) assert.ok(doc.slice(a, b).length > 0 && 'mitochondrion'.includes(doc.slice(a, b).trim()), doc.slice(a, b));
  // The header and "Answer:" were not copied from the document: no range.
  assert.deepEqual(docRangesOfToken(segments, tokens[0]), []);
  assert.equal(tokenAtDocOffset(segments, tokens, doc.indexOf('Notes')), null);
});

test('text that is not a question yields the clear message the trace panel shows', () => {
  const r = findQuestionAtCursor({ text: 'just some prose without choices', fileName: 'x.txt', selectionStart: 0, selectionEnd: 10 });
  assert.equal(r.ok, false);
  assert.match(r.ok ? '' : r.message, /^The selection is not an MMLU question/);
});
