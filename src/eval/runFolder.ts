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
import type { AnswerScoringMethod, EngineKind, ModelDType, RouterIntervention, RunSummary, TokenScope } from '../shared/protocol';
import { decodeDelta, mergeInto, type RunAccumulator } from '../analysis/accumulator';
import { jsonDifferences, type ModelFingerprint } from './fingerprint';
import { checkSummary, MAX_SUMMARY_BYTES, SummaryError } from './summaryCheck';
import { InputError } from '../shared/inputError';
import { readJson, readJsonAsync } from '../shared/readJson';

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

/** Why a parsed line cannot be a batch record, or null when it can. */
function recordProblem(rec: unknown, shape: { numLayers: number; numExperts: number; topK: number }): string | null {
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
  if (!fs.existsSync(file)) return state;
  const buf = fs.readFileSync(file);
  const lastNewline = buf.lastIndexOf(0x0a);
  const keep = lastNewline + 1;
  if (keep < buf.length) {
    fs.truncateSync(file, keep);
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
    const fd = fs.openSync(rejectsFile, 'a');
    try {
      fs.writeSync(fd, rejects.join('\n') + '\n');
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    const tmp = `${file}.tmp-${process.pid}`;
    const out = fs.openSync(tmp, 'w');
    try {
      fs.writeSync(out, kept.map((l) => l + '\n').join(''));
      fs.fsyncSync(out);
    } finally {
      fs.closeSync(out);
    }
    fs.renameSync(tmp, file);
  }
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
  if (!fs.existsSync(file)) return null;
  return checkManifest(readJson(file, { maxBytes: MAX_MANIFEST_BYTES, error: RunFolderError }), file);
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
  const strip = (m: RunManifest) => {
    const copy = JSON.parse(JSON.stringify(m)) as Record<string, unknown>;
    for (const at of NOT_RESULT_CHANGING) {
      let parent: unknown = copy;
      for (const key of at.slice(0, -1)) parent = parent && typeof parent === 'object' ? (parent as Record<string, unknown>)[key] : undefined;
      if (parent && typeof parent === 'object') delete (parent as Record<string, unknown>)[at[at.length - 1]];
    }
    return copy;
  };
  return jsonDifferences(strip(old), strip(now));
}

export function writeJsonAtomic(file: string, value: unknown): void {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

/** Reads and checks summary.json (size first, then every bound); null when there is none. */
export function readSummary(runDir: string): RunSummary | null {
  const file = path.join(runDir, SUMMARY);
  if (!fs.existsSync(file)) return null;
  return checkSummary(readJson(file, { maxBytes: MAX_SUMMARY_BYTES, error: SummaryError }), file);
}

/** readSummary without blocking the thread (the editor host reads workspace files this way). */
export async function readSummaryAsync(runDir: string): Promise<RunSummary | null> {
  const file = path.join(runDir, SUMMARY);
  try {
    await fs.promises.access(file);
  } catch {
    return null;
  }
  return checkSummary(await readJsonAsync(file, { maxBytes: MAX_SUMMARY_BYTES, error: SummaryError }), file);
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
    const manifest = await readJsonAsync(path.join(dir, MANIFEST), { maxBytes: MAX_MANIFEST_BYTES, error: RunFolderError })
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
  if (!fs.existsSync(file)) throw new RunFolderError(file, `no records; is ${runDir} an evaluation run folder?`);
  const text = fs.readFileSync(file, 'utf8');
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  const out: QuestionResult[] = [];
  complete.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let rec: BatchRecord;
    try {
      rec = JSON.parse(line) as BatchRecord;
    } catch (e) {
      throw new RunFolderError(file, `not a valid record line (${(e as Error).message})`, i + 1);
    }
    if (!rec || !Array.isArray(rec.questions)) throw new RunFolderError(file, 'field "questions" is missing or not a list', i + 1);
    out.push(...rec.questions);
  });
  return out;
}
