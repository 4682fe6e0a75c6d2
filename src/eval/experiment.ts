/**
 * An experiment: the baseline run's evaluation again (same model, data, split, shots, subjects, limit,
 * token scope) under a router intervention derived from the baseline's summary. Shared by
 * `moe-scope experiment`, the editor's "New experiment from this run" and sweeps.
 */
import * as path from 'node:path';
import { deriveIntervention, type ExperimentSpec } from '../analysis/interventions';
import { readManifest, readSummary, RunFolderError, type RunManifest } from './runFolder';
import type { EvalOptions } from './runner';
import type { LoadOptions, RouterIntervention, RunSummary } from '../shared/protocol';

export interface PreparedExperiment {
  baseline: { dir: string; manifest: RunManifest; summary: RunSummary };
  intervention: RouterIntervention;
  options: EvalOptions;
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
  const summary = readSummary(dir);
  if (!summary) throw new RunFolderError(path.join(dir, 'summary.json'), 'not found; finish the baseline run first');
  if (!summary.complete)
    throw new RunFolderError(
      path.join(dir, 'summary.json'),
      `the baseline run is not complete (${summary.questions} of ${manifest.totalQuestions} questions); resume it first`,
    );
  if (path.resolve(outDir) === dir) throw new RunFolderError(path.resolve(outDir), "the experiment's --out must differ from the baseline run folder");
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
      load: run.load,
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
