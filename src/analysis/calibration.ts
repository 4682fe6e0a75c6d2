/**
 * Calibration sets compared (pure functions): two runs of one model on different data (datasets or subjects)
 * say, before any pruned run is made, whether the choice of calibration set changes what would be pruned:
 * per layer, the Jensen-Shannon divergence of the two activation distributions and, per criterion, the
 * overlap of the experts a per-layer plan would remove from each.
 */
import type { CalibrationComparison, RunSummary } from '../shared/protocol';
import { criterionUnavailable, derivePruningPlan, type PruneCriterion } from './pruningPlans';

export const DEFAULT_CALIBRATION_RATIO = 0.25;

/**
 * Jensen-Shannon divergence in bits (in [0, 1]) of two non-negative count vectors, each normalised to sum 1:
 * JS = H(M) - (H(P) + H(Q)) / 2 with M = (P + Q) / 2. 0 when both are empty, 1 when exactly one is.
 */
export function jensenShannon(p: readonly number[], q: readonly number[]): number {
  if (p.length !== q.length) throw new Error(`jensenShannon: lengths ${p.length} and ${q.length} differ`);
  const sp = p.reduce((a, x) => a + x, 0);
  const sq = q.reduce((a, x) => a + x, 0);
  if (sp === 0 && sq === 0) return 0;
  if (sp === 0 || sq === 0) return 1;
  let js = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i]! / sp;
    const b = q[i]! / sq;
    const m = (a + b) / 2;
    if (a > 0) js += 0.5 * a * Math.log2(a / m);
    if (b > 0) js += 0.5 * b * Math.log2(b / m);
  }
  return Math.min(1, Math.max(0, js));
}

export function jaccard(a: readonly number[], b: readonly number[]): { jaccard: number; shared: number } {
  const sa = new Set(a);
  const shared = b.filter((x) => sa.has(x)).length;
  const union = sa.size + new Set(b).size - shared;
  return { jaccard: union === 0 ? 1 : shared / union, shared };
}

/**
 * Undefined when the runs' models differ in shape. Criteria: every data criterion both summaries can serve
 * (the weights criterion is the same for both runs of one model, so it is left out).
 */
export function compareCalibration(
  a: Pick<RunSummary, 'layers' | 'model'>,
  b: Pick<RunSummary, 'layers' | 'model'>,
  ratio = DEFAULT_CALIBRATION_RATIO,
): CalibrationComparison | undefined {
  if (a.model.numLayers !== b.model.numLayers || a.model.numExperts !== b.model.numExperts || a.model.topK !== b.model.topK) return undefined;
  const criteria = (['count', 'gate', 'man', 'msan'] as PruneCriterion[]).filter((c) => !criterionUnavailable(a, c) && !criterionUnavailable(b, c));
  const plans = criteria.map((c) => ({
    c,
    a: derivePruningPlan(a, { criterion: c, mode: 'per-layer', ratio }),
    b: derivePruningPlan(b, { criterion: c, mode: 'per-layer', ratio }),
  }));
  const layers = a.layers.map((la, l) => {
    const overlap: CalibrationComparison['layers'][number]['overlap'] = {};
    for (const p of plans) {
      const pa = p.a.layers[l]!.pruned;
      const pb = p.b.layers[l]!.pruned;
      overlap[p.c] = { ...jaccard(pa, pb), prunedA: pa.length, prunedB: pb.length };
    }
    return { layer: la.layer, jsDivergence: jensenShannon(la.activationCounts, b.layers[l]!.activationCounts), overlap };
  });
  const mean = (v: number[]) => (v.length ? v.reduce((x, y) => x + y, 0) / v.length : 0);
  const meanJaccard: Record<string, number> = {};
  for (const c of criteria) meanJaccard[c] = mean(layers.map((l) => l.overlap[c]!.jaccard));
  return { ratio, criteria, layers, meanJsDivergence: mean(layers.map((l) => l.jsDivergence)), meanJaccard };
}
