/** `experiment --prune-by CRITERION ...`: the options as a pruning-plan spec, and the weights criterion's scores. */
import * as path from 'node:path';
import { UsageError } from './command';
import { PRUNE_CRITERIA, type PruneCriterion, type PruningPlanSpec } from '../analysis/pruningPlans';
import { Checkpoint } from '../engines/onnxruntime/checkpoint';
import { cachedWeightAnalysis } from '../engines/onnxruntime/weightAnalysis';
import { defaultCacheDir } from '../engines/onnxruntime/runtime';

export const PRUNE_BY_OPTIONS = {
  'prune-by': { type: 'string' },
  ratio: { type: 'string' },
  threshold: { type: 'string' },
  'per-layer': { type: 'boolean', default: false },
  global: { type: 'boolean', default: false },
  keep: { type: 'string' },
} as const;

export interface PruneByValues {
  'prune-by'?: string;
  ratio?: string;
  threshold?: string;
  'per-layer'?: boolean;
  global?: boolean;
  keep?: string;
}

export function pruneBySpecFromOptions(v: PruneByValues): PruningPlanSpec {
  const criterion = v['prune-by'] as PruneCriterion;
  if (!PRUNE_CRITERIA.includes(criterion)) throw new UsageError(`--prune-by must be one of ${PRUNE_CRITERIA.join(', ')}, got "${v['prune-by']}"`);
  if (v['per-layer'] && v.global) throw new UsageError('give --per-layer or --global, not both');
  if ((v.ratio === undefined) === (v.threshold === undefined))
    throw new UsageError('--prune-by needs exactly one of --ratio R (a fraction in (0, 1)) or --threshold T');
  const keep = v.keep === undefined ? undefined : Number(v.keep);
  if (keep !== undefined && !Number.isInteger(keep)) throw new UsageError(`--keep must be an integer, got "${v.keep}"`);
  if (v.threshold !== undefined) {
    if (v.global) throw new UsageError('--threshold applies to every layer alike: drop --global');
    const t = Number(v.threshold);
    if (!Number.isFinite(t)) throw new UsageError(`--threshold must be a number, got "${v.threshold}"`);
    return { criterion, mode: 'threshold', threshold: t, ...(keep !== undefined ? { keepPerLayer: keep } : {}) };
  }
  const r = Number(v.ratio);
  if (!(r > 0 && r < 1)) throw new UsageError(`--ratio must be a fraction in (0, 1), e.g. 0.25; got "${v.ratio}"`);
  return { criterion, mode: v.global ? 'global' : 'per-layer', ratio: r, ...(keep !== undefined ? { keepPerLayer: keep } : {}) };
}

/** The weights-only criterion of every layer, from the (cached) static weight analysis of the checkpoint. */
export async function weightScoresFor(modelPath: string, cacheDir = defaultCacheDir()): Promise<number[][]> {
  const analysis = await cachedWeightAnalysis(Checkpoint.open(modelPath), path.join(cacheDir, 'weight-analysis'));
  return analysis.layers
    .slice()
    .sort((a, b) => a.layer - b.layer)
    .map((l) => {
      if (!l.absMeanOverRms) throw new Error(`weight analysis of layer ${l.layer} has no absMeanOverRms`);
      return l.absMeanOverRms;
    });
}
