/**
 * The files of an evaluation run:
 *   manifest.json  — what is being evaluated (model, dataset fingerprint, options); a resume must match it
 *   records.jsonl  — one line per scored batch: its questions and the batch's analysis delta. A line is
 *                    written with one write and fsynced, so a kill loses at most the batch in flight and
 *                    a torn last line is cut off on resume; no question can be recorded twice.
 *   summary.json   — the dataset-wide summary, at the end and on demand (complete: false before the end)
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EngineKind, ModelDType, RouterIntervention, RunSummary, TokenScope } from '../shared/protocol';
import { describeIntervention, interventionKey } from '../analysis/interventions';
import { decodeDelta, mergeInto, type RunAccumulator } from '../analysis/accumulator';

export interface RunManifest {
  format: 'moe-scope.run';
  version: 1;
  createdAt: string;
  model: {
    path: string;
    family: string;
    numLayers: number;
    numExperts: number;
    topK: number;
    configSha256: string;
    demo: boolean;
    /** The engine, device and dtype that computed the records (absent in runs made before engines were selectable). */
    engine?: { kind: EngineKind; device: string; dtype: ModelDType };
  };
  dataset: { path: string; split: string; fingerprint: string };
  shots: number;
  tokenScope: TokenScope;
  subjects: string[] | null;
  limitPerSubject: number;
  /** Questions selected for this run, in evaluation order. */
  totalQuestions: number;
  /** Expert masking / router steering applied to every forward pass; null or absent for the plain model. */
  intervention?: RouterIntervention | null;
}

export interface QuestionResult {
  id: string;
  subject: string;
  gold: number;
  predicted: number;
  correct: boolean;
  logProbs: [number, number, number, number];
  numTokens: number;
  shotsUsed: number;
  /** Top-k experts per layer at the answer position. */
  answerExperts: number[][];
}

export interface BatchRecord {
  batch: number;
  questions: QuestionResult[];
  delta: unknown;
  tokens: { computed: number; padding: number; prefixReused: number };
  seconds: number;
}

export class RunFolderError extends Error {}

export const MANIFEST = 'manifest.json';
export const RECORDS = 'records.jsonl';
export const SUMMARY = 'summary.json';

/** What a previous (possibly killed) run left behind. */
export interface RecordedState {
  batches: number;
  questions: QuestionResult[];
  done: Set<string>;
  tokens: { computed: number; padding: number; prefixReused: number };
  seconds: number;
  /** Bytes of a torn final line that were cut off. */
  truncatedBytes: number;
}

/**
 * Reads records.jsonl, folding every complete batch line into `acc`. A final line without its newline
 * (the write a kill interrupted) is cut off so the next append starts clean.
 */
export function readRecords(runDir: string, acc: RunAccumulator): RecordedState {
  const file = path.join(runDir, RECORDS);
  const state: RecordedState = { batches: 0, questions: [], done: new Set(), tokens: { computed: 0, padding: 0, prefixReused: 0 }, seconds: 0, truncatedBytes: 0 };
  if (!fs.existsSync(file)) return state;
  const buf = fs.readFileSync(file);
  const lastNewline = buf.lastIndexOf(0x0a);
  const keep = lastNewline + 1;
  if (keep < buf.length) {
    fs.truncateSync(file, keep);
    state.truncatedBytes = buf.length - keep;
  }
  const lines = buf.subarray(0, keep).toString('utf8').split('\n');
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    let rec: BatchRecord;
    try {
      rec = JSON.parse(line) as BatchRecord;
    } catch (e) {
      throw new RunFolderError(`${file}:${i + 1}: not a valid record line (${(e as Error).message}); move the run folder aside to start over`);
    }
    for (const q of rec.questions) {
      if (state.done.has(q.id)) throw new RunFolderError(`${file}:${i + 1}: question ${q.id} is recorded twice`);
      state.done.add(q.id);
      state.questions.push(q);
    }
    mergeInto(acc, decodeDelta(rec.delta));
    state.batches = Math.max(state.batches, rec.batch + 1);
    state.tokens.computed += rec.tokens.computed;
    state.tokens.padding += rec.tokens.padding;
    state.tokens.prefixReused += rec.tokens.prefixReused;
    state.seconds += rec.seconds;
  });
  return state;
}

export class RecordWriter {
  private fd: number;
  constructor(runDir: string) {
    this.fd = fs.openSync(path.join(runDir, RECORDS), 'a');
  }
  append(rec: BatchRecord): void {
    const bytes = Buffer.from(JSON.stringify(rec) + '\n', 'utf8');
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(this.fd, bytes, done, bytes.length - done);
    fs.fsyncSync(this.fd);
  }
  close(): void {
    fs.closeSync(this.fd);
  }
}

