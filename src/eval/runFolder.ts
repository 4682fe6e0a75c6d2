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
import type { AnswerScoringMethod, EngineKind, ModelDType, RouterIntervention, RunSummary, TokenScope, WeightPrecision } from '../shared/protocol';
import { decodeDelta, mergeInto, type RunAccumulator } from '../analysis/accumulator';
import { jsonDifferences, type ModelFingerprint } from './fingerprint';
import { checkSummary, MAX_SUMMARY_BYTES, SummaryError } from './summaryCheck';
import { InputError } from '../shared/inputError';
import { readJson, readJsonAsync } from '../shared/readJson';
import {
  MAX_TEXT_BYTES,
  assertWritableInside,
  entryExists,
  openInside,
  readRegularFile,
  readRegularText,
  writeAll,
  writeFileInside,
} from '../shared/safeFiles';

export interface RunManifest {
  format: 'moe-scope.run';
  version: 2;
  createdAt: string;
  model: {
    path: string;
    family: string;
    numLayers: number;
    numExperts: number;
    topK: number;
    configSha256: string;
    demo: boolean;
    /** Size and SHA-256 of every file the engine reads: a resume on other weights is refused. */
    files: ModelFingerprint;
    /** The engine, device and dtype that computed the records (absent in runs made before engines were selectable). */
    engine?: { kind: EngineKind; device: string; dtype: ModelDType };
    /** How the answer letters are scored (absent in runs made before it was recorded). */
    answerScoring?: AnswerScoringMethod;
  };
  /**
   * What the engine reported it loaded: family, dtype, execution provider, expert formulation, answer
   * scoring, ... taken generically from the load result, so fields a new engine adds are part of the
   * fingerprint too (descriptive ones are listed in NOT_RESULT_CHANGING).
   */
  loaded: Record<string, unknown>;
  dataset: { path: string; split: string; fingerprint: string };
  shots: number;
  tokenScope: TokenScope;
  subjects: string[] | null;
  limitPerSubject: number;
  /** Questions selected for this run, in evaluation order. */
  totalQuestions: number;
  /** Expert masking / router steering applied to every forward pass; null or absent for the plain model. */
  intervention?: RouterIntervention | null;
  /** Questions per batch (absent in runs written before sharding existed). */
  batchSize?: number;
  /** Present when this folder holds one shard of a run (moe-scope eval --shard I/N). */
  shard?: ShardManifest;
  /** Present in a folder written by moe-scope merge: the shard folders it came from. */
  mergedFrom?: string[];
}

export interface ShardManifest {
  index: number;
  count: number;
  /** How the questions were partitioned, in words. */
  partition: string;
  /** Indices of this shard's batches in the unsharded run's batch order. */
  batches: number[];
  /** This shard's questions, in its batch order. */
  questionIds: string[];
  /** Batches and questions of the whole (unsharded) run, and a hash of its batch plan. */
  planBatches: number;
  planQuestions: number;
  planSha256: string;
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
  /** The gate weights applied to those experts, per layer (absent in runs made before they were recorded). */
  answerWeights?: number[][];
  /** Those experts' unweighted output L2 norms, per layer (when the engine measured them). */
  answerNorms?: number[][];
}

export interface BatchRecord {
  batch: number;
  questions: QuestionResult[];
  delta: unknown;
  tokens: { computed: number; padding: number; prefixReused: number };
  seconds: number;
}

/** A run folder's file is missing, damaged or belongs to another run. */
export class RunFolderError extends InputError {}

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
  /** Lines set aside into records.rejects.jsonl (1-based line numbers in records.jsonl as it was). */
  rejected: { line: number; reason: string }[];
}

export const REJECTS = 'records.rejects.jsonl';

/** records.jsonl is read whole as text: at most what a string can hold. */
export const MAX_RECORDS_BYTES = MAX_TEXT_BYTES;

