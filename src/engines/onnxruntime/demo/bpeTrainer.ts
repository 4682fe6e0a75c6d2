// Deterministic byte-level BPE trainer for the demo checkpoints. It writes the same tokenizer.json
// layout as Hugging Face `tokenizers` (GPT-2 / GPT-NeoX style), so the demo goes through exactly the
// loading code a real OLMoE checkpoint goes through.
//
// Determinism: the corpus is reduced to word counts, and among pairs of equal count the pair whose
// (left token, right token) strings sort first (UTF-16 code-unit order) wins. Every choice is thus a
// function of the corpus alone, never of Map/heap iteration order, so equal input gives byte-identical
// JSON.
//
// Answer letters: " A", " B", " C", " D" are seeded as the first merges (ranks 0-3) and applied to the
// corpus before any counted merge, so they are single tokens whatever the corpus holds, and the rest of
// the training sees a corpus in which they are already merged (what encoding with these ranks does).

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BpeTrainOptions {
  /** Total vocabulary: special tokens + 256 byte symbols + merged tokens. */
  vocabSize: number;
  /** Added as special tokens with ids 0, 1, ... in this order. */
  specialTokens: string[];
  /** Pairs seen fewer times than this are never merged (training may stop below vocabSize). Default 2. */
  minFrequency?: number;
  /** Strings that must each end up as one token (merged first, in order). Default the answer letters. */
  requiredTokens?: string[];
  /** Strings that must never become one token (tests: a tokenizer whose answer letters are two tokens). */
  forbiddenTokens?: string[];
  /** Default "<|endoftext|>" when listed, else the first special token. */
  eosToken?: string;
  /** Default "<|padding|>" when listed. */
  padToken?: string;
  /** "strings" ("a b", read by every tokenizers version) or "pairs" (["a","b"], tokenizers >= 0.20). */
  mergesFormat?: 'strings' | 'pairs';
  /** model_max_length written to tokenizer_config.json. Default 4096 (OLMoE). */
  modelMaxLength?: number;
}

export interface BpeTrainStats {
  /** Size of the vocabulary actually built (ids 0 .. vocabSize-1 are all used). */
  vocabSize: number;
  merges: number;
  distinctWords: number;
  corpusWords: number;
  corpusBytes: number;
  /** Why training ended: the vocabulary is full, or no pair reaches minFrequency any more. */
  stoppedBecause: 'vocab-full' | 'min-frequency';
}

export interface BpeTrainResult {
  tokenizerJson: Record<string, unknown>;
  tokenizerConfig: Record<string, unknown>;
  stats: BpeTrainStats;
}

export const ANSWER_LETTER_TOKENS: readonly string[] = [' A', ' B', ' C', ' D'];

// The GPT-2 pre-tokenizer split (contractions, letters, digits, other symbols, whitespace), as used by
// the ByteLevel pre-tokenizer with use_regex = true.
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Printable stand-ins for bytes 0..255 (the table every byte-level BPE vocabulary is written in). */
function byteSymbols(): string[] {
  const table = new Array<string>(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCharCode(printable ? b : 256 + shifted++);
  }
  return table;
}

// Pair keys pack two symbol ids in one number; 2^21 symbols keep a key below 2^42 (exact in a double).
const SHIFT = 2 ** 21;
const pairKey = (a: number, b: number) => a * SHIFT + b;

interface HeapEntry {
  count: number;
  a: number;
  b: number;
}

/** Max-heap on (count desc, left string asc, right string asc). */
class PairHeap {
  private items: HeapEntry[] = [];
  constructor(private readonly symbols: string[]) {}
  get size(): number {
    return this.items.length;
  }
  private before(x: HeapEntry, y: HeapEntry): boolean {
    if (x.count !== y.count) return x.count > y.count;
    const xa = this.symbols[x.a]!;
    const ya = this.symbols[y.a]!;
    if (xa !== ya) return xa < ya;
    return this.symbols[x.b]! < this.symbols[y.b]!;
  }
  push(e: HeapEntry): void {
    const h = this.items;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): HeapEntry | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

class Trainer {
  readonly symbols: string[] = byteSymbols();
  private readonly symbolIds = new Map<string, number>(this.symbols.map((s, i) => [s, i]));
  readonly merges: [string, string][] = [];
  private words: number[][] = [];
  private freqs: number[] = [];
  private readonly counts = new Map<number, number>();
  private readonly where = new Map<number, number[]>();
  private seen: Int32Array = new Int32Array(0);
  private step = 0;
  readonly heap = new PairHeap(this.symbols);

