/**
 * Where `moe-scope precision-check` stores what it measured, so the extension can show it beside the
 * precision (status bar tooltip, trace panel): one JSON file per model folder and precision in the cache
 * folder. No vscode and no engine import.
 */
import * as crypto from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PrecisionCheckSummary, WeightPrecision } from './protocol';
import { readRegularText } from './safeFiles';

/** The cache folder the ONNX Runtime engine also uses (runtime.ts defaultCacheDir). */
export function defaultCacheRoot(): string {
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'moe-scope');
}

export function precisionCheckFile(cacheRoot: string | undefined, modelPath: string, precision: WeightPrecision): string {
  const key = crypto.createHash('sha256').update(path.resolve(modelPath)).digest('hex').slice(0, 16);
  return path.join(cacheRoot ?? defaultCacheRoot(), 'precision-check', `${path.basename(modelPath).replace(/[^\w.-]/g, '_')}-${key}-${precision}.json`);
}

/** The stored check, or undefined when there is none or it does not parse as one (never trusted blindly). */
export function readPrecisionCheck(cacheRoot: string | undefined, modelPath: string, precision: WeightPrecision): PrecisionCheckSummary | undefined {
  try {
    const s = JSON.parse(readRegularText(precisionCheckFile(cacheRoot, modelPath, precision), { maxBytes: 16 << 20 })) as PrecisionCheckSummary;
    const ok =
      s?.format === 'moe-scope.precision-check' &&
      s.precision === precision &&
      [s.setAgreement, s.expertOverlap, s.maxProbDiff, s.answerAgreement, s.prompts].every((x) => typeof x === 'number' && Number.isFinite(x));
    return ok ? s : undefined;
  } catch {
    return undefined;
  }
}

export function describePrecisionCheck(c: PrecisionCheckSummary): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return `Measured against fp32 on ${c.prompts} MMLU prompts: ${pct(c.setAgreement)} of top-k sets identical, ${pct(c.expertOverlap)} of experts shared, answers agree on ${pct(c.answerAgreement)}, router probabilities up to ${c.maxProbDiff.toExponential(1)} apart`;
}
