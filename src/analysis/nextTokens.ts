/** The model's most likely next tokens from the last position's logits (softmax over the whole vocabulary). */

export interface NextToken {
  id: number;
  prob: number;
}

/** The k most probable next tokens, most probable first (ties: lower id first); non-finite logits are an error. */
export function topNextTokens(logits: ArrayLike<number>, k: number): NextToken[] {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (Number.isNaN(x) || x === Infinity) throw new Error(`logit ${i} is ${x}; the next-token distribution is undefined`);
    if (x > max) max = x;
  }
  if (max === -Infinity) throw new Error('every logit is -Infinity; the next-token distribution is undefined');
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const best: NextToken[] = [];
  for (let i = 0; i < logits.length; i++) {
    const p = Math.exp(logits[i] - max) / sum;
    if (best.length < k || p > best[best.length - 1].prob) {
      best.push({ id: i, prob: p });
      best.sort((a, b) => b.prob - a.prob || a.id - b.id);
      if (best.length > k) best.pop();
    }
  }
  return best;
}
