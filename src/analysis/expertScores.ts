/**
 * Per-expert pruning scores folded during an evaluation run (pure functions, no I/O): the sums behind
 * the gate-weighted count, MAN and MSAN, kept beside the RunAccumulator's counts (accumulator.ts calls
 * these from addRecord / mergeInto / the delta codec / summarizeAccumulator).
 *
 * Definitions, per layer l and expert e, over the in-scope (token, slot) assignments of e:
 * - activation count: the number of assignments (already in LayerSummary.activationCounts);
 * - gate-weighted count: the sum of the weights applied to e's output at those assignments;
 * - MAN (mean activation norm): the mean of ||f_e(x)||_2, the L2 norm of e's output for the token's MoE
 *   input x BEFORE the gate weight multiplies it, over the assignments whose norm the engine measured;
 * - MSAN (mean squared activation norm): the mean of ||f_e(x)||_2^2 over the same assignments.
 * Sums, never ratios, are stored, so batches merge by addition.
 */
import type { ExpertScoresSummary } from '../shared/protocol';
import { decodeCounts, encodeCounts } from './sparse';
import type { RoutingRecord } from './types';

/** [layer][expert] -> layer * E + expert. */
export interface ExpertScoreSums {
  /** Sum of the applied gate weights. */
  gateWeightSum: number[];
  /** Sum of the unweighted output L2 norms, over assignments with a measured norm. */
  normSum: number[];
  /** Sum of the squared unweighted output L2 norms. */
  normSqSum: number[];
  /** Assignments whose output norm was measured (all of them when the engine was asked for norms). */
  normCount: number[];
}

export function createExpertScoreSums(cells: number): ExpertScoreSums {
  const z = () => new Array<number>(cells).fill(0);
  return { gateWeightSum: z(), normSum: z(), normSqSum: z(), normCount: z() };
}

/**
 * Checks the record's optional expertOutputNorms (one finite, non-negative value per routing slot). Throws
 * before anything is added, so an invalid record leaves the sums unchanged.
 */
export function checkExpertNorms(record: RoutingRecord): void {
  const norms = record.expertOutputNorms;
  if (!norms) return;
  const slots = record.numLayers * record.numTokens * record.topK;
  if (norms.length !== slots) throw new Error(`record ${record.questionId}: expertOutputNorms has ${norms.length} values, expected ${slots}`);
  for (let i = 0; i < slots; i++) {
    const v = norms[i]!;
    if (!(Number.isFinite(v) && v >= 0))
      throw new Error(`record ${record.questionId}: expert output norm ${v} at slot index ${i} is not a finite non-negative number`);
  }
}

/** Adds the in-scope tokens [start, end) of an already validated record. */
export function addExpertScores(sums: ExpertScoreSums, record: RoutingRecord, start: number, end: number): void {
  const { numLayers: L, numExperts: E, topK: K, numTokens: T } = record;
  const experts = record.topExperts;
  const weights = record.topWeights;
  const norms = record.expertOutputNorms;
  for (let l = 0; l < L; l++) {
    for (let t = start; t < end; t++) {
      const base = (l * T + t) * K;
      for (let slot = 0; slot < K; slot++) {
        const cell = l * E + experts[base + slot]!;
        sums.gateWeightSum[cell]! += weights[base + slot]!;
        if (norms) {
          const n = norms[base + slot]!;
          sums.normSum[cell]! += n;
          sums.normSqSum[cell]! += n * n;
          sums.normCount[cell]!++;
        }
      }
    }
  }
}

export function mergeExpertScores(target: ExpertScoreSums, source: ExpertScoreSums): void {
  for (const key of ['gateWeightSum', 'normSum', 'normSqSum', 'normCount'] as const) {
    const t = target[key];
    const s = source[key];
    for (let i = 0; i < t.length; i++) t[i]! += s[i]!;
  }
}

export function cloneExpertScores(s: ExpertScoreSums): ExpertScoreSums {
  return { gateWeightSum: s.gateWeightSum.slice(), normSum: s.normSum.slice(), normSqSum: s.normSqSum.slice(), normCount: s.normCount.slice() };
}

