/**
 * The expert lens of one trace: where one expert is chosen and with what weight (layers x tokens), the
 * per-cell router measures a researcher colours a routing map by (top-1 weight, top-k mass, normalised
 * entropy), and the layer x expert matrix of the weights given to the selected tokens.
 * Pure functions over the trace's routing (layer-major arrays: index (l * T + t) * k + slot).
 */
import type { RoutingView } from './trace';

export type LensMetric = 'expert' | 'top1' | 'mass' | 'entropy';

export const LENS_METRICS: readonly LensMetric[] = ['expert', 'top1', 'mass', 'entropy'];

export const LENS_METRIC_LABELS: Record<LensMetric, string> = {
  expert: "the chosen expert's gate weight",
  top1: 'top-1 gate weight',
  mass: 'top-k gate mass',
  entropy: 'normalised gate entropy',
};

/** One value per (layer, token), layer-major (length L * T); for 'expert', NaN where the expert is not chosen. */
export function lensGrid(routing: RoutingView, metric: LensMetric, expert = 0): Float64Array {
  const { numLayers: L, numTokens: T, topK: k, numExperts: E } = routing;
  const out = new Float64Array(L * T);
  const lnE = Math.log(E);
  for (let c = 0; c < L * T; c++) {
    const base = c * k;
    switch (metric) {
      case 'expert': {
        let v = NaN;
        for (let s = 0; s < k; s++) if (routing.topExperts[base + s] === expert) v = routing.topWeights[base + s]!;
        out[c] = v;
        break;
      }
      case 'top1': {
        let m = -Infinity;
        for (let s = 0; s < k; s++) m = Math.max(m, routing.topWeights[base + s]!);
        out[c] = m;
        break;
      }
      case 'mass': {
        let sum = 0;
        for (let s = 0; s < k; s++) sum += routing.topWeights[base + s]!;
        out[c] = sum;
        break;
      }
      case 'entropy':
        out[c] = lnE > 0 ? routing.entropy[c]! / lnE : 0;
        break;
    }
  }
  return out;
}

export interface ExpertLensSummary {
  expert: number;
  /** (layer, token) cells that chose the expert, of L * T. */
  chosen: number;
  cells: number;
  /** Per layer: tokens that chose the expert. */
  perLayer: number[];
  /** Mean gate weight over the cells that chose it (NaN when none). */
  meanWeight: number;
  maxWeight: number;
  /** The cell with the largest weight (null when never chosen). */
  strongest: { layer: number; token: number; weight: number } | null;
}

export function expertLensSummary(routing: RoutingView, expert: number): ExpertLensSummary {
  const { numLayers: L, numTokens: T } = routing;
  const grid = lensGrid(routing, 'expert', expert);
  const perLayer = new Array<number>(L).fill(0);
  let chosen = 0;
  let sum = 0;
  let strongest: ExpertLensSummary['strongest'] = null;
  for (let l = 0; l < L; l++)
    for (let t = 0; t < T; t++) {
      const w = grid[l * T + t]!;
      if (Number.isNaN(w)) continue;
      perLayer[l]!++;
      chosen++;
      sum += w;
      if (!strongest || w > strongest.weight) strongest = { layer: l, token: t, weight: w };
    }
  return { expert, chosen, cells: L * T, perLayer, meanWeight: chosen ? sum / chosen : NaN, maxWeight: strongest?.weight ?? NaN, strongest };
}

/**
 * Layer x expert matrix (L * E, layer-major) for the given tokens: the mean applied gate weight of each
 * expert over those tokens (0 for a token that did not choose it), and how many of them chose it.
 */
export function layerExpertMatrix(routing: RoutingView, tokens: readonly number[]): { meanWeight: Float64Array; chosenBy: Uint32Array } {
  const { numLayers: L, numTokens: T, numExperts: E, topK: k } = routing;
  const meanWeight = new Float64Array(L * E);
  const chosenBy = new Uint32Array(L * E);
  const valid = tokens.filter((t) => Number.isInteger(t) && t >= 0 && t < T);
  if (valid.length === 0) return { meanWeight, chosenBy };
  for (let l = 0; l < L; l++)
    for (const t of valid) {
      const base = (l * T + t) * k;
      for (let s = 0; s < k; s++) {
        const e = routing.topExperts[base + s]!;
        if (e < 0 || e >= E) continue;
        meanWeight[l * E + e] += routing.topWeights[base + s]!;
        chosenBy[l * E + e]!++;
      }
    }
  for (let i = 0; i < L * E; i++) meanWeight[i] /= valid.length;
  return { meanWeight, chosenBy };
}
