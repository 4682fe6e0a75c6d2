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
import * as crypto from 'node:crypto';
import { loadDataset } from '../mmlu/load';
import { buildPrompt } from '../mmlu/prompt';
import { categoryOf } from '../mmlu/categories';
import type { MmluDataset, MmluQuestion } from '../mmlu/types';
import { addRecord, createAccumulator, encodeDelta, mergeInto, summarizeAccumulator, type RunAccumulator } from '../analysis/accumulator';
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
  type TokenScope,
  type TokenSpan,
} from '../shared/protocol';
import {
  MANIFEST,
  RECORDS,
  REJECTS,
  SUMMARY,
  RecordWriter,
  RunFolderError,
  manifestMismatch,
  readManifest,
  readRecords,
  writeJsonAtomic,
  type BatchRecord,
  type QuestionResult,
  type RunManifest,
} from './runFolder';
import { InputError } from '../shared/inputError';
import { acquireRunLock, describeHolder, type RunLock } from './runLock';
import { modelFingerprint } from './fingerprint';
import { weightScoresOf, withWeightScores } from './weightScores';
import { PARTITION_RULE, partitionBatches, shardLabel, type ShardSpec } from './shard';

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
  onLog?: (message: string) => void;
}

export interface EvalOutcome {
  summary: RunSummary;
  cancelled: boolean;
  resumedQuestions: number;
  runDir: string;
}

/** One question ready to score. */
interface PlannedQuestion {
  question: MmluQuestion & { answer: 0 | 1 | 2 | 3 };
  ids: number[];
  tokens: TokenSpan[];
  questionTokens: [number, number];
  shotsUsed: number;
}

interface PrefixGroup {
  key: string;
  subject: string;
  prefixIds: number[];
  questions: PlannedQuestion[];
}

