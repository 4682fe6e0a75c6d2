// How MMLU's answer letters are scored with a tokenizer. The rule is protocol.ts's (ANSWER_CUE, the
// letters after it); python/moe_scope_worker/tokenizer.py applies the same rule with the `tokenizers`
// library, and test/integration/tokenizer-parity.test.ts checks that both give the same ids.

import { ANSWER_CUE, ANSWER_LETTERS, answerContinuation, type AnswerScoring } from '../../../../shared/protocol';

/** The tokens of a text as the library encodes it without special tokens. */
export type PlainEncode = (text: string) => { ids: readonly number[]; tokens: readonly string[] };

/**
 * The answer letters " A", " B", " C", " D" as they follow "Answer:" in an MMLU prompt: the ids each
 * adds after the context (lm-evaluation-harness splits context and continuation the same way). Measured
 * in context so SentencePiece-style tokenizers, which prefix a lone string with a space marker, are
 * judged on the tokens they really produce after "Answer:". One token each: 'single-token' scoring;
 * otherwise 'continuation' (the summed log-probability of each letter's tokens).
 */
export function answerScoringOf(encode: PlainEncode, source: string): AnswerScoring {
  const context = ANSWER_CUE;
  const base = encode(context);
  const ids = ANSWER_LETTERS.map((letter) => {
    const withLetter = encode(answerContinuation(letter));
    const prefixKept = base.ids.every((id, i) => withLetter.ids[i] === id);
    const extra = withLetter.ids.slice(base.ids.length);
    if (!prefixKept || extra.length === 0) {
      // The letter merges into the context's last token: no continuation of the prompt spells it.
      throw new Error(
        `Tokenizer (${source}): answer letter " ${letter}" merges with "${context}" (${JSON.stringify(base.tokens)} ` +
          `becomes ${JSON.stringify(withLetter.tokens)}), so it cannot be scored as a continuation of the prompt`,
      );
    }
    return extra;
  });
  const keys = ids.map((x) => x.join(','));
  if (new Set(keys).size !== 4) throw new Error(`Tokenizer (${source}): the answer letters encode to the same tokens ${JSON.stringify(ids)}`);
  return {
    method: ids.every((x) => x.length === 1) ? 'single-token' : 'continuation',
    letterTokenIds: [ids[0]!, ids[1]!, ids[2]!, ids[3]!],
  };
}
