/** Plans as plain rows, so two plans can be compared question for question. */
import { promptIds, type EvalPlan } from '../../src/eval/plan';
import type { InferenceBackend, TokenizeResult } from '../../src/shared/protocol';

export interface PlanRow {
  id: string;
  group: string;
  prefixTokens: number;
  ids: number[];
  questionTokens: [number, number];
  shotsUsed: number;
}

export function planRows(plan: EvalPlan): PlanRow[] {
  return plan.groups.flatMap((g) =>
    g.questions.map((q) => ({
      id: q.question.id,
      group: g.key,
      prefixTokens: g.prefixIds.length,
      ids: promptIds(q),
      questionTokens: q.questionTokens,
      shotsUsed: q.shotsUsed,
    })),
  );
}

/** The first differences between two plans (empty when they are the same question for question). */
export function planDifferences(a: EvalPlan, b: EvalPlan, max = 5): string[] {
  const out: string[] = [];
  const ra = planRows(a);
  const rb = planRows(b);
  if (ra.length !== rb.length) out.push(`${ra.length} vs ${rb.length} planned questions`);
  for (let i = 0; i < Math.min(ra.length, rb.length) && out.length < max; i++) {
    const x = ra[i];
    const y = rb[i];
    for (const k of Object.keys(x) as (keyof PlanRow)[]) {
      if (JSON.stringify(x[k]) !== JSON.stringify(y[k])) out.push(`question #${i} (${x.id} / ${y.id}): ${k} differs`);
    }
  }
  if (JSON.stringify(a.skipped) !== JSON.stringify(b.skipped)) out.push('skipped questions differ');
  if (a.promptTokens !== b.promptTokens) out.push(`promptTokens ${a.promptTokens} vs ${b.promptTokens}`);
  if (a.reusedTokens !== b.reusedTokens) out.push(`reusedTokens ${a.reusedTokens} vs ${b.reusedTokens}`);
  return out.slice(0, max);
}

/** A backend that only tokenizes, with the given tokenizer. */
export function tokenizerBackend(encode: (text: string) => TokenizeResult): InferenceBackend {
  return {
    async call(method, params) {
      if (method !== 'tokenize') throw new Error(`a tokenizer backend has no method ${method}`);
      return (params as { texts: string[] }).texts.map(encode) as never;
    },
  };
}
