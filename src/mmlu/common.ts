/**
 * Small pieces every MMLU reader shares: split names, what a file name says about subject and split,
 * answer letters, and question ids. Pure functions only.
 */
import { ANSWER_LETTERS, type AnswerLetter } from '../shared/protocol';
import type { MmluQuestion, ParseIssue } from './types';

export type AnswerIndex = 0 | 1 | 2 | 3;
export type AnswerLetterChar = AnswerLetter;
export const LETTERS: readonly AnswerLetterChar[] = ANSWER_LETTERS;

export function answerLetter(index: AnswerIndex): AnswerLetterChar {
  return LETTERS[index];
}

/** "A".."D" -> 0..3; anything else (including lower case and surrounding text) -> null. */
export function answerIndexOfLetter(letter: string): AnswerIndex | null {
  const i = LETTERS.indexOf(letter as AnswerLetterChar);
  return i < 0 ? null : (i as AnswerIndex);
}

/** The splits of the original release; other names are kept as found. */
export const MMLU_SPLITS = ['dev', 'val', 'test'] as const;

/**
 * Hugging Face names the original "val" split "validation". One spelling keeps ids and run manifests
 * comparable whichever format the questions came from.
 */
export function normalizeSplit(split: string): string {
  const s = split.trim().toLowerCase();
  return s === 'validation' ? 'val' : s;
}

export function baseName(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  return i < 0 ? path : path.slice(i + 1);
}

export function fileStem(name: string): string {
  const b = baseName(name);
  const dot = b.lastIndexOf('.');
  return dot <= 0 ? b : b.slice(0, dot);
}

/** Split suffixes of the original file names. "train" covers auxiliary_train-style extras. */
const CSV_NAME = /^(.+)_(dev|val|test|validation|train)\.csv$/i;

/** "high_school_biology_test.csv" -> { subject: "high_school_biology", split: "test" }; other names -> null. */
export function subjectSplitFromCsvName(fileName: string): { subject: string; split: string } | null {
  const m = CSV_NAME.exec(baseName(fileName));
  if (!m) return null;
  return { subject: m[1], split: normalizeSplit(m[2]) };
}

const SPLIT_WORD = /^(dev|val|validation|test|train|auxiliary_train)$/i;
/** Hugging Face shard names: "test-00000-of-00001". */
const SHARD = /^([a-z_]+)-\d+-of-\d+$/i;
const SUFFIX = /[_.-](dev|val|validation|test|train)$/i;

/**
 * The split a Hugging Face style data file names: "test-00000-of-00001.parquet", "validation.jsonl",
 * "mmlu_dev.jsonl". null when the name says nothing.
 */
export function splitFromDataFileName(fileName: string): string | null {
  const s = fileStem(fileName);
  const shard = SHARD.exec(s);
  if (shard && SPLIT_WORD.test(shard[1])) return normalizeSplit(shard[1]);
  if (SPLIT_WORD.test(s)) return normalizeSplit(s);
  const suffix = SUFFIX.exec(s);
  return suffix ? normalizeSplit(suffix[1]) : null;
}

/** A question before it gets its id. */
export type QuestionDraft = Omit<MmluQuestion, 'id'>;

/**
 * Ids count questions per (subject, split) in reading order, counting only questions that were read:
 * the same data in CSV, JSONL or Parquet then yields the same ids.
 */
export function assignIds(drafts: QuestionDraft[]): MmluQuestion[] {
  const next = new Map<string, number>();
  return drafts.map((d) => {
    const key = `${d.subject}/${d.split}`;
    const n = next.get(key) ?? 0;
    next.set(key, n + 1);
    return { id: `${key}/${n}`, ...d };
  });
}

/** Byte offset of the first malformed UTF-8 sequence, or -1. */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i];
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let min: number;
    if (b >= 0xc2 && b <= 0xdf) [need, min] = [1, 0x80];
    else if (b >= 0xe0 && b <= 0xef) [need, min] = [2, 0x800];
    else if (b >= 0xf0 && b <= 0xf4) [need, min] = [3, 0x10000];
    else return i;
    if (i + need >= n) return i;
    let cp = b & (0x3f >> need);
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return i;
      cp = (cp << 6) | (c & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += need + 1;
  }
  return -1;
}

/**
 * Decodes a data file. Malformed bytes become U+FFFD as usual, but the first one is returned as a warning
 * with its byte offset and line so that a damaged file is not read as if it were fine. A leading BOM is
 * dropped.
 */
export function decodeUtf8(bytes: Uint8Array, file: string): { text: string; warning: ParseIssue | null } {
  try {
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), warning: null };
  } catch {
    // Damaged: decode leniently and find where, which the native decoder does not say.
  }
  const text = new TextDecoder('utf-8').decode(bytes);
  const bad = firstInvalidUtf8(bytes);
  if (bad < 0) return { text, warning: null };
  let line = 1;
  for (let i = 0; i < bad; i++) {
    if (bytes[i] === 10) line++;
    else if (bytes[i] === 13 && bytes[i + 1] !== 10) line++;
  }
  return { text, warning: { file, line, reason: `invalid UTF-8 at byte offset ${bad}; the bad bytes were read as U+FFFD` } };
}
