/**
 * The plan of an MMLU evaluation: every question's prompt as token ids, grouped by the few-shot prefix
 * its prompt shares with the other questions of its subject.
 *
 * A 5-shot prompt is one subject prefix (header and shots, the same for every question of a subject) and
 * one item (the question, its choices and "Answer:"). Tokenizing every whole prompt costs about 14 M tokens
 * on the full test split; tokenizing each prefix once and each item once costs about 2 M. The two are the
 * same only where the tokenizer cuts the prompt at the join, so the join is checked for every question:
 *
 *  - Per prefix, one whole prompt (the anchor) is tokenized: it gives the prefix's tokens as they are inside
 *    a prompt, and must have a token boundary exactly at the join.
 *  - Per question, the item is tokenized after a window: the last line of the prefix ("Answer: X\n\n"). Its
 *    tokens count as the prompt's only when (1) the window's tokenization has a boundary exactly at the
 *    join and (2) the window's own tokens after its first reproduce, id for id and offset for offset, the
 *    last tokens of the prefix inside the anchor prompt. (1) says no token crosses the join; (2) says the
 *    window carries all the context the tokenizer used there. The anchor question itself must also come out
 *    identical both ways, or the whole prefix falls back.
 *  - A question failing a check is tokenized whole (counted in `tokenization.wholePrompt`).
 *
 * The checks are exact for tokenizers that decide a split from at most a line of context to its left, as
 * regex pre-tokenizers (GPT-2, cl100k, Llama-3, Qwen) and Metaspace do; `planByWholePrompts` is the old
 * plan, kept as the reference that test/integration/eval-plan.test.ts compares every question against.
 */
import * as crypto from 'node:crypto';
import { buildPrompt, type BuiltPrompt } from '../mmlu/prompt';
import type { MmluQuestion } from '../mmlu/types';
import { EngineFailure, type InferenceBackend, type ModelInfo, type TokenizeResult, type TokenSpan } from '../shared/protocol';

/** One question ready to score: its prompt's ids are head followed by tail. */
export interface PlannedQuestion {
  question: MmluQuestion & { answer: 0 | 1 | 2 | 3 };
  /** Ids the prompt starts with, shared (never copied) by the questions of a prefix. */
  head: readonly number[];
  /** The rest of the prompt's ids. */
  tail: readonly number[];
  /** Prompt length in tokens: head + tail. */
  numTokens: number;
  /** Token indices [first, end) of the question and its choices in the prompt. */
  questionTokens: [number, number];
  shotsUsed: number;
}

export interface PrefixGroup {
  key: string;
  subject: string;
  prefixIds: number[];
  questions: PlannedQuestion[];
}

/** How the prompts were tokenized. */
export interface PlanTokenization {
  /** Tokens the tokenizer produced while planning (what planning costs). */
  tokenizedTokens: number;
  /** Questions whose prompt was put together from the prefix's and the item's tokens. */
  joined: number;
  /** Questions tokenized whole because a check at the join failed (or by request). */
  wholePrompt: number;
}

export interface EvalPlan {
  groups: PrefixGroup[];
  skipped: { id: string; reason: string }[];
  /** Tokens of every full prompt (what a run without prefix reuse computes, padding aside). */
  promptTokens: number;
  /** Tokens a run with prefix reuse computes: each group's prefix once plus every question's suffix. */
  reusedTokens: number;
  tokenization: PlanTokenization;
}

/** The prompt's ids from position `from` on. */
export function promptIds(q: PlannedQuestion, from = 0): number[] {
  const h = q.head.length;
  if (from >= h) return q.tail.slice(from - h);
  return [...q.head.slice(from), ...q.tail];
}

/**
 * A question longer than this many characters per context token is rejected before tokenization. Real
 * tokenizers average a few characters per token; 32 leaves a wide margin yet bounds the work.
 */
const MAX_CHARS_PER_TOKEN = 32;

const charsOf = (q: MmluQuestion) => q.question.length + q.choices.reduce((a, c) => a + c.length, 0);

/** A prompt of a question, tokenized. */
interface TokenizedPrompt {
  q: MmluQuestion;
  built: BuiltPrompt;
  head: readonly number[];
  tail: readonly number[];
  questionTokens: [number, number];
}

type Tokenize = (texts: string[]) => Promise<TokenizeResult[]>;

