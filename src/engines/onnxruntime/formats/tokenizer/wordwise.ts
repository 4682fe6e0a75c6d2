// The common case, encoded a word at a time: a byte-level BPE tokenizer (GPT-2, GPT-NeoX/OLMoE, the demo
// model) with no normalizer and the ByteLevel pre-tokenizer's own split. Every token then lies inside one
// word of that split, and a word's ids and offsets depend on the word alone, so each distinct word is
// encoded and aligned once (by the library and alignment.ts, as for any text) and reused at every place it
// occurs. Texts holding an added token, and words whose alignment is not exact, take the general path.
// test/unit/tokenizer-wordwise.test.ts checks ids and offsets against the general path.
import type { Tokenizer } from '@huggingface/tokenizers';
import type { EncodedToken, OffsetAligner } from './alignment';
import { byteLevelSpelling, memo } from './wordMemory';

interface LibraryInternals {
  normalizer: unknown;
  pre_tokenizer: { config?: { type?: unknown }; use_regex?: unknown; add_prefix_space?: unknown; pattern?: unknown } | null;
  model: {
    encode(words: string[]): string[];
    fuse_unk?: unknown;
    tokens_to_ids: Map<string, number>;
    unk_token_id?: number;
    merges?: unknown;
    end_of_word_suffix?: unknown;
    continuing_subword_suffix?: unknown;
    byte_fallback?: unknown;
    ignore_merges?: unknown;
    config?: { dropout?: unknown };
  };
  added_tokens_map: Map<string, { id: number }>;
}

interface Word {
  ids: number[];
  strings: string[];
  /** Offsets relative to the word's start. */
  spans: EncodedToken[];
}

export interface WordwiseEncoding {
  ids: number[];
  /** The library's token strings (what its post-processor takes). */
  strings: string[];
  spans: EncodedToken[];
}

/**
 * Byte-pair merging of one word: repeatedly the adjacent pair of lowest merge rank, the leftmost of equal
 * ranks, as the library's priority queue orders them (rank, then position). A scan per merge is quadratic in
 * the word's length, so it only takes the short words that make up text; longer ones go to the library.
 */
class PairMerges {
  private readonly ranks = new Map<string, Map<string, number>>();

  constructor(merges: readonly (readonly [string, string])[]) {
    merges.forEach(([a, b], rank) => {
      let row = this.ranks.get(a);
      if (!row) this.ranks.set(a, (row = new Map()));
      // A pair listed twice keeps its last rank, as in the library.
      row.set(b, rank);
    });
  }

  merge(word: string): string[] {
    const symbols = Array.from(word);
    for (;;) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i + 1 < symbols.length; i++) {
        const r = this.ranks.get(symbols[i]!)?.get(symbols[i + 1]!);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) return symbols;
      symbols.splice(best, 2, symbols[best]! + symbols[best + 1]!);
    }
  }
}

/** Words merged here rather than by the library (see PairMerges). */
const LONGEST_MERGED_HERE = 64;

export class WordwiseEncoder {
  private readonly merges: PairMerges | undefined;
  private readonly bytesOf: (word: string) => string;
  /** Each distinct word's tokens, or null where the general path must encode it. */
  private readonly word = memo((text): Word | null => this.encodeWord(text));

  private constructor(
    private readonly lib: LibraryInternals,
    private readonly pattern: RegExp,
    private readonly added: RegExp | null,
    private readonly aligner: OffsetAligner,
    byteEncoder: Record<number, string>,
  ) {
    const m = lib.model;
    const plainBpe =
      Array.isArray(m.merges) &&
      m.merges.every((x) => Array.isArray(x) && x.length === 2) &&
      !m.end_of_word_suffix &&
      !m.continuing_subword_suffix &&
      m.byte_fallback !== true &&
      m.ignore_merges !== true &&
      !m.config?.dropout;
    this.merges = plainBpe ? new PairMerges(m.merges as [string, string][]) : undefined;
    this.bytesOf = byteLevelSpelling(byteEncoder);
  }

  /** The encoder for this tokenizer, or undefined when its pipeline is not the plain byte-level one. */
  static forTokenizer(
    hf: Tokenizer,
    aligner: OffsetAligner,
    addedContents: readonly string[],
    options: { unreplayedConfig: boolean; trimOffsetsWithPrefixSpace: boolean },
  ): WordwiseEncoder | undefined {
    const lib = hf as unknown as LibraryInternals;
    const pre = lib.pre_tokenizer as (LibraryInternals['pre_tokenizer'] & { byte_encoder?: unknown }) | null;
    if (
      lib.normalizer !== null ||
      options.unreplayedConfig ||
      // trim_offsets with add_prefix_space treats the text's first token apart.
      options.trimOffsetsWithPrefixSpace ||
      !pre ||
      pre.config?.type !== 'ByteLevel' ||
      pre.use_regex !== true ||
      pre.add_prefix_space !== false ||
      !(pre.pattern instanceof RegExp) ||
      typeof pre.byte_encoder !== 'object' ||
      lib.model.fuse_unk === true ||
      typeof lib.model.encode !== 'function' ||
      !(lib.added_tokens_map instanceof Map)
    ) {
      return undefined;
    }
    const escaped = addedContents.filter((c) => c.length > 0).map((c) => c.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    const added = escaped.length ? new RegExp(escaped.join('|'), 'u') : null;
    return new WordwiseEncoder(lib, new RegExp(pre.pattern.source, pre.pattern.flags), added, aligner, pre.byte_encoder as Record<number, string>);
  }

  /** The text's tokens (without the post-processor's), or undefined where the general path must encode it. */
  encode(text: string): WordwiseEncoding | undefined {
    if (this.added?.test(text)) return undefined;
    const ids: number[] = [];
    const strings: string[] = [];
    const spans: EncodedToken[] = [];
    for (const m of text.matchAll(this.pattern)) {
      const w = this.word(m[0]);
      if (!w) return undefined;
      const at = m.index!;
      for (let i = 0; i < w.ids.length; i++) {
        const s = w.spans[i]!;
        ids.push(w.ids[i]!);
        strings.push(w.strings[i]!);
        spans.push({ id: s.id, text: s.text, start: s.start + at, end: s.end + at, special: s.special });
      }
    }
    return { ids, strings, spans };
  }

  private encodeWord(text: string): Word | null {
    // The library's steps for one word: its byte mapping, its BPE (here for short words), its token-to-id lookup.
    const bytes = this.bytesOf(text);
    let strings = this.merges && bytes.length <= LONGEST_MERGED_HERE ? this.merges.merge(bytes) : undefined;
    // A piece outside the vocabulary takes the library's unknown-token handling.
    if (strings?.some((t) => !this.lib.model.tokens_to_ids.has(t))) strings = undefined;
    strings ??= this.lib.model.encode([bytes]);
    const ids = strings.map((t) => this.lib.added_tokens_map.get(t)?.id ?? this.lib.model.tokens_to_ids.get(t) ?? this.lib.model.unk_token_id ?? -1);
    const aligned = this.aligner.alignTextTokens(text, ids, strings);
    return ids.includes(-1) || !aligned.exact ? null : { ids, strings, spans: aligned.spans };
  }
}
