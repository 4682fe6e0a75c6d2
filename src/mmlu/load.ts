/**
 * Opening a dataset: picks the reader from what the path is (a folder is an MMLU tree; .csv, .jsonl /
 * .json / .ndjson and .parquet files by extension), reads the bytes, fingerprints them, and finds
 * datasets in a workspace cheaply for the task provider. All file system access of src/mmlu lives here
 * and in tree.ts.
 */
import { createHash } from 'node:crypto';
import { open, readdir, stat } from 'node:fs/promises';
import { InputError } from '../shared/inputError';
import { MAX_DATA_FILE_BYTES, readRegularFileAsync } from '../shared/safeFiles';
import { basename, dirname, join } from 'node:path';
import { parquetMetadataAsync, type AsyncBuffer } from 'hyparquet';
import { CategoriesError, parseCategories } from './categories';
import { MMLU_SPLITS, decodeUtf8, normalizeSplit, subjectSplitFromCsvName, splitFromDataFileName } from './common';
import { parseJsonl, readCaisRecord } from './jsonl';
import { parseMmluCsv } from './mmluCsv';
import { missingMmluColumns, parquetColumns, parseParquet } from './parquet';
import { listTree, readTree, type TreeListing } from './tree';
import type { MmluDataset, MmluQuestion, MmluSubjectCategory, ParseIssue } from './types';
import { archiveHint } from './archiveHint';

export interface LoadOptions {
  /**
   * Only this split. A tree reads only that split's folder; a file keeps only the rows of that split
   * (rows whose split neither the row nor the file name states count as "test"). It never relabels rows:
   * asking a file of test questions for its dev split must not turn them into few-shot examples.
   */
  split?: string;
}

/**
 * sha256 over the files in order of their relative names: for each, the name, a NUL, the byte length,
 * a NUL, then the bytes. The lengths keep two different cuts of the same bytes from hashing alike.
 */
export function computeFingerprint(files: { relPath: string; bytes: Uint8Array }[]): string {
  const hash = createHash('sha256');
  const sorted = [...files].sort((a, b) => (a.relPath < b.relPath ? -1 : a.relPath > b.relPath ? 1 : 0));
  for (const f of sorted) {
    hash.update(`${f.relPath}\0${f.bytes.byteLength}\0`, 'utf8');
    hash.update(f.bytes);
  }
  return hash.digest('hex');
}

type FileFormat = 'mmlu-csv' | 'jsonl' | 'parquet';

function formatOfFile(path: string): FileFormat | null {
  const lower = path.toLowerCase();
  if (lower.endsWith('.csv')) return 'mmlu-csv';
  if (lower.endsWith('.jsonl') || lower.endsWith('.ndjson') || lower.endsWith('.json')) return 'jsonl';
  if (lower.endsWith('.parquet')) return 'parquet';
  return null;
}

function splitsOf(items: { split: string }[]): string[] {
  return [...new Set(items.map((q) => q.split))].sort();
}

/** categories.json beside the data: at the tree root, which is the folder opened or one or two levels up. */
async function findCategories(dir: string, shape: TreeListing['shape']): Promise<{ categories?: Record<string, MmluSubjectCategory>; issue?: ParseIssue }> {
  const candidates = shape === 'data-folder' ? [dir] : shape === 'split-folders' ? [dir, dirname(dir)] : [dirname(dir), dirname(dirname(dir))];
  for (const c of candidates) {
    const file = join(c, 'categories.json');
    let text: string;
    try {
      text = (await readRegularFileAsync(file, { maxBytes: 16 << 20 })).toString('utf8');
    } catch {
      continue;
    }
    try {
      return { categories: parseCategories(text, file) };
    } catch (e) {
      if (e instanceof CategoriesError) return { issue: { file: e.file, line: e.line, reason: e.reason } };
      throw e;
    }
  }
  return {};
}

/**
 * Opens a dataset. Throws an Error naming the path when it cannot be read at all; rows that cannot be read
 * are issues, rows read in spite of a flaw are warnings.
 */
export async function loadDataset(path: string, options: LoadOptions = {}): Promise<MmluDataset> {
  const split = options.split === undefined ? undefined : normalizeSplit(options.split);
  let info;
  try {
    info = await stat(path);
  } catch (e) {
    throw new InputError(path, `cannot open: ${(e as Error).message}`);
  }

  if (info.isDirectory()) {
    const tree = await readTree(path, split);
    if (!tree) {
      throw new InputError(
        path,
        `not an MMLU folder: expected data/{dev,val,test}/<subject>_<split>.csv, {dev,val,test}/<subject>_<split>.csv, or <subject>_<split>.csv files${archiveHint(path)}`,
      );
    }
    if (tree.files.length === 0) {
      const all = await listTree(path);
      throw new InputError(path, `the MMLU tree has no "${split}" split (it has: ${splitsOf(all?.files ?? []).join(', ') || 'none'})`);
    }
    const { categories, issue } = await findCategories(path, tree.shape);
    return {
      path,
      format: 'mmlu-tree',
      questions: tree.questions,
      issues: issue ? [...tree.issues, issue] : tree.issues,
      warnings: tree.warnings,
      fingerprint: computeFingerprint(tree.files),
      files: tree.files.map((f) => f.relPath).sort(),
      ...(categories ? { categories } : {}),
    };
  }

  if (!info.isFile())
    throw new InputError(
      path,
      `not a regular file (${info.isFIFO() ? 'a FIFO' : 'a special file'}); MMLU data is a folder or a .csv, .jsonl, .json or .parquet file`,
    );
  const format = formatOfFile(path);
  if (!format) throw new InputError(path, `unknown dataset format: expected a folder, .csv, .jsonl, .json, .ndjson or .parquet`);
  const bytes = new Uint8Array(await readRegularFileAsync(path, { maxBytes: MAX_DATA_FILE_BYTES }));
  let questions: MmluQuestion[];
  const issues: ParseIssue[] = [];
  const warnings: ParseIssue[] = [];
  if (format === 'parquet') {
    const r = await parseParquet(bytes, path);
    questions = r.questions;
    issues.push(...r.issues);
  } else {
    const { text, warning } = decodeUtf8(bytes, path);
    if (warning) warnings.push(warning);
    if (format === 'mmlu-csv') {
      const r = parseMmluCsv(text, path);
      questions = r.questions;
      issues.push(...r.issues);
      warnings.push(...r.warnings);
    } else {
      const r = parseJsonl(text, path);
      questions = r.questions;
      issues.push(...r.issues);
    }
  }
  if (split !== undefined) {
    const kept = questions.filter((q) => q.split === split);
    if (kept.length === 0 && questions.length > 0) {
      throw new InputError(path, `holds no questions of split "${split}" (it has: ${splitsOf(questions).join(', ')})`);
    }
    questions = kept;
  }
  const relPath = basename(path);
  return { path, format, questions, issues, warnings, fingerprint: computeFingerprint([{ relPath, bytes }]), files: [relPath] };
}