/** Splits the questions into those that can be planned and the skipped, then plans subject by subject. */
async function planSubjects(
  model: Pick<ModelInfo, 'maxPositions'>,
  questions: MmluQuestion[],
  dev: MmluQuestion[],
  shots: number,
  signal: AbortSignal | undefined,
  tokenizePrompts: (prompts: { q: MmluQuestion; built: BuiltPrompt }[], tokenize: Tokenize) => Promise<TokenizedPrompt[]>,
  backend: InferenceBackend,
): Promise<EvalPlan> {
  const plan: EvalPlan = { groups: [], skipped: [], promptTokens: 0, reusedTokens: 0, tokenization: { tokenizedTokens: 0, joined: 0, wholePrompt: 0 } };
  const tokenize: Tokenize = async (texts) => {
    const out = await backend.call('tokenize', { texts }, signal);
    for (const r of out) plan.tokenization.tokenizedTokens += r.ids.length;
    return out;
  };
  const bySubject = new Map<string, MmluQuestion[]>();
  for (const q of questions) {
    if (q.answer === null) {
      plan.skipped.push({ id: q.id, reason: 'no gold answer' });
      continue;
    }
    const chars = charsOf(q);
    if (chars > model.maxPositions * MAX_CHARS_PER_TOKEN) {
      // Rejected unseen: tokenizing megabytes only to learn they cannot fit costs minutes and memory.
      plan.skipped.push({ id: q.id, reason: `${chars} characters (${q.source.file}:${q.source.line}) cannot fit the context of ${model.maxPositions} tokens` });
      continue;
    }
    let list = bySubject.get(q.subject);
    if (!list) bySubject.set(q.subject, (list = []));
    list.push(q);
  }
  for (const [subject, qs] of [...bySubject.entries()].sort((a, b) => a[0].localeCompare(b[0]))) {
    if (signal?.aborted) throw new EngineFailure('cancelled', 'the evaluation was cancelled');
    // A dev question too long for any prompt would make every prompt of its subject huge to tokenize.
    const shotPool = dev.filter((d) => d.subject === subject && charsOf(d) <= model.maxPositions * MAX_CHARS_PER_TOKEN);
    // Every prompt first gets all its shots; one that exceeds the model's context loses shots from the
    // last until it fits (as the original MMLU script does), and then shares a prefix with fewer shots.
    let pending = qs.map((q) => ({ q, shots: Math.min(shots, shotPool.length) }));
    const fitted: TokenizedPrompt[] = [];
    while (pending.length) {
      const enc = await tokenizePrompts(
        pending.map((p) => ({ q: p.q, built: buildPrompt(p.q, shotPool, p.shots) })),
        tokenize,
      );
      const retry: typeof pending = [];
      enc.forEach((e) => {
        const n = e.head.length + e.tail.length;
        if (n <= model.maxPositions) fitted.push(e);
        else if (e.built.shotsUsed > 0) retry.push({ q: e.q, shots: e.built.shotsUsed - 1 });
        else plan.skipped.push({ id: e.q.id, reason: `${n} tokens exceed the context of ${model.maxPositions} even without shots` });
      });
      pending = retry;
    }
    const groups = new Map<string, TokenizedPrompt[]>();
    for (const f of fitted) {
      let list = groups.get(f.built.prefix);
      if (!list) groups.set(f.built.prefix, (list = []));
      list.push(f);
    }
    for (const [prefixText, items] of groups) {
      const [prefixEnc] = await tokenize([prefixText]);
      // The prefix alone may tokenize differently at its end than inside a prompt ("\n\n" + question),
      // so the shared part is the longest common run of ids, never more than any prompt minus its last token.
      let common = prefixEnc.ids.length;
      for (const f of items) common = Math.min(common, commonPrefixOfJoined(prefixEnc.ids, f.head, f.tail), f.head.length + f.tail.length - 1);
      const planned: PlannedQuestion[] = items.map((f) => ({
        question: f.q as PlannedQuestion['question'],
        head: f.head,
        tail: f.tail,
        numTokens: f.head.length + f.tail.length,
        questionTokens: f.questionTokens,
        shotsUsed: f.built.shotsUsed,
      }));
      const prefix = promptIds(planned[0]).slice(0, common);
      plan.groups.push({ key: `${subject}:${sha(prefix.join(','))}`, subject, prefixIds: prefix, questions: planned });
      plan.promptTokens += planned.reduce((a, p) => a + p.numTokens, 0);
      plan.reusedTokens += common + planned.reduce((a, p) => a + p.numTokens - common, 0);
    }
  }
  return plan;
}

