/**
 * The MMLU prompt of lm-evaluation-harness (tasks/mmlu/default):
 *
 *   The following are multiple choice questions (with answers) about {subject, "_" -> " "}.\n\n
 *   then per shot  {question.strip()}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer: {X}\n\n
 *   then the item  {question.strip()}\nA. {a}\nB. {b}\nC. {c}\nD. {d}\nAnswer:
 *
 * The question is stripped as Python's str.strip() does (the harness template says question.strip());
 * the choices are used as they are. Shots are the first rows of the subject's dev split. The model is
 * then scored on " A" .. " D" after the final colon.
 */
import { LETTERS, answerIndexOfLetter, answerLetter, type AnswerIndex } from './common';
import type { MmluQuestion } from './types';
import { ANSWER_CUE, answerContinuation } from '../shared/protocol';

export { LETTERS, answerIndexOfLetter, answerLetter, type AnswerIndex };

/** What a prompt needs of a question. A missing subject gives a header without "about ...". */
export interface PromptQuestion {
  subject?: string;
  question: string;
  choices: readonly string[];
  answer: AnswerIndex | null;
}

export interface BuiltPrompt {
  text: string;
  /** Header and shots: identical for every question of a subject with the same shots (a cacheable prefix). */
  prefix: string;
  /** [start, end) of the target's question and choices in `text`, up to the end of choice D. */
  questionRange: [number, number];
  shotsUsed: number;
}

/**
 * Python's str.strip() with no argument. JavaScript's trim() differs at the edges: it strips U+FEFF,
 * which Python keeps, and keeps U+001C-U+001F and U+0085, which Python strips.
 */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
export function pyStrip(s: string): string {
  return s.replace(PY_STRIP, '');
}

export function subjectTitle(subject: string): string {
  return subject.replace(/_/g, ' ');
}

export function promptHeader(subject: string | undefined): string {
  return subject
    ? `The following are multiple choice questions (with answers) about ${subjectTitle(subject)}.\n\n`
    : 'The following are multiple choice questions (with answers).\n\n';
}

/** The question and its four choices, without a trailing line break or "Answer:". */
export function formatItem(q: Pick<PromptQuestion, 'question' | 'choices'>): string {
  if (q.choices.length !== 4) throw new RangeError(`an MMLU item needs 4 choices, found ${q.choices.length}`);
  return `${pyStrip(q.question)}\nA. ${q.choices[0]}\nB. ${q.choices[1]}\nC. ${q.choices[2]}\nD. ${q.choices[3]}`;
}

export function formatShot(q: PromptQuestion): string {
  if (q.answer === null) throw new Error(`a few-shot example needs an answer: ${JSON.stringify(pyStrip(q.question).slice(0, 60))}`);
  return `${formatItem(q)}\n${answerContinuation(answerLetter(q.answer))}\n\n`;
}

function sameItem(a: PromptQuestion, b: PromptQuestion): boolean {
  return a.question === b.question && a.choices.every((c, i) => c === b.choices[i]);
}

/**
 * The prompt for `question` with the first `numShots` of `devShots` (fewer when fewer are given).
 * A shot identical to the question itself is passed over, as the harness does when it draws shots from
 * the split it evaluates: a prompt must not contain its own answer.
 */
export function buildPrompt(question: PromptQuestion, devShots: readonly PromptQuestion[], numShots: number): BuiltPrompt {
  if (!Number.isInteger(numShots) || numShots < 0) throw new RangeError(`numShots must be a whole number >= 0, got ${numShots}`);
  const shots = devShots.filter((s) => !sameItem(s, question)).slice(0, numShots);
  const prefix = promptHeader(question.subject) + shots.map(formatShot).join('');
  const item = formatItem(question);
  return {
    text: `${prefix}${item}\n${ANSWER_CUE}`,
    prefix,
    questionRange: [prefix.length, prefix.length + item.length],
    shotsUsed: shots.length,
  };
}

export type FitResult =
  | { fits: true; prompt: BuiltPrompt; tokens: number; shotsDropped: number }
  | { fits: false; prompt: BuiltPrompt; tokens: number; maxTokens: number; message: string };

/**
 * Drops shots from the last until the prompt has at most maxTokens tokens (the original MMLU script
 * does the same for its 2048-token limit). When even the zero-shot prompt is too long, returns it with
 * fits: false so that the caller decides between truncating and skipping.
 */
export function fitPrompt(
  question: PromptQuestion,
  devShots: readonly PromptQuestion[],
  numShots: number,
  countTokens: (s: string) => number,
  maxTokens: number,
): FitResult {
  let prompt = buildPrompt(question, devShots, numShots);
  const wanted = prompt.shotsUsed;
  let tokens = countTokens(prompt.text);
  while (tokens > maxTokens && prompt.shotsUsed > 0) {
    prompt = buildPrompt(question, devShots, prompt.shotsUsed - 1);
    tokens = countTokens(prompt.text);
  }
  if (tokens <= maxTokens) return { fits: true, prompt, tokens, shotsDropped: wanted - prompt.shotsUsed };
  return {
    fits: false,
    prompt,
    tokens,
    maxTokens,
    message: `the question alone takes ${tokens} tokens with the header, more than the limit of ${maxTokens}`,
  };
}

/** The few-shot pool of a subject: its dev questions in file order. */
export function devShotsFor(subject: string, questions: readonly MmluQuestion[]): MmluQuestion[] {
  return questions.filter((q) => q.subject === subject && q.split === 'dev');
}
