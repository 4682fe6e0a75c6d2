/** Static weight analyses summarised over depth (pure; shared by the engine and synthetic test data). */
import type { LayerWeightSimilarity, WeightDepthSummary } from '../shared/protocol';

/** Per-layer means as series over depth, layers in ascending order. */
export function summarizeByDepth(layers: readonly LayerWeightSimilarity[]): WeightDepthSummary {
  const sorted = [...layers].sort((a, b) => a.layer - b.layer);
  const series = (f: (l: LayerWeightSimilarity) => number) => sorted.map(f);
  return {
    layer: series((l) => l.layer),
    gate: series((l) => l.meanOffDiagonal.gate),
    up: series((l) => l.meanOffDiagonal.up),
    down: series((l) => l.meanOffDiagonal.down),
    all: series((l) => l.meanOffDiagonal.all),
    router: series((l) => l.meanOffDiagonal.router),
    neuronRowMean: series((l) => l.meanOffDiagonal.neuronRowMean),
    neuronColMean: series((l) => l.meanOffDiagonal.neuronColMean),
    routerVsExpertR2: series((l) => l.routerVsExpertR2),
  };
}
