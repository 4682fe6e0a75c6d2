/**
 * MMLU questions in CSV. The original release has no header and six columns:
 * question, A, B, C, D, answer letter. Subject and split are in the file name, <subject>_<split>.csv.
 *
 * A first row that names its columns (question, A..D or choices, answer, optionally subject) is also
 * understood, so that exports from other tools open without conversion; the rows are then read by name.
 */
import { parseCsv } from './csv';
import { answerIndexOfLetter, assignIds, fileStem, normalizeSplit, subjectSplitFromCsvName, type AnswerIndex, type QuestionDraft } from './common';
import type { MmluQuestion, ParseIssue } from './types';

export type CsvLayout =
  | { kind: 'original' }
  | {
      kind: 'header';
      width: number;
      question: number;
      /** Four columns, or one column holding a list literal such as ["a", "b", "c", "d"]. */
      choices: [number, number, number, number] | number;
      answer: number | null;
      subject: number | null;
    };

export type RowReading =
  | {
      ok: true;
      question: string;
      choices: [string, string, string, string];
      answer: AnswerIndex | null;
      subject?: string;
    }
  | { ok: false; reason: string };

const CHOICE_NAMES: readonly (readonly string[])[] = [0, 1, 2, 3].map((i) => {
  const letter = 'abcd'[i];
  return [letter, `choice${letter}`, `option${letter}`, `answer${letter}`, `choices${i}`, `choice${i}`, `option${i}`];
});
const ANSWER_NAMES = ['answer', 'label', 'gold', 'target', 'correct', 'answerkey'];

