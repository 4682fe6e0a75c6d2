import { TOKEN_SCOPE_LABELS, type TokenScope } from '../shared/protocol';
import { tokenScopeDefinition } from './scope';

export interface DefinitionContext {
  scope: TokenScope;
  numLayers: number;
  numExperts: number;
  topK: number;
  entropyBins: number;
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(4).replace(/0+$/, '').replace(/\.$/, '');
}

/** How every scope-dependent definition names the token scope: its short label, pointing at the one full definition. */
export function scopeReference(scope: TokenScope): string {
  return `counting ${TOKEN_SCOPE_LABELS[scope]} (see the token scope)`;
}

/**
 * Definitions as shown: run summaries written before the full token-scope clause was given only once
 * repeat it in every scope-dependent definition; shown, each repeat becomes the short reference.
 */
export function compactDefinitions(defs: Record<string, string>, scope: TokenScope | undefined): Record<string, string> {
  if (!scope || !TOKEN_SCOPE_LABELS[scope]) return defs;
  const long = `counting ${tokenScopeDefinition(scope)}`;
  return Object.fromEntries(Object.entries(defs).map(([k, v]) => [k, k === 'tokenScope' ? v : v.split(long).join(scopeReference(scope))]));
}

/**
 * The definition of every metric in a run summary, keyed like the summary's fields, as shown in the UI.
 * Each string names the token scope it was computed over, because the numbers differ a lot between
 * scopes (e.g. never-activated experts: zero over every prompt token, many at the answer position).
 */
export function analysisDefinitions(c: DefinitionContext): Record<string, string> {
  const { numExperts: E, topK: k } = c;
  const scope = tokenScopeDefinition(c.scope);
  // The scope's full definition is given once (tokenScope); the others name it briefly and point there.
  const inScope = scopeReference(c.scope);
  const binWidth = fmt(1 / c.entropyBins);
  return {
    tokenScope: `Token scope of the routing statistics: ${scope}. Accuracy and the answer-position expert accuracy do not depend on it.`,
    questions: 'Number of evaluated questions.',
    accuracyMicro:
      'Micro accuracy: correctly answered questions / all questions. A question is correct when the letter with the highest next-token log-probability among " A", " B", " C", " D" at the answer position is the gold letter.',
    accuracyMacro: "Macro accuracy: the mean over subjects of each subject's accuracy, every subject weighted equally.",
    accuracyPerSubject: 'Per subject: correctly answered questions / questions of that subject.',
    accuracyPerCategory:
      'Per category: correctly answered questions / questions over all subjects of the category (micro within the category); subjects without a category are left out.',
    activationCounts: `Per layer and expert: the number of (token, slot) assignments to the expert, i.e. how often it was among the top-${k} experts of a token, ${inScope}.`,
    neverActivated: `Per layer: experts with zero (token, slot) assignments, ${inScope}.`,
    neverActivatedTotal: `Number of (layer, expert) pairs with zero (token, slot) assignments, out of ${c.numLayers} x ${E} = ${c.numLayers * E}, ${inScope}.`,
    entropyNormalized: `Per layer: mean over tokens of the gate entropy (of the softmax over all ${E} experts, in nats) divided by ln(${E}); 1 = uniform gate, 0 = one expert takes all the probability; ${inScope}.`,
    entropyQuantiles: `Per layer: 5th, 25th, 50th, 75th and 95th percentiles of the normalised gate entropy over tokens, ${inScope}; read from a histogram of ${c.entropyBins} bins of width ${binWidth} over [0, 1] (values are spread evenly within a bin), so accurate to ${binWidth}.`,
    meanTop1Weight: `Per layer: mean over tokens of the largest weight applied to a chosen expert's output, ${inScope}.`,
    meanTopKMass: `Per layer: mean over tokens of the sum of the ${k} weights applied to the chosen experts' outputs (1 when the top-${k} weights are renormalised, below 1 otherwise), ${inScope}.`,
    expertAccuracy: `Per layer and expert e: among the questions whose top-${k} experts at the answer position (the last prompt token) include e, the fraction answered correctly; empty when no question's answer position used e. Independent of the token scope.`,
    expertAccuracyCount:
      'Per layer and expert: the number of questions the answer-position expert accuracy rests on (questions whose answer position used the expert).',
    expertAccuracyTokenWeighted: `Per layer and expert e: sum over questions of n(q, e) x correct(q) / sum over questions of n(q, e), where n(q, e) is the number of (token, slot) assignments of e in question q, ${inScope}; empty when e has no assignments.`,
    coactivation: `Per layer: P(b | a) = (tokens whose top-${k} experts include both a and b) / (tokens whose top-${k} experts include a), over ordered pairs a != b, ${inScope}; row a, column b. A chosen expert's row sums to ${k - 1}; rows of never-chosen experts are 0.`,
    subjectSpecialisation: `Per subject, layer and expert: the expert's share of the subject's (token, slot) assignments in that layer, times k = ${k}, ${inScope}. Uniform routing gives k/E = ${k}/${E} = ${fmt(k / E)} for every expert; the values of a layer sum to ${k}.`,
  };
}
