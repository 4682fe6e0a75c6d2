/**
 * The original MMLU folder tree: <root>/data/{dev,val,test}/<subject>_<split>.csv, or the split folders
 * directly under the folder opened, or one split folder on its own.
 *
 * Listing is separate from parsing so that discovery can recognise a tree from file names alone.
 */
import { readdir } from 'node:fs/promises';
import { MAX_DATA_FILE_BYTES, readRegularFileAsync } from '../shared/safeFiles';
import { join } from 'node:path';
import { MMLU_SPLITS, decodeUtf8, subjectSplitFromCsvName } from './common';
import { parseMmluCsv } from './mmluCsv';
import type { MmluQuestion, ParseIssue } from './types';

export interface TreeFile {
  /** Absolute (or as given) path of the CSV file. */
  path: string;
  /** Path relative to the folder opened, with "/" separators; names the file in the fingerprint. */
  relPath: string;
  subject: string;
  split: string;
}

export interface TreeListing {
  /** Which of the three accepted shapes the folder has. */
  shape: 'data-folder' | 'split-folders' | 'split-folder';
  files: TreeFile[];
}

async function entries(dir: string): Promise<{ name: string; isDir: boolean; isFile: boolean }[]> {
  try {
    const list = await readdir(dir, { withFileTypes: true });
    return list.map((d) => ({ name: d.name, isDir: d.isDirectory(), isFile: d.isFile() }));
  } catch {
    return [];
  }
}

/** CSV files of one split folder whose names follow <subject>_<split>.csv with that split. */
async function splitFolderFiles(dir: string, relPrefix: string, split: string | null): Promise<TreeFile[]> {
  const out: TreeFile[] = [];
  for (const e of await entries(dir)) {
    if (!e.isFile) continue;
    const named = subjectSplitFromCsvName(e.name);
    if (!named || (split !== null && named.split !== split)) continue;
    out.push({ path: join(dir, e.name), relPath: relPrefix + e.name, subject: named.subject, split: named.split });
  }
  return out;
}

const SPLIT_ORDER = new Map<string, number>(MMLU_SPLITS.map((s, i) => [s, i]));

/** dev, val, test first (the order of the original release), then other splits by name; subjects by name. */
function byReadingOrder(a: TreeFile, b: TreeFile): number {
  const sa = SPLIT_ORDER.get(a.split) ?? 99;
  const sb = SPLIT_ORDER.get(b.split) ?? 99;
  if (sa !== sb) return sa - sb;
  if (a.split !== b.split) return a.split < b.split ? -1 : 1;
  return a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0;
}

/**
 * Lists the question files of an MMLU tree, or returns null when the folder has none of the accepted
 * shapes. Only file names are read. `split` limits the listing to one split.
 */
export async function listTree(dir: string, split?: string): Promise<TreeListing | null> {
  const top = await entries(dir);
  const topDirs = new Set(top.filter((e) => e.isDir).map((e) => e.name));

  const fromSplitFolders = async (base: string, relBase: string): Promise<TreeFile[]> => {
    const files: TreeFile[] = [];
    for (const s of MMLU_SPLITS) {
      if (split !== undefined && s !== split) continue;
      files.push(...(await splitFolderFiles(join(base, s), `${relBase}${s}/`, s)));
    }
    return files;
  };

  if (topDirs.has('data')) {
    const files = await fromSplitFolders(join(dir, 'data'), 'data/');
    if (files.length > 0 || (await hasSplitFolders(join(dir, 'data')))) return { shape: 'data-folder', files: files.sort(byReadingOrder) };
  }
  if (MMLU_SPLITS.some((s) => topDirs.has(s))) {
    const files = await fromSplitFolders(dir, '');
    if (files.length > 0 || (await hasSplitFolders(dir))) return { shape: 'split-folders', files: files.sort(byReadingOrder) };
  }
  const own = await splitFolderFiles(dir, '', null);
  if (own.length > 0) {
    const files = split === undefined ? own : own.filter((f) => f.split === split);
    return { shape: 'split-folder', files: files.sort(byReadingOrder) };
  }
  return null;
}

/** True when some split folder under `dir` holds MMLU CSV files (used when a split filter left none). */
async function hasSplitFolders(dir: string): Promise<boolean> {
  for (const s of MMLU_SPLITS) {
    if ((await splitFolderFiles(join(dir, s), '', s)).length > 0) return true;
  }
  return false;
}

export interface TreeContents {
  shape: TreeListing['shape'];
  /** The files read, in reading order, with their bytes (for the fingerprint). */
  files: { relPath: string; bytes: Uint8Array }[];
  questions: MmluQuestion[];
  issues: ParseIssue[];
  warnings: ParseIssue[];
}

/** Reads and parses every question file of a tree; null when `dir` is not an MMLU tree. */
export async function readTree(dir: string, split?: string): Promise<TreeContents | null> {
  const listing = await listTree(dir, split);
  if (!listing) return null;
  const read = await Promise.all(
    listing.files.map(async (f) => ({ f, bytes: new Uint8Array(await readRegularFileAsync(f.path, { maxBytes: MAX_DATA_FILE_BYTES })) })),
  );
  const questions: MmluQuestion[] = [];
  const issues: ParseIssue[] = [];
  const warnings: ParseIssue[] = [];
  for (const { f, bytes } of read) {
    const { text, warning } = decodeUtf8(bytes, f.path);
    if (warning) warnings.push(warning);
    const parsed = parseMmluCsv(text, f.path, { subject: f.subject, split: f.split });
    questions.push(...parsed.questions);
    issues.push(...parsed.issues);
    warnings.push(...parsed.warnings);
  }
  return { shape: listing.shape, files: read.map(({ f, bytes }) => ({ relPath: f.relPath, bytes })), questions, issues, warnings };
}
