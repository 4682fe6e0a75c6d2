/**
 * Finds the MMLU question under the cursor in an editor's text, without the editor API: the caller
 * passes the document text, its file name and the selection as UTF-16 offsets (VS Code's offsetAt).
 *
 * - .csv: the record holding the selection's start, in the original layout or under a header row;
 * - .jsonl / .ndjson / .json: the line holding it, in the cais schema;
 * - anything else: a question in plain text, then lines "A. …" / "A) …" / "(A) …" through D and an
 *   optional "Answer: X", the way prompts and quiz sheets write them.
 */
import { answerIndexOfLetter, baseName, subjectSplitFromCsvName, type AnswerIndex } from './common';
import { parseCsv } from './csv';
import { readCaisRecord } from './jsonl';
import { headerLayout, rowToQuestion, type CsvLayout } from './mmluCsv';

export interface CursorInput {
  text: string;
  fileName: string;
  selectionStart: number;
  selectionEnd: number;
}

export interface FoundQuestion {
  question: string;
  choices: [string, string, string, string];
  answer: AnswerIndex | null;
  subject?: string;
}

export type CursorResult = { ok: true; question: FoundQuestion; range: [number, number] } | { ok: false; message: string };

const NOT_A_QUESTION = 'The selection is not an MMLU question';
const EXPECTED_ANY =
  'expected a CSV row "question,A,B,C,D,answer", a JSONL line with question/choices/answer, or a question followed by lines "A. …" to "D. …".';
const EXPECTED_CSV = 'expected a CSV row "question,A,B,C,D,answer" (or a row under a header naming question, A-D or choices, and answer).';
const EXPECTED_JSONL = 'expected a JSONL line with question, choices (4 strings) and answer (0-3 or A-D).';

function fail(detail: string | null, expected: string): CursorResult {
  return { ok: false, message: detail ? `${NOT_A_QUESTION}: ${detail}; ${expected}` : `${NOT_A_QUESTION}: ${expected}` };
}

export function findQuestionAtCursor(input: CursorInput): CursorResult {
  const { text } = input;
  const clamp = (n: number) => Math.max(0, Math.min(text.length, Number.isFinite(n) ? n : 0));
  const a = clamp(input.selectionStart);
  const b = clamp(input.selectionEnd);
  // Offset 0 sits before a byte order mark, which belongs to no row.
  const bom = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const start = Math.max(bom, Math.min(a, b));
  const end = Math.max(start, a, b);
  const lower = baseName(input.fileName).toLowerCase();
  if (lower.endsWith('.csv')) return inCsv(text, input.fileName, start);
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson') || lower.endsWith('.json')) return inJsonl(text, start);
  return inPlainText(text, start, end);
}

// ---------------------------------------------------------------------------------------------------
// CSV

function lineNumberAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || (c === 13 && text.charCodeAt(i + 1) !== 10)) line++;
  }
  return line;
}

function inCsv(text: string, fileName: string, pos: number): CursorResult {
  const { records, issues } = parseCsv(text, fileName);
  const record = records.find((r) => r.start <= pos && pos <= r.end);
  if (!record) {
    const line = lineNumberAt(text, pos);
    const issue = issues.find((i) => i.line === line);
    if (issue) return fail(`line ${line} cannot be read as CSV (${issue.reason})`, EXPECTED_CSV);
    return fail(`the cursor is not on a CSV row (line ${line})`, EXPECTED_CSV);
  }
  const header = records.length > 0 ? headerLayout(records[0].fields) : null;
  if (header && record === records[0]) return fail(`line ${record.line} is the header row`, EXPECTED_CSV);
  const layout: CsvLayout = header ?? { kind: 'original' };
  const row = rowToQuestion(record.fields, layout, false);
  if (!row.ok) return fail(`the CSV row at line ${record.line} does not read as a question (${row.reason})`, EXPECTED_CSV);
  const subject = subjectSplitFromCsvName(fileName)?.subject ?? row.subject;
  return {
    ok: true,
    question: { question: row.question, choices: row.choices, answer: row.answer, ...(subject ? { subject } : {}) },
    range: [record.start, record.end],
  };
}

