/**
 * The MMLU evaluation runner. Works against any InferenceBackend (the in-process engine for the command
 * line, the inference process for the editor), so the same code produces the same run folder either way.
 *
 * Plan: for each subject, the prompts of its questions share the header and the shots; their common
 * token prefix is scored once per subject (the engine keeps its keys and values) and every question
 * only pushes its own tokens. Questions are sorted by length within a prefix group and cut into batches,
 * so little padding is computed.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadDataset } from '../mmlu/load';
import { categoryOf } from '../mmlu/categories';
import type { MmluDataset, MmluQuestion } from '../mmlu/types';
import { addRecord, clearAccumulator, createAccumulator, mergeInto, toDelta, summarizeAccumulator, type RunAccumulator } from '../analysis/accumulator';
import { tokenScopeDefinition } from '../analysis/scope';
import { describeIntervention, isEmptyIntervention, normalizeIntervention, validateIntervention } from '../analysis/interventions';
import type { RoutingRecord } from '../analysis/types';
import {
  ANSWER_SCORING_DEFINITIONS,
  answerExtraPositions,
  EngineFailure,
  type AnswerScoringMethod,
  type InferenceBackend,
  type LoadOptions,
  type ModelInfo,
  type RouterIntervention,
  type RoutingPositions,
  type RunSummary,
  type ScoreItem,
  type ScoreResult,
  type ScoreItemResult,
  type TokenScope,
} from '../shared/protocol';
import {
  MANIFEST,
  RECORDS,
  REJECTS,
  SUMMARY,
  RecordWriter,
  RunFolderError,
  manifestMismatch,
  recordedPrecision,
  readManifest,
  readRecords,
  writeJsonAtomic,
  type BatchRecord,
  type QuestionResult,
  type RunManifest,
} from './runFolder';
import { InputError } from '../shared/inputError';
import { readRegularText } from '../shared/safeFiles';
import { isTrainedDemo } from '../shared/demoLabel';
import { acquireRunLock, describeHolder, type RunLock } from './runLock';
import { defaultHashCache, modelFingerprint } from './fingerprint';
import { planCacheFile, planCacheKey, readPlanCache, writePlanCache } from './planCache';
import { weightScoresOf, withWeightScores } from './weightScores';
import { PARTITION_RULE, partitionBatches, shardLabel, type ShardSpec } from './shard';
import { planEvaluation, promptIds, sha, type EvalPlan, type PlannedQuestion, type PrefixGroup } from './plan';

export { planEvaluation, planByWholePrompts, type EvalPlan } from './plan';

export interface EvalOptions {
  modelPath: string;
  load: LoadOptions;
  dataPath: string;
  split: string;
  shots: number;
  subjects?: string[];
  /** Questions per subject, first in file order; 0 = all. */
  limitPerSubject?: number;
  tokenScope: TokenScope;
  batchSize: number;
  runDir: string;
  /** Compute the shared few-shot prefix once per subject (default). Off only to measure what it saves. */
  reusePrefix?: boolean;
  /** Where per-file content hashes of model files are cached (default: the user cache folder). */
  hashCacheFile?: string;
  /** Compute only this shard's batches of the run (see ./shard.ts); merge the shards with mergeShards. */
  shard?: ShardSpec;
  /** Expert masking / router steering for every forward pass (recorded in the manifest and summary). */
  intervention?: RouterIntervention;
  /** Read and write the plan cache (default); off to measure planning or to plan from scratch. */
  planCache?: boolean;
  /** Measure the chosen experts' unweighted output norms (MAN / MSAN in the summary); default on. */
  expertOutputNorms?: boolean;
  /** Also store the weights-only criterion from the engine's weight analysis in the summary. */
  weightScores?: boolean;
}

export interface EvalProgress {
  done: number;
  total: number;
  /** Done in earlier sessions of this run folder (resumed). */
  resumed: number;
  correct: number;
  questionsPerSecond: number;
  tokensPerSecond: number;
  etaSeconds: number | null;
  subject: string;
}

export interface EvalHooks {
  signal?: AbortSignal;
  onProgress?: (p: EvalProgress) => void;
  /** Seconds spent in each stage of the run (benchmarks): called once per stage, the batch loop's parts at its end. */
  onStage?: (stage: EvalStage, seconds: number) => void;
  onLog?: (message: string) => void;
}

