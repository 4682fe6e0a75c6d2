/**
 * An experiment: the baseline run's evaluation again (same model, data, split, shots, subjects, limit,
 * token scope) under a router intervention derived from the baseline's summary. Shared by
 * `moe-scope experiment`, the editor's "New experiment from this run" and sweeps.
 */
import * as path from 'node:path';
import { deriveIntervention, type ExperimentSpec } from '../analysis/interventions';
import { readManifest, readSummary, recordedPrecision, RunFolderError, type RunManifest } from './runFolder';
import type { EvalOptions } from './runner';
import { jsonDifferences, modelFingerprint } from './fingerprint';
import type { LoadOptions, PrecisionSetting, RouterIntervention, RunSummary } from '../shared/protocol';

export interface PreparedExperiment {
  baseline: { dir: string; manifest: RunManifest; summary: RunSummary };
  intervention: RouterIntervention;
  options: EvalOptions;
}

/**
 * The model files at the baseline's model path must be the ones the baseline ran on (its manifest's
 * fingerprint): an experiment on other weights compares an intervention with a different model.
 */
export async function checkBaselineWeights(baseline: { dir: string; manifest: RunManifest }, options: { hashCacheFile?: string } = {}): Promise<void> {
  const now = await modelFingerprint(baseline.manifest.model.path, { cacheFile: options.hashCacheFile });
  const diffs = jsonDifferences(baseline.manifest.model.files, now);
  if (diffs.length)
    throw new RunFolderError(
      path.join(baseline.dir, 'manifest.json'),
      `the model at ${baseline.manifest.model.path} is not the one this baseline ran on (different ${diffs.slice(0, 4).join(', ')}); evaluate the baseline again on these weights`,
    );
}

/**
 * An experiment's weight precision: its baseline's, because an intervention's effect is measured against
 * the baseline and results at two precisions are never one comparison. Asking for another one is refused;
 * auto (or nothing) takes the baseline's. A baseline from before precisions were recorded leaves the choice
 * to the request.
 */
export function experimentPrecision(requested: PrecisionSetting | undefined, baseline: { dir: string; manifest: RunManifest }): PrecisionSetting {
  const ran = recordedPrecision(baseline.manifest).precision;
  if (!ran) return requested ?? 'auto';
  if (requested === undefined || requested === 'auto' || requested === ran) return ran;
  throw new RunFolderError(
    path.join(baseline.dir, 'manifest.json'),
    `the baseline ran at precision ${ran} and precision ${requested} was asked for; an experiment runs at its baseline's precision, so ask for ${ran} or auto (--precision, setting moeScope.precision), or evaluate a baseline at ${requested} first`,
    'field "loaded.precision"',
  );
}

/** Reads the baseline run and derives the experiment; throws with the file and the problem. */
export function prepareExperiment(
  baselineDir: string,
  spec: ExperimentSpec,
  outDir: string,
  run: { load: LoadOptions; batchSize: number },
): PreparedExperiment {
  const dir = path.resolve(baselineDir);
  const manifest = readManifest(dir);
  if (!manifest) throw new RunFolderError(path.join(dir, 'manifest.json'), 'not found; --baseline must be an evaluation run folder');
  if (manifest.shard)
    throw new RunFolderError(
      path.join(dir, 'manifest.json'),
      `field "shard": ${dir} holds shard ${manifest.shard.index}/${manifest.shard.count} of a run, not a whole run; merge its shards (moe-scope merge) and use the merged folder as --baseline`,
    );
  const summary = readSummary(dir);
  if (!summary) throw new RunFolderError(path.join(dir, 'summary.json'), 'not found; finish the baseline run first');
  if (!summary.complete)
    throw new RunFolderError(
      path.join(dir, 'summary.json'),
      `the baseline run is not complete (${summary.questions} of ${manifest.totalQuestions} questions); resume it first`,
    );
  if (path.resolve(outDir) === dir) throw new RunFolderError(path.resolve(outDir), "the experiment's --out must differ from the baseline run folder");
  const precision = experimentPrecision(run.load.precision, { dir, manifest });
  const base = deriveIntervention(summary, spec, `run ${path.basename(dir)}`);
  // Interventions compose: an experiment on an experiment keeps the baseline's own intervention too.
  const intervention: RouterIntervention = manifest.intervention
    ? {
        mask: [...manifest.intervention.mask, ...base.mask],
        bias: [...manifest.intervention.bias, ...base.bias],
        description: `${manifest.intervention.description ?? 'baseline intervention'}; then ${base.description}`,
      }
    : base;
  intervention.baselineRun = dir;
  return {
    baseline: { dir, manifest, summary },
    intervention,
    options: {
      modelPath: manifest.model.path,
      load: { ...run.load, precision },
      dataPath: manifest.dataset.path,
      split: manifest.dataset.split,
      shots: manifest.shots,
      subjects: manifest.subjects ?? undefined,
      limitPerSubject: manifest.limitPerSubject,
      tokenScope: manifest.tokenScope,
      batchSize: run.batchSize,
      runDir: path.resolve(outDir),
      intervention,
    },
  };
}