export function readManifest(runDir: string): RunManifest | null {
  const file = path.join(runDir, MANIFEST);
  if (!fs.existsSync(file)) return null;
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as RunManifest;
  } catch (e) {
    throw new RunFolderError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}

/** Differences that make a resume meaningless; empty when the run can continue. */
export function manifestMismatch(old: RunManifest, now: RunManifest): string[] {
  const diffs: string[] = [];
  if (old.model.configSha256 !== now.model.configSha256 || old.model.path !== now.model.path) diffs.push(`model (${old.model.path} vs ${now.model.path})`);
  if (old.dataset.fingerprint !== now.dataset.fingerprint) diffs.push('dataset contents');
  if (old.dataset.split !== now.dataset.split) diffs.push(`split (${old.dataset.split} vs ${now.dataset.split})`);
  if (old.shots !== now.shots) diffs.push(`shots (${old.shots} vs ${now.shots})`);
  if (old.tokenScope !== now.tokenScope) diffs.push(`token scope (${old.tokenScope} vs ${now.tokenScope})`);
  if (JSON.stringify(old.subjects) !== JSON.stringify(now.subjects)) diffs.push('subjects');
  if (old.limitPerSubject !== now.limitPerSubject) diffs.push('limit per subject');
  // Resuming on another engine or dtype would mix results computed differently in one run.
  const a = old.model.engine;
  const b = now.model.engine;
  if (a && b && (a.kind !== b.kind || a.dtype !== b.dtype)) diffs.push(`engine (${a.kind} ${a.dtype} vs ${b.kind} ${b.dtype})`);
  if (interventionKey(old.intervention) !== interventionKey(now.intervention)) {
    diffs.push(`router intervention (${describeIntervention(old.intervention ?? { mask: [], bias: [] }, old.model.numLayers)} vs ${describeIntervention(now.intervention ?? { mask: [], bias: [] }, now.model.numLayers)})`);
  }
  return diffs;
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

export function readSummary(runDir: string): RunSummary | null {
  const file = path.join(runDir, SUMMARY);
  if (!fs.existsSync(file)) return null;
  return JSON.parse(fs.readFileSync(file, 'utf8')) as RunSummary;
}

/** The newest run under any of `roots` that has a summary; reads summaries only until it finds one. */
export function newestRunSummary(roots: string[]): { dir: string; summary: RunSummary } | null {
  const dirs = roots
    .filter((r) => fs.existsSync(r))
    .flatMap((r) => fs.readdirSync(r).map((name) => path.join(r, name)))
    .filter((d) => fs.existsSync(path.join(d, SUMMARY)))
    .map((dir) => ({ dir, mtime: fs.statSync(path.join(dir, SUMMARY)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { dir } of dirs) {
    try {
      const summary = readSummary(dir);
      if (summary) return { dir, summary };
    } catch {
      // a half-written or foreign file: try the next run
    }
  }
  return null;
}

/** Run folders under `root` (e.g. <workspace>/.moe-scope/runs), newest first. */
export function listRuns(root: string): { dir: string; manifest: RunManifest | null; summary: RunSummary | null; mtime: number }[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .map((name) => path.join(root, name))
    .filter((d) => fs.statSync(d).isDirectory() && fs.existsSync(path.join(d, MANIFEST)))
    .map((dir) => {
      let summary: RunSummary | null = null;
      try {
        summary = readSummary(dir);
      } catch {
        summary = null;
      }
      return { dir, manifest: readManifest(dir), summary, mtime: fs.statSync(dir).mtimeMs };
    })
    .sort((a, b) => b.mtime - a.mtime);
}

/**
 * Every recorded question of a run, read-only (a torn last line left by a killed run is ignored, not
 * cut off): what comparisons need. Throws RunFolderError naming the file and line of a bad record.
 */
export function readQuestionResults(runDir: string): QuestionResult[] {
  const file = path.join(runDir, RECORDS);
  if (!fs.existsSync(file)) throw new RunFolderError(`${file}: no records; is ${runDir} an evaluation run folder?`);
  const text = fs.readFileSync(file, 'utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  const out: QuestionResult[] = [];
  complete.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let rec: BatchRecord;
    try {
      rec = JSON.parse(line) as BatchRecord;
    } catch (e) {
      throw new RunFolderError(`${file}:${i + 1}: not a valid record line (${(e as Error).message})`);
    }
    if (!Array.isArray(rec.questions)) throw new RunFolderError(`${file}:${i + 1}: field "questions" is missing or not a list`);
    out.push(...rec.questions);
  });
  return out;
}