export type EvalStage = 'load' | 'dataset' | 'manifest' | 'plan' | 'resume' | 'score calls' | 'accumulate' | 'record writes' | 'summary';

/** Reports the time since the previous lap as the named stage. */
class StageClock {
  private last = performance.now();
  constructor(private readonly report: EvalHooks['onStage']) {}
  lap(stage: EvalStage): void {
    const now = performance.now();
    this.report?.(stage, (now - this.last) / 1000);
    this.last = now;
  }
  /** Reports stages measured elsewhere that together took the time since the previous lap. */
  split(stages: Partial<Record<EvalStage, number>>): void {
    for (const [stage, seconds] of Object.entries(stages)) this.report?.(stage as EvalStage, seconds);
    this.last = performance.now();
  }
}

export interface EvalOutcome {
  summary: RunSummary;
  cancelled: boolean;
  resumedQuestions: number;
  runDir: string;
}

const progressLine = (p: EvalProgress) =>
  `${p.done}/${p.total} questions  ${p.questionsPerSecond.toFixed(2)} q/s  ${p.tokensPerSecond.toFixed(0)} tok/s  ` +
  `ETA ${p.etaSeconds === null ? '?' : formatSeconds(p.etaSeconds)}  accuracy ${p.done ? ((100 * p.correct) / p.done).toFixed(1) : '-'}%  [${p.subject}]`;
export { progressLine };

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.round(s % 60);
  return h ? `${h}h${String(m).padStart(2, '0')}m` : m ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** Loads the evaluated split and the dev split (the shot pool) and applies the subject filter and limit. */
export async function selectQuestions(
  dataPath: string,
  split: string,
  subjects: string[] | undefined,
  limitPerSubject: number,
  log: (m: string) => void,
): Promise<{ dataset: MmluDataset; questions: MmluQuestion[]; dev: MmluQuestion[] }> {
  const dataset = await loadDataset(dataPath, { split });
  for (const issue of dataset.issues.slice(0, 20)) log(`skipped row: ${issue.file}:${issue.line}: ${issue.reason}`);
  if (dataset.issues.length > 20) log(`... and ${dataset.issues.length - 20} more malformed rows`);
  let dev: MmluQuestion[] = [];
  if (split !== 'dev') {
    try {
      dev = (await loadDataset(dataPath, { split: 'dev' })).questions.filter((q) => q.split === 'dev');
    } catch {
      dev = [];
    }
  }
  let questions = dataset.questions.filter((q) => q.split === split);
  if (questions.length === 0)
    throw new RunFolderError(dataPath, `no questions of split "${split}" (found ${dataset.questions.length} questions in other splits)`);
  if (subjects && subjects.length) {
    const known = new Set(questions.map((q) => q.subject));
    const unknown = subjects.filter((s) => !known.has(s));
    if (unknown.length) throw new RunFolderError(dataPath, `unknown subject(s) ${unknown.join(', ')}; the data has ${[...known].sort().join(', ')}`);
    questions = questions.filter((q) => subjects.includes(q.subject));
  }
  if (limitPerSubject > 0) {
    const seen = new Map<string, number>();
    questions = questions.filter((q) => {
      const n = seen.get(q.subject) ?? 0;
      seen.set(q.subject, n + 1);
      return n < limitPerSubject;
    });
  }
  return { dataset, questions, dev };
}

export async function runEvaluation(backend: InferenceBackend, opts: EvalOptions, hooks: EvalHooks = {}): Promise<EvalOutcome> {
  const log = hooks.onLog ?? (() => {});
  const signal = hooks.signal;
  const t0 = Date.now();
  const clock = new StageClock(hooks.onStage);
  // The lock comes first, so a second writer is refused before it spends time loading anything.
  fs.mkdirSync(opts.runDir, { recursive: true });
  const lock = acquireRunLock(opts.runDir);
  try {
    // The data first: a bad --data or subject is reported before minutes of model loading and its log lines.
    const { dataset, questions, dev } = await selectQuestions(opts.dataPath, opts.split, opts.subjects, opts.limitPerSubject ?? 0, log);
    const model = await backend.call('load', { modelPath: opts.modelPath, options: opts.load }, signal);
    if (model.providerNote) log(model.providerNote);
    log(`model: ${model.path} (${model.family}, ${model.numLayers} layers x ${model.numExperts} experts, top-${model.topK}, ${model.executionProvider})`);
    if (model.demo) log(`note: ${model.demo.note}`);
    clock.lap('load');
    if (opts.intervention && !isEmptyIntervention(opts.intervention)) {
      validateIntervention(opts.intervention, model, 'router intervention');
      log(`router intervention: ${describeIntervention(opts.intervention, model.numLayers)}`);
    }
    if (opts.shots > 0 && dev.length === 0) log(`no dev split found next to ${opts.dataPath}: running 0-shot`);
    clock.lap('dataset');
    return await evaluateLocked(backend, opts, hooks, { model, dataset, questions, dev, t0, lock, clock });
  } finally {
    lock.release();
  }
}