/** Why a parsed line cannot be a batch record, or null when it can. */
export function recordProblem(rec: unknown, shape: { numLayers: number; numExperts: number; topK: number }): string | null {
  if (!rec || typeof rec !== 'object' || Array.isArray(rec)) return 'not an object';
  const r = rec as Partial<BatchRecord>;
  if (!Number.isInteger(r.batch) || (r.batch as number) < 0) return 'field "batch" is not a non-negative integer';
  if (!Array.isArray(r.questions)) return 'field "questions" is not an array';
  for (const [i, q] of r.questions.entries()) {
    if (!q || typeof q !== 'object') return `questions[${i}] is not an object`;
    if (typeof q.id !== 'string' || !q.id) return `questions[${i}].id is not a string`;
    if (typeof q.subject !== 'string') return `questions[${i}].subject is not a string`;
    if (typeof q.correct !== 'boolean') return `questions[${i}].correct is not a boolean`;
    if (![q.gold, q.predicted].every((v) => Number.isInteger(v) && v >= 0 && v < 26)) return `questions[${i}] has no valid gold/predicted letter`;
    if (!Array.isArray(q.logProbs) || !q.logProbs.every((v) => typeof v === 'number' && Number.isFinite(v)))
      return `questions[${i}].logProbs is not a list of finite numbers`;
  }
  const t = r.tokens;
  if (!t || typeof t !== 'object' || ![t.computed, t.padding, t.prefixReused].every((v) => typeof v === 'number' && v >= 0))
    return 'field "tokens" is not {computed, padding, prefixReused}';
  if (typeof r.seconds !== 'number' || !(r.seconds >= 0)) return 'field "seconds" is not a non-negative number';
  const d = r.delta as { shape?: unknown } | null | undefined;
  const want = [shape.numLayers, shape.numExperts, shape.topK];
  // Checked before decoding: a corrupt shape must not make the decoder allocate for it.
  if (!d || typeof d !== 'object' || JSON.stringify(d.shape) !== JSON.stringify(want))
    return `field "delta" does not have this run's shape ${JSON.stringify(want)}`;
  return null;
}

/**
 * Reads records.jsonl, folding every complete batch line into `acc`. A final line without its newline
 * (the write a kill interrupted) is cut off so the next append starts clean. A damaged line anywhere
 * else, or one repeating an already recorded question, is moved to records.rejects.jsonl with its line
 * number and reason (so is a line naming a question outside `runQuestionIds`); its questions are not
 * counted as done, so the run scores them again.
 * Call only while holding the run folder's lock (the file may be rewritten).
 */
