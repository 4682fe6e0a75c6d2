/**
 * MMLU questions as JSON Lines in the Hugging Face cais/mmlu schema: one object per line,
 * { "question": str, "subject": str, "choices": [str, str, str, str], "answer": 0-3 }.
 * answer may also be a letter "A"-"D" (hand-made files) or null (no key). An optional "split" field
 * names the row's split.
 *
 * The record check is exported: the Parquet reader and the question-at-cursor finder apply the same schema.
 */
import { answerIndexOfLetter, assignIds, normalizeSplit, splitFromDataFileName, type AnswerIndex, type QuestionDraft } from './common';
import type { MmluQuestion, ParseIssue } from './types';

export type CaisReading =
  | {
      ok: true;
      question: string;
      choices: [string, string, string, string];
      answer: AnswerIndex | null;
      subject?: string;
      split?: string;
    }
  | { ok: false; reason: string };

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'bigint') return `${v}`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
  if (typeof v === 'object') return 'an object';
  return String(v);
}

/** Checks one decoded record (a JSON object or a Parquet row) against the cais schema. */
export function readCaisRecord(value: unknown): CaisReading {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: `expected a JSON object with question, choices and answer, found ${describe(value)}` };
  }
  const o = value as Record<string, unknown>;
  if (!('question' in o)) return { ok: false, reason: 'missing "question"' };
  if (typeof o.question !== 'string') return { ok: false, reason: `"question" must be a string, found ${describe(o.question)}` };
  if (o.question.trim() === '') return { ok: false, reason: 'empty question' };

  if (!('choices' in o)) return { ok: false, reason: 'missing "choices"' };
  const choices = o.choices;
  // Parquet readers hand lists over as arrays, sometimes typed; only string items are accepted.
  if (!Array.isArray(choices)) return { ok: false, reason: `"choices" must be an array of 4 strings, found ${describe(choices)}` };
  if (choices.length !== 4) return { ok: false, reason: `"choices" must hold 4 strings, found ${choices.length}` };
  const bad = choices.findIndex((c) => typeof c !== 'string');
  if (bad >= 0) return { ok: false, reason: `"choices"[${bad}] must be a string, found ${describe(choices[bad])}` };

  if (!('answer' in o)) return { ok: false, reason: 'missing "answer"' };
  let answer: AnswerIndex | null;
  const a = o.answer;
  if (a === null) answer = null;
  else if (typeof a === 'number' && Number.isInteger(a) && a >= 0 && a <= 3) answer = a as AnswerIndex;
  else if (typeof a === 'bigint' && a >= 0n && a <= 3n) answer = Number(a) as AnswerIndex;
  else if (typeof a === 'string' && answerIndexOfLetter(a.trim()) !== null) answer = answerIndexOfLetter(a.trim());
  else return { ok: false, reason: `"answer" must be 0-3 or a letter A-D, found ${describe(a)}` };

  let subject: string | undefined;
  if ('subject' in o && o.subject !== null && o.subject !== undefined) {
    if (typeof o.subject !== 'string') return { ok: false, reason: `"subject" must be a string, found ${describe(o.subject)}` };
    subject = o.subject.trim() || undefined;
  }
  let split: string | undefined;
  if ('split' in o && o.split !== null && o.split !== undefined) {
    if (typeof o.split !== 'string') return { ok: false, reason: `"split" must be a string, found ${describe(o.split)}` };
    split = o.split.trim() ? normalizeSplit(o.split) : undefined;
  }
  return { ok: true, question: o.question, choices: choices as [string, string, string, string], answer, subject, split };
}

export interface JsonlResult {
  questions: MmluQuestion[];
  issues: ParseIssue[];
}

/**
 * Parses JSON Lines. Each row's split is its "split" field, else the one the file name gives
 * (test.jsonl, validation-00000-of-00001.jsonl), else `fallback.split`, else "test". A row without a
 * subject takes `fallback.subject` or is reported.
 */
export function parseJsonl(text: string, file: string, fallback: { subject?: string; split?: string } = {}): JsonlResult {
  const issues: ParseIssue[] = [];
  const drafts: QuestionDraft[] = [];
  const fileSplit = splitFromDataFileName(file) ?? (fallback.split ? normalizeSplit(fallback.split) : 'test');
  const lines = (text.charCodeAt(0) === 0xfeff ? text.slice(1) : text).split('\n');
  lines.forEach((physical, index) => {
    const line = index + 1;
    const raw = physical.endsWith('\r') ? physical.slice(0, -1) : physical;
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      const hint = line === 1 && raw.trim() === '[' ? ' (this looks like a JSON array; expected one JSON object per line)' : '';
      issues.push({ file, line, reason: `invalid JSON: ${(e as Error).message}${hint}` });
      return;
    }
    const r = readCaisRecord(value);
    if (!r.ok) {
      issues.push({ file, line, reason: r.reason });
      return;
    }
    const subject = r.subject ?? fallback.subject;
    if (subject === undefined) {
      issues.push({ file, line, reason: 'missing "subject"' });
      return;
    }
    drafts.push({ subject, split: r.split ?? fileSplit, question: r.question, choices: r.choices, answer: r.answer, source: { file, line } });
  });
  return { questions: assignIds(drafts), issues };
}