/** Tokenizes each whole prompt: 14 M tokens on the full test split; the reference the joined plan must equal. */
export async function planByWholePrompts(
  backend: InferenceBackend,
  model: Pick<ModelInfo, 'maxPositions'>,
  questions: MmluQuestion[],
  dev: MmluQuestion[],
  shots: number,
  signal?: AbortSignal,
): Promise<EvalPlan> {
  return planSubjects(
    model,
    questions,
    dev,
    shots,
    signal,
    async (prompts, tokenize) => {
      const enc = await tokenize(prompts.map((p) => p.built.text));
      return prompts.map((p, i) => wholePrompt(p, enc[i]));
    },
    backend,
  ).then((plan) => {
    plan.tokenization.wholePrompt = plan.groups.reduce((a, g) => a + g.questions.length, 0);
    return plan;
  });
}

function wholePrompt(p: { q: MmluQuestion; built: BuiltPrompt }, enc: TokenizeResult): TokenizedPrompt {
  return { q: p.q, built: p.built, head: [], tail: enc.ids, questionTokens: tokenRange(enc.tokens, p.built.questionRange) };
}

/** What the prompt's tokens look like up to the join, learnt from its anchor prompt. */
interface PrefixContext {
  /** The prefix's ids inside a prompt, or null when the anchor prompt has no token boundary at the join. */
  ids: number[] | null;
  /** The last line of the prefix: what every item is tokenized after. */
  window: string;
  /** The anchor prompt's tokens inside the window's span after its first token, offsets relative to the window. */
  windowTokens: TokenSpan[];
}

/** The last line of the prefix and the blank line after it (the whole header when there are no shots). */
export function joinWindow(prefix: string): string {
  let end = prefix.length;
  while (end > 0 && prefix[end - 1] === '\n') end--;
  return prefix.slice(prefix.lastIndexOf('\n', end - 1) + 1);
}

/**
 * Tokenizes each prefix once (within one whole prompt, its anchor) and each item once after the prefix's
 * last line, checking the join of every question (see the module comment).
 */
export async function planEvaluation(
  backend: InferenceBackend,
  model: Pick<ModelInfo, 'maxPositions'>,
  questions: MmluQuestion[],
  dev: MmluQuestion[],
  shots: number,
  signal?: AbortSignal,
): Promise<EvalPlan> {
  let joined = 0;
  let whole = 0;
  const contexts = new Map<string, PrefixContext>();
  const plan = await planSubjects(
    model,
    questions,
    dev,
    shots,
    signal,
    async (prompts, tokenize) => {
      // Anchors: one whole prompt per prefix not seen yet.
      const anchors = new Map<string, number>();
      prompts.forEach((p, i) => {
        if (!contexts.has(p.built.prefix) && !anchors.has(p.built.prefix)) anchors.set(p.built.prefix, i);
      });
      const anchorIndex = [...anchors.values()];
      const anchorEnc = anchorIndex.length ? await tokenize(anchorIndex.map((i) => prompts[i].built.text)) : [];
      const anchorOf = new Map<number, TokenizeResult>();
      anchorIndex.forEach((i, k) => {
        anchorOf.set(i, anchorEnc[k]);
        contexts.set(prompts[i].built.prefix, prefixContext(prompts[i].built, anchorEnc[k]));
      });
      const windowEnc = await tokenize(prompts.map((p) => contexts.get(p.built.prefix)!.window + p.built.text.slice(p.built.prefix.length)));
      const out: (TokenizedPrompt | null)[] = prompts.map((p, i) => joinedPrompt(p, contexts.get(p.built.prefix)!, windowEnc[i]));
      // An anchor must come out the same both ways, or its prefix is not trusted for any question.
      for (const [i, enc] of anchorOf) {
        const o = out[i];
        if (!o || !sameIds(o.head, o.tail, enc.ids) || String(o.questionTokens) !== String(tokenRange(enc.tokens, prompts[i].built.questionRange))) {
          contexts.get(prompts[i].built.prefix)!.ids = null;
          out.forEach((x, j) => {
            if (x && prompts[j].built.prefix === prompts[i].built.prefix) out[j] = null;
          });
        }
      }
      const fallback = out.flatMap((o, i) => (o ? [] : [i]));
      const wholeEnc = fallback.length ? await tokenize(fallback.map((i) => prompts[i].built.text)) : [];
      fallback.forEach((i, k) => (out[i] = wholePrompt(prompts[i], wholeEnc[k])));
      whole += fallback.length;
      joined += prompts.length - fallback.length;
      return out as TokenizedPrompt[];
    },
    backend,
  );
  // Counted over every tokenization, fitted or retried with fewer shots.
  plan.tokenization.joined = joined;
  plan.tokenization.wholePrompt = whole;
  return plan;
}

