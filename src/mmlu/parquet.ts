/**
 * MMLU questions in Parquet, as Hugging Face publishes cais/mmlu: columns question (string),
 * subject (string), choices (list<string>), answer (int64 class label 0-3), optionally split.
 * Rows are checked with the JSONL reader's schema check; issues name the 1-based row in `line`.
 */
import { parquetMetadata, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData } from 'hyparquet';
import { assignIds, normalizeSplit, splitFromDataFileName, type QuestionDraft } from './common';
import { readCaisRecord } from './jsonl';
import type { MmluQuestion, ParseIssue } from './types';
import { InputError } from '../shared/inputError';

const REQUIRED = ['question', 'choices', 'answer'] as const;
const WANTED = ['question', 'subject', 'choices', 'answer', 'split'];

export interface ParquetResult {
  questions: MmluQuestion[];
  issues: ParseIssue[];
  rows: number;
}

function toArrayBuffer(bytes: Uint8Array | ArrayBuffer): ArrayBuffer {
  if (bytes instanceof ArrayBuffer) return bytes;
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** Top-level column names of a Parquet file, from its footer. */
export function parquetColumns(metadata: FileMetaData): string[] {
  return parquetSchema(metadata).children.map((c) => c.element.name);
}

/** The cais columns a file lacks (empty when it can be read as MMLU). */
export function missingMmluColumns(columns: string[]): string[] {
  return REQUIRED.filter((c) => !columns.includes(c));
}

function readMetadata(buffer: ArrayBuffer, file: string): FileMetaData {
  try {
    return parquetMetadata(buffer);
  } catch (e) {
    throw new InputError(file, `not a readable Parquet file (${buffer.byteLength} bytes): ${(e as Error).message}`, null, { cause: e });
  }
}

/**
 * Parses a whole Parquet file. A row's split is its "split" column, else the file name's
 * (test-00000-of-00001.parquet), else `fallback.split`, else "test". A file that is not Parquet or lacks
 * a required column throws an Error naming the file; bad rows become issues.
 */
export async function parseParquet(bytes: Uint8Array | ArrayBuffer, file: string, fallback: { subject?: string; split?: string } = {}): Promise<ParquetResult> {
  const buffer = toArrayBuffer(bytes);
  const metadata = readMetadata(buffer, file);
  const columns = parquetColumns(metadata);
  const missing = missingMmluColumns(columns);
  if (missing.length > 0) {
    throw new Error(`${file}: Parquet file lacks the column(s) ${missing.join(', ')} of the cais/mmlu schema (it has: ${columns.join(', ')})`);
  }
  if (!columns.includes('subject') && fallback.subject === undefined) {
    throw new Error(`${file}: Parquet file has no "subject" column and no subject was given`);
  }
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file: buffer as AsyncBuffer, metadata, columns: WANTED.filter((c) => columns.includes(c)) });
  } catch (e) {
    throw new InputError(file, `cannot decode the Parquet data: ${(e as Error).message}`, null, { cause: e });
  }
  const fileSplit = splitFromDataFileName(file) ?? (fallback.split ? normalizeSplit(fallback.split) : 'test');
  const issues: ParseIssue[] = [];
  const drafts: QuestionDraft[] = [];
  rows.forEach((row, index) => {
    const line = index + 1;
    const r = readCaisRecord(row);
    if (!r.ok) {
      issues.push({ file, line, reason: `row ${line}: ${r.reason}` });
      return;
    }
    const subject = r.subject ?? fallback.subject;
    if (subject === undefined) {
      issues.push({ file, line, reason: `row ${line}: empty subject` });
      return;
    }
    drafts.push({ subject, split: r.split ?? fileSplit, question: r.question, choices: r.choices, answer: r.answer, source: { file, line } });
  });
  return { questions: assignIds(drafts), issues, rows: rows.length };
}
