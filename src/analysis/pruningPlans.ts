/**
 * Pruning plans from a per-expert score (pure functions, no I/O): which experts of each layer an experiment
 * masks, and what the baseline run routed to them. Scores come from a run summary (activation count,
 * gate-weighted count, MAN, MSAN; src/analysis/expertScores.ts) or from the weight analysis (|mean| / RMS).
 * Lower score = less important = pruned first, for every criterion.
 */
import type { LayerSummary, RunSummary } from '../shared/protocol';

export type PruneCriterion = 'count' | 'gate' | 'man' | 'msan' | 'weights';
export const PRUNE_CRITERIA: readonly PruneCriterion[] = ['count', 'gate', 'man', 'msan', 'weights'];

export const PRUNE_CRITERION_LABELS: Record<PruneCriterion, string> = {
  count: 'activation count',
  gate: 'gate-weighted count',
  man: 'MAN (mean output norm)',
  msan: 'MSAN (mean squared output norm)',
  weights: 'weights |mean|/RMS',
};

export type PruneMode = 'per-layer' | 'global' | 'threshold';

export interface PruningPlanSpec {
  criterion: PruneCriterion;
  /**
   * 'per-layer': the lowest floor(ratio x E) experts of every layer; 'global': the lowest floor(ratio x L x E)
   * (layer, expert) pairs ranked together; 'threshold': every expert whose score is below `threshold`.
   */
  mode: PruneMode;
  ratio?: number;
  threshold?: number;
  /** Experts every layer keeps at least (its highest-scoring ones); default and minimum: the model's top-k. */
  keepPerLayer?: number;
}

export interface PlannedLayer {
  layer: number;
  /** Pruned experts, lowest score first. */
  pruned: number[];
  /** Their scores, in the same order. */
  scores: number[];
  /** Share of the layer's routing mass (sum of applied gate weights, in scope) the baseline gave them. */
  routingMass: number;
  /** Share of the layer's (token, slot) assignments they had. */
  activationShare: number;
}

export interface PruningPlan {
  spec: PruningPlanSpec;
  layers: PlannedLayer[];
  mask: [number, number][];
  totalPruned: number;
}

export class PruningPlanError extends Error {}

/** Does the summary have what the criterion needs? undefined when yes, otherwise why not. */
export function criterionUnavailable(summary: Pick<RunSummary, 'layers'>, criterion: PruneCriterion, weightScores?: number[][]): string | undefined {
  if (criterion === 'weights')
    return weightScores || summary.layers.every((l) => l.expertScores?.weightsCriterion)
      ? undefined
      : 'the weights criterion needs the weight analysis of the checkpoint (eval --weight-scores stores it in the summary)';
  if (criterion === 'count') return undefined;
  if (summary.layers.some((l) => !l.expertScores)) return 'the run summary has no expertScores (it was made before MoE Scope folded them); run it again';
  if ((criterion === 'man' || criterion === 'msan') && summary.layers.every((l) => l.expertScores!.outputNormCount.every((n) => n === 0)))
    return 'the run measured no expert output norms (the engine did not return them)';
  return undefined;
}

/**
 * Per layer, every expert's score under the criterion. An expert with no measured output norm (no
 * assignment in scope) gets MAN / MSAN 0: it carried nothing in the run.
 */
export function criterionScores(summary: Pick<RunSummary, 'layers' | 'model'>, criterion: PruneCriterion, weightScores?: number[][]): number[][] {
  const why = criterionUnavailable(summary, criterion, weightScores);
  if (why) throw new PruningPlanError(`cannot prune by ${PRUNE_CRITERION_LABELS[criterion]}: ${why}`);
  const E = summary.model.numExperts;
  return summary.layers.map((ls, l) => {
    let row: readonly (number | null)[];
    switch (criterion) {
      case 'count':
        row = ls.activationCounts;
        break;
      case 'gate':
        row = ls.expertScores!.gateWeighted;
        break;
      case 'man':
        row = ls.expertScores!.meanOutputNorm;
        break;
      case 'msan':
        row = ls.expertScores!.meanSquaredOutputNorm;
        break;
      case 'weights':
        row = weightScores?.[l] ?? ls.expertScores?.weightsCriterion ?? [];
        break;
    }
    if (row.length !== E) throw new PruningPlanError(`${PRUNE_CRITERION_LABELS[criterion]} of layer ${l} has ${row.length} values, expected ${E}`);
    return row.map((v) => v ?? 0);
  });
}