  loadWords(wordCounts: Map<string, number>): void {
    // Sorted so that the pair index and every tie-free decision do not depend on corpus order.
    const sorted = [...wordCounts.entries()].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    for (const [word, freq] of sorted) {
      const bytes = Buffer.from(word, 'utf8');
      const syms = Array.from(bytes);
      const w = this.words.length;
      this.words.push(syms);
      this.freqs.push(freq);
      for (let i = 0; i + 1 < syms.length; i++) {
        const k = pairKey(syms[i]!, syms[i + 1]!);
        this.counts.set(k, (this.counts.get(k) ?? 0) + freq);
        this.addWhere(k, w);
      }
    }
    this.seen = new Int32Array(this.words.length).fill(-1);
    for (const [k, count] of this.counts) this.heap.push({ count, a: Math.floor(k / SHIFT), b: k % SHIFT });
  }

  private addWhere(k: number, w: number): void {
    const list = this.where.get(k);
    if (!list) this.where.set(k, [w]);
    else if (list[list.length - 1] !== w) list.push(w);
  }

  countOf(a: number, b: number): number {
    return this.counts.get(pairKey(a, b)) ?? 0;
  }

  /** Records the merge a+b and rewrites every word holding the pair, keeping pair counts current. */
  merge(a: number, b: number): number {
    const joined = this.symbols[a]! + this.symbols[b]!;
    let c = this.symbolIds.get(joined);
    if (c === undefined) {
      c = this.symbols.length;
      this.symbols.push(joined);
      this.symbolIds.set(joined, c);
    }
    this.merges.push([this.symbols[a]!, this.symbols[b]!]);
    const key = pairKey(a, b);
    const delta = new Map<number, number>();
    const bump = (k: number, d: number) => delta.set(k, (delta.get(k) ?? 0) + d);
    const step = this.step++;
    for (const w of this.where.get(key) ?? []) {
      if (this.seen[w] === step) continue;
      this.seen[w] = step;
      const old = this.words[w]!;
      let hit = false;
      for (let i = 0; i + 1 < old.length && !hit; i++) hit = old[i] === a && old[i + 1] === b;
      if (!hit) continue;
      const next: number[] = [];
      for (let i = 0; i < old.length;) {
        if (i + 1 < old.length && old[i] === a && old[i + 1] === b) {
          next.push(c);
          i += 2;
        } else {
          next.push(old[i]!);
          i++;
        }
      }
      const f = this.freqs[w]!;
      for (let i = 0; i + 1 < old.length; i++) bump(pairKey(old[i]!, old[i + 1]!), -f);
      for (let i = 0; i + 1 < next.length; i++) {
        const k = pairKey(next[i]!, next[i + 1]!);
        bump(k, f);
        if (next[i] === c || next[i + 1] === c) this.addWhere(k, w);
      }
      this.words[w] = next;
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const n = (this.counts.get(k) ?? 0) + d;
      if (n > 0) this.counts.set(k, n);
      else this.counts.delete(k);
      if (d > 0) this.heap.push({ count: n, a: Math.floor(k / SHIFT), b: k % SHIFT });
    }
    this.counts.delete(key);
    this.where.delete(key);
    return c;
  }

  /** Best pair by (count, strings), skipping heap entries made stale by earlier merges. */
  popBest(): HeapEntry | undefined {
    for (;;) {
      const top = this.heap.pop();
      if (!top) return undefined;
      const current = this.countOf(top.a, top.b);
      if (current === top.count) return top;
      if (current > 0) this.heap.push({ count: current, a: top.a, b: top.b });
    }
  }