// ---------------------------------------------------------------------------------------------------
// JSONL

function inJsonl(text: string, pos: number): CursorResult {
  let lineStart = text.lastIndexOf('\n', pos - 1) + 1;
  const nl = text.indexOf('\n', pos);
  let lineEnd = nl < 0 ? text.length : nl;
  if (lineEnd > lineStart && text.charCodeAt(lineEnd - 1) === 13) lineEnd--;
  if (lineStart === 0 && text.charCodeAt(0) === 0xfeff) lineStart = 1;
  const line = lineNumberAt(text, lineStart);
  const raw = text.slice(lineStart, lineEnd);
  if (raw.trim() === '') return fail(`line ${line} is empty`, EXPECTED_JSONL);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return fail(`line ${line} is not valid JSON (${(e as Error).message})`, EXPECTED_JSONL);
  }
  const r = readCaisRecord(value);
  if (!r.ok) return fail(`line ${line} does not have the question schema (${r.reason})`, EXPECTED_JSONL);
  return {
    ok: true,
    question: { question: r.question, choices: r.choices, answer: r.answer, ...(r.subject ? { subject: r.subject } : {}) },
    range: [lineStart, lineEnd],
  };
}

// ---------------------------------------------------------------------------------------------------
// Plain text

interface Line {
  start: number;
  end: number;
  text: string;
}

interface Unit {
  range: [number, number];
  question: FoundQuestion;
}

/** One separator after the marker, as the prompt writes it; the rest is the choice, spaces and all. */
const CHOICE = /^[ \t]*(?:\(([A-D])\)|([A-D])[.)])[ \t](.*)$/;
const ANSWER = /^[ \t]*(?:(?:[Cc]orrect|CORRECT)[ \t]+)?(?:[Aa]nswer|ANSWER)[ \t]*:[ \t]*(?:\(([A-D])\)|([A-D]))?(?:[ \t]*$|[ \t.,;:)].*$)/;
const QUESTION_LABEL = /^[ \t]*(?:Question|QUESTION|Q)(?:[ \t]*\d+)?[ \t]*[:.][ \t]*/;
const HEADER = /^The following are multiple choice questions \(with answers\) about (.+?)\.[ \t]*$/;

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  let s = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = text.charCodeAt(i);
    if (i === text.length || c === 10 || c === 13) {
      lines.push({ start: s, end: i, text: text.slice(s, i) });
      if (c === 13 && text.charCodeAt(i + 1) === 10) i++;
      s = i + 1;
    }
  }
  return lines;
}

const isBlank = (l: Line | undefined) => l !== undefined && l.text.trim() === '';

/** A choice line: its letter and the offset where the choice's own text starts. */
function choiceOf(l: Line | undefined): { letter: string; textStart: number } | null {
  if (!l) return null;
  const m = CHOICE.exec(l.text);
  return m ? { letter: m[1] ?? m[2], textStart: l.end - m[3].length } : null;
}

function answerOf(l: Line | undefined): { answer: AnswerIndex | null } | null {
  if (!l) return null;
  const m = ANSWER.exec(l.text);
  return m ? { answer: answerIndexOfLetter(m[1] ?? m[2] ?? '') } : null;
}

/** Skips blank lines from index i; returns the first non-blank index (or lines.length). */
function skipBlank(lines: Line[], i: number): number {
  while (i < lines.length && isBlank(lines[i])) i++;
  return i;
}

/**
 * Every question block of the text, in order. A block is question lines, then choices A to D (a choice
 * may continue on the lines right after it), then an optional answer line. Blank lines may separate the
 * parts.
 */
