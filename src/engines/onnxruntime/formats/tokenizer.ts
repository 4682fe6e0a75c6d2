// Loads a Hugging Face tokenizer.json and adds what @huggingface/tokenizers does not give us:
// UTF-16 character offsets for every token, so the UI can paint routing over the exact source text.
//
// Offset convention
// - Offsets are UTF-16 code-unit indices into the string passed to encode(), [start, end).
// - A token whose bytes cover only part of a character (byte-level BPE can split a multi-byte UTF-8
//   sequence) is given the whole character: start is the start of the character holding the token's
//   first byte, end the end of the character holding its last byte. Two neighbouring tokens may thus
//   share one character; their `text` then contains U+FFFD.
// - Special tokens added by the post-processor (BOS/EOS templates) do not come from the text: they get
//   an empty range, at 0 when they precede the text tokens and at text.length when they follow them.
// - Special tokens written literally in the text get the range of that literal (plus any whitespace the
//   token's lstrip/rstrip flags swallow).
// - Byte-level BPE (GPT-2, GPT-NeoX/OLMoE, Llama-3, Qwen) without a text-changing normalizer: exact.
//   Unicode normalizers (NFC/NFKC/...), Lowercase, Replace, Prepend, Strip and StripAccents are replayed
//   here with an alignment; a character whose normalised form spans several characters (e.g. the NFKC
//   ligature "ﬂ" -> "fl") maps as a whole, so every token inside it gets the ligature's range.
//   Normalizers we cannot replay (Precompiled, BertNormalizer) fall back to a proportional mapping and
//   encode() reports offsetsExact = false.