  idOf(symbol: string): number | undefined {
    return this.symbolIds.get(symbol);
  }
}

/** Word counts after GPT-2 pre-tokenization; text between special tokens is counted, the tokens not. */
function countWords(texts: readonly string[], specialTokens: readonly string[]): { counts: Map<string, number>; words: number; bytes: number } {
  const counts = new Map<string, number>();
  let words = 0;
  let bytes = 0;
  const specials = specialTokens.filter((s) => s.length > 0);
  for (const text of texts) {
    bytes += Buffer.byteLength(text, 'utf8');
    let parts = [text];
    for (const s of specials) parts = parts.flatMap((p) => p.split(s));
    for (const part of parts) {
      for (const m of part.matchAll(GPT2_SPLIT)) {
        const w = m[0];
        counts.set(w, (counts.get(w) ?? 0) + 1);
        words++;
      }
    }
  }
  return { counts, words, bytes };
}

export function trainByteLevelBpe(texts: readonly string[], options: BpeTrainOptions): BpeTrainResult {
  const specials = options.specialTokens;
  if (new Set(specials).size !== specials.length) throw new Error('trainByteLevelBpe: specialTokens contains duplicates');
  const minFrequency = Math.max(1, options.minFrequency ?? 2);
  const required = options.requiredTokens ?? [...ANSWER_LETTER_TOKENS];
  const floor = specials.length + 256;
  if (!Number.isInteger(options.vocabSize) || options.vocabSize < floor) {
    throw new Error(`trainByteLevelBpe: vocabSize ${options.vocabSize} is below ${floor} (special tokens + 256 byte symbols)`);
  }
  if (options.vocabSize - specials.length >= SHIFT) throw new Error(`trainByteLevelBpe: vocabSize ${options.vocabSize} is too large`);

  const { counts, words, bytes } = countWords(texts, specials);
  const t = new Trainer();
  t.loadWords(counts);
  const full = () => specials.length + t.symbols.length >= options.vocabSize;

  for (const r of required) {
    // Byte b is symbol b: the 256 byte symbols come first.
    const syms = Array.from(Buffer.from(r, 'utf8'));
    while (syms.length > 1) {
      const joined = t.symbols[syms[0]!]! + t.symbols[syms[1]!]!;
      const existing = t.idOf(joined);
      if (existing !== undefined) {
        syms.splice(0, 2, existing);
        continue;
      }
      if (full()) throw new Error(`trainByteLevelBpe: vocabSize ${options.vocabSize} leaves no room for required token ${JSON.stringify(r)}`);
      syms.splice(0, 2, t.merge(syms[0]!, syms[1]!));
    }
  }

  const symbolsOf = byteSymbols();
  const forbidden = new Set((options.forbiddenTokens ?? []).map((f) => Array.from(Buffer.from(f, 'utf8'), (b) => symbolsOf[b]).join('')));
  for (const f of options.forbiddenTokens ?? [])
    if (required.includes(f)) throw new Error(`trainByteLevelBpe: ${JSON.stringify(f)} is both required and forbidden`);
  let stoppedBecause: BpeTrainStats['stoppedBecause'] = 'vocab-full';
  while (!full()) {
    const best = t.popBest();
    if (!best || best.count < minFrequency) {
      stoppedBecause = 'min-frequency';
      break;
    }
    if (forbidden.has(t.symbols[best.a]! + t.symbols[best.b]!)) continue;
    t.merge(best.a, best.b);
  }

  const vocab: Record<string, number> = {};
  specials.forEach((s, i) => (vocab[s] = i));
  t.symbols.forEach((s, i) => (vocab[s] = specials.length + i));
  const vocabSize = specials.length + t.symbols.length;
  const merges = options.mergesFormat === 'pairs' ? t.merges.map(([a, b]) => [a, b]) : t.merges.map(([a, b]) => `${a} ${b}`);

  const addedTokens = specials.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const tokenizerJson: Record<string, unknown> = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: { ...byteLevel, trim_offsets: false },
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };

  const eos = options.eosToken ?? (specials.includes('<|endoftext|>') ? '<|endoftext|>' : specials[0]);
  const pad = options.padToken ?? (specials.includes('<|padding|>') ? '<|padding|>' : undefined);
  for (const [role, tok] of [
    ['eosToken', eos],
    ['padToken', pad],
  ] as const) {
    if (tok !== undefined && !specials.includes(tok)) throw new Error(`trainByteLevelBpe: ${role} ${JSON.stringify(tok)} is not among specialTokens`);
  }
  const tokenizerConfig: Record<string, unknown> = {
    add_bos_token: false,
    add_eos_token: false,
    added_tokens_decoder: Object.fromEntries(addedTokens.map(({ id, ...rest }) => [String(id), rest])),
    bos_token: null,
    // Decoding must give back the exact text (MMLU prompts are compared character for character).
    clean_up_tokenization_spaces: false,
    eos_token: eos ?? null,
    model_max_length: options.modelMaxLength ?? 4096,
    pad_token: pad ?? null,
    tokenizer_class: 'GPTNeoXTokenizer',
    unk_token: null,
  };

  return {
    tokenizerJson,
    tokenizerConfig,
    stats: { vocabSize, merges: t.merges.length, distinctWords: counts.size, corpusWords: words, corpusBytes: bytes, stoppedBecause },
  };
}

/** Writes tokenizer.json and tokenizer_config.json into dir (created when missing). */
export function writeTokenizerFiles(dir: string, result: Pick<BpeTrainResult, 'tokenizerJson' | 'tokenizerConfig'>): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(result.tokenizerJson));
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(result.tokenizerConfig, null, 2) + '\n');
}