function checkSpec(spec: PruningPlanSpec, E: number, K: number): number {
  const keep = spec.keepPerLayer ?? K;
  if (!Number.isInteger(keep) || keep < K || keep > E) throw new PruningPlanError(`keep at least: must be an integer from top-k = ${K} to ${E}, got ${keep}`);
  if (spec.mode === 'threshold') {
    if (typeof spec.threshold !== 'number' || !Number.isFinite(spec.threshold))
      throw new PruningPlanError(`threshold: must be a finite number, got ${spec.threshold}`);
  } else if (!(typeof spec.ratio === 'number' && spec.ratio > 0 && spec.ratio < 1)) {
    throw new PruningPlanError(`ratio: must be a fraction in (0, 1), e.g. 0.25 to remove a quarter of the experts; got ${spec.ratio}`);
  }
  return keep;
}

/** Experts of one layer, lowest score first; ties go to the lower activation count, then the lower id. */
function ascending(scores: readonly number[], counts: readonly number[]): number[] {
  return scores.map((_, e) => e).sort((a, b) => scores[a]! - scores[b]! || (counts[a] ?? 0) - (counts[b] ?? 0) || a - b);
}

/**
 * The plan: which experts each layer loses. Never more than E - keepPerLayer per layer; 'global' skips a
 * candidate whose layer is already at that limit and takes the next lowest instead.
 */
export function derivePruningPlan(summary: Pick<RunSummary, 'layers' | 'model'>, spec: PruningPlanSpec, weightScores?: number[][]): PruningPlan {
  const { numLayers: L, numExperts: E, topK: K } = summary.model;
  const keep = checkSpec(spec, E, K);
  const scores = criterionScores(summary, spec.criterion, weightScores);
  const maxPruned = E - keep;
  const chosen: number[][] = Array.from({ length: L }, () => []);
  if (spec.mode === 'per-layer') {
    const n = Math.min(Math.floor(spec.ratio! * E), maxPruned);
    for (let l = 0; l < L; l++) chosen[l] = ascending(scores[l]!, summary.layers[l]!.activationCounts).slice(0, n);
  } else if (spec.mode === 'threshold') {
    for (let l = 0; l < L; l++)
      chosen[l] = ascending(scores[l]!, summary.layers[l]!.activationCounts)
        .filter((e) => scores[l]![e]! < spec.threshold!)
        .slice(0, maxPruned);
  } else {
    const all: { l: number; e: number; s: number; c: number }[] = [];
    for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) all.push({ l, e, s: scores[l]![e]!, c: summary.layers[l]!.activationCounts[e] ?? 0 });
    all.sort((a, b) => a.s - b.s || a.c - b.c || a.l - b.l || a.e - b.e);
    let budget = Math.floor(spec.ratio! * L * E);
    for (const x of all) {
      if (budget === 0) break;
      if (chosen[x.l]!.length >= maxPruned) continue;
      chosen[x.l]!.push(x.e);
      budget--;
    }
  }
  const layers = chosen.map((pruned, l) => planLayer(summary.layers[l]!, l, pruned, scores[l]!));
  const mask = layers.flatMap((pl) => [...pl.pruned].sort((a, b) => a - b).map((e) => [pl.layer, e] as [number, number]));
  return { spec: { ...spec, keepPerLayer: keep }, layers, mask, totalPruned: mask.length };
}

function planLayer(ls: LayerSummary, layer: number, pruned: number[], scores: readonly number[]): PlannedLayer {
  const counts = ls.activationCounts;
  const mass = ls.expertScores?.gateWeighted;
  const total = (v: readonly number[]) => v.reduce((a, x) => a + x, 0);
  const part = (v: readonly number[]) => pruned.reduce((a, e) => a + v[e]!, 0);
  const share = (v: readonly number[] | undefined) => (v && total(v) > 0 ? part(v) / total(v) : 0);
  return { layer, pruned, scores: pruned.map((e) => scores[e]!), routingMass: share(mass ?? counts), activationShare: share(counts) };
}

export function describePlanSpec(spec: PruningPlanSpec): string {
  const what = PRUNE_CRITERION_LABELS[spec.criterion];
  const keep = spec.keepPerLayer !== undefined ? `, keeping at least ${spec.keepPerLayer} per layer` : '';
  if (spec.mode === 'threshold') return `prune experts with ${what} below ${spec.threshold}${keep}`;
  return `prune the lowest ${+(spec.ratio! * 100).toFixed(2)}% of experts by ${what} ${spec.mode === 'global' ? 'over all layers' : 'in every layer'}${keep}`;
}

/** A plan as text, one line per layer (CLI and preview). */
export function describePlan(plan: PruningPlan): string {
  const lines = [`${describePlanSpec(plan.spec)}: ${plan.totalPruned} experts`];
  for (const l of plan.layers)
    lines.push(
      `  layer ${String(l.layer).padStart(2)}: ${String(l.pruned.length).padStart(3)} pruned, ${(100 * l.routingMass).toFixed(2)}% of the routing mass` +
        (l.pruned.length ? ` [${[...l.pruned].sort((a, b) => a - b).join(',')}]` : ''),
    );
  return lines.join('\n');
}