/** How long a written record may wait for its fsync (see RecordWriter). */
const RECORD_SYNC_MS = 1000;

/** What every step of a locked run reads: the options, the loaded model and the hooks. */
interface RunContext {
  backend: InferenceBackend;
  opts: EvalOptions;
  model: ModelInfo;
  intervention: RouterIntervention | undefined;
  log: (message: string) => void;
  signal: AbortSignal | undefined;
}

/**
 * The part of a run that reads and writes the run folder: only ever entered holding its lock. A sequence
 * of steps: manifest, plan, shard, resume, records, batch loop (with progress), summary.
 */
async function evaluateLocked(
  backend: InferenceBackend,
  opts: EvalOptions,
  hooks: EvalHooks,
  ctx: { model: ModelInfo; dataset: MmluDataset; questions: MmluQuestion[]; dev: MmluQuestion[]; t0: number; lock: RunLock; clock: StageClock },
): Promise<EvalOutcome> {
  const { model, dataset, questions, dev, t0, lock, clock } = ctx;
  const run: RunContext = {
    backend,
    opts,
    model,
    intervention: isEmptyIntervention(opts.intervention) ? undefined : normalizeIntervention(opts.intervention!),
    log: hooks.onLog ?? (() => {}),
    signal: hooks.signal,
  };
  if (lock.tookOverFrom) run.log(`took over the lock left by ${describeHolder(lock.tookOverFrom)}, which is no longer running`);
  const manifest = await buildManifest(run, dataset, questions.length);
  clock.lap('manifest');
  // The batch plan comes before the manifest check: a shard's manifest names its batches.
  const plan = await planRun(run, manifest, questions, dev);
  clock.lap('plan');
  const batches = selectShardBatches(run, planBatches(plan, opts.batchSize, opts.reusePrefix !== false), manifest);
  reconcileManifest(opts.runDir, manifest);
  const resumed = resumeRecords(run, manifest, questions);
  const progress = new ProgressTracker(
    batches.reduce((a, b) => a + b.questions.length, 0),
    resumed.recorded,
    hooks.onProgress,
  );
  if (resumed.recorded.done.size) run.log(`resuming: ${resumed.recorded.done.size} of ${progress.total} questions already recorded`);
  clock.lap('resume');
  const weightScores = opts.weightScores ? await weightScoresOf(backend, run.signal) : undefined;
  const summarize = (complete: boolean) =>
    withWeightScores(finishSummary(resumed.acc, manifest, model, complete, progress.tokens, resumed.recorded.seconds + (Date.now() - t0) / 1000), weightScores);
  const loop = { score: 0, write: 0 };
  const loopStart = performance.now();
  const cancelled = await runBatches(run, batches, resumed, progress, summarize, loop);
  // The loop's own work (results, routing statistics, deltas, progress) is what the score calls and writes leave.
  clock.split({ 'score calls': loop.score, 'record writes': loop.write, accumulate: (performance.now() - loopStart) / 1000 - loop.score - loop.write });
  const summary = summarize(!cancelled && progress.done >= progress.total);
  writeJsonAtomic(path.join(opts.runDir, SUMMARY), summary);
  clock.lap('summary');
  return { summary, cancelled, resumedQuestions: resumed.recorded.done.size, runDir: opts.runDir };
}