import { stat } from 'node:fs/promises';
import { readRegularFileAsync } from '../../../shared/safeFiles';
import { basename, dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../../../shared/inputError';
import type { AnswerLetter, AnswerScoring, TokenSpan } from '../../../shared/protocol';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

export interface EncodedToken extends TokenSpan {
  /** True for added tokens flagged special (EOS, padding, BOS...), whether written in the text or inserted. */
  special: boolean;
}

export interface Encoded {
  ids: number[];
  tokens: EncodedToken[];
  /**
   * False when part of the text went through a normalizer this module cannot replay (or alignment
   * failed for another reason): the offsets of the affected tokens are then proportional estimates.
   */
  offsetsExact: boolean;
}

export interface EncodeOptions {
  /** Let the post-processor add its special tokens (BOS/EOS). Default true, as in Hugging Face. */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  skipSpecialTokens?: boolean;
}

/** How a vocabulary entry turns back into bytes. */
export type TokenByteScheme = 'byte-level' | 'metaspace' | 'plain';

export class TokenizerLoadError extends InputError {
  /** Kept in the (message, file) order its callers use; the message starts with the file. */
  constructor(message: string, file: string) {
    super(file, InputError.splitMessage(file, message));
  }
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> unicode table: byte-level vocabularies spell every byte as one printable character.

/** Characters standing for bytes 0..255 in byte-level vocabularies. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();
const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

function buildByteToUnicode(): string[] {
  const table = new Array<string>(256);
  const keepsItsOwnCodePoint = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCharCode(keepsItsOwnCodePoint(b) ? b : 256 + shifted++);
  }
  return table;
}

// ---------------------------------------------------------------------------------------------
// UTF-8 helpers that agree with TextEncoder (a lone surrogate becomes U+FFFD, 3 bytes).

function pushUtf8(cp: number, out: number[]): number {
  if (cp < 0x80) {
    out.push(cp);
    return 1;
  }
  if (cp < 0x800) {
    out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    return 2;
  }
  if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
  if (cp < 0x10000) {
    out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    return 3;
  }
  out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  return 4;
}

function utf8Bytes(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length;) {
    const cp = s.codePointAt(i)!;
    pushUtf8(cp, out);
    i += cp > 0xffff ? 2 : 1;
  }
  return out;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
function decodeUtf8(bytes: readonly number[]): string {
  return utf8Decoder.decode(Uint8Array.from(bytes));
}

// ---------------------------------------------------------------------------------------------
// Minimal shapes of the parts of tokenizer.json we read. Everything else goes to the library as is.

interface JsonObject {
  [key: string]: unknown;
}

interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

function componentsOf(cfg: unknown, listKey: string): JsonObject[] {
  if (!isObject(cfg)) return [];
  if (cfg.type === 'Sequence' && Array.isArray(cfg[listKey])) {
    return (cfg[listKey] as unknown[]).flatMap((c) => componentsOf(c, listKey));
  }
  return [cfg];
}

/** tokenizer_config.json writes special tokens either as strings or as AddedToken objects. */
function specialTokenName(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Aligned text: a string plus, for each UTF-16 unit, the [start, end) range of the original text it
// came from. Normalizer steps rewrite it while keeping that map.

interface Aligned {
  text: string;
  starts: number[];
  ends: number[];
}

function identityAligned(text: string, base: number): Aligned {
  const starts = new Array<number>(text.length);
  const ends = new Array<number>(text.length);
  for (let i = 0; i < text.length;) {
    const cp = text.codePointAt(i)!;
    const n = cp > 0xffff ? 2 : 1;
    for (let k = 0; k < n; k++) {
      starts[i + k] = base + i;
      ends[i + k] = base + i + n;
    }
    i += n;
  }
  return { text, starts, ends };
}

class AlignedBuilder {
  text = '';
  starts: number[] = [];
  ends: number[] = [];
  push(s: string, start: number, end: number): void {
    this.text += s;
    for (let k = 0; k < s.length; k++) {
      this.starts.push(start);
      this.ends.push(end);
    }
  }
  /** A piece that vanished: keep its source covered by widening the previous unit. */
  absorb(end: number): void {
    const last = this.ends.length - 1;
    if (last >= 0 && this.ends[last]! < end) this.ends[last] = end;
  }
  done(): Aligned {
    return { text: this.text, starts: this.starts, ends: this.ends };
  }
}

function sliceAligned(a: Aligned, from: number, to: number): Aligned {
  return { text: a.text.slice(from, to), starts: a.starts.slice(from, to), ends: a.ends.slice(from, to) };
}

/** Range of original text covered by units [from, to) of an aligned string. */
function rangeOf(a: Aligned, from: number, to: number): [number, number] {
  let s = Infinity;
  let e = -Infinity;
  for (let k = from; k < to; k++) {
    s = Math.min(s, a.starts[k]!);
    e = Math.max(e, a.ends[k]!);
  }
  return [s, e];
}

/** Apply f to runs of units (code points, or clusters for Unicode normalization). */
function mapRuns(a: Aligned, runEnds: number[], f: (run: string) => string): Aligned {
  const b = new AlignedBuilder();
  let from = 0;
  for (const to of runEnds) {
    const [s, e] = rangeOf(a, from, to);
    const out = f(a.text.slice(from, to));
    if (out.length === 0) b.absorb(e);
    else b.push(out, s, e);
    from = to;
  }
  return b.done();
}

function codePointEnds(text: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < text.length;) {
    i += text.codePointAt(i)! > 0xffff ? 2 : 1;
    out.push(i);
  }
  return out;
}

// A cluster is a starter plus what composes onto it: combining marks and Hangul medial/final jamo.
const CONTINUES_CLUSTER = /^[\p{M}\u1160-\u11ff\ud7b0-\ud7ff]/u;
function clusterEnds(text: string): number[] {
  const cps = codePointEnds(text);
  const out: number[] = [];
  let prev = 0;
  for (const end of cps) {
    if (out.length > 0 && CONTINUES_CLUSTER.test(text.slice(prev, end))) out[out.length - 1] = end;
    else out.push(end);
    prev = end;
  }
  return out;
}

function replaceAligned(a: Aligned, re: RegExp, content: string): Aligned {
  const b = new AlignedBuilder();
  let pos = 0;
  for (const m of a.text.matchAll(re)) {
    const ms = m.index ?? 0;
    const me = ms + m[0].length;
    if (me === ms) continue;
    for (let k = pos; k < ms; k++) b.push(a.text[k]!, a.starts[k]!, a.ends[k]!);
    const [s, e] = rangeOf(a, ms, me);
    if (content.length === 0) b.absorb(e);
    else b.push(content, s, e);
    pos = me;
  }
  for (let k = pos; k < a.text.length; k++) b.push(a.text[k]!, a.starts[k]!, a.ends[k]!);
  return b.done();
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function patternOf(p: unknown): RegExp | null {
  if (!isObject(p)) return null;
  try {
    if (typeof p.String === 'string') return new RegExp(escapeRegExp(p.String), 'gu');
    if (typeof p.Regex === 'string') return new RegExp(p.Regex, 'gu');
  } catch {
    return null;
  }
  return null;
}

/** Replays one normalizer on aligned text; null when this normalizer cannot be replayed. */
function normalizeAligned(cfg: unknown, a: Aligned, base: number): Aligned | null {
  if (cfg === null || cfg === undefined) return a;
  if (!isObject(cfg)) return null;
  switch (cfg.type) {
    case 'Sequence': {
      let cur: Aligned | null = a;
      for (const sub of Array.isArray(cfg.normalizers) ? cfg.normalizers : []) {
        cur = normalizeAligned(sub, cur, base);
        if (cur === null) return null;
      }
      return cur;
    }
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = cfg.type;
      return mapRuns(a, clusterEnds(a.text), (run) => run.normalize(form));
    }
    case 'Lowercase':
      return mapRuns(a, codePointEnds(a.text), (cp) => cp.toLowerCase());
    case 'StripAccents':
      return mapRuns(a, codePointEnds(a.text), (cp) => cp.replace(/\p{M}/gu, ''));
    case 'Replace': {
      const re = patternOf(cfg.pattern);
      return re ? replaceAligned(a, re, typeof cfg.content === 'string' ? cfg.content : '') : null;
    }
    case 'Prepend': {
      const prefix = typeof cfg.prepend === 'string' ? cfg.prepend : '';
      const at = a.starts.length > 0 ? a.starts[0]! : base;
      const b = new AlignedBuilder();
      b.push(prefix, at, at);
      return { text: b.text + a.text, starts: [...b.starts, ...a.starts], ends: [...b.ends, ...a.ends] };
    }
    case 'Strip': {
      let from = 0;
      let to = a.text.length;
      if (cfg.strip_left) from = a.text.length - a.text.trimStart().length;
      if (cfg.strip_right) to = Math.max(from, a.text.trimEnd().length);
      return sliceAligned(a, from, to);
    }
    default:
      return null;
  }
}

/** Fallback for a normalizer we cannot replay: spread the normalised text evenly over the source. */
function proportionalAligned(normalized: string, base: number, length: number): Aligned {
  const n = normalized.length;
  const starts = new Array<number>(n);
  const ends = new Array<number>(n);
  for (let k = 0; k < n; k++) {
    starts[k] = base + Math.floor((k * length) / n);
    ends[k] = Math.max(starts[k]!, base + Math.floor(((k + 1) * length) / n));
  }
  return { text: normalized, starts, ends };
}

// ---------------------------------------------------------------------------------------------
// Byte stream the tokens are matched against: the bytes the model saw, each tagged with its source.

class ByteStream {
  bytes: number[] = [];
  starts: number[] = [];
  ends: number[] = [];
  pushAligned(a: Aligned): void {
    for (let i = 0; i < a.text.length;) {
      const cp = a.text.codePointAt(i)!;
      const n = cp > 0xffff ? 2 : 1;
      const s = a.starts[i]!;
      const e = a.ends[i + n - 1]!;
      const count = pushUtf8(cp, this.bytes);
      for (let k = 0; k < count; k++) {
        this.starts.push(s);
        this.ends.push(e);
      }
      i += n;
    }
  }
  pushLiteral(s: string, start: number, end: number): void {
    const count = utf8Bytes(s).length;
    this.bytes.push(...utf8Bytes(s));
    for (let k = 0; k < count; k++) {
      this.starts.push(start);
      this.ends.push(end);
    }
  }
}

type Split = { text: string; start: number; added: boolean }[];

/** Splits text at the given added-token strings the way the library does: longest match, left to right. */
function makeAddedSplitter(contents: readonly string[]): (text: string) => Split {
  const byFirst = new Map<string, string[]>();
  for (const c of contents) {
    if (c.length === 0) continue;
    const list = byFirst.get(c[0]!) ?? [];
    list.push(c);
    byFirst.set(c[0]!, list);
  }
  for (const list of byFirst.values()) list.sort((a, b) => b.length - a.length);
  return (text) => {
    if (byFirst.size === 0) return [{ text, start: 0, added: false }];
    const out: Split = [];
    let last = 0;
    for (let i = 0; i < text.length;) {
      const match = byFirst.get(text[i]!)?.find((c) => text.startsWith(c, i));
      if (match) {
        if (i > last) out.push({ text: text.slice(last, i), start: last, added: false });
        out.push({ text: match, start: i, added: true });
        i += match.length;
        last = i;
      } else {
        i++;
      }
    }
    if (last < text.length) out.push({ text: text.slice(last), start: last, added: false });
    return out;
  };
}

interface Piece {
  text: string;
  start: number;
  end: number;
  added: boolean;
}

// ---------------------------------------------------------------------------------------------

export class MoeTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly byteScheme: TokenByteScheme;
  /** Where the tokenizer came from (folder or label), for messages. */
  readonly source: string;

  private readonly hf: Tokenizer;
  private readonly json: JsonObject;
  private readonly addedById = new Map<number, AddedTokenJson>();
  private readonly splitUnnormalized: (text: string) => Split;
  private readonly splitNormalized: (text: string) => Split;
  private readonly addedByContent = new Map<string, AddedTokenJson>();
  private readonly byteFallback: boolean;
  private readonly metaspace: { replacement: string; prependScheme: string } | undefined;
  private readonly prefixSpace: boolean;
  /** Config flags of the library's encode path we do not replay; offsets are inexact when set. */
  private readonly unreplayedConfig: boolean;
  private readonly tokenBytesCache = new Map<number, number[]>();
  private readonly tokenTextCache = new Map<number, string>();
  private scoring: AnswerScoring | undefined;

  private constructor(json: JsonObject, config: JsonObject, source: string, file: string) {
    this.source = source;
    this.json = json;
    const model = json.model;
    if (!isObject(model)) {
      throw new TokenizerLoadError(`${file}: no "model" object; this does not look like a Hugging Face tokenizer.json`, file);
    }
    const type = typeof model.type === 'string' ? model.type : model.merges !== undefined ? 'BPE' : undefined;
    if (type !== 'BPE') {
      throw new TokenizerLoadError(
        `${file}: tokenizer model type "${String(type ?? 'unknown')}" is not supported; MoE Scope reads BPE tokenizers ` +
          '(byte-level as in GPT-2, GPT-NeoX/OLMoE, Llama-3, Qwen; or SentencePiece-style BPE as in Llama-2/Mixtral)',
        file,
      );
    }
    if (!isObject(model.vocab) || !Array.isArray(model.merges)) {
      throw new TokenizerLoadError(`${file}: the BPE model needs a "vocab" object and a "merges" array`, file);
    }
    if (!('added_tokens' in json)) json.added_tokens = [];
    if (!Array.isArray(json.added_tokens)) {
      throw new TokenizerLoadError(`${file}: "added_tokens" must be an array`, file);
    }
    // The library requires these keys to exist even when null.
    for (const key of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder']) if (!(key in json)) json[key] = null;

    try {
      this.hf = new Tokenizer(json, config);
    } catch (err) {
      throw new TokenizerLoadError(`${file}: the tokenizer could not be built: ${(err as Error).message}`, file);
    }

    const hasNormalizer = json.normalizer !== null;
    const unnormalizedAdded: string[] = [];
    const normalizedAdded: string[] = [];
    for (const raw of json.added_tokens as unknown[]) {
      if (!isObject(raw) || typeof raw.id !== 'number' || typeof raw.content !== 'string') {
        throw new TokenizerLoadError(`${file}: an entry of "added_tokens" lacks a numeric id or a content string`, file);
      }
      const special = raw.special === true;
      const tok: AddedTokenJson = {
        id: raw.id,
        content: raw.content,
        special,
        lstrip: raw.lstrip === true,
        rstrip: raw.rstrip === true,
        normalized: typeof raw.normalized === 'boolean' ? raw.normalized : !special,
      };
      this.addedById.set(tok.id, tok);
      this.addedByContent.set(tok.content, tok);
      if (tok.normalized && hasNormalizer) {
        const n = this.hf.normalizer ? this.hf.normalizer.normalize(tok.content) : tok.content;
        normalizedAdded.push(n);
        this.addedByContent.set(n, tok);
      } else {
        unnormalizedAdded.push(tok.content);
      }
    }
    this.splitUnnormalized = makeAddedSplitter(unnormalizedAdded);
    this.splitNormalized = makeAddedSplitter(normalizedAdded);

    const preTok = componentsOf(json.pre_tokenizer, 'pretokenizers');
    const decoders = componentsOf(json.decoder, 'decoders');
    const byteLevelPre = preTok.find((c) => c.type === 'ByteLevel');
    const metaPre = preTok.find((c) => c.type === 'Metaspace');
    if (byteLevelPre || decoders.some((d) => d.type === 'ByteLevel')) {
      this.byteScheme = 'byte-level';
    } else if (
      metaPre ||
      decoders.some((d) => d.type === 'Metaspace' || d.type === 'ByteFallback') ||
      componentsOf(json.normalizer, 'normalizers').some((n) => n.type === 'Replace' && n.content === '\u2581')
    ) {
      this.byteScheme = 'metaspace';
    } else {
      this.byteScheme = 'plain';
    }
    this.byteFallback = model.byte_fallback === true;
    // Only the first pre-tokenizer sees whole sections; an insertion further down a Sequence would apply
    // to every split piece, which we do not replay (the walk then reports inexact offsets).
    const first = preTok[0];
    this.prefixSpace = first !== undefined && first === byteLevelPre && byteLevelPre.add_prefix_space === true;
    this.metaspace =
      metaPre && metaPre === first
        ? {
            replacement: typeof metaPre.replacement === 'string' ? metaPre.replacement : '\u2581',
            // Mirrors @huggingface/tokenizers 0.2.0, which ignores the legacy add_prefix_space flag.
            prependScheme: typeof metaPre.prepend_scheme === 'string' ? metaPre.prepend_scheme : 'always',
          }
        : undefined;
    this.unreplayedConfig = config.remove_space === true || config.do_lowercase_and_remove_accent === true;

    let maxId = -1;
    for (const v of Object.values(model.vocab)) if (typeof v === 'number' && v > maxId) maxId = v;
    for (const id of this.addedById.keys()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    const idOf = (key: string): number | undefined => {
      const name = specialTokenName(config[key]);
      return name === undefined ? undefined : this.tokenToId(name);
    };
    // Without a tokenizer_config.json, GPT-2/GPT-NeoX conventions name the end-of-text token.
    const fallbackEos = Object.keys(config).length === 0 ? this.tokenToId('<|endoftext|>') : undefined;
    this.eosTokenId = idOf('eos_token') ?? fallbackEos;
    this.padTokenId = idOf('pad_token');
    this.bosTokenId = idOf('bos_token');
  }

  /** Builds a tokenizer from already parsed tokenizer.json / tokenizer_config.json objects. */
  static fromJson(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = '(in memory)', owned = false): MoeTokenizer {
    const file = source === '(in memory)' ? TOKENIZER_FILE : join(source, TOKENIZER_FILE);
    if (!isObject(tokenizerJson)) throw new TokenizerLoadError(`${file}: the top level must be a JSON object`, file);
    const cfgFile = source === '(in memory)' ? TOKENIZER_CONFIG_FILE : join(source, TOKENIZER_CONFIG_FILE);
    if (tokenizerConfig !== undefined && tokenizerConfig !== null && !isObject(tokenizerConfig)) {
      throw new TokenizerLoadError(`${cfgFile}: the top level must be a JSON object`, cfgFile);
    }
    // The library and our constructor fill in defaults; unless the objects were parsed just for us
    // (owned), keep the caller's untouched.
    const json = owned ? tokenizerJson : structuredClone(tokenizerJson);
    const config = isObject(tokenizerConfig) ? (owned ? tokenizerConfig : structuredClone(tokenizerConfig)) : {};
    return new MoeTokenizer(json, config, source, file);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.addedById.get(id)?.special === true;
  }

  /** The text one token stands for (U+FFFD where it holds part of a UTF-8 sequence). */
  tokenText(id: number): string {
    let t = this.tokenTextCache.get(id);
    if (t === undefined) {
      t = this.displayText(id, this.tokenBytes(id));
      this.tokenTextCache.set(id, t);
    }
    return t;
  }

  encode(text: string, options: EncodeOptions = {}): Encoded {
    const addSpecial = options.addSpecialTokens ?? true;
    const plain = this.hf.encode(text, { add_special_tokens: false });
    const { spans, exact } = this.alignTextTokens(text, plain.ids, plain.tokens);
    const post = this.hf.post_processor;
    if (!addSpecial || !post) return { ids: [...plain.ids], tokens: spans, offsetsExact: exact };

    // encode(add_special_tokens: true) is this same post-processing step; running it on the tokens we
    // already have saves a second BPE pass and shows which tokens it inserted.
    const fullTokens = post.post_process([...plain.tokens], null, true).tokens;
    const n = plain.tokens.length;
    let offset = -1;
    for (let k = 0; k + n <= fullTokens.length && offset < 0; k++) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = fullTokens[k + i] === plain.tokens[i];
      if (same) offset = k;
    }
    if (offset < 0) offset = 0;
    const tokens: EncodedToken[] = fullTokens.map((tok, i) => {
      const j = i - offset;
      if (j >= 0 && j < n) return spans[j]!;
      const id = this.addedByContent.get(tok)?.id ?? this.tokenToId(tok) ?? -1;
      if (id < 0) throw new Error(`Tokenizer (${this.source}): the post-processor inserted ${JSON.stringify(tok)}, which is not in the vocabulary`);
      const at = j < 0 ? 0 : text.length;
      return { id, text: this.tokenText(id), start: at, end: at, special: this.isSpecial(id) };
    });
    return { ids: tokens.map((t) => t.id), tokens, offsetsExact: exact };
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const kept = options.skipSpecialTokens ? ids.filter((id) => !this.isSpecial(id)) : [...ids];
    if (kept.length === 0) return '';
    if (this.byteScheme === 'byte-level') {
      // Done here rather than by the library so no clean-up pass rewrites spaces: decode(encode(t)) === t.
      const bytes: number[] = [];
      for (const id of kept) bytes.push(...this.tokenBytes(id));
      return decodeUtf8(bytes);
    }
    return this.hf.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /**
   * The answer letters " A", " B", " C", " D" as they follow "Answer:" in an MMLU prompt: the ids each
   * adds after the context (lm-evaluation-harness splits context and continuation the same way). Measured
   * in context so SentencePiece-style tokenizers, which prefix a lone string with a space marker, are
   * judged on the tokens they really produce after "Answer:". One token each: 'single-token' scoring;
   * otherwise 'continuation' (the summed log-probability of each letter's tokens).
   */
  answerScoring(): AnswerScoring {
    if (this.scoring) return this.scoring;
    const context = 'Answer:';
    const base = this.hf.encode(context, { add_special_tokens: false }).ids;
    const letters: AnswerLetter[] = ['A', 'B', 'C', 'D'];
    const ids = letters.map((letter) => {
      const withLetter = this.hf.encode(`${context} ${letter}`, { add_special_tokens: false });
      const prefixKept = base.every((id, i) => withLetter.ids[i] === id);
      const extra = withLetter.ids.slice(base.length);
      if (!prefixKept || extra.length === 0) {
        // The letter merges into the context's last token: no continuation of the prompt spells it.
        throw new Error(
          `Tokenizer (${this.source}): answer letter " ${letter}" merges with "${context}" (${JSON.stringify(this.hf.encode(context, { add_special_tokens: false }).tokens)} ` +
            `becomes ${JSON.stringify(withLetter.tokens)}), so it cannot be scored as a continuation of the prompt`,
        );
      }
      return extra;
    });
    const keys = ids.map((x) => x.join(','));
    if (new Set(keys).size !== 4) throw new Error(`Tokenizer (${this.source}): the answer letters encode to the same tokens ${JSON.stringify(ids)}`);
    this.scoring = {
      method: ids.every((x) => x.length === 1) ? 'single-token' : 'continuation',
      letterTokenIds: [ids[0]!, ids[1]!, ids[2]!, ids[3]!],
    };
    return this.scoring;
  }

  // -------------------------------------------------------------------------------------------

  private tokenBytes(id: number): number[] {
    const cached = this.tokenBytesCache.get(id);
    if (cached) return cached;
    const added = this.addedById.get(id);
    const token = added?.content ?? this.hf.id_to_token(id) ?? '';
    let bytes: number[];
    if (added) {
      bytes = utf8Bytes(token);
    } else if (this.byteScheme === 'byte-level') {
      bytes = [];
      for (const ch of token) {
        const b = UNICODE_TO_BYTE.get(ch);
        if (b === undefined) bytes.push(...utf8Bytes(ch));
        else bytes.push(b);
      }
    } else {
      const m = this.byteFallback ? /^<0x([0-9A-Fa-f]{2})>$/.exec(token) : null;
      bytes = m ? [parseInt(m[1]!, 16)] : utf8Bytes(token);
    }
    this.tokenBytesCache.set(id, bytes);
    return bytes;
  }

  private displayText(id: number, bytes: readonly number[]): string {
    const s = decodeUtf8(bytes);
    if (this.byteScheme === 'metaspace' && !this.addedById.has(id)) {
      return s.split(this.metaspace?.replacement ?? '\u2581').join(' ');
    }
    return s;
  }

  /**
   * Rebuilds, with source positions, the byte stream the model tokens were cut from: split at added
   * tokens, normalise, split at normalised added tokens, apply the pre-tokenizer's insertions.
   */
  private buildStream(text: string): { stream: ByteStream; exact: boolean } {
    const stream = new ByteStream();
    let exact = !this.unreplayedConfig;
    const sections = this.splitUnnormalized(text);
    const pieces: Piece[] = sections.map((s) => ({ text: s.text, start: s.start, end: s.start + s.text.length, added: s.added }));
    this.applyStrip(pieces);

    pieces.forEach((section, sectionIndex) => {
      if (section.text.length === 0) return;
      if (this.addedByContent.has(section.text)) {
        stream.pushLiteral(section.text, section.start, section.end);
        return;
      }
      const original = identityAligned(section.text, section.start);
      const norm = this.hf.normalizer;
      let aligned = original;
      if (norm) {
        const expected = norm.normalize(section.text);
        const replayed = normalizeAligned(this.json.normalizer, original, section.start);
        if (replayed && replayed.text === expected) {
          aligned = replayed;
        } else {
          aligned = proportionalAligned(expected, section.start, section.text.length);
          exact = false;
        }
      }
      if (aligned.text.length === 0) return;

      const subs = this.splitNormalized(aligned.text);
      const subPieces = subs.map((s) => {
        const part = sliceAligned(aligned, s.start, s.start + s.text.length);
        const [start, end] = rangeOf(part, 0, part.text.length);
        return { part, piece: { text: s.text, start, end, added: s.added } as Piece };
      });
      this.applyStrip(
        subPieces.map((p) => p.piece),
        (i, from, to) => {
          subPieces[i]!.part = sliceAligned(subPieces[i]!.part, from, to);
        },
      );
      for (const { part, piece } of subPieces) {
        if (piece.text.length === 0) continue;
        if (this.addedByContent.has(piece.text)) {
          stream.pushLiteral(piece.text, piece.start, piece.end);
          continue;
        }
        stream.pushAligned(this.preTokenizerInsertions(part, sectionIndex));
      }
    });
    return { stream, exact };
  }

  /**
   * lstrip/rstrip added tokens swallow the whitespace next to them; the swallowed characters are
   * counted into the added token's range so the text stays covered.
   */
  private applyStrip(pieces: Piece[], onTrim?: (index: number, from: number, to: number) => void): void {
    pieces.forEach((p, i) => {
      const tok = p.added ? this.addedByContent.get(p.text) : undefined;
      if (!tok) return;
      const prev = pieces[i - 1];
      if (tok.lstrip && prev && !prev.added) {
        const kept = prev.text.trimEnd();
        const cut = prev.text.length - kept.length;
        if (cut > 0) {
          onTrim?.(i - 1, 0, kept.length);
          p.start = Math.min(p.start, prev.end - cut);
          prev.end -= cut;
          prev.text = kept;
        }
      }
      const next = pieces[i + 1];
      if (tok.rstrip && next && !next.added) {
        const kept = next.text.trimStart();
        const cut = next.text.length - kept.length;
        if (cut > 0) {
          onTrim?.(i + 1, cut, next.text.length);
          p.end = Math.max(p.end, next.start + cut);
          next.start += cut;
          next.text = kept;
        }
      }
    });
  }

  private preTokenizerInsertions(a: Aligned, sectionIndex: number): Aligned {
    const at = a.starts.length > 0 ? a.starts[0]! : 0;
    const prepend = (prefix: string, x: Aligned): Aligned => ({
      text: prefix + x.text,
      starts: [...new Array<number>(prefix.length).fill(at), ...x.starts],
      ends: [...new Array<number>(prefix.length).fill(at), ...x.ends],
    });
    if (this.prefixSpace && !a.text.startsWith(' ')) return prepend(' ', a);
    if (this.metaspace) {
      const { replacement, prependScheme } = this.metaspace;
      const replaced = replaceAligned(a, / /gu, replacement);
      const wantsPrefix = prependScheme === 'always' || (prependScheme === 'first' && sectionIndex === 0);
      if (wantsPrefix && !replaced.text.startsWith(replacement)) return prepend(replacement, replaced);
      return replaced;
    }
    return a;
  }

  /** Matches each token's bytes against the rebuilt stream to find its source range. */
  private alignTextTokens(text: string, ids: readonly number[], tokenStrings: readonly string[]): { spans: EncodedToken[]; exact: boolean } {
    const { stream, exact: streamExact } = this.buildStream(text);
    let exact = streamExact;
    const L = stream.bytes.length;
    let cursor = 0;
    let lost = false;
    const spans: EncodedToken[] = [];
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      // An added token matched after normalisation appears as the normalised string, not its content.
      const tokenString = tokenStrings[t] ?? '';
      const renamed = this.addedById.has(id) && this.addedById.get(id)!.content !== tokenString;
      const bytes = renamed ? utf8Bytes(tokenString) : this.tokenBytes(id);
      if (!lost) {
        let matched = this.matchesAt(stream, cursor, bytes);
        // Pre-tokenizers such as Whitespace drop blanks; skip them instead of losing the alignment.
        while (!matched && cursor < L && isAsciiSpace(stream.bytes[cursor]!)) {
          cursor++;
          matched = this.matchesAt(stream, cursor, bytes);
        }
        if (!matched) {
          lost = true;
          exact = false;
        }
      }
      let start: number;
      let end: number;
      if (bytes.length === 0 || L === 0) {
        start = end = cursor < L ? stream.starts[cursor]! : text.length;
      } else {
        const first = Math.min(cursor, L - 1);
        const last = Math.min(cursor + bytes.length - 1, L - 1);
        start = stream.starts[first]!;
        end = Math.max(start, stream.ends[last]!);
        if (cursor >= L) start = end = text.length;
      }
      cursor += bytes.length;
      spans.push({ id, text: renamed ? tokenString : this.tokenText(id), start, end, special: this.isSpecial(id) });
    }
    if (cursor !== L) exact = false;
    return { spans, exact };
  }

  private matchesAt(stream: ByteStream, at: number, bytes: readonly number[]): boolean {
    if (at + bytes.length > stream.bytes.length) return false;
    for (let k = 0; k < bytes.length; k++) if (stream.bytes[at + k] !== bytes[k]) return false;
    return true;
  }
}

function isAsciiSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0b || b === 0x0c;
}

// ---------------------------------------------------------------------------------------------

/**
 * Index of the first character where text stops being JSON (text.length when it ends too early), or
 * -1 when it is valid. JSON.parse messages carry a position only in some Node versions and for some
 * errors, so the position is found here.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const n = text.length;
  const fail = (): never => {
    throw new JsonStop(i);
  };
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = () => {
    i++;
    for (;;) {
      if (i >= n) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail();
      } else if (c < 0x20) fail();
      else i++;
    }
  };
  const numberRe = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          str();
          ws();
          if (text[i] !== ':') fail();
          i++;
        }
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === close) {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') return str();
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    numberRe.lastIndex = i;
    if (numberRe.exec(text) === null) fail();
    i = numberRe.lastIndex;
  };
  try {
    value();
    ws();
    return i < n ? i : -1;
  } catch (e) {
    if (e instanceof JsonStop) return Math.min(e.at, n);
    return -1;
  }
}

class JsonStop {
  constructor(readonly at: number) {}
}

async function readJsonFile(file: string, what: string): Promise<unknown> {
  let raw: string;
  try {
    raw = (await readRegularFileAsync(file, { maxBytes: 512 << 20 })).toString('utf8');
  } catch (err) {
    throw new TokenizerLoadError(`${file}: could not read ${what}: ${(err as Error).message}`, file);
  }
  if (raw.charCodeAt(0) === 0xfeff) raw = raw.slice(1);
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    const found = jsonErrorOffset(raw);
    const pos = found >= 0 ? found : raw.length;
    const before = raw.slice(0, pos);
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    const where = pos >= raw.length ? `at the end of the file (line ${line}, column ${column})` : `at line ${line}, column ${column}`;
    throw new TokenizerLoadError(`${file}: invalid JSON ${where}: ${(err as Error).message}`, file);
  }
}

/**
 * Loads tokenizer.json (and tokenizer_config.json when present) from a Hugging Face checkpoint
 * folder. A path to a tokenizer.json file is accepted too.
 */
export async function loadTokenizer(modelDir: string): Promise<MoeTokenizer> {
  let dir = modelDir;
  let info;
  try {
    info = await stat(modelDir);
  } catch {
    throw new TokenizerLoadError(`${modelDir}: no such folder; expected a Hugging Face checkpoint folder containing ${TOKENIZER_FILE}`, modelDir);
  }
  if (info.isFile() && basename(modelDir) === TOKENIZER_FILE) dir = dirname(modelDir);
  else if (!info.isDirectory()) {
    throw new TokenizerLoadError(`${modelDir}: not a folder; expected a Hugging Face checkpoint folder containing ${TOKENIZER_FILE}`, modelDir);
  }
  const file = join(dir, TOKENIZER_FILE);
  const exists = await stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!exists) {
    throw new TokenizerLoadError(
      `The folder ${dir} lacks ${TOKENIZER_FILE}; a Hugging Face checkpoint folder is expected ` +
        `(config.json, ${TOKENIZER_FILE}, optionally ${TOKENIZER_CONFIG_FILE}, and the *.safetensors weights)`,
      file,
    );
  }
  const json = await readJsonFile(file, 'the tokenizer');
  const cfgFile = join(dir, TOKENIZER_CONFIG_FILE);
  const hasConfig = await stat(cfgFile).then(
    (s) => s.isFile(),
    () => false,
  );
  const config = hasConfig ? await readJsonFile(cfgFile, 'the tokenizer configuration') : {};
  return MoeTokenizer.fromJson(json, config, dir, true);
}