/** The index of the first token starting at or after `at`, when `at` is a token boundary; -1 when a token crosses it. */
function boundaryAt(tokens: readonly TokenSpan[], at: number): number {
  let k = 0;
  while (k < tokens.length && tokens[k].start < at) {
    if (tokens[k].end > at) return -1;
    k++;
  }
  return k;
}

function prefixContext(built: BuiltPrompt, anchor: TokenizeResult): PrefixContext {
  const window = joinWindow(built.prefix);
  const P = built.prefix.length;
  const k = boundaryAt(anchor.tokens, P);
  const offset = P - window.length;
  if (k <= 0) return { ids: null, window, windowTokens: [] };
  return {
    ids: anchor.ids.slice(0, k),
    window,
    windowTokens: anchor.tokens.slice(0, k).flatMap((t) => (t.start > offset ? [{ ...t, start: t.start - offset, end: t.end - offset }] : [])),
  };
}

/** The prompt as prefix-in-context ids + the item's ids after the window; null when a check at the join fails. */
function joinedPrompt(p: { q: MmluQuestion; built: BuiltPrompt }, ctx: PrefixContext, enc: TokenizeResult): TokenizedPrompt | null {
  if (!ctx.ids) return null;
  const W = ctx.window.length;
  const m = boundaryAt(enc.tokens, W);
  if (m <= 0 || m >= enc.tokens.length) return null;
  // The window's tokens after its first (whose start may read as the start of a text) are the prompt's.
  const before = enc.tokens.slice(0, m).filter((t) => t.start > 0);
  if (before.length !== ctx.windowTokens.length) return null;
  for (let i = 0; i < before.length; i++) {
    const a = before[i];
    const b = ctx.windowTokens[i];
    if (a.id !== b.id || a.start !== b.start || a.end !== b.end) return null;
  }
  const shift = p.built.prefix.length - W;
  const itemTokens = enc.tokens.slice(m).map((t) => ({ ...t, start: t.start + shift, end: t.end + shift }));
  const [first, end] = tokenRange(itemTokens, p.built.questionRange);
  return { q: p.q, built: p.built, head: ctx.ids, tail: enc.ids.slice(m), questionTokens: [first + ctx.ids.length, end + ctx.ids.length] };
}

function sameIds(head: readonly number[], tail: readonly number[], ids: readonly number[]): boolean {
  if (head.length + tail.length !== ids.length) return false;
  for (let i = 0; i < head.length; i++) if (head[i] !== ids[i]) return false;
  for (let i = 0; i < tail.length; i++) if (tail[i] !== ids[head.length + i]) return false;
  return true;
}

/** Length of the common start of `a` and head ++ tail. */
function commonPrefixOfJoined(a: readonly number[], head: readonly number[], tail: readonly number[]): number {
  let i = 0;
  while (i < a.length && i < head.length && a[i] === head[i]) i++;
  if (i < head.length) return i;
  let j = 0;
  while (i < a.length && j < tail.length && a[i] === tail[j]) {
    i++;
    j++;
  }
  return i;
}

/** Token indices [first, last+1) whose character spans overlap [start, end). */
export function tokenRange(tokens: readonly TokenSpan[], [start, end]: [number, number]): [number, number] {
  let first = tokens.findIndex((t) => t.end > start);
  if (first < 0) first = tokens.length;
  let last = first;
  while (last < tokens.length && tokens[last].start < end) last++;
  return [first, Math.max(first, last)];
}

export function sha(s: string): string {
  return crypto.createHash('sha256').update(s).digest('hex').slice(0, 16);
}