/** Step 1: the manifest of this run: what its results depend on (model content, data, options). */
async function buildManifest(run: RunContext, dataset: MmluDataset, totalQuestions: number): Promise<RunManifest> {
  const { opts, model, intervention } = run;
  const { path: _path, loadMs: _loadMs, providerNote: _note, demo: _demo, ...engineFacts } = model;
  return {
    format: 'moe-scope.run',
    version: 2,
    createdAt: new Date().toISOString(),
    model: {
      path: model.path,
      family: model.family,
      numLayers: model.numLayers,
      numExperts: model.numExperts,
      topK: model.topK,
      configSha256: sha(readRegularText(path.join(model.path, 'config.json'), { maxBytes: 16 << 20 })),
      demo: !!model.demo,
      files: await modelFingerprint(model.path, { cacheFile: opts.hashCacheFile, signal: run.signal }),
      engine: { kind: model.engine ?? 'onnxruntime', device: model.device ?? model.executionProvider, dtype: model.dtype },
      answerScoring: model.answerScoring.method,
    },
    loaded: JSON.parse(JSON.stringify(engineFacts)) as Record<string, unknown>,
    dataset: { path: path.resolve(opts.dataPath), split: opts.split, fingerprint: dataset.fingerprint },
    shots: opts.shots,
    tokenScope: opts.tokenScope,
    subjects: opts.subjects && opts.subjects.length ? [...opts.subjects].sort() : null,
    limitPerSubject: opts.limitPerSubject ?? 0,
    totalQuestions,
    batchSize: opts.batchSize,
    // Only when there is one, so that plain runs keep the manifest they had before interventions existed.
    ...(intervention ? { intervention } : {}),
  };
}

/** Step 2: the plan of the whole run (every shard plans the same); refuses a run with nothing to score. */
async function planRun(run: RunContext, manifest: RunManifest, questions: MmluQuestion[], dev: MmluQuestion[]): Promise<EvalPlan> {
  const { opts, model, log } = run;
  if (model.answerScoring.method === 'continuation')
    log(`answer letters are several tokens in this tokenizer: scoring each letter's full continuation (${ANSWER_SCORING_DEFINITIONS.continuation})`);
  // A letter of several tokens runs its tokens after the prompt: they must fit in the context too.
  const maxPositions = model.maxPositions - answerExtraPositions(model.answerScoring);
  const plan = await cachedPlan(run, manifest, maxPositions, questions, () =>
    planEvaluation(run.backend, { maxPositions }, questions, dev, opts.shots, run.signal),
  );
  for (const s of plan.skipped.slice(0, 50)) log(`skipped ${s.id}: ${s.reason}`);
  if (plan.skipped.length) log(`skipped ${plan.skipped.length} of ${questions.length} questions in all`);
  if (questions.length === plan.skipped.length) {
    throw new RunFolderError(
      opts.dataPath,
      `nothing to score: all ${questions.length} selected questions were skipped (first: ${plan.skipped[0]?.id}: ${plan.skipped[0]?.reason})`,
    );
  }
  return plan;
}

/**
 * The plan from the plan cache next to the model cache when one was made for the same tokenizer, data and
 * options; otherwise made and written there for every later shard and re-run. A cache that cannot be read
 * or written costs a re-plan, never a result.
 */
async function cachedPlan(
  run: RunContext,
  manifest: RunManifest,
  maxPositions: number,
  questions: MmluQuestion[],
  make: () => Promise<EvalPlan>,
): Promise<EvalPlan> {
  const { opts, log } = run;
  if (opts.planCache === false) return make();
  const key = planCacheKey({
    modelFiles: manifest.model.files,
    engine: manifest.model.engine?.kind ?? 'onnxruntime',
    maxPositions,
    dataset: manifest.dataset.fingerprint,
    split: manifest.dataset.split,
    shots: manifest.shots,
    subjects: manifest.subjects,
    limitPerSubject: manifest.limitPerSubject,
  });
  const file = planCacheFile(opts.load.cacheDir ?? path.dirname(opts.hashCacheFile ?? defaultHashCache()), key);
  const cached = readPlanCache(file, key, questions);
  if ('plan' in cached) {
    log(`plan read from ${file}`);
    return cached.plan;
  }
  if (cached.problem !== 'absent') log(`plan cache ${file} not used: ${cached.problem}; planning again`);
  const t0 = Date.now();
  const plan = await make();
  const t = plan.tokenization;
  log(
    `planned in ${((Date.now() - t0) / 1000).toFixed(1)} s: ${t.tokenizedTokens} tokens tokenized, ${t.joined} prompts joined from prefix and item, ${t.wholePrompt} tokenized whole`,
  );
  try {
    writePlanCache(file, key, plan);
  } catch (e) {
    log(`could not write the plan cache ${file}: ${(e as Error).message}`);
  }
  return plan;
}

