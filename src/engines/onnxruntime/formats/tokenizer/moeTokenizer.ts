// The tokenizer the ONNX Runtime engine uses: @huggingface/tokenizers for the ids, offsets from
// alignment.ts, answer letters from answerScoring.ts. Built from parsed JSON; load.ts reads the files.

import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { InputError } from '../../../../shared/inputError';
import type { AnswerScoring } from '../../../../shared/protocol';
import {
  OffsetAligner,
  UNICODE_TO_BYTE,
  componentsOf,
  decodeUtf8,
  isObject,
  makeAddedSplitter,
  specialTokenName,
  utf8Bytes,
  type AddedTokenJson,
  type EncodedToken,
  type JsonObject,
  type Split,
} from './alignment';
import { answerScoringOf } from './answerScoring';
import { rememberWords } from './wordMemory';
import { WordwiseEncoder } from './wordwise';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

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

export class MoeTokenizer {
  readonly vocabSize: number;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  readonly bosTokenId: number | undefined;
  readonly byteScheme: TokenByteScheme;
  /** Where the tokenizer came from (folder or label), for messages. */
  readonly source: string;

  private readonly hf: Tokenizer;
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
  private readonly aligner: OffsetAligner;
  private readonly wordwise: WordwiseEncoder | undefined;

  private constructor(json: JsonObject, config: JsonObject, source: string, file: string) {
    this.source = source;
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
    rememberWords(this.hf);

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
    const byteLevelPost = componentsOf(json.post_processor, 'processors').find((c) => c.type === 'ByteLevel');
    this.aligner = new OffsetAligner({
      normalizerJson: json.normalizer,
      normalizer: this.hf.normalizer,
      addedById: this.addedById,
      addedByContent: this.addedByContent,
      splitUnnormalized: this.splitUnnormalized,
      splitNormalized: this.splitNormalized,
      unreplayedConfig: this.unreplayedConfig,
      prefixSpace: this.prefixSpace,
      metaspace: this.metaspace,
      trimOffsets: byteLevelPost?.trim_offsets === true ? { addPrefixSpace: byteLevelPost.add_prefix_space === true } : undefined,
      tokenBytes: (id) => this.tokenBytes(id),
      tokenText: (id) => this.tokenText(id),
      isSpecial: (id) => this.isSpecial(id),
    });
    this.wordwise = WordwiseEncoder.forTokenizer(this.hf, this.aligner, [...unnormalizedAdded, ...normalizedAdded], {
      unreplayedConfig: this.unreplayedConfig,
      trimOffsetsWithPrefixSpace: byteLevelPost?.trim_offsets === true && byteLevelPost.add_prefix_space === true,
    });

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
    const words = this.wordwise?.encode(text);
    const plain = words ? { ids: words.ids, tokens: words.strings } : this.hf.encode(text, { add_special_tokens: false });
    const { spans, exact } = words ? { spans: words.spans, exact: true } : this.aligner.alignTextTokens(text, plain.ids, plain.tokens);
    const post = this.hf.post_processor;
    if (!addSpecial || !post) return { ids: [...plain.ids], tokens: spans, offsetsExact: exact };

    // encode(add_special_tokens: true) is this same post-processing step; running it on the tokens we
    // already have saves a second BPE pass and shows which tokens it inserted.
    const fullTokens = post.post_process([...plain.tokens], null, true).tokens;
    const n = plain.tokens.length;
    // Nothing inserted (a ByteLevel post-processor, say): the tokens are the text's.
    if (fullTokens.length === n) return { ids: [...plain.ids], tokens: spans, offsetsExact: exact };
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

  /** How this tokenizer's answer letters are scored (answerScoring.ts). */
  answerScoring(): AnswerScoring {
    this.scoring ??= answerScoringOf((text) => this.hf.encode(text, { add_special_tokens: false }), this.source);
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
}
