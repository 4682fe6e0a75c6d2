/**
 * `moe-scope merge`: shard folders of one run -> one run folder equal to the unsharded run's.
 *
 * Every shard computed whole batches of the unsharded batch plan and recorded them under their plan
 * numbers, so the merged records.jsonl is the shards' lines in batch order (byte for byte the lines the
 * shards wrote) and the summary is folded from them in that order, exactly as an unsharded run (or its
 * resume) folds its own records. What cannot be equal: elapsed seconds (the sum of the shards' own
 * times) and, when a cut split a subject, the prefix tokens a second shard had to compute again.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createAccumulator } from '../analysis/accumulator';
import {
  MANIFEST,
  MAX_RECORDS_BYTES,
  recordProblem,
  RECORDS,
  SUMMARY,
  RunFolderError,
  manifestMismatch,
  readManifest,
  readRecords,
  readSummary,
  writeJsonAtomic,
  type RunManifest,
} from './runFolder';
import { finishSummary } from './runner';
import { entryExists, readRegularText, writeFileInside } from '../shared/safeFiles';
import type { RunSummary } from '../shared/protocol';

export interface MergeOutcome {
  outDir: string;
  summary: RunSummary;
  shards: number;
  questions: number;
}

interface ShardFolder {
  dir: string;
  manifest: RunManifest & { shard: NonNullable<RunManifest['shard']> };
}

function loadShard(dir: string): ShardFolder {
  if (!fs.existsSync(dir)) throw new RunFolderError(dir, 'no such shard folder');
  const manifest = readManifest(dir);
  if (!manifest) throw new RunFolderError(path.join(dir, MANIFEST), `missing; ${dir} is not a run folder`);
  if (manifest.format !== 'moe-scope.run')
    throw new RunFolderError(path.join(dir, MANIFEST), `field "format" is ${JSON.stringify(manifest.format)}, not "moe-scope.run"`);
  if (!manifest.shard)
    throw new RunFolderError(path.join(dir, MANIFEST), `field "shard" is missing; ${dir} holds an unsharded run (made without --shard), not a shard`);
  return { dir, manifest: manifest as ShardFolder['manifest'] };
}

/** Checks that the folders are the complete, disjoint shards of one run; returns them in shard order. */
export function checkShards(dirs: string[]): ShardFolder[] {
  if (dirs.length === 0) throw new RunFolderError('merge', 'no shard folders given');
  const shards = dirs.map((d) => loadShard(path.resolve(d)));
  const first = shards[0];
  const label = (s: ShardFolder) => `shard ${s.manifest.shard.index}/${s.manifest.shard.count} (${s.dir})`;
  for (const s of shards.slice(1)) {
    // Everything that makes a run's results (model files, data fingerprint, options, engine, batch size and
    // the whole run's batch plan) must agree; which batches each shard holds may not. Paths may differ
    // between machines (the manifest comparison ignores them).
    const common = (m: ShardFolder['manifest']) => ({ ...m, shard: { ...m.shard, index: 0, batches: [], questionIds: [] } });
    const diffs = manifestMismatch(common(first.manifest), common(s.manifest));
    if (first.manifest.batchSize !== s.manifest.batchSize) diffs.push(`batch size (${first.manifest.batchSize} vs ${s.manifest.batchSize})`);
    if (diffs.length) throw new RunFolderError(s.dir, `${label(s)} belongs to a different run than ${label(first)}: different ${diffs.join(', ')}`);
  }
  const count = first.manifest.shard.count;
  const byIndex = new Map<number, ShardFolder>();
  for (const s of shards) {
    const other = byIndex.get(s.manifest.shard.index);
    if (other) throw new RunFolderError(s.dir, `overlapping shards: ${other.dir} and ${s.dir} are both shard ${s.manifest.shard.index}/${count}`);
    byIndex.set(s.manifest.shard.index, s);
  }
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !byIndex.has(i));
  if (missing.length)
    throw new RunFolderError(
      first.dir,
      `incomplete partition: shard${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i}/${count}`).join(', ')} missing (got ${[...byIndex.keys()]
        .sort((a, b) => a - b)
        .map((i) => `${i}/${count}`)
        .join(', ')})`,
    );
  const ordered = [...byIndex.keys()].sort((a, b) => a - b).map((i) => byIndex.get(i)!);
  // The manifests' own claims: every planned batch and question exactly once.
  const batchOwner = new Map<number, ShardFolder>();
  const questionOwner = new Map<string, ShardFolder>();
  for (const s of ordered) {
    for (const b of s.manifest.shard.batches) {
      const o = batchOwner.get(b);
      if (o) throw new RunFolderError(s.dir, `overlapping shards: batch ${b} is in ${label(o)} and ${label(s)}`);
      batchOwner.set(b, s);
    }
    for (const q of s.manifest.shard.questionIds) {
      const o = questionOwner.get(q);
      if (o) throw new RunFolderError(s.dir, `overlapping shards: question ${q} is in ${label(o)} and ${label(s)}`);
      questionOwner.set(q, s);
    }
  }
  const plan = first.manifest.shard;
  if (batchOwner.size !== plan.planBatches || questionOwner.size !== plan.planQuestions) {
    throw new RunFolderError(
      first.dir,
      `incomplete partition: the shards hold ${batchOwner.size} of ${plan.planBatches} batches and ${questionOwner.size} of ${plan.planQuestions} questions`,
    );
  }
  return ordered;
}

interface RecordLine {
  batch: number;
  text: string;
}

/** The shard's complete record lines, each checked as a resume would check it, so a bad line is named in its shard, before anything is written. */
function shardLines(s: ShardFolder): RecordLine[] {
  const file = path.join(s.dir, RECORDS);
  if (!entryExists(file)) return [];
  const text = readRegularText(file, { maxBytes: MAX_RECORDS_BYTES, within: s.dir, error: RunFolderError });
  // A torn last line is the batch a kill interrupted: not recorded, so the shard counts as incomplete.
  const complete = text.slice(0, text.lastIndexOf('\n') + 1);
  return complete
    .split('\n')
    .filter((l) => l.trim())
    .map((l, i) => {
      let rec: { batch?: unknown };
      try {
        rec = JSON.parse(l) as { batch?: unknown };
      } catch (e) {
        throw new RunFolderError(file, `not a valid record line (${(e as Error).message})`, i + 1);
      }
      if (typeof rec.batch !== 'number') throw new RunFolderError(file, 'field "batch" is missing or not a number', i + 1);
      const problem = recordProblem(rec, s.manifest.model);
      if (problem) throw new RunFolderError(file, problem, i + 1);
      return { batch: rec.batch, text: l };
    });
}

/** Writes the merged run folder `outDir` from the shard folders `dirs`. */
export function mergeShards(outDir: string, dirs: string[]): MergeOutcome {
  const shards = checkShards(dirs);
  const first = shards[0].manifest;
  const answerScoring = first.model.answerScoring;
  if (!answerScoring)
    throw new RunFolderError(
      path.join(shards[0].dir, MANIFEST),
      `field "model.answerScoring" is missing (a shard made by an older moe-scope); run the shards again`,
    );
  const lines: RecordLine[] = [];
  let elapsedSeconds = 0;
  let demoTrained = false;
  for (const s of shards) {
    const own = shardLines(s);
    const planned = new Set(s.manifest.shard.batches);
    const foreign = own.find((l) => !planned.has(l.batch));
    if (foreign) throw new RunFolderError(path.join(s.dir, RECORDS), `batch ${foreign.batch} is not one of this shard's batches`);
    const got = new Set(own.map((l) => l.batch));
    if (got.size !== own.length) throw new RunFolderError(path.join(s.dir, RECORDS), 'a batch is recorded twice');
    if (got.size !== planned.size) {
      throw new RunFolderError(
        s.dir,
        `shard ${s.manifest.shard.index}/${s.manifest.shard.count} in ${s.dir} is unfinished: ${got.size} of ${planned.size} batches recorded; run its eval again to finish it`,
      );
    }
    lines.push(...own);
    const summary = readSummary(s.dir);
    elapsedSeconds += summary?.elapsedSeconds ?? 0;
    // The manifest records only that the model is a demo checkpoint; the shards' summaries say which one.
    if (summary?.model.demoTrained === true) demoTrained = true;
  }
  lines.sort((a, b) => a.batch - b.batch);

  const out = path.resolve(outDir);
  if (entryExists(path.join(out, RECORDS)) || entryExists(path.join(out, MANIFEST))) {
    throw new RunFolderError(out, `already holds a run; merge writes a new run folder (delete it or choose another --out)`);
  }
  fs.mkdirSync(out, { recursive: true });
  const manifest: RunManifest = { ...first, createdAt: shards.map((s) => s.manifest.createdAt).sort()[0], mergedFrom: shards.map((s) => s.dir) };
  delete manifest.shard;
  // Records first under a temporary name, so a folder with a manifest always has all its records.
  writeFileInside(out, path.join(out, RECORDS), lines.map((l) => l.text + '\n').join(''), RunFolderError);
  writeJsonAtomic(path.join(out, MANIFEST), manifest);

  const acc = createAccumulator({ numLayers: first.model.numLayers, numExperts: first.model.numExperts, topK: first.model.topK }, first.tokenScope);
  const state = readRecords(out, acc);
  if (state.done.size !== first.shard!.planQuestions)
    throw new RunFolderError(out, `merged ${state.done.size} questions, expected ${first.shard!.planQuestions}`);
  // The decoder layer of each routing row is what the engine reported at load (manifest.loaded).
  const rows = {
    ...(Array.isArray(first.loaded?.moeLayers) ? { moeLayers: first.loaded.moeLayers as number[] } : {}),
    ...(typeof first.loaded?.numDecoderLayers === 'number' ? { numDecoderLayers: first.loaded.numDecoderLayers } : {}),
  };
  const summary = finishSummary(
    acc,
    manifest,
    { ...first.model, ...rows, ...(demoTrained ? { demoTrained } : {}), answerScoring: { method: answerScoring } },
    true,
    state.tokens,
    elapsedSeconds,
  );
  writeJsonAtomic(path.join(out, SUMMARY), summary);
  return { outDir: out, summary, shards: shards.length, questions: state.done.size };
}