/** Step 3: this shard's batches of the run (all of them when unsharded), named in the manifest. */
function selectShardBatches(run: RunContext, all: PlannedBatch[], manifest: RunManifest): PlannedBatch[] {
  const shard = run.opts.shard;
  if (!shard) return all;
  const owner = partitionBatches(
    all.map((b) => ({ group: b.group.key, tokens: b.tokens })),
    shard.count,
  );
  const batches = all.filter((_, i) => owner[i] === shard.index);
  manifest.shard = {
    index: shard.index,
    count: shard.count,
    partition: PARTITION_RULE,
    batches: batches.map((b) => b.index),
    questionIds: batches.flatMap((b) => b.questions.map((q) => q.question.id)),
    planBatches: all.length,
    planQuestions: all.reduce((a, b) => a + b.questions.length, 0),
    planSha256: sha(all.map((b) => b.questions.map((q) => q.question.id).join(',')).join(';')),
  };
  run.log(
    `shard ${shardLabel(shard)}: ${manifest.shard.questionIds.length} of ${manifest.shard.planQuestions} questions in ${batches.length} of ${all.length} batches`,
  );
  return batches;
}

/**
 * Step 4: the run folder's manifest against this run's: a fresh folder gets this one; a folder of the
 * same experiment keeps its creation time; anything else is refused with the reason.
 */
function reconcileManifest(runDir: string, manifest: RunManifest): void {
  const recordsFile = path.join(runDir, RECORDS);
  const hasRecords = fs.existsSync(recordsFile) && fs.statSync(recordsFile).size > 0;
  let previous: RunManifest | null;
  try {
    previous = readManifest(runDir);
  } catch (e) {
    if (!hasRecords)
      previous = null; // nothing recorded yet: a fresh manifest replaces the broken one
    else
      throw new RunFolderError(
        e instanceof InputError ? e.file : runDir,
        `${e instanceof InputError ? e.problem : (e as Error).message}. Its records cannot be attributed to any model or options, so they are not resumed into: move ${runDir} aside (or delete it) to start over`,
      );
  }
  if (previous) {
    const diffs = manifestMismatch(previous, manifest);
    if (diffs.length) {
      throw new RunFolderError(runDir, `holds a run with a different ${diffs.join(', ')}; choose another run folder or delete this one to start over`);
    }
    manifest.createdAt = previous.createdAt;
  } else if (hasRecords) {
    throw new RunFolderError(
      recordsFile,
      `has records but ${path.join(runDir, MANIFEST)} is missing, so nothing says which model and options produced them; ` +
        `they are not resumed into. Move ${runDir} aside (or delete it) to start over`,
    );
  } else {
    writeJsonAtomic(path.join(runDir, MANIFEST), manifest);
  }
}

interface ResumedRun {
  /** The whole run's routing statistics so far (recorded batches merged in). */
  acc: RunAccumulator;
  recorded: ReturnType<typeof readRecords>;
}

/** Step 5: what earlier sessions recorded in this folder (damaged lines set aside), merged into a fresh accumulator. */
function resumeRecords(run: RunContext, manifest: RunManifest, questions: MmluQuestion[]): ResumedRun {
  const { opts, model, log } = run;
  const acc = createAccumulator({ numLayers: model.numLayers, numExperts: model.numExperts, topK: model.topK }, opts.tokenScope);
  const recorded = readRecords(opts.runDir, acc, new Set(opts.shard ? manifest.shard!.questionIds : questions.map((q) => q.id)));
  if (recorded.truncatedBytes) log(`cut off a torn last record (${recorded.truncatedBytes} bytes) left by an interrupted run`);
  const recordsFile = path.join(opts.runDir, RECORDS);
  for (const r of recorded.rejected) log(`set aside damaged record at ${recordsFile}:${r.line} into ${REJECTS} (${r.reason}); its questions are scored again`);
  return { acc, recorded };
}

