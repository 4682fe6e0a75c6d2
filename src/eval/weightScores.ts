/**
 * The weights-only pruning criterion stored in a run's summary (eval --weight-scores): |mean| / RMS of each
 * expert's weights, from the engine's static weight analysis (cached per checkpoint).
 */
import type { InferenceBackend, RunSummary } from '../shared/protocol';

export async function weightScoresOf(backend: InferenceBackend, signal?: AbortSignal): Promise<number[][]> {
  const analysis = await backend.call('analyzeWeights', {}, signal);
  return analysis.layers
    .slice()
    .sort((a, b) => a.layer - b.layer)
    .map((l) => {
      if (!l.absMeanOverRms) throw new Error(`the weight analysis of layer ${l.layer} has no |mean|/RMS per expert`);
      return l.absMeanOverRms;
    });
}

/** The summary with each layer's weightsCriterion set (unchanged without scores). */
export function withWeightScores(summary: RunSummary, scores: number[][] | undefined): RunSummary {
  if (!scores) return summary;
  return {
    ...summary,
    layers: summary.layers.map((l, i) => (l.expertScores && scores[i] ? { ...l, expertScores: { ...l.expertScores, weightsCriterion: scores[i] } } : l)),
  };
}
