// Offset alignment: what @huggingface/tokenizers does not give us, UTF-16 character offsets for every
// token, so the UI can paint routing over the exact source text. The tokens come from the library; this
// module rebuilds the byte stream they were cut from, with the source position of every byte.
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

import type { TokenSpan } from '../../../../shared/protocol';

export interface EncodedToken extends TokenSpan {
  /** True for added tokens flagged special (EOS, padding, BOS...), whether written in the text or inserted. */
  special: boolean;
}

// ---------------------------------------------------------------------------------------------
// GPT-2 byte <-> unicode table: byte-level vocabularies spell every byte as one printable character.

/** Characters standing for bytes 0..255 in byte-level vocabularies. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

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

export function utf8Bytes(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length;) {
    const cp = s.codePointAt(i)!;
    pushUtf8(cp, out);
    i += cp > 0xffff ? 2 : 1;
  }
  return out;
}

const utf8Decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
export function decodeUtf8(bytes: readonly number[]): string {
  return utf8Decoder.decode(Uint8Array.from(bytes));
}

// ---------------------------------------------------------------------------------------------
// Minimal shapes of the parts of tokenizer.json we read. Everything else goes to the library as is.

export interface JsonObject {
  [key: string]: unknown;
}

export interface AddedTokenJson {
  id: number;
  content: string;
  special: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

export function componentsOf(cfg: unknown, listKey: string): JsonObject[] {
  if (!isObject(cfg)) return [];
  if (cfg.type === 'Sequence' && Array.isArray(cfg[listKey])) {
    return (cfg[listKey] as unknown[]).flatMap((c) => componentsOf(c, listKey));
  }
  return [cfg];
}

/** tokenizer_config.json writes special tokens either as strings or as AddedToken objects. */
export function specialTokenName(v: unknown): string | undefined {
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

export type Split = { text: string; start: number; added: boolean }[];

/** Splits text at the given added-token strings the way the library does: longest match, left to right. */
export function makeAddedSplitter(contents: readonly string[]): (text: string) => Split {
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

/** What the aligner needs to know of a tokenizer: its added tokens, normalizer and pre-tokenizer insertions. */
export interface AlignmentSpec {
  /** tokenizer.json's "normalizer", replayed with an alignment. */
  normalizerJson: unknown;
  /** The library's normalizer: what the replay must reproduce. */
  normalizer: { normalize(text: string): string } | null | undefined;
  addedById: ReadonlyMap<number, AddedTokenJson>;
  addedByContent: ReadonlyMap<string, AddedTokenJson>;
  splitUnnormalized: (text: string) => Split;
  splitNormalized: (text: string) => Split;
  /** Config flags of the library's encode path we do not replay; offsets are inexact when set. */
  unreplayedConfig: boolean;
  prefixSpace: boolean;
  metaspace: { replacement: string; prependScheme: string } | undefined;
  /** A ByteLevel post-processor with trim_offsets: spans leave out the token's leading and trailing spaces. */
  trimOffsets: { addPrefixSpace: boolean } | undefined;
  tokenBytes(id: number): number[];
  tokenText(id: number): string;
  isSpecial(id: number): boolean;
}

/** Finds each token's source range in the text it was encoded from. */
export class OffsetAligner {
  constructor(private readonly spec: AlignmentSpec) {}

  /**
   * Rebuilds, with source positions, the byte stream the model tokens were cut from: split at added
   * tokens, normalise, split at normalised added tokens, apply the pre-tokenizer's insertions.
   */
  private buildStream(text: string): { stream: ByteStream; exact: boolean } {
    const stream = new ByteStream();
    let exact = !this.spec.unreplayedConfig;
    const sections = this.spec.splitUnnormalized(text);
    const pieces: Piece[] = sections.map((s) => ({ text: s.text, start: s.start, end: s.start + s.text.length, added: s.added }));
    this.applyStrip(pieces);

    pieces.forEach((section, sectionIndex) => {
      if (section.text.length === 0) return;
      if (this.spec.addedByContent.has(section.text)) {
        stream.pushLiteral(section.text, section.start, section.end);
        return;
      }
      const original = identityAligned(section.text, section.start);
      const norm = this.spec.normalizer;
      let aligned = original;
      if (norm) {
        const expected = norm.normalize(section.text);
        const replayed = normalizeAligned(this.spec.normalizerJson, original, section.start);
        if (replayed && replayed.text === expected) {
          aligned = replayed;
        } else {
          aligned = proportionalAligned(expected, section.start, section.text.length);
          exact = false;
        }
      }
      if (aligned.text.length === 0) return;

      const subs = this.spec.splitNormalized(aligned.text);
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
        if (this.spec.addedByContent.has(piece.text)) {
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
      const tok = p.added ? this.spec.addedByContent.get(p.text) : undefined;
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
    if (this.spec.prefixSpace && !a.text.startsWith(' ')) return prepend(' ', a);
    if (this.spec.metaspace) {
      const { replacement, prependScheme } = this.spec.metaspace;
      const replaced = replaceAligned(a, / /gu, replacement);
      const wantsPrefix = prependScheme === 'always' || (prependScheme === 'first' && sectionIndex === 0);
      if (wantsPrefix && !replaced.text.startsWith(replacement)) return prepend(replacement, replaced);
      return replaced;
    }
    return a;
  }

  /** Matches each token's bytes against the rebuilt stream to find its source range. */
  alignTextTokens(text: string, ids: readonly number[], tokenStrings: readonly string[]): { spans: EncodedToken[]; exact: boolean } {
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
      const renamed = this.spec.addedById.has(id) && this.spec.addedById.get(id)!.content !== tokenString;
      const bytes = renamed ? utf8Bytes(tokenString) : this.spec.tokenBytes(id);
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
      if (this.spec.trimOffsets) [start, end] = trimmedOffsets(tokenString, start, end, t, this.spec.trimOffsets.addPrefixSpace);
      spans.push({ id, text: renamed ? tokenString : this.spec.tokenText(id), start, end, special: this.spec.isSpecial(id) });
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

/**
 * A ByteLevel post-processor with trim_offsets (GPT-2, RoBERTa and the tokenizers built like them) leaves a
 * token's leading and trailing spaces out of its offsets: " A" points at "A". As the library's
 * process_offsets does, except for a first token's one space that add_prefix_space inserted (it is not in
 * the text, so its range is empty already).
 */
function trimmedOffsets(token: string, start: number, end: number, index: number, addPrefixSpace: boolean): [number, number] {
  const isSpace = (c: string) => c === BYTE_LEVEL_SPACE || /\s/u.test(c);
  const chars = [...token];
  let leading = 0;
  while (leading < chars.length && isSpace(chars[leading]!)) leading++;
  let trailing = 0;
  while (trailing < chars.length && isSpace(chars[chars.length - 1 - trailing]!)) trailing++;
  if (leading > 0 && (index === 0 || start === 0) && addPrefixSpace && leading === 1) leading = 0;
  if (leading > 0) start = Math.min(start + leading, end);
  if (trailing > 0 && end >= trailing) end = Math.max(end - trailing, start);
  return [start, end];
}

/** The character byte-level vocabularies write a space as (GPT-2's "Ġ"). */
const BYTE_LEVEL_SPACE = BYTE_TO_UNICODE[0x20]!;

function isAsciiSpace(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x0b || b === 0x0c;
}