/** Counts of the run so far and the progress events built from them. */
class ProgressTracker {
  done: number;
  correct: number;
  readonly tokens: { computed: number; padding: number; prefixReused: number };
  private sessionDone = 0;
  private sessionTokens = 0;
  private readonly sessionStart = Date.now();
  private readonly resumed: number;

  constructor(
    readonly total: number,
    recorded: ReturnType<typeof readRecords>,
    private readonly onProgress: EvalHooks['onProgress'],
  ) {
    this.done = recorded.done.size;
    this.resumed = recorded.done.size;
    this.correct = recorded.questions.filter((q) => q.correct).length;
    this.tokens = { ...recorded.tokens };
  }

  batchDone(rec: BatchRecord, subject: string): void {
    this.tokens.computed += rec.tokens.computed;
    this.tokens.padding += rec.tokens.padding;
    this.tokens.prefixReused += rec.tokens.prefixReused;
    this.done += rec.questions.length;
    this.sessionDone += rec.questions.length;
    this.sessionTokens += rec.tokens.computed;
    this.correct += rec.questions.filter((r) => r.correct).length;
    if (!this.onProgress) return;
    const elapsed = (Date.now() - this.sessionStart) / 1000;
    const qps = this.sessionDone / Math.max(elapsed, 1e-3);
    this.onProgress({
      done: this.done,
      total: this.total,
      resumed: this.resumed,
      correct: this.correct,
      questionsPerSecond: qps,
      tokensPerSecond: this.sessionTokens / Math.max(elapsed, 1e-3),
      etaSeconds: qps > 0 ? (this.total - this.done) / qps : null,
      subject,
    });
  }
}

/**
 * Step 6: scores every batch not yet recorded, appends its record and merges it. Returns whether the run
 * was cancelled; any other failure writes an incomplete summary and is thrown.
 */
async function runBatches(
  run: RunContext,
  batches: PlannedBatch[],
  resumed: ResumedRun,
  progress: ProgressTracker,
  summarize: (complete: boolean) => RunSummary,
  seconds: { score: number; write: number },
): Promise<boolean> {
  const { opts } = run;
  // Records are synced at most a second apart rather than one fsync per batch (which dominated a fast run).
  const writer = new RecordWriter(opts.runDir, RECORD_SYNC_MS);
  // One batch accumulator, emptied for each batch: allocating one per batch cost more than the batch's statistics.
  const batchAcc = createAccumulator({ numLayers: run.model.numLayers, numExperts: run.model.numExperts, topK: run.model.topK }, opts.tokenScope, {
    trackPairCells: true,
  });
  let lastSummaryAt = Date.now();
  // Batches are whole on disk, so a resumed batch is all done or all to do (unless the batch size changed).
  const todo = batches
    .map((planned) => ({ planned, batch: planned.questions.filter((q) => !resumed.recorded.done.has(q.question.id)) }))
    .filter((b) => b.batch.length > 0);
  // An engine that runs requests one at a time in arrival order (an engine process) gets the next batch
  // before this one is recorded, so it computes while the host records; the engine sees the same sequence.
  const ahead = run.backend.runsInArrivalOrder === true;
  let next: Promise<Scored> | undefined;
  try {
    for (let i = 0; i < todo.length; i++) {
      if (run.signal?.aborted) throw new EngineFailure('cancelled', 'the evaluation was cancelled');
      const { planned, batch } = todo[i]!;
      const current = next ?? requestScore(run, planned, batch);
      next = undefined;
      if (ahead && i + 1 < todo.length) {
        next = requestScore(run, todo[i + 1]!.planned, todo[i + 1]!.batch);
        // Awaited on the next turn; until then a failure (or the cancel of a failed run) is not unhandled.
        next.catch(() => {});
      }
      const s0 = performance.now();
      const scored = await current;
      seconds.score += (performance.now() - s0) / 1000;
      const rec = batchRecord(planned, batch, scored, batchAcc);
      const w0 = performance.now();
      writer.append(rec);
      seconds.write += (performance.now() - w0) / 1000;
      mergeInto(resumed.acc, batchAcc);
      // A live summary every few seconds lets the editor show a run while it is going.
      if (Date.now() - lastSummaryAt > 5000) {
        writeJsonAtomic(path.join(opts.runDir, SUMMARY), summarize(false));
        lastSummaryAt = Date.now();
      }
      progress.batchDone(rec, planned.group.subject);
    }
  } catch (e) {
    if (e instanceof EngineFailure && e.code === 'cancelled') {
      writer.close();
      return true;
    }
    writer.close();
    writeJsonAtomic(path.join(opts.runDir, SUMMARY), summarize(false));
    throw e;
  }
  writer.close();
  return false;
}

