/** Run summaries for tests that write run folders by hand. */

export interface SummaryJson {
  questions: unknown;
  dataset?: unknown;
  accuracy: {
    micro: unknown;
    macro: unknown;
    perSubject?: Record<string, { questions: number; correct: number; [field: string]: unknown }>;
    perCategory: unknown;
  };
  [field: string]: unknown;
}

/** A sound run summary of L layers x E experts, half of `questions` correct, all in one subject. */
export function soundSummary(questions: number, L = 2, E = 4): SummaryJson {
  const layer = (l: number) => ({
    layer: l,
    activationCounts: Array(E).fill(1),
    neverActivated: [],
    expertAccuracy: Array(E).fill(null),
    expertAccuracyCount: Array(E).fill(0),
  });
  const correct = Math.floor(questions / 2);
  return {
    version: 1,
    model: { path: '/m', family: 'olmoe', numLayers: L, numExperts: E, topK: 2, demo: true },
    dataset: { path: '/d', split: 'test', fingerprint: 'f' },
    shots: 0,
    tokenScope: 'answer',
    questions,
    complete: true,
    accuracy: {
      micro: questions ? correct / questions : 0,
      macro: questions ? correct / questions : 0,
      perSubject: { anatomy: { subject: 'anatomy', category: null, questions, correct, accuracy: questions ? correct / questions : 0 } },
      perCategory: {},
    },
    neverActivatedTotal: 0,
    layers: Array.from({ length: L }, (_, l) => layer(l)),
    subjectSpecialisation: {},
  };
}