// ---------------------------------------------------------------------------------------------------
// Discovery

export interface DiscoveredDataset {
  path: string;
  format: MmluDataset['format'];
  /** What was seen, for a task or picker label, e.g. "MMLU tree: 57 subjects, dev/val/test". */
  label: string;
  /** Splits known from names alone (empty when the file must be read to know). */
  splits: string[];
}

export interface DiscoverOptions {
  /** Folder levels below rootDir to search; rootDir itself is level 0. Default 4. */
  maxDepth?: number;
}

const SKIPPED_FOLDERS = new Set(['node_modules', '.git', '.moe-scope']);
/** Enough for the first line of any cais JSONL file; longer first lines are not MMLU questions. */
const JSONL_PEEK_BYTES = 256 * 1024;

async function jsonlLooksLikeMmlu(path: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'r');
    const buf = Buffer.alloc(JSONL_PEEK_BYTES);
    const { bytesRead } = await handle.read(buf, 0, JSONL_PEEK_BYTES, 0);
    const text = buf
      .subarray(0, bytesRead)
      .toString('utf8')
      .replace(/^\uFEFF/, '');
    const first = text.split('\n').find((l) => l.trim() !== '');
    if (first === undefined) return false;
    return readCaisRecord(JSON.parse(first)).ok;
  } catch {
    return false;
  } finally {
    await handle?.close();
  }
}

async function parquetLooksLikeMmlu(path: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(path, 'r');
    const h = handle;
    const size = (await h.stat()).size;
    const file: AsyncBuffer = {
      byteLength: size,
      async slice(start: number, end: number = size): Promise<ArrayBuffer> {
        const buf = Buffer.alloc(end - start);
        await h.read(buf, 0, end - start, start);
        return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
      },
    };
    const metadata = await parquetMetadataAsync(file);
    return missingMmluColumns(parquetColumns(metadata)).length === 0;
  } catch {
    return false;
  } finally {
    await handle?.close();
  }
}

function treeLabel(listing: TreeListing): { label: string; splits: string[] } {
  const splits = MMLU_SPLITS.filter((s) => listing.files.some((f) => f.split === s));
  const subjects = new Set(listing.files.map((f) => f.subject)).size;
  return { label: `MMLU tree: ${subjects} subject${subjects === 1 ? '' : 's'}, ${splits.join('/')}`, splits };
}

/**
 * Finds MMLU datasets under rootDir from names and headers only: trees, <subject>_<split>.csv files,
 * JSONL files whose first line has the cais schema, and Parquet files whose footer lists its columns.
 * Folders named node_modules, .git and .moe-scope are skipped, and symbolic links are not followed.
 */
export async function discoverDatasets(rootDir: string, options: DiscoverOptions = {}): Promise<DiscoveredDataset[]> {
  const maxDepth = options.maxDepth ?? 4;
  const found: DiscoveredDataset[] = [];

  const visit = async (dir: string, depth: number): Promise<void> => {
    const listing = await listTree(dir);
    if (listing && listing.files.length > 0) {
      const isTree = listing.shape !== 'split-folder' || (MMLU_SPLITS as readonly string[]).includes(basename(dir)) || listing.files.length > 1;
      if (isTree) {
        found.push({ path: dir, format: 'mmlu-tree', ...treeLabel(listing) });
        return;
      }
    }
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    const subdirs: string[] = [];
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (!SKIPPED_FOLDERS.has(e.name)) subdirs.push(p);
        continue;
      }
      if (!e.isFile()) continue;
      const format = formatOfFile(e.name);
      if (format === 'mmlu-csv') {
        const named = subjectSplitFromCsvName(e.name);
        if (named) found.push({ path: p, format, label: `MMLU CSV: ${named.subject} (${named.split})`, splits: [named.split] });
      } else if (format === 'jsonl') {
        if (await jsonlLooksLikeMmlu(p)) {
          const s = splitFromDataFileName(e.name);
          found.push({ path: p, format, label: `MMLU JSONL${s ? ` (${s})` : ''}`, splits: s ? [s] : [] });
        }
      } else if (format === 'parquet') {
        if (await parquetLooksLikeMmlu(p)) {
          const s = splitFromDataFileName(e.name);
          found.push({ path: p, format, label: `MMLU Parquet${s ? ` (${s})` : ''}`, splits: s ? [s] : [] });
        }
      }
    }
    if (depth < maxDepth) {
      for (const d of subdirs) await visit(d, depth + 1);
    }
  };

  await visit(rootDir, 0);
  return found.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