/** The delta form: float sums as JSON numbers (exact round trip), the count sparse-encoded. */
export interface ExpertScoresDelta {
  gateWeightSum: number[];
  normSum: number[];
  normSqSum: number[];
  normCount: string;
}

export function expertScoresToDelta(s: ExpertScoreSums): ExpertScoresDelta {
  return { gateWeightSum: s.gateWeightSum.slice(), normSum: s.normSum.slice(), normSqSum: s.normSqSum.slice(), normCount: encodeCounts(s.normCount) };
}

/** Reads the delta form; undefined (a delta written before these scores existed) gives zeros. */
export function expertScoresFromDelta(v: unknown, cells: number): ExpertScoreSums {
  if (v === undefined) return createExpertScoreSums(cells);
  if (typeof v !== 'object' || v === null) throw new Error('expertScores is not an object');
  const o = v as Partial<Record<keyof ExpertScoresDelta, unknown>>;
  const floats = (x: unknown, what: string): number[] => {
    if (!Array.isArray(x) || x.length !== cells) throw new Error(`expertScores.${what} is not an array of ${cells} numbers`);
    for (const n of x) if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new Error(`expertScores.${what} holds a negative or non-finite value`);
    return (x as number[]).slice();
  };
  return {
    gateWeightSum: floats(o.gateWeightSum, 'gateWeightSum'),
    normSum: floats(o.normSum, 'normSum'),
    normSqSum: floats(o.normSqSum, 'normSqSum'),
    normCount: decodeCounts(o.normCount, cells, 'expertScores.normCount'),
  };
}

/** One layer's scores for the summary. */
export function summarizeExpertScores(s: ExpertScoreSums, layer: number, E: number): ExpertScoresSummary {
  const off = layer * E;
  const gateWeighted: number[] = [];
  const meanOutputNorm: (number | null)[] = [];
  const meanSquaredOutputNorm: (number | null)[] = [];
  const outputNormCount: number[] = [];
  for (let e = 0; e < E; e++) {
    const n = s.normCount[off + e]!;
    gateWeighted.push(s.gateWeightSum[off + e]!);
    outputNormCount.push(n);
    meanOutputNorm.push(n > 0 ? s.normSum[off + e]! / n : null);
    meanSquaredOutputNorm.push(n > 0 ? s.normSqSum[off + e]! / n : null);
  }
  return { gateWeighted, meanOutputNorm, meanSquaredOutputNorm, outputNormCount };
}

/**
 * The weights-only criterion (after AIMER): for each expert, |mean(w)| / RMS(w) over every weight of its
 * gate, up and down projections together, from per-expert element sums, sums of squares and counts.
 * 0 for an all-zero expert.
 */
export function absMeanOverRms(sums: readonly number[], sumSquares: readonly number[], elements: number): number[] {
  if (!(elements > 0)) throw new Error('absMeanOverRms: elements must be positive');
  return sums.map((s, e) => {
    const rms = Math.sqrt(sumSquares[e]! / elements);
    return rms > 0 ? Math.abs(s / elements) / rms : 0;
  });
}

export const EXPERT_SCORE_DEFINITIONS = (scope: string, k: number): Record<string, string> => ({
  gateWeighted: `Per layer and expert: the sum of the gate weights applied to the expert's output over its (token, slot) assignments, counting ${scope} (a top-${k} choice with a small weight counts little). Source: the routing weights the engine applied, folded during the run.`,
  meanOutputNorm: `MAN, per layer and expert: the mean over the expert's (token, slot) assignments of the L2 norm of its output BEFORE the gate weight multiplies it, counting ${scope}; empty when the expert had no assignment with a measured norm. Source: the engine computes the chosen experts' unweighted outputs for every scored position the scope reads (outputNormCount of them).`,
  meanSquaredOutputNorm: `MSAN, per layer and expert: the mean of the squared L2 norm of the expert's unweighted output over the same assignments as MAN, counting ${scope} (weighs large activations more). Source: as MAN.`,
  outputNormCount: 'Per layer and expert: the number of (token, slot) assignments whose output norm was measured (what MAN and MSAN rest on).',
  weightsCriterion:
    "Weights-only criterion (after AIMER), per layer and expert: |mean| / RMS over every weight of the expert's gate, up and down projections together; no data involved. Source: the static weight analysis of the checkpoint.",
});