function findUnits(text: string): Unit[] {
  const lines = splitLines(text);
  const units: Unit[] = [];
  let floor = 0; // first line not yet taken by a unit
  let subject: string | undefined;
  let subjectSeen = -1;

  for (let k = 0; k < lines.length; k++) {
    const first = choiceOf(lines[k]);
    if (!first || first.letter !== 'A') continue;

    // Each choice runs from its text's start to the end of its last line; slicing the text keeps its
    // line breaks as they are (CRLF included).
    const spans: [number, number][] = [[first.textStart, lines[k].end]];
    let j = k + 1;
    let ok = true;
    for (const expected of ['B', 'C', 'D']) {
      while (j < lines.length && !isBlank(lines[j]) && !choiceOf(lines[j]) && !answerOf(lines[j])) {
        spans[spans.length - 1][1] = lines[j].end;
        j++;
      }
      j = skipBlank(lines, j);
      const c = choiceOf(lines[j]);
      if (!c || c.letter !== expected) {
        ok = false;
        break;
      }
      spans.push([c.textStart, lines[j].end]);
      j++;
    }
    if (!ok) continue;
    // D continues only when an answer line closes the run (a multi-line last choice in a prompt);
    // otherwise the line after D may already be the next question.
    let run = j;
    while (run < lines.length && !isBlank(lines[run]) && !choiceOf(lines[run]) && !answerOf(lines[run])) run++;
    if (run > j && answerOf(lines[run])) {
      spans[3][1] = lines[run - 1].end;
      j = run;
    }
    const choices = spans.map(([a, b]) => text.slice(a, b)) as [string, string, string, string];
    let last = j - 1;
    let answer: AnswerIndex | null = null;
    const afterD = skipBlank(lines, j);
    const ans = answerOf(lines[afterD]);
    if (ans) {
      answer = ans.answer;
      last = afterD;
    }

    for (let h = Math.max(subjectSeen + 1, floor); h < k; h++) {
      const m = HEADER.exec(lines[h].text.trim());
      if (m) {
        subject = m[1].trim().replace(/ /g, '_');
        subjectSeen = h;
      }
    }
    // The question: in a prompt (below the harness header) everything since the header or the previous
    // item, since MMLU passages contain blank lines; elsewhere the paragraph above choice A, allowing one
    // run of blank lines between them, so that prose above is not taken for the question.
    let q = k - 1;
    while (q >= floor && isBlank(lines[q])) q--;
    const qEnd = q;
    let qStart: number;
    if (subjectSeen >= 0) {
      qStart = Math.max(floor, subjectSeen + 1);
      while (qStart <= qEnd && isBlank(lines[qStart])) qStart++;
    } else {
      while (q >= floor && !isBlank(lines[q])) q--;
      qStart = q + 1;
    }
    if (qEnd < floor || qStart > qEnd) continue;

    // A "Question:" label is quiz-sheet decoration; inside a prompt the text is the question verbatim.
    const label = subjectSeen < 0 ? (QUESTION_LABEL.exec(lines[qStart].text)?.[0].length ?? 0) : 0;
    const question = text.slice(lines[qStart].start + label, lines[qEnd].end);
    if (question.trim() === '') continue;

    units.push({
      range: [lines[qStart].start, lines[last].end],
      question: { question, choices, answer, ...(subject ? { subject } : {}) },
    });
    floor = last + 1;
    k = last;
  }
  return units;
}

/** The subject named by the last prompt header in the text, if any. */
function lastHeaderSubject(text: string): string | undefined {
  let subject: string | undefined;
  for (const l of splitLines(text)) {
    const m = HEADER.exec(l.text.trim());
    if (m) subject = m[1].trim().replace(/ /g, '_');
  }
  return subject;
}

function inPlainText(text: string, start: number, end: number): CursorResult {
  if (end > start) {
    // A selection that is a question on its own wins over the paragraph it sits in.
    const inside = findUnits(text.slice(start, end));
    if (inside.length > 0) {
      const u = inside[0];
      const subject = u.question.subject ?? lastHeaderSubject(text.slice(0, start));
      return { ok: true, question: { ...u.question, ...(subject ? { subject } : {}) }, range: [u.range[0] + start, u.range[1] + start] };
    }
  }
  const units = findUnits(text);
  const hit =
    units.find((u) => u.range[0] <= start && start <= u.range[1]) ?? (end > start ? units.find((u) => u.range[0] >= start && u.range[0] < end) : undefined);
  if (!hit) return fail(null, EXPECTED_ANY);
  return { ok: true, question: hit.question, range: hit.range };
}
