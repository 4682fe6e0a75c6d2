import { TOKEN_SCOPE_LABELS, type TokenScope } from '../shared/protocol';
import type { RoutingRecord } from './types';

/** The positions of a record that the token scopes are defined by. */
export type ScopePositions = Pick<RoutingRecord, 'numTokens' | 'questionTokens' | 'answerToken'>;

/**
 * What each token scope counts, for one evaluated question whose prompt is
 * header + few-shot examples + target question and choices + "Answer:".
 * - all: every prompt token, 0 .. numTokens-1. The shared few-shot prefix is counted again for every
 *   question, because it is routed again (or its routing reused) for every question.
 * - question: the target question's own tokens, record.questionTokens = [start, end): its text and its
 *   four choices; not the header, the few-shot examples or the trailing "Answer:".
 * - answer: the answer position alone, record.answerToken: the last prompt token, whose next-token
 *   log-probabilities of " A".." D" are scored. One token per question.
 */
export const TOKEN_SCOPE_DEFINITIONS: Readonly<Record<TokenScope, string>> = {
  all:
    'every token of each prompt: instruction header, few-shot examples, the question, its choices and the ' +
    'final "Answer:" (the shared few-shot prefix is counted once per question)',
  question: "the target question's own tokens: its text and its four choices, without the header, the few-shot " + 'examples and the trailing "Answer:"',
  answer:
    'only the last prompt token (the colon of "Answer:"), whose next-token probabilities of ' + '" A", " B", " C", " D" are scored; one token per question',
};

/** "label: definition", the sentence the UI shows next to the scope option. */
export function tokenScopeDefinition(scope: TokenScope): string {
  return `${TOKEN_SCOPE_LABELS[scope]}: ${TOKEN_SCOPE_DEFINITIONS[scope]}`;
}

export function isTokenScope(value: unknown): value is TokenScope {
  return value === 'all' || value === 'question' || value === 'answer';
}

/** Throws unless the record's scope positions lie inside its tokens. */
export function checkScopePositions(record: ScopePositions): void {
  const n = record.numTokens;
  if (!Number.isInteger(n) || n < 1) throw new Error(`numTokens must be a positive integer, got ${n}`);
  const [qs, qe] = record.questionTokens;
  if (!Number.isInteger(qs) || !Number.isInteger(qe) || qs < 0 || qe < qs || qe > n) {
    throw new Error(`questionTokens [${qs}, ${qe}) is not a token range within [0, ${n})`);
  }
  const a = record.answerToken;
  if (!Number.isInteger(a) || a < 0 || a >= n) throw new Error(`answerToken ${a} is outside [0, ${n})`);
}

/**
 * The scope as a half-open token range [start, end). Every scope is contiguous, which is what lets the
 * accumulator's hot loop run over a range instead of an index list.
 */
export function scopeRange(record: ScopePositions, scope: TokenScope): [number, number] {
  checkScopePositions(record);
  switch (scope) {
    case 'all':
      return [0, record.numTokens];
    case 'question':
      return [record.questionTokens[0], record.questionTokens[1]];
    case 'answer':
      return [record.answerToken, record.answerToken + 1];
  }
}

/**
 * Token indices in scope (see TOKEN_SCOPE_DEFINITIONS): all -> 0..numTokens-1;
 * question -> questionTokens[0]..questionTokens[1]-1; answer -> [answerToken].
 */
export function tokensInScope(record: ScopePositions, scope: TokenScope): number[] {
  const [start, end] = scopeRange(record, scope);
  const out = new Array<number>(end - start);
  for (let t = start; t < end; t++) out[t - start] = t;
  return out;
}