function normalizeName(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/**
 * The layout a header row describes, or null when the row is not a header. A header needs a question
 * column and the four choices; the answer column is optional (questions without a key are allowed).
 */
export function headerLayout(fields: string[]): CsvLayout | null {
  const names = fields.map(normalizeName);
  const question = names.indexOf('question');
  if (question < 0) return null;
  const choiceCols = CHOICE_NAMES.map((alts) => names.findIndex((n) => alts.includes(n)));
  let choices: [number, number, number, number] | number;
  if (choiceCols.every((c) => c >= 0)) choices = choiceCols as [number, number, number, number];
  else {
    const list = names.findIndex((n) => n === 'choices' || n === 'options');
    if (list < 0) return null;
    choices = list;
  }
  const answer = names.findIndex((n) => ANSWER_NAMES.includes(n));
  const subject = names.indexOf('subject');
  return { kind: 'header', width: fields.length, question, choices, answer: answer < 0 ? null : answer, subject: subject < 0 ? null : subject };
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"' };

/**
 * Reads a list literal of strings: JSON (["a", "b"]), Python (['a', "b"]) or the numpy repr pandas
 * writes for array cells (['a' 'b']). Returns null for anything else.
 */
export function parseChoiceList(text: string): string[] | null {
  const s = text.trim();
  if (!s.startsWith('[') || !s.endsWith(']')) return null;
  try {
    const v: unknown = JSON.parse(s);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // Not JSON; try the Python spellings below.
  }
  const out: string[] = [];
  let i = 1;
  const end = s.length - 1;
  while (i < end) {
    const c = s[i];
    if (c === ' ' || c === ',' || c === '\n' || c === '\r' || c === '\t') {
      i++;
      continue;
    }
    if (c !== "'" && c !== '"') return null;
    let value = '';
    let j = i + 1;
    for (;;) {
      if (j >= end) return null;
      const d = s[j];
      if (d === c) break;
      if (d === '\\') {
        const e = s[j + 1];
        if (e in SIMPLE_ESCAPES) {
          value += SIMPLE_ESCAPES[e];
          j += 2;
          continue;
        }
        const hex = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
        if (hex) {
          const digits = s.slice(j + 2, j + 2 + hex);
          const code = Number.parseInt(digits, 16);
          if (!/^[0-9a-fA-F]+$/.test(digits) || digits.length !== hex || code > 0x10ffff) return null;
          value += String.fromCodePoint(code);
          j += 2 + hex;
          continue;
        }
        value += d;
        j++;
        continue;
      }
      value += d;
      j++;
    }
    out.push(value);
    i = j + 1;
  }
  return out;
}

/** Letter A-D, or (in a header layout, where Hugging Face exports write indices) an integer 0-3. */
function readAnswer(raw: string, allowIndex: boolean): AnswerIndex | null | undefined {
  const t = raw.trim();
  const fromLetter = answerIndexOfLetter(t);
  if (fromLetter !== null) return fromLetter;
  if (allowIndex && /^[0-3]$/.test(t)) return Number(t) as AnswerIndex;
  return undefined;
}

/**
 * One CSV row as a question. `requireAnswer` is false where a question without a key is still useful
 * (tracing the question at the cursor); datasets require it.
 */
export function rowToQuestion(fields: string[], layout: CsvLayout, requireAnswer: boolean): RowReading {
  if (layout.kind === 'original') {
    const okWidth = fields.length === 6 || (!requireAnswer && fields.length === 5);
    if (!okWidth) {
      return { ok: false, reason: `expected 6 fields (question, A, B, C, D, answer), found ${fields.length}` };
    }
    const [question, a, b, c, d, rawAnswer] = fields;
    if (question.trim() === '') return { ok: false, reason: 'empty question' };
    let answer: AnswerIndex | null = null;
    if (rawAnswer !== undefined && !(rawAnswer.trim() === '' && !requireAnswer)) {
      const read = readAnswer(rawAnswer, false);
      if (read === undefined) return { ok: false, reason: `answer ${JSON.stringify(rawAnswer)} is not one of A, B, C, D` };
      answer = read;
    }
    return { ok: true, question, choices: [a, b, c, d], answer };
  }

  if (fields.length !== layout.width) {
    return { ok: false, reason: `expected ${layout.width} fields as in the header row, found ${fields.length}` };
  }
  const question = fields[layout.question];
  if (question.trim() === '') return { ok: false, reason: 'empty question' };
  let choices: string[];
  if (typeof layout.choices === 'number') {
    const list = parseChoiceList(fields[layout.choices]);
    if (!list) return { ok: false, reason: `the choices field is not a list of strings: ${JSON.stringify(abbreviate(fields[layout.choices]))}` };
    choices = list;
  } else {
    choices = layout.choices.map((col) => fields[col]);
  }
  if (choices.length !== 4) return { ok: false, reason: `expected 4 choices, found ${choices.length}` };
  let answer: AnswerIndex | null = null;
  if (layout.answer === null) {
    if (requireAnswer) return { ok: false, reason: 'the header has no answer column' };
  } else {
    const raw = fields[layout.answer];
    if (raw.trim() !== '' || requireAnswer) {
      const read = readAnswer(raw, true);
      if (read === undefined) return { ok: false, reason: `answer ${JSON.stringify(raw)} is neither a letter A-D nor an index 0-3` };
      answer = read;
    }
  }
  const subject = layout.subject === null ? undefined : fields[layout.subject].trim() || undefined;
  return { ok: true, question, choices: choices as [string, string, string, string], answer, subject };
}

function abbreviate(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

export interface MmluCsvResult {
  questions: MmluQuestion[];
  /** Rows skipped. */
  issues: ParseIssue[];
  /** Rows read although they bend the format. */
  warnings: ParseIssue[];
  layout: CsvLayout;
}

/**
 * Parses one CSV file of MMLU questions. Subject and split come from a <subject>_<split>.csv file name;
 * otherwise from a subject column, then from `fallback`, then the subject is the file's stem and the split
 * "test". Bad rows are reported with their line and skipped.
 */
export function parseMmluCsv(text: string, file: string, fallback: { subject?: string; split?: string } = {}): MmluCsvResult {
  const { records, issues } = parseCsv(text, file);
  const named = subjectSplitFromCsvName(file);
  const layout = (records.length > 0 && headerLayout(records[0].fields)) || { kind: 'original' as const };
  const body = layout.kind === 'header' ? records.slice(1) : records;
  const split = named?.split ?? (fallback.split ? normalizeSplit(fallback.split) : 'test');
  const drafts: QuestionDraft[] = [];
  const warnings: ParseIssue[] = [];
  for (const r of body) {
    const row = rowToQuestion(r.fields, layout, true);
    if (!row.ok) {
      issues.push({ file, line: r.line, reason: row.reason });
      continue;
    }
    if (r.warning) warnings.push(r.warning);
    drafts.push({
      subject: named?.subject ?? row.subject ?? fallback.subject ?? fileStem(file),
      split,
      question: row.question,
      choices: row.choices,
      answer: row.answer,
      source: { file, line: r.line },
    });
  }
  issues.sort((a, b) => a.line - b.line);
  return { questions: assignIds(drafts), issues, warnings, layout };
}