interface Scored {
  res: ScoreResult;
  /** Prefix tokens the batch shares (0 without prefix reuse). */
  prefixTokens: number;
  /** When the request was sent (ms since the epoch). */
  sentAt: number;
}

/** One batch's score call. */
async function requestScore(run: RunContext, planned: PlannedBatch, batch: PlannedQuestion[]): Promise<Scored> {
  const { opts } = run;
  const group = planned.group;
  const sentAt = Date.now();
  const P = opts.reusePrefix !== false ? group.prefixIds.length : 0;
  const items: ScoreItem[] = batch.map((q) => ({ key: q.question.id, ids: promptIds(q, P) }));
  const res = await run.backend.call(
    'score',
    {
      prefix: P > 0 ? { key: group.key, ids: group.prefixIds } : null,
      items,
      routingPositions: routingPositionsFor(opts.tokenScope),
      intervention: run.intervention,
      ...(measuresExpertNorms(run) ? { expertOutputNorms: true } : {}),
    },
    run.signal,
  );
  return { res, prefixTokens: P, sentAt };
}

/** The batch's record (results, routing delta, tokens), its routing statistics left in batchAcc. */
function batchRecord(planned: PlannedBatch, batch: PlannedQuestion[], scored: Scored, batchAcc: RunAccumulator): BatchRecord {
  const { res, prefixTokens: P } = scored;
  clearAccumulator(batchAcc);
  const results: QuestionResult[] = res.items.map((r, j) => questionResult(batch[j], r, batchAcc));
  const batchSeconds = (Date.now() - scored.sentAt) / 1000;
  const tokens = {
    computed: res.computedTokens,
    padding: res.paddingTokens,
    prefixReused: res.prefixReused ? P * batch.length : Math.max(0, P * (batch.length - 1)),
  };
  return { batch: planned.index, questions: results, delta: toDelta(batchAcc), tokens, seconds: batchSeconds };
}

/**
 * MAN / MSAN need each chosen expert's float output: measured unless turned off, or unless the weights are
 * block-quantised (the ONNX Runtime engine's all-experts graph reads float weights; the summary then says
 * outputNormCount 0 and leaves MAN / MSAN empty rather than measuring them on other weights).
 */
function measuresExpertNorms(run: RunContext): boolean {
  return run.opts.expertOutputNorms !== false && run.model.precision !== 'int8' && run.model.precision !== 'int4';
}

/** One question's result, its routing added to the batch's statistics. */
function questionResult(q: PlannedQuestion, r: ScoreItemResult, batchAcc: RunAccumulator): QuestionResult {
  // The routing may start after the prompt's first token (routingPositions): shift the scope's positions.
  const shift = r.routingStart ?? 0;
  const within = (i: number) => Math.min(Math.max(i - shift, 0), r.routing.numTokens);
  const predicted = argmax(r.answerLogProbs);
  const ok = predicted === q.question.answer;
  const record: RoutingRecord = {
    questionId: q.question.id,
    subject: q.question.subject,
    correct: ok,
    numLayers: r.routing.numLayers,
    numExperts: r.routing.numExperts,
    topK: r.routing.topK,
    numTokens: r.routing.numTokens,
    topExperts: r.routing.topExperts,
    topWeights: r.routing.topWeights,
    entropy: r.routing.entropy,
    questionTokens: [within(q.questionTokens[0]), within(q.questionTokens[1])],
    answerToken: r.routing.numTokens - 1,
    ...(r.expertOutputNorms ? { expertOutputNorms: r.expertOutputNorms } : {}),
  };
  addRecord(batchAcc, record);
  const answerExperts = answerRows(r.routing.topExperts, r.routing.numLayers, r.routing.numTokens, r.routing.topK);
  return {
    id: q.question.id,
    subject: q.question.subject,
    gold: q.question.answer,
    predicted,
    correct: ok,
    logProbs: r.answerLogProbs,
    numTokens: r.promptTokens,
    shotsUsed: q.shotsUsed,
    answerExperts,
    ...answerSlots(r, record),
  };
}

