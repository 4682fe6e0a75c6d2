// Planning a full MMLU run tokenizes about 2.4 M tokens, and @huggingface/tokenizers spent most of that time
// redoing per-word work: its BPE keeps 10 k words behind an LRU that MMLU's vocabulary overflows, and its
// ByteLevel pre-tokenizer re-encodes every word to UTF-8 and maps each byte. Both steps depend on the word
// alone, so remembering them per word gives the same tokens (test/unit/tokenizer-wordwise.test.ts
// compares against the library left as it is).
import type { Tokenizer } from '@huggingface/tokenizers';

/** Words remembered per step at most (MMLU's test split has about 60 k distinct words); then it starts over. */
const WORDS_LIMIT = 500_000;
/** Longer words are rare and would let memory grow with hostile input; the library does not cache them either. */
const LONGEST_WORD = 256;

interface BpeModel {
  encode(words: string[]): string[];
}

interface ByteLevelPreTokenizer {
  config: { type?: unknown };
  add_prefix_space: boolean;
  use_regex: boolean;
  pattern: RegExp;
  byte_encoder: Record<number, string>;
  pre_tokenize_text(text: string, options?: unknown): string[];
}

/** compute, remembered per word (bounded: see WORDS_LIMIT and LONGEST_WORD). */
export function memo<T>(compute: (word: string) => T): (word: string) => T {
  const known = new Map<string, T>();
  return (word) => {
    let v = known.get(word);
    if (v === undefined) {
      v = compute(word);
      if (word.length < LONGEST_WORD) {
        if (known.size >= WORDS_LIMIT) known.clear();
        known.set(word, v);
      }
    }
    return v;
  };
}

function isByteLevel(p: unknown): p is ByteLevelPreTokenizer {
  const c = p as Partial<ByteLevelPreTokenizer> | null;
  return (
    !!c &&
    c.config?.type === 'ByteLevel' &&
    typeof c.pre_tokenize_text === 'function' &&
    c.pattern instanceof RegExp &&
    typeof c.use_regex === 'boolean' &&
    typeof c.add_prefix_space === 'boolean' &&
    typeof c.byte_encoder === 'object'
  );
}

/** The ByteLevel pre-tokenizers of a pipeline: the top one or those inside a Sequence. */
function byteLevelPreTokenizers(pre: unknown): ByteLevelPreTokenizer[] {
  if (isByteLevel(pre)) return [pre];
  const inner = (pre as { tokenizers?: unknown } | null)?.tokenizers;
  return Array.isArray(inner) ? inner.flatMap(byteLevelPreTokenizers) : [];
}

/** Installs per-word memory in a BPE tokenizer's model and ByteLevel pre-tokenizers (the library's own steps, remembered). */
export function rememberWords(hf: Tokenizer): void {
  const model = (hf as unknown as { model: BpeModel }).model;
  const encodeOne = model.encode.bind(model);
  const piecesOf = memo((word) => encodeOne([word]));
  model.encode = (words) => {
    const out: string[] = [];
    for (const word of words) for (const piece of piecesOf(word)) out.push(piece);
    return out;
  };

  for (const pre of byteLevelPreTokenizers((hf as unknown as { pre_tokenizer: unknown }).pre_tokenizer)) {
    const bytesOf = memo(byteLevelSpelling(pre.byte_encoder));
    // The library's pre_tokenize_text, with the per-word byte mapping remembered.
    pre.pre_tokenize_text = (text) => {
      if (pre.add_prefix_space && !text.startsWith(' ')) text = ' ' + text;
      const words = pre.use_regex ? (text.match(pre.pattern) ?? []) : [text];
      return words.map(bytesOf);
    };
  }
}

const utf8 = new TextEncoder();

/** A word as a byte-level vocabulary spells it: each UTF-8 byte as its stand-in character. */
export function byteLevelSpelling(byteEncoder: Record<number, string>): (word: string) => string {
  return (word) => {
    let s = '';
    for (const b of utf8.encode(word)) s += byteEncoder[b];
    return s;
  };
}