export function readRecords(runDir: string, acc: RunAccumulator, runQuestionIds?: ReadonlySet<string>): RecordedState {
  const file = path.join(runDir, RECORDS);
  const state: RecordedState = {
    batches: 0,
    questions: [],
    done: new Set(),
    tokens: { computed: 0, padding: 0, prefixReused: 0 },
    seconds: 0,
    truncatedBytes: 0,
    rejected: [],
  };
  if (!entryExists(file)) return state;
  // This file is cut and rewritten below: it must be the run folder's own, not a link to elsewhere.
  assertWritableInside(runDir, file, RunFolderError);
  const buf = readRegularFile(file, { maxBytes: MAX_RECORDS_BYTES, within: runDir, error: RunFolderError });
  const lastNewline = buf.lastIndexOf(0x0a);
  const keep = lastNewline + 1;
  if (keep < buf.length) {
    const fd = openInside(runDir, file, 'r+', RunFolderError);
    try {
      fs.ftruncateSync(fd, keep);
    } finally {
      fs.closeSync(fd);
    }
    state.truncatedBytes = buf.length - keep;
  }
  const lines = buf.subarray(0, keep).toString('utf8').split('\n');
  if (lines.at(-1) === '') lines.pop();
  const kept: string[] = [];
  const rejects: string[] = [];
  lines.forEach((line, i) => {
    if (!line.trim()) return;
    const reject = (reason: string) => {
      state.rejected.push({ line: i + 1, reason });
      rejects.push(JSON.stringify({ line: i + 1, reason, at: new Date().toISOString(), text: line }));
    };
    let rec: BatchRecord;
    try {
      rec = JSON.parse(line) as BatchRecord;
    } catch (e) {
      return reject(`not valid JSON (${(e as Error).message})`);
    }
    const problem = recordProblem(rec, acc);
    if (problem) return reject(problem);
    const foreign = runQuestionIds && rec.questions.find((q) => !runQuestionIds.has(q.id));
    if (foreign) return reject(`question ${foreign.id} is not one of this run's questions`);
    const twice = rec.questions.find((q) => state.done.has(q.id));
    if (twice) return reject(`question ${twice.id} is already recorded in an earlier line`);
    let delta: RunAccumulator;
    try {
      delta = decodeDelta(rec.delta);
      mergeInto(acc, delta);
    } catch (e) {
      return reject(`field "delta": ${(e as Error).message}`);
    }
    for (const q of rec.questions) {
      state.done.add(q.id);
      state.questions.push(q);
    }
    state.batches = Math.max(state.batches, rec.batch + 1);
    state.tokens.computed += rec.tokens.computed;
    state.tokens.padding += rec.tokens.padding;
    state.tokens.prefixReused += rec.tokens.prefixReused;
    state.seconds += rec.seconds;
    kept.push(line);
  });
  if (rejects.length) {
    // Rejects first (durably), then the cleaned records, so a kill in between loses nothing.
    const rejectsFile = path.join(runDir, REJECTS);
    const fd = openInside(runDir, rejectsFile, 'a', RunFolderError);
    try {
      writeAll(fd, Buffer.from(rejects.join('\n') + '\n', 'utf8'));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    writeFileInside(runDir, file, kept.map((l) => l + '\n').join(''), RunFolderError);
  }
  return state;
}

export class RecordWriter {
  private fd: number;
  private lastSync = Date.now();
  private unsynced = false;
  /**
   * syncEveryMs: how long a written record may wait for its fsync (0: each record synced as written). A
   * killed process loses nothing either way (the system holds what was written); a power loss loses at
   * most that long of batches, which a resume scores again.
   */
  constructor(
    runDir: string,
    private readonly syncEveryMs = 0,
  ) {
    this.fd = openInside(runDir, path.join(runDir, RECORDS), 'a', RunFolderError);
  }
  append(rec: BatchRecord): void {
    writeAll(this.fd, Buffer.from(JSON.stringify(rec) + '\n', 'utf8'));
    this.unsynced = true;
    if (Date.now() - this.lastSync >= this.syncEveryMs) this.sync();
  }
  sync(): void {
    if (!this.unsynced) return;
    fs.fsyncSync(this.fd);
    this.unsynced = false;
    this.lastSync = Date.now();
  }
  close(): void {
    this.sync();
    fs.closeSync(this.fd);
  }
}

/**
 * Fields of a manifest that describe the run rather than what its results depend on. Paths are among
 * them (the content at a path is fingerprinted, so a moved workspace or model folder still resumes), and
 * so is which device of a kind ran it (another GPU of the same kind computes the same).
 */
const NOT_RESULT_CHANGING: string[][] = [
  ['createdAt'],
  ['model', 'path'],
  ['dataset', 'path'],
  ['model', 'engine', 'device'],
  ['loaded', 'device'],
  ['loaded', 'adapterName'],
  ['loaded', 'providerDecisions'],
  // Why auto chose the precision (memory numbers vary between runs); the precision itself is compared.
  ['loaded', 'precisionWhy'],
  // Where an intervention came from; its mask and biases are what the results depend on.
  ['intervention', 'description'],
  ['intervention', 'baselineRun'],
  // Batching changes no result of an unsharded run; a shard's batches are compared through its plan.
  ['batchSize'],
];

/**
 * The run folder's manifest: null when there is none, a RunFolderError when there is one that cannot be
 * trusted (not JSON, not an object, another format or version).
 */
export function readManifest(runDir: string): RunManifest | null {
  const file = path.join(runDir, MANIFEST);
  if (!entryExists(file)) return null;
  return checkManifest(readJson(file, { maxBytes: MAX_MANIFEST_BYTES, error: RunFolderError, within: runDir }), file);
}

const MAX_MANIFEST_BYTES = 16 << 20;

function checkManifest(v: unknown, file: string): RunManifest {
  if (!v || typeof v !== 'object' || Array.isArray(v))
    throw new RunFolderError(file, `not a run manifest (expected an object, found ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v})`);
  const m = v as Partial<RunManifest>;
  if (m.format !== 'moe-scope.run') throw new RunFolderError(file, `field "format" is ${JSON.stringify(m.format)}, expected "moe-scope.run"`);
  if (m.version !== 2)
    throw new RunFolderError(
      file,
      `field "version" is ${JSON.stringify(m.version)}; this version of MoE Scope writes and resumes version 2 (a run made by an older version cannot be resumed)`,
    );
  if (!m.model || typeof m.model !== 'object' || !m.model.files || typeof m.model.files !== 'object')
    throw new RunFolderError(file, `field "model.files" (the model fingerprint) is missing`);
  return m as RunManifest;
}

/** Differences that make a resume meaningless; empty when the run can continue. */
export function manifestMismatch(old: RunManifest, now: RunManifest): string[] {
  const recorded = old.loaded?.precision !== undefined || now.loaded?.precision !== undefined;
  const strip = (m: RunManifest) => {
    const copy = JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
    // Runs from before precisions were selectable computed at their dtype's precision: the same run.
    const loaded = copy.loaded as Record<string, unknown> | undefined;
    if (recorded && loaded && loaded.precision === undefined && PRECISION_OF_DTYPE[String(loaded.dtype)])
      loaded.precision = PRECISION_OF_DTYPE[String(loaded.dtype)];
    for (const at of NOT_RESULT_CHANGING) {
      let parent: unknown = copy;
      for (const key of at.slice(0, -1)) parent = parent && typeof parent === 'object' ? (parent as Record<string, unknown>)[key] : undefined;
      if (parent && typeof parent === 'object') delete (parent as Record<string, unknown>)[at[at.length - 1]];
    }
    return copy;
  };
  const [a, b] = [strip(old), strip(now)];
  const precisions = [a, b].map((m) => (m.loaded as Record<string, unknown> | undefined)?.precision);
  const diffs = jsonDifferences(a, b);
  if (recorded && precisions[0] !== precisions[1]) {
    // Said first and in words: results at two precisions are never one run.
    return [
      `weight precision (${String(precisions[0])} vs ${String(precisions[1])}; a run is never resumed or merged across precisions)`,
      ...diffs.filter((d) => !/precision/.test(d)),
    ];
  }
  return diffs;
}

const PRECISION_OF_DTYPE: Record<string, WeightPrecision> = { float32: 'fp32', float16: 'fp16', bfloat16: 'bf16' };

/** The run's weight precision as its manifest records it (nothing for runs from before it was recorded). */
export function recordedPrecision(m: RunManifest): { precision?: WeightPrecision } {
  const p = m.loaded?.precision;
  return typeof p === 'string' && p in { fp32: 1, fp16: 1, bf16: 1, int8: 1, int4: 1 } ? { precision: p as WeightPrecision } : {};
}

/** Writes `file` whole (a temporary file renamed over it), never through a symbolic link, inside `root` (default: its folder). */
export function writeJsonAtomic(file: string, value: unknown, root = path.dirname(file)): void {
  writeFileInside(root, file, JSON.stringify(value, null, 2) + '\n', RunFolderError);
}

/** Reads and checks summary.json (size first, then every bound); null when there is none. */
export function readSummary(runDir: string): RunSummary | null {
  const file = path.join(runDir, SUMMARY);
  if (!entryExists(file)) return null;
  return checkSummary(readJson(file, { maxBytes: MAX_SUMMARY_BYTES, error: SummaryError, within: runDir }), file);
}

/** readSummary without blocking the thread (the editor host reads workspace files this way). */
export async function readSummaryAsync(runDir: string): Promise<RunSummary | null> {
  const file = path.join(runDir, SUMMARY);
  try {
    await fs.promises.lstat(file);
  } catch {
    return null;
  }
  return checkSummary(await readJsonAsync(file, { maxBytes: MAX_SUMMARY_BYTES, error: SummaryError, within: runDir }), file);
}

/**
 * The newest run under any of `roots` that has a readable, sound summary; reads summaries only until it
 * finds one, asynchronously. Unsound ones are passed over and reported through `onSkip`.
 */
export async function newestRunSummary(roots: string[], onSkip: (message: string) => void = () => {}): Promise<{ dir: string; summary: RunSummary } | null> {
  const dirs: { dir: string; mtime: number }[] = [];
  for (const r of roots) {
    let names: string[];
    try {
      names = await fs.promises.readdir(r);
    } catch {
      continue;
    }
    for (const name of names.slice(0, 10_000)) {
      const dir = path.join(r, name);
      try {
        dirs.push({ dir, mtime: (await fs.promises.stat(path.join(dir, SUMMARY))).mtimeMs });
      } catch {
        // no summary yet
      }
    }
  }
  dirs.sort((a, b) => b.mtime - a.mtime);
  for (const { dir } of dirs) {
    try {
      const summary = await readSummaryAsync(dir);
      if (summary) return { dir, summary };
    } catch (e) {
      onSkip((e as Error).message); // a half-written or foreign file: try the next run
    }
  }
  return null;
}

/** Run folders under `root` (e.g. <workspace>/.moe-scope/runs), newest first. */
export async function listRuns(root: string): Promise<{ dir: string; manifest: RunManifest | null; summary: RunSummary | null; mtime: number }[]> {
  let names: string[];
  try {
    names = await fs.promises.readdir(root);
  } catch {
    return [];
  }
  const runs: { dir: string; manifest: RunManifest | null; summary: RunSummary | null; mtime: number }[] = [];
  for (const name of names.slice(0, 10_000)) {
    const dir = path.join(root, name);
    let mtime: number;
    try {
      const st = await fs.promises.stat(dir);
      if (!st.isDirectory()) continue;
      await fs.promises.access(path.join(dir, MANIFEST));
      mtime = st.mtimeMs;
    } catch {
      continue;
    }
    // Unreadable files are shown without details; a resume or the summary view reports the problem.
    const summary = await readSummaryAsync(dir).catch(() => null);
    const manifest = await readJsonAsync(path.join(dir, MANIFEST), { maxBytes: MAX_MANIFEST_BYTES, error: RunFolderError, within: dir })
      .then((v) => checkManifest(v, path.join(dir, MANIFEST)))
      .catch(() => null);
    runs.push({ dir, manifest, summary, mtime });
  }
  return runs.sort((a, b) => b.mtime - a.mtime);
}

/**
 * Every recorded question of a run, read-only (a torn last line left by a killed run is ignored, not
 * cut off): what comparisons need. Throws RunFolderError naming the file and line of a bad record.
 */
export function readQuestionResults(runDir: string): QuestionResult[] {
  const file = path.join(runDir, RECORDS);
  if (!entryExists(file)) throw new RunFolderError(file, `no records; is ${runDir} an evaluation run folder?`);
  const text = readRegularText(file, { maxBytes: MAX_RECORDS_BYTES, within: runDir, error: RunFolderError });
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  const out: QuestionResult[] = [];
  const seen = new Map<unknown, number>();
  complete.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let rec: BatchRecord;
    try {
      rec = JSON.parse(line) as BatchRecord;
    } catch (e) {
      throw new RunFolderError(file, `not a valid record line (${(e as Error).message})`, i + 1);
    }
    if (!rec || !Array.isArray(rec.questions)) throw new RunFolderError(file, 'field "questions" is missing or not a list', i + 1);
    for (const q of rec.questions) {
      // A repeated line would count its questions twice in every paired statistic.
      if (seen.has(q?.id)) throw new RunFolderError(file, `question ${JSON.stringify(q?.id)} is recorded again (first on line ${seen.get(q?.id)})`, i + 1);
      seen.set(q?.id, i + 1);
    }
    out.push(...rec.questions);
  });
  return out;
}