/** One batch of the unsharded run, numbered in run order; what records.jsonl lines are made of. */
export interface PlannedBatch {
  index: number;
  group: PrefixGroup;
  questions: PlannedQuestion[];
  /** Tokens it computes in an unsharded run (the group's prefix counted on its first batch). */
  tokens: number;
}

/** Cuts each prefix group, sorted by prompt length, into batches: the one batching every run and shard uses. */
export function planBatches(plan: EvalPlan, batchSize: number, reusePrefix: boolean): PlannedBatch[] {
  const out: PlannedBatch[] = [];
  for (const group of plan.groups) {
    const sorted = [...group.questions].sort((a, b) => a.numTokens - b.numTokens);
    const P = reusePrefix ? group.prefixIds.length : 0;
    for (let i = 0; i < sorted.length; i += batchSize) {
      const questions = sorted.slice(i, i + batchSize);
      const tokens = (i === 0 ? P : 0) + questions.reduce((a, q) => a + q.numTokens - P, 0);
      out.push({ index: out.length, group, questions, tokens });
    }
  }
  return out;
}

export function finishSummary(
  acc: RunAccumulator,
  manifest: RunManifest,
  model: {
    path: string;
    family: string;
    numLayers: number;
    numExperts: number;
    topK: number;
    demo?: unknown;
    /** A merge passes what its shards' summaries said (their manifests record only demo: true). */
    demoTrained?: boolean;
    moeLayers?: number[];
    numDecoderLayers?: number;
    answerScoring: { method: AnswerScoringMethod };
  },
  complete: boolean,
  tokens: { computed: number; padding: number; prefixReused: number },
  elapsedSeconds: number,
): RunSummary {
  const analysis = summarizeAccumulator(acc, { categories: (s: string) => categoryOf(s) ?? undefined });
  return {
    version: 1,
    model: {
      path: model.path,
      family: model.family,
      numLayers: model.numLayers,
      numExperts: model.numExperts,
      topK: model.topK,
      demo: !!model.demo,
      ...(isTrainedDemo(model.demo) || model.demoTrained === true ? { demoTrained: true } : {}),
      ...(model.moeLayers ? { moeLayers: model.moeLayers.slice() } : {}),
      ...(model.numDecoderLayers ? { numDecoderLayers: model.numDecoderLayers } : {}),
      ...recordedPrecision(manifest),
    },
    dataset: manifest.dataset,
    shots: manifest.shots,
    answerScoring: model.answerScoring.method,
    complete,
    tokens: { computed: tokens.computed, padding: tokens.padding, prefixReusedTokens: tokens.prefixReused },
    elapsedSeconds,
    ...analysis,
    definitions: { ...analysis.definitions, answerScoring: ANSWER_SCORING_DEFINITIONS[model.answerScoring.method] },
    tokenScopeDefinition: analysis.tokenScopeDefinition ?? tokenScopeDefinition(manifest.tokenScope),
    ...(manifest.intervention ? { intervention: manifest.intervention } : {}),
  };
}

/** Per layer, the answer position's applied gate weights and (when measured) expert output norms, for the per-question record. */
function answerSlots(r: { routing: { numLayers: number; numTokens: number; topK: number; topWeights: Float32Array } }, record: RoutingRecord) {
  const { numLayers: L, numTokens: T, topK: K } = r.routing;
  return {
    answerWeights: answerRows(r.routing.topWeights, L, T, K),
    ...(record.expertOutputNorms ? { answerNorms: answerRows(record.expertOutputNorms, L, T, K) } : {}),
  };
}

/** Per layer, the K slots of the last position of a [layer][token][slot] array (loops: this runs for every question). */
function answerRows(v: ArrayLike<number>, L: number, T: number, K: number): number[][] {
  const rows = new Array<number[]>(L);
  for (let l = 0; l < L; l++) {
    const base = (l * T + T - 1) * K;
    const row = new Array<number>(K);
    for (let s = 0; s < K; s++) row[s] = v[base + s]!;
    rows[l] = row;
  }
  return rows;
}

/** The fewest positions whose routing the token scope reads: the engine transfers nothing more. */
export function routingPositionsFor(scope: TokenScope): RoutingPositions {
  return scope === 'answer' ? 'last' : scope === 'question' ? 'item' : 'all';
}

function argmax(v: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
  return best;
}