export interface EvalPlan {
  groups: PrefixGroup[];
  skipped: { id: string; reason: string }[];
  /** Tokens of every full prompt (what a run without prefix reuse computes, padding aside). */
  promptTokens: number;
  /** Tokens a run with prefix reuse computes: each group's prefix once plus every question's suffix. */
  reusedTokens: number;
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

/**
 * A question longer than this many characters per context token is rejected before tokenization. Real
 * tokenizers average a few characters per token; 32 leaves a wide margin yet bounds the work.
 */
const MAX_CHARS_PER_TOKEN = 32;

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

/** Tokenises every prompt and groups questions by their shared prefix. */
export async function planEvaluation(
  backend: InferenceBackend,
  model: Pick<ModelInfo, 'maxPositions'>,
  questions: MmluQuestion[],
  dev: MmluQuestion[],
  shots: number,
  signal?: AbortSignal,
): Promise<EvalPlan> {
  const plan: EvalPlan = { groups: [], skipped: [], promptTokens: 0, reusedTokens: 0 };
  const bySubject = new Map<string, MmluQuestion[]>();
  for (const q of questions) {
    if (q.answer === null) {
      plan.skipped.push({ id: q.id, reason: 'no gold answer' });
      continue;
    }
    const chars = q.question.length + q.choices.reduce((a, c) => a + c.length, 0);
    if (chars > model.maxPositions * MAX_CHARS_PER_TOKEN) {
      // Rejected unseen: tokenizing megabytes only to learn they cannot fit costs minutes and memory.
      plan.skipped.push({ id: q.id, reason: `${chars} characters (${q.source.file}:${q.source.line}) cannot fit the context of ${model.maxPositions} tokens` });
      continue;
    }
    bySubject.set(q.subject, [...(bySubject.get(q.subject) ?? []), q]);
  }
  for (const [subject, qs] of [...bySubject.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (signal?.aborted) throw new EngineFailure('cancelled', 'the evaluation was cancelled');
    // A dev question too long for any prompt would make every prompt of its subject huge to tokenize.
    const shotPool = dev.filter(
      (d) => d.subject === subject && d.question.length + d.choices.reduce((a, c) => a + c.length, 0) <= model.maxPositions * MAX_CHARS_PER_TOKEN,
    );
    // Every prompt first gets all its shots; one that exceeds the model's context loses shots from the
    // last until it fits (as the original MMLU script does), and then shares a prefix with fewer shots.
    let pending = qs.map((q) => ({ q, shots: Math.min(shots, shotPool.length) }));
    const fitted: { q: MmluQuestion; built: ReturnType<typeof buildPrompt>; ids: number[]; tokens: TokenSpan[] }[] = [];
    while (pending.length) {
      const built = pending.map((p) => buildPrompt(p.q, shotPool, p.shots));
      const enc = await backend.call('tokenize', { texts: built.map((b) => b.text) }, signal);
      const retry: typeof pending = [];
      pending.forEach((p, i) => {
        if (enc[i].ids.length <= model.maxPositions) fitted.push({ q: p.q, built: built[i], ids: enc[i].ids, tokens: enc[i].tokens });
        else if (built[i].shotsUsed > 0) retry.push({ q: p.q, shots: built[i].shotsUsed - 1 });
        else plan.skipped.push({ id: p.q.id, reason: `${enc[i].ids.length} tokens exceed the context of ${model.maxPositions} even without shots` });
      });
      pending = retry;
    }
    const groups = new Map<string, typeof fitted>();
    for (const f of fitted) groups.set(f.built.prefix, [...(groups.get(f.built.prefix) ?? []), f]);
    for (const [prefixText, items] of groups) {
      const [prefixEnc] = await backend.call('tokenize', { texts: [prefixText] }, signal);
      // The prefix alone may tokenize differently at its end than inside a prompt ("\n\n" + question),
      // so the shared part is the longest common run of ids, never more than any prompt minus its last token.
      let common = prefixEnc.ids.length;
      for (const f of items) common = Math.min(common, commonPrefix(prefixEnc.ids, f.ids), f.ids.length - 1);
      const planned: PlannedQuestion[] = items.map((f) => ({
        question: f.q as PlannedQuestion['question'],
        ids: f.ids,
        tokens: f.tokens,
        questionTokens: tokenRange(f.tokens, f.built.questionRange),
        shotsUsed: f.built.shotsUsed,
      }));
      const prefix = items[0].ids.slice(0, common);
      plan.groups.push({ key: `${subject}:${sha(prefix.join(','))}`, subject, prefixIds: prefix, questions: planned });
      plan.promptTokens += planned.reduce((a, p) => a + p.ids.length, 0);
      plan.reusedTokens += common + planned.reduce((a, p) => a + p.ids.length - common, 0);
    }
  }
  return plan;
}

export async function runEvaluation(backend: InferenceBackend, opts: EvalOptions, hooks: EvalHooks = {}): Promise<EvalOutcome> {
  const log = hooks.onLog ?? (() => {});
  const signal = hooks.signal;
  const t0 = Date.now();
  // The lock comes first, so a second writer is refused before it spends time loading anything.
  fs.mkdirSync(opts.runDir, { recursive: true });
  const lock = acquireRunLock(opts.runDir);
  try {
    const model = await backend.call('load', { modelPath: opts.modelPath, options: opts.load }, signal);
    if (model.providerNote) log(model.providerNote);
    log(`model: ${model.path} (${model.family}, ${model.numLayers} layers x ${model.numExperts} experts, top-${model.topK}, ${model.executionProvider})`);
    if (model.demo) log(`note: ${model.demo.note}`);
    if (opts.intervention && !isEmptyIntervention(opts.intervention)) {
      validateIntervention(opts.intervention, model, 'router intervention');
      log(`router intervention: ${describeIntervention(opts.intervention, model.numLayers)}`);
    }
    const { dataset, questions, dev } = await selectQuestions(opts.dataPath, opts.split, opts.subjects, opts.limitPerSubject ?? 0, log);
    if (opts.shots > 0 && dev.length === 0) log(`no dev split found next to ${opts.dataPath}: running 0-shot`);
    return await evaluateLocked(backend, opts, hooks, { model, dataset, questions, dev, t0, lock });
  } finally {
    lock.release();
  }
}

/** The part of a run that reads and writes the run folder: only ever entered holding its lock. */
async function evaluateLocked(
  backend: InferenceBackend,
  opts: EvalOptions,
  hooks: EvalHooks,
  ctx: { model: ModelInfo; dataset: MmluDataset; questions: MmluQuestion[]; dev: MmluQuestion[]; t0: number; lock: RunLock },
): Promise<EvalOutcome> {
  const { model, dataset, questions, dev, t0, lock } = ctx;
  const intervention = isEmptyIntervention(opts.intervention) ? undefined : normalizeIntervention(opts.intervention!);
  const log = hooks.onLog ?? (() => {});
  const signal = hooks.signal;
  if (lock.tookOverFrom) log(`took over the lock left by ${describeHolder(lock.tookOverFrom)}, which is no longer running`);
  const { path: _path, loadMs: _loadMs, providerNote: _note, demo: _demo, ...engineFacts } = model;
  const manifest: RunManifest = {
    format: 'moe-scope.run',
    version: 2,
    createdAt: new Date().toISOString(),
    model: {
      path: model.path,
      family: model.family,
      numLayers: model.numLayers,
      numExperts: model.numExperts,
      topK: model.topK,
      configSha256: sha(fs.readFileSync(path.join(model.path, 'config.json'), 'utf8')),
      demo: !!model.demo,
      files: await modelFingerprint(model.path, { cacheFile: opts.hashCacheFile, signal }),
      engine: { kind: model.engine ?? 'onnxruntime', device: model.device ?? model.executionProvider, dtype: model.dtype },
      answerScoring: model.answerScoring.method,
    },
    loaded: JSON.parse(JSON.stringify(engineFacts)) as Record<string, unknown>,
    dataset: { path: path.resolve(opts.dataPath), split: opts.split, fingerprint: dataset.fingerprint },
    shots: opts.shots,
    tokenScope: opts.tokenScope,
    subjects: opts.subjects && opts.subjects.length ? [...opts.subjects].sort() : null,
    limitPerSubject: opts.limitPerSubject ?? 0,
    totalQuestions: questions.length,
    batchSize: opts.batchSize,
    // Only when there is one, so that plain runs keep the manifest they had before interventions existed.
    ...(intervention ? { intervention } : {}),
  };
  // The batch plan comes before the manifest check: a shard's manifest names its batches.
  if (model.answerScoring.method === 'continuation')
    log(`answer letters are several tokens in this tokenizer: scoring each letter's full continuation (${ANSWER_SCORING_DEFINITIONS.continuation})`);
  // A letter of several tokens runs its tokens after the prompt: they must fit in the context too.
  const plan = await planEvaluation(
    backend,
    { maxPositions: model.maxPositions - answerExtraPositions(model.answerScoring) },
    questions,
    dev,
    opts.shots,
    signal,
  );
  for (const s of plan.skipped.slice(0, 50)) log(`skipped ${s.id}: ${s.reason}`);
  if (plan.skipped.length) log(`skipped ${plan.skipped.length} of ${questions.length} questions in all`);
  if (questions.length === plan.skipped.length) {
    throw new RunFolderError(
      opts.dataPath,
      `nothing to score: all ${questions.length} selected questions were skipped (first: ${plan.skipped[0]?.id}: ${plan.skipped[0]?.reason})`,
    );
  }
  const reusePrefix = opts.reusePrefix !== false;
  let batches = planBatches(plan, opts.batchSize, reusePrefix);
  if (opts.shard) {
    const owner = partitionBatches(
      batches.map((b) => ({ group: b.group.key, tokens: b.tokens })),
      opts.shard.count,
    );
    const all = batches;
    batches = all.filter((_, i) => owner[i] === opts.shard!.index);
    manifest.shard = {
      index: opts.shard.index,
      count: opts.shard.count,
      partition: PARTITION_RULE,
      batches: batches.map((b) => b.index),
      questionIds: batches.flatMap((b) => b.questions.map((q) => q.question.id)),
      planBatches: all.length,
      planQuestions: all.reduce((a, b) => a + b.questions.length, 0),
      planSha256: sha(all.map((b) => b.questions.map((q) => q.question.id).join(',')).join(';')),
    };
    log(
      `shard ${shardLabel(opts.shard)}: ${manifest.shard.questionIds.length} of ${manifest.shard.planQuestions} questions in ${batches.length} of ${all.length} batches`,
    );
  }
  const recordsFile = path.join(opts.runDir, RECORDS);
  const hasRecords = fs.existsSync(recordsFile) && fs.statSync(recordsFile).size > 0;
  let previous: RunManifest | null;
  try {
    previous = readManifest(opts.runDir);
  } catch (e) {
    if (!hasRecords)
      previous = null; // nothing recorded yet: a fresh manifest replaces the broken one
    else
      throw new RunFolderError(
        e instanceof InputError ? e.file : opts.runDir,
        `${e instanceof InputError ? e.problem : (e as Error).message}. Its records cannot be attributed to any model or options, so they are not resumed into: move ${opts.runDir} aside (or delete it) to start over`,
      );
  }
  if (previous) {
    const diffs = manifestMismatch(previous, manifest);
    if (diffs.length) {
      throw new RunFolderError(opts.runDir, `holds a run with a different ${diffs.join(', ')}; choose another run folder or delete this one to start over`);
    }
    manifest.createdAt = previous.createdAt;
  } else if (hasRecords) {
    throw new RunFolderError(
      recordsFile,
      `has records but ${path.join(opts.runDir, MANIFEST)} is missing, so nothing says which model and options produced them; ` +
        `they are not resumed into. Move ${opts.runDir} aside (or delete it) to start over`,
    );
  } else {
    writeJsonAtomic(path.join(opts.runDir, MANIFEST), manifest);
  }

  const acc = createAccumulator({ numLayers: model.numLayers, numExperts: model.numExperts, topK: model.topK }, opts.tokenScope);
  const recorded = readRecords(opts.runDir, acc, new Set(opts.shard ? manifest.shard!.questionIds : questions.map((q) => q.id)));
  if (recorded.truncatedBytes) log(`cut off a torn last record (${recorded.truncatedBytes} bytes) left by an interrupted run`);
  for (const r of recorded.rejected) log(`set aside damaged record at ${recordsFile}:${r.line} into ${REJECTS} (${r.reason}); its questions are scored again`);
  const total = batches.reduce((a, b) => a + b.questions.length, 0);
  if (recorded.done.size) log(`resuming: ${recorded.done.size} of ${total} questions already recorded`);
  const writer = new RecordWriter(opts.runDir);
  let done = recorded.done.size;
  let correct = recorded.questions.filter((q) => q.correct).length;
  const tokens = { ...recorded.tokens };
  let sessionDone = 0;
  let sessionTokens = 0;
  const sessionStart = Date.now();
  let cancelled = false;
  let lastSummaryAt = Date.now();
  const weightScores = opts.weightScores ? await weightScoresOf(backend, signal) : undefined;
  const summarize = (complete: boolean) =>
    withWeightScores(finishSummary(acc, manifest, model, complete, tokens, recorded.seconds + (Date.now() - t0) / 1000), weightScores);

  try {
    for (const planned of batches) {
      const group = planned.group;
      // Batches are whole on disk, so a resumed batch is all done or all to do (unless the batch size changed).
      const batch = planned.questions.filter((q) => !recorded.done.has(q.question.id));
      if (batch.length === 0) continue;
      if (signal?.aborted) throw new EngineFailure('cancelled', 'the evaluation was cancelled');
      const bt0 = Date.now();
      const P = reusePrefix ? group.prefixIds.length : 0;
      const items: ScoreItem[] = batch.map((q) => ({ key: q.question.id, ids: q.ids.slice(P) }));
      const res = await backend.call(
        'score',
        {
          prefix: P > 0 ? { key: group.key, ids: group.prefixIds } : null,
          items,
          routingPositions: routingPositionsFor(opts.tokenScope),
          intervention,
          ...(opts.expertOutputNorms !== false ? { expertOutputNorms: true } : {}),
        },
        signal,
      );
      const batchAcc = createAccumulator({ numLayers: model.numLayers, numExperts: model.numExperts, topK: model.topK }, opts.tokenScope);
      const results: QuestionResult[] = res.items.map((r, j) => {
        const q = batch[j];
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
        const K = r.routing.topK;
        const T = r.routing.numTokens;
        const answerExperts = Array.from({ length: r.routing.numLayers }, (_, l) =>
          Array.from(r.routing.topExperts.subarray((l * T + T - 1) * K, (l * T + T) * K)),
        );
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
      });
      const seconds = (Date.now() - bt0) / 1000;
      const batchTokens = {
        computed: res.computedTokens,
        padding: res.paddingTokens,
        prefixReused: res.prefixReused ? P * batch.length : Math.max(0, P * (batch.length - 1)),
      };
      const rec: BatchRecord = { batch: planned.index, questions: results, delta: JSON.parse(encodeDelta(batchAcc)), tokens: batchTokens, seconds };
      writer.append(rec);
      mergeInto(acc, batchAcc);
      // A live summary every few seconds lets the editor show a run while it is going.
      if (Date.now() - lastSummaryAt > 5000) {
        writeJsonAtomic(path.join(opts.runDir, SUMMARY), summarize(false));
        lastSummaryAt = Date.now();
      }
      tokens.computed += batchTokens.computed;
      tokens.padding += batchTokens.padding;
      tokens.prefixReused += batchTokens.prefixReused;
      done += results.length;
      sessionDone += results.length;
      sessionTokens += res.computedTokens;
      correct += results.filter((r) => r.correct).length;
      const elapsed = (Date.now() - sessionStart) / 1000;
      const qps = sessionDone / Math.max(elapsed, 1e-3);
      hooks.onProgress?.({
        done,
        total,
        resumed: recorded.done.size,
        correct,
        questionsPerSecond: qps,
        tokensPerSecond: sessionTokens / Math.max(elapsed, 1e-3),
        etaSeconds: qps > 0 ? (total - done) / qps : null,
        subject: group.subject,
      });
    }
  } catch (e) {
    if (e instanceof EngineFailure && e.code === 'cancelled') cancelled = true;
    else {
      writer.close();
      writeJsonAtomic(path.join(opts.runDir, SUMMARY), summarize(false));
      throw e;
    }
  }
  writer.close();
  const summary = summarize(!cancelled && done >= total);
  writeJsonAtomic(path.join(opts.runDir, SUMMARY), summary);
  return { summary, cancelled, resumedQuestions: recorded.done.size, runDir: opts.runDir };
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
    const sorted = [...group.questions].sort((a, b) => a.ids.length - b.ids.length);
    const P = reusePrefix ? group.prefixIds.length : 0;
    for (let i = 0; i < sorted.length; i += batchSize) {
      const questions = sorted.slice(i, i + batchSize);
      const tokens = (i === 0 ? P : 0) + questions.reduce((a, q) => a + q.ids.length - P, 0);
      out.push({ index: out.length, group, questions, tokens });
    }
  }
  return out;
}

export function finishSummary(
  acc: RunAccumulator,
  manifest: RunManifest,
  model: { path: string; family: string; numLayers: number; numExperts: number; topK: number; demo?: unknown; answerScoring: { method: AnswerScoringMethod } },
  complete: boolean,
  tokens: { computed: number; padding: number; prefixReused: number },
  elapsedSeconds: number,
): RunSummary {
  const analysis = summarizeAccumulator(acc, { categories: (s: string) => categoryOf(s) ?? undefined });
  return {
    version: 1,
    model: { path: model.path, family: model.family, numLayers: model.numLayers, numExperts: model.numExperts, topK: model.topK, demo: !!model.demo },
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
  const at = (v: ArrayLike<number>) => Array.from({ length: L }, (_, l) => Array.from({ length: K }, (_, s) => v[(l * T + T - 1) * K + s]!));
  return { answerWeights: at(r.routing.topWeights), ...(record.expertOutputNorms ? { answerNorms: at(record.expertOutputNorms) } : {}) };
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

function commonPrefix(a: number[], b: number[]): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Token indices [first, last+1) whose character spans overlap [start, end). */
function tokenRange(tokens: TokenSpan[], [start, end]: [number, number]): [number, number] {
  let first = tokens.findIndex((t) => t.end > start);
  if (first < 0) first = tokens.length;
  let last = first;
  while (last < tokens.length && tokens[last].start < end) last++;
  return [first, Math.max(first, last)];
}

function sha(s: string): string {
  return crypto.createHash('sha256').update(s).digest('hex').slice(0, 16);
}
