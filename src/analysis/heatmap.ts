import type { HeatmapData, ModelInfo, RunSummary } from '../shared/protocol';
import { decoderLayerOfRows } from './layers';
import { expertCounts, type RoutingView } from './trace';

/*
 * The heatmap view's data (layers x experts usage) from a traced sequence or from an evaluation run's
 * summary. Safe to bundle into webviews.
 */

/** Every token of one traced sequence, counted as (token, slot) assignments. */
export function heatmapFromTrace(routing: RoutingView, label: string, model?: Pick<ModelInfo, 'moeLayers'>): HeatmapData {
  const { numLayers, numExperts, topK } = routing;
  const layerOfRow = decoderLayerOfRows({ numLayers, moeLayers: model?.moeLayers });
  return { source: 'trace', label, numLayers, numExperts, topK, layerOfRow, counts: expertCounts(routing) };
}

/** A run's counts and per-expert accuracy; per expert the three subjects with the highest specialisation (share of the subject's assignments x k). */
export function heatmapFromSummary(s: RunSummary, label: string): HeatmapData {
  const L = s.layers.length;
  const E = s.model.numExperts;
  const subjects = Object.keys(s.subjectSpecialisation);
  const topSubjects = Array.from({ length: L }, (_, l) =>
    Array.from({ length: E }, (_, e) =>
      subjects
        .map((subject) => ({ subject, share: s.subjectSpecialisation[subject]?.[l]?.[e] ?? 0 }))
        .filter((x) => x.share > 0)
        .sort((a, b) => b.share - a.share)
        .slice(0, 3),
    ),
  );
  return {
    source: 'run',
    label,
    numLayers: L,
    numExperts: E,
    topK: s.model.topK,
    layerOfRow: decoderLayerOfRows({ numLayers: L, moeLayers: s.model.moeLayers }),
    counts: s.layers.map((l) => l.activationCounts),
    expertAccuracy: s.layers.map((l) => l.expertAccuracy),
    expertAccuracyCount: s.layers.map((l) => l.expertAccuracyCount),
    topSubjects,
    tokenScope: s.tokenScope,
  };
}

/** Per layer: how many experts have no count. */
export function neverActivatedPerLayer(d: Pick<HeatmapData, 'numLayers' | 'numExperts' | 'counts'>): number[] {
  return Array.from({ length: d.numLayers }, (_, l) => {
    let n = 0;
    for (let e = 0; e < d.numExperts; e++) if (!(Number(d.counts[l]?.[e] ?? 0) > 0)) n++;
    return n;
  });
}
