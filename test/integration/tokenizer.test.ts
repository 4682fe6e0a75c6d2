import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ANSWER_LETTER_TOKENS, trainByteLevelBpe, writeTokenizerFiles, type BpeTrainResult } from '../../src/engines/onnxruntime/demo/bpeTrainer';
import { mmluDataDir } from '../support/mmlu';
import { BYTE_TO_UNICODE, loadTokenizer, MoeTokenizer, TokenizerLoadError, type Encoded } from '../../src/engines/onnxruntime/formats/tokenizer';

// ---------------------------------------------------------------------------------------------------
// Fixtures

const SPECIALS = ['<|endoftext|>', '<|padding|>'];

/** Contents of every CSV file of the given splits, in file-name order. */
function readSplitTexts(...splits: string[]): string[] {
  const root = mmluDataDir();
  return splits.flatMap((split) =>
    readdirSync(join(root, split))
      .filter((f) => f.endsWith('.csv'))
      .sort()
      .map((f) => readFileSync(join(root, split, f), 'utf8')),
  );
}

/** RFC 4180 rows (quoted fields may hold commas, doubled quotes and newlines). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += c;
  }
  if (field.length > 0 || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

/** lm-evaluation-harness rendering of one MMLU row, ending with the answer letter. */
function renderQuestion(row: string[]): string {
  const [q, a, b, c, d, answer] = row;
  return `${q}\nA. ${a}\nB. ${b}\nC. ${c}\nD. ${d}\nAnswer: ${answer}\n\n`;
}

/**
 * The offset contract on a text the tokenizer reproduces exactly. Tokens sharing a split character
 * form a group; each group's decoded bytes equal its source slice; groups tile the text in order with
 * no gap or overlap; a lone token's text equals its slice; post-processor specials are empty ranges.
 */
function assertOffsetsTile(tok: MoeTokenizer, text: string, enc: Encoded, label = JSON.stringify(text.slice(0, 50))): void {
  assert.equal(enc.ids.length, enc.tokens.length, `${label}: ids and tokens differ in length`);
  assert.deepEqual(
    enc.tokens.map((t) => t.id),
    enc.ids,
    `${label}: token ids differ from ids`,
  );
  const textTokens = enc.tokens.filter((t) => !(t.special && t.start === t.end));
  let pos = 0;
  let group: typeof textTokens = [];
  const groupEnd = () => Math.max(...group.map((t) => t.end));
  const closeGroup = () => {
    if (group.length === 0) return;
    const start = group[0]!.start;
    const end = groupEnd();
    const texts = JSON.stringify(group.map((t) => t.text));
    assert.equal(start, pos, `${label}: gap or overlap before ${texts}: starts at ${start}, previous token ended at ${pos}`);
    const decoded = tok.decode(group.map((t) => t.id));
    assert.equal(
      decoded,
      text.slice(start, end),
      `${label}: ${texts} decode to ${JSON.stringify(decoded)} but cover ${JSON.stringify(text.slice(start, end))}`,
    );
    if (group.length > 1) {
      for (const t of group) assert.ok(t.text.includes('\uFFFD'), `${label}: ${JSON.stringify(t.text)} shares a range without being a partial character`);
    } else {
      assert.equal(group[0]!.text, text.slice(start, end), `${label}: token text differs from its source slice`);
    }
    pos = end;
    group = [];
  };
  for (const t of textTokens) {
    assert.ok(t.start >= 0 && t.start <= t.end && t.end <= text.length, `${label}: bad range [${t.start},${t.end}) for ${JSON.stringify(t.text)}`);
    if (group.length > 0 && t.start >= groupEnd()) closeGroup();
    group.push(t);
  }
  closeGroup();
  assert.equal(pos, text.length, `${label}: tokens cover [0,${pos}) of ${text.length} characters`);
}

/** A reference trainer that recounts every pair at every step: slow, obviously right. */
function naiveMerges(texts: string[], merges: number, required: string[]): string[] {
  const re = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;
  const counts = new Map<string, number>();
  for (const t of texts) for (const m of t.matchAll(re)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
  const words = [...counts].map(([w, f]) => ({ syms: Array.from(Buffer.from(w, 'utf8'), (b) => BYTE_TO_UNICODE[b]!), f }));
  const out: string[] = [];
  const apply = (a: string, b: string) => {
    out.push(`${a} ${b}`);
    for (const w of words) {
      const next: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === a && w.syms[i + 1] === b) {
          next.push(a + b);
          i++;
        } else next.push(w.syms[i]!);
      }
      w.syms = next;
    }
  };
  for (const r of required) {
    let syms = Array.from(Buffer.from(r, 'utf8'), (b) => BYTE_TO_UNICODE[b]!);
    while (syms.length > 1) {
      apply(syms[0]!, syms[1]!);
      syms = [syms[0]! + syms[1]!, ...syms.slice(2)];
    }
  }
  while (out.length < merges) {
    const pairs = new Map<string, { a: string; b: string; n: number }>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const k = `${w.syms[i]}\u0000${w.syms[i + 1]}`;
        const p = pairs.get(k) ?? { a: w.syms[i]!, b: w.syms[i + 1]!, n: 0 };
        p.n += w.f;
        pairs.set(k, p);
      }
    }
    let best: { a: string; b: string; n: number } | undefined;
    for (const p of pairs.values()) {
      if (!best || p.n > best.n || (p.n === best.n && (p.a < best.a || (p.a === best.a && p.b < best.b)))) best = p;
    }
    if (!best || best.n < 2) break;
    apply(best.a, best.b);
  }
  return out;
}

let demoTexts: string[] = [];
let demo: BpeTrainResult;
let demoMs = 0;
let dir = '';
let tok: MoeTokenizer;
let rows: string[][] = [];

before(async () => {
  demoTexts = readSplitTexts('dev', 'val');
  const t0 = performance.now();
  demo = trainByteLevelBpe(demoTexts, { vocabSize: 4096, specialTokens: SPECIALS });
  demoMs = performance.now() - t0;
  dir = mkdtempSync(join(tmpdir(), 'moe-scope-tok-'));
  writeTokenizerFiles(dir, demo);
  tok = await loadTokenizer(dir);
  rows = demoTexts.flatMap(parseCsv).filter((r) => r.length === 6);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------------

describe('trainByteLevelBpe', () => {
  test('trains the 4096-token demo vocabulary on MMLU dev+val (time reported, not asserted)', (t) => {
    t.diagnostic(
      `trained ${demo.stats.vocabSize} tokens (${demo.stats.merges} merges) on ${(demo.stats.corpusBytes / 1e6).toFixed(2)} MB, ${demo.stats.distinctWords} distinct words, in ${demoMs.toFixed(0)} ms`,
    );
    assert.equal(demo.stats.vocabSize, 4096);
    assert.equal(demo.stats.stoppedBecause, 'vocab-full');
  });

  test('writes a Hugging Face byte-level BPE tokenizer.json', () => {
    const j = demo.tokenizerJson as {
      model: { type: string; vocab: Record<string, number>; merges: string[] };
      added_tokens: { id: number; content: string; special: boolean; normalized: boolean }[];
      pre_tokenizer: Record<string, unknown>;
      decoder: Record<string, unknown>;
      normalizer: unknown;
    };
    assert.equal(j.model.type, 'BPE');
    assert.equal(j.normalizer, null);
    assert.deepEqual(
      { type: j.pre_tokenizer.type, add_prefix_space: j.pre_tokenizer.add_prefix_space, use_regex: j.pre_tokenizer.use_regex },
      { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
    );
    assert.equal(j.decoder.type, 'ByteLevel');
    assert.deepEqual(
      j.added_tokens.map((a) => [a.id, a.content, a.special, a.normalized]),
      [
        [0, '<|endoftext|>', true, false],
        [1, '<|padding|>', true, false],
      ],
    );
    const ids = Object.values(j.model.vocab).sort((a, b) => a - b);
    assert.deepEqual(
      ids,
      Array.from({ length: 4096 }, (_, i) => i),
      'vocab ids are exactly 0..4095',
    );
    for (let b = 0; b < 256; b++) assert.ok(BYTE_TO_UNICODE[b]! in j.model.vocab, `byte ${b} missing`);
    // The answer letters are the first four merges.
    assert.deepEqual(j.model.merges.slice(0, 4), ['Ġ A', 'Ġ B', 'Ġ C', 'Ġ D']);
    for (const m of j.model.merges) {
      const parts = m.split(' ');
      assert.equal(parts.length, 2, `merge ${JSON.stringify(m)}`);
      assert.ok(parts[0]! in j.model.vocab && parts[1]! in j.model.vocab && parts.join('') in j.model.vocab, `merge ${m} refers to unknown tokens`);
    }
    assert.equal(demo.tokenizerConfig.eos_token, '<|endoftext|>');
    assert.equal(demo.tokenizerConfig.pad_token, '<|padding|>');
  });

  test('is deterministic: same input, byte-identical JSON; corpus order does not matter', () => {
    const again = trainByteLevelBpe(demoTexts, { vocabSize: 4096, specialTokens: SPECIALS });
    assert.equal(JSON.stringify(again.tokenizerJson), JSON.stringify(demo.tokenizerJson));
    assert.equal(JSON.stringify(again.tokenizerConfig), JSON.stringify(demo.tokenizerConfig));
    const reversed = trainByteLevelBpe([...demoTexts].reverse(), { vocabSize: 4096, specialTokens: SPECIALS });
    assert.equal(JSON.stringify(reversed.tokenizerJson), JSON.stringify(demo.tokenizerJson));
  });

  test('breaks ties between equally frequent pairs by the token strings', () => {
    // Each pair occurs once; "a" < "c" < "x" < "Ġ" in code-unit order.
    const r = trainByteLevelBpe(['xy ab cd'], { vocabSize: 2 + 256 + 3, specialTokens: SPECIALS, minFrequency: 1, requiredTokens: [] });
    assert.deepEqual((r.tokenizerJson.model as { merges: string[] }).merges, ['a b', 'c d', 'x y']);
  });

  test('incremental pair counts agree with a from-scratch recount at every merge', () => {
    const texts = readSplitTexts('dev').slice(0, 12);
    const r = trainByteLevelBpe(texts, { vocabSize: 2 + 256 + 400, specialTokens: SPECIALS });
    const merges = (r.tokenizerJson.model as { merges: string[] }).merges;
    assert.equal(merges.length, 400);
    assert.deepEqual(merges, naiveMerges(texts, 400, [...ANSWER_LETTER_TOKENS]));
  });

  test('respects minFrequency and rejects impossible sizes', () => {
    const r = trainByteLevelBpe(['abc abc abd'], { vocabSize: 1000, specialTokens: SPECIALS, minFrequency: 3, requiredTokens: [] });
    assert.equal(r.stats.stoppedBecause, 'min-frequency');
    // Only "a b" (3 times) qualifies; "ab c" is seen twice.
    assert.deepEqual((r.tokenizerJson.model as { merges: string[] }).merges, ['a b']);
    assert.throws(() => trainByteLevelBpe(['x'], { vocabSize: 257, specialTokens: SPECIALS }), /below 258/);
    assert.throws(() => trainByteLevelBpe(['x'], { vocabSize: 259, specialTokens: SPECIALS }), /no room for required token " B"/);
  });

  test('merges written as ["a","b"] pairs load and encode like "a b" strings', () => {
    const pairs = trainByteLevelBpe(demoTexts.slice(0, 20), { vocabSize: 1500, specialTokens: SPECIALS, mergesFormat: 'pairs' });
    const strings = trainByteLevelBpe(demoTexts.slice(0, 20), { vocabSize: 1500, specialTokens: SPECIALS });
    assert.ok(Array.isArray((pairs.tokenizerJson.model as { merges: unknown[] }).merges[0]));
    const a = MoeTokenizer.fromJson(pairs.tokenizerJson, pairs.tokenizerConfig);
    const b = MoeTokenizer.fromJson(strings.tokenizerJson, strings.tokenizerConfig);
    for (const row of rows.slice(0, 50)) {
      const text = renderQuestion(row);
      assert.deepEqual(a.encode(text).ids, b.encode(text).ids);
    }
    // And merges really are used: far fewer tokens than bytes.
    const text = rows.slice(0, 50).map(renderQuestion).join('');
    const n = a.encode(text).ids.length;
    assert.ok(n < Buffer.byteLength(text) * 0.4, `${n} tokens for ${Buffer.byteLength(text)} bytes`);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('loadTokenizer on the trained demo tokenizer', () => {
  test('exposes vocabulary facts and the special tokens', () => {
    assert.equal(tok.vocabSize, 4096);
    assert.equal(tok.eosTokenId, 0);
    assert.equal(tok.padTokenId, 1);
    assert.equal(tok.bosTokenId, undefined);
    assert.equal(tok.byteScheme, 'byte-level');
    assert.equal(tok.idToToken(0), '<|endoftext|>');
    assert.equal(tok.tokenToId('<|padding|>'), 1);
    assert.deepEqual([tok.tokenToId('ĠA')], tok.answerScoring().letterTokenIds[0]);
    assert.equal(tok.tokenText(tok.tokenToId('ĠA')!), ' A');
    assert.equal(tok.idToToken(99999), undefined);
    assert.ok(tok.isSpecial(0) && !tok.isSpecial(2));
  });

  test('answerScoring: four distinct single tokens, equal to encoding " A".." D"', () => {
    const scoring = tok.answerScoring();
    assert.equal(scoring.method, 'single-token');
    const ids = scoring.letterTokenIds.map((x) => {
      assert.equal(x.length, 1);
      return x[0]!;
    });
    assert.equal(new Set(ids).size, 4);
    ['A', 'B', 'C', 'D'].forEach((letter, i) => {
      assert.deepEqual(tok.encode(` ${letter}`).ids, [ids[i]]);
      assert.equal(tok.decode([ids[i]!]), ` ${letter}`);
    });
    // In an actual prompt the final token is the answer letter's id.
    const enc = tok.encode(renderQuestion(rows[3]!).trimEnd());
    assert.equal(enc.ids[enc.ids.length - 1], ids['ABCD'.indexOf(rows[3]![5]!)]);
  });

  test('round-trips and tiles offsets on every MMLU dev+val question', (t) => {
    let tokens = 0;
    for (const row of rows) {
      const text = renderQuestion(row);
      const enc = tok.encode(text);
      tokens += enc.ids.length;
      assert.equal(tok.decode(enc.ids), text);
      assert.ok(enc.offsetsExact);
      assertOffsetsTile(tok, text, enc);
    }
    t.diagnostic(`${rows.length} questions, ${tokens} tokens`);
    assert.ok(rows.length > 1500, `only ${rows.length} rows parsed`);
  });

  test('non-ASCII MMLU rows (accents, math symbols, Greek, dashes) round-trip with exact offsets', (t) => {
    // Every non-ASCII dev+val row, plus each test row that brings a character not seen before (the
    // library's BPE is slow enough that all 2000 such test rows would dominate the run).
    const chars = new Set<string>();
    const unicode: string[] = [];
    const test = readSplitTexts('test').flatMap(parseCsv);
    for (const [i, r] of [...rows, ...test].entries()) {
      if (r.length !== 6) continue;
      const text = renderQuestion(r);
      const fresh = [...text].filter((ch) => ch.charCodeAt(0) > 0x7f && !chars.has(ch));
      // eslint-disable-next-line no-control-regex -- "not ASCII" is exactly the range \x00-\x7f
      if (fresh.length === 0 && (i >= rows.length || !/[^\x00-\x7f]/.test(text))) continue;
      for (const ch of fresh) chars.add(ch);
      unicode.push(text);
    }
    assert.ok(unicode.length > 150, `only ${unicode.length} non-ASCII rows found`);
    for (const text of unicode) {
      const enc = tok.encode(text);
      assert.equal(tok.decode(enc.ids), text);
      assertOffsetsTile(tok, text, enc);
    }
    t.diagnostic(`${unicode.length} rows, ${chars.size} distinct non-ASCII characters`);
    for (const ch of ['é', '∀', '≥', 'π', '—', '’']) assert.ok(chars.has(ch), `expected ${ch} in the corpus`);
  });

  test('a multi-byte character split across tokens gives each part the whole character', () => {
    // 𝑥 (U+1D465) is a surrogate pair in UTF-16 and 4 bytes in UTF-8, never merged in MMLU training.
    const text = 'Let 𝑥 ∈ ℝ, naïve Σ ≥ 0 — done';
    const enc = tok.encode(text);
    assertOffsetsTile(tok, text, enc);
    const x = text.indexOf('𝑥');
    const parts = enc.tokens.filter((t) => t.start === x);
    assert.ok(parts.length >= 2, 'the character is split over several tokens');
    for (const p of parts) assert.deepEqual([p.start, p.end, p.text.includes('\uFFFD')], [x, x + 2, true]);
    assert.equal(tok.decode(parts.map((p) => p.id)), '𝑥');
  });

  test('CR/LF, tabs, runs of spaces, control characters and lone surrogates', () => {
    for (const text of ['a\r\nb\tc   d\n\n\n  e', '\u0000\u0001\u007f\u00a0\ufeff\uffff', 'x\ud800y', '   ', '']) {
      const enc = tok.encode(text);
      assert.ok(enc.offsetsExact, JSON.stringify(text));
      if (text.includes('\ud800')) {
        // TextEncoder semantics: a lone surrogate is encoded as U+FFFD, and comes back as such.
        assert.equal(tok.decode(enc.ids), 'x\ufffdy');
        assert.deepEqual(
          enc.tokens.map((t) => [t.start, t.end]),
          [[0, 1], ...enc.tokens.slice(1, -1).map(() => [1, 2]), [2, 3]],
        );
        continue;
      }
      assert.equal(tok.decode(enc.ids), text);
      assertOffsetsTile(tok, text, enc);
    }
  });

  test('special tokens written in the text are matched and get their literal range', () => {
    const text = 'Question one<|endoftext|>Question two<|padding|>';
    const enc = tok.encode(text);
    const eos = enc.tokens.find((t) => t.id === 0)!;
    assert.deepEqual([eos.start, eos.end, eos.special, eos.text], [12, 25, true, '<|endoftext|>']);
    assertOffsetsTile(tok, text, enc);
    assert.equal(tok.decode(enc.ids), text);
    assert.equal(tok.decode(enc.ids, { skipSpecialTokens: true }), 'Question oneQuestion two');
  });

  test('decode of nothing is the empty string', () => {
    assert.equal(tok.decode([]), '');
    assert.deepEqual(tok.encode(''), { ids: [], tokens: [], offsetsExact: true });
  });
});

// ---------------------------------------------------------------------------------------------------
// Other tokenizer.json layouts, built from the trained vocabulary.

type Json = Record<string, unknown>;
const withChanges = (changes: Json): Json => ({ ...structuredClone(demo.tokenizerJson), ...changes });

describe('other tokenizer layouts', () => {
  test('a post-processor that adds BOS and EOS: empty ranges at 0 and at the end', () => {
    const template = {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '<|padding|>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|endoftext|>', type_id: 0 } },
      ],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: {
        '<|padding|>': { id: '<|padding|>', ids: [1], tokens: ['<|padding|>'] },
        '<|endoftext|>': { id: '<|endoftext|>', ids: [0], tokens: ['<|endoftext|>'] },
      },
    };
    const t = MoeTokenizer.fromJson(withChanges({ post_processor: template }), { bos_token: '<|padding|>', eos_token: '<|endoftext|>' });
    const text = 'Paris is the capital of France.';
    const enc = t.encode(text);
    assert.equal(enc.ids[0], 1);
    assert.equal(enc.ids[enc.ids.length - 1], 0);
    assert.deepEqual([enc.tokens[0]!.start, enc.tokens[0]!.end], [0, 0]);
    assert.deepEqual([enc.tokens.at(-1)!.start, enc.tokens.at(-1)!.end], [text.length, text.length]);
    assertOffsetsTile(t, text, enc);
    assert.equal(t.bosTokenId, 1);
    assert.deepEqual(t.encode(text, { addSpecialTokens: false }).ids, enc.ids.slice(1, -1));
    // A literal special token in the text is still told apart from the inserted ones.
    const literal = '<|padding|>x';
    const e2 = t.encode(literal);
    assert.deepEqual(e2.tokens.map((x) => [x.id, x.start, x.end]).slice(0, 2), [
      [1, 0, 0],
      [1, 0, 11],
    ]);
  });

  test('ByteLevel with add_prefix_space: the inserted space has no source range', () => {
    const pre = { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true };
    const t = MoeTokenizer.fromJson(withChanges({ pre_tokenizer: pre }), demo.tokenizerConfig);
    const text = 'Answer: A';
    const enc = t.encode(text);
    assert.ok(enc.offsetsExact);
    assert.equal(enc.tokens[0]!.text.startsWith(' '), true);
    assert.equal(enc.tokens[0]!.start, 0);
    assert.deepEqual(enc.tokens.map((x) => text.slice(x.start, x.end)).join(''), text);
  });

  test('an NFKC normalizer: ligatures and full-width characters map to their source character', () => {
    const t = MoeTokenizer.fromJson(withChanges({ normalizer: { type: 'NFKC' } }), demo.tokenizerConfig);
    const text = 'ﬂuid ①２ café e\u0301 x';
    const enc = t.encode(text);
    assert.ok(enc.offsetsExact);
    const normalized = text.normalize('NFKC');
    assert.equal(t.decode(enc.ids), normalized);
    // Each token's source range is whole characters, in order, covering the text.
    let pos = 0;
    for (const x of enc.tokens) {
      assert.ok(x.start >= pos - 2 && x.start <= x.end, `${JSON.stringify(x)} after ${pos}`);
      pos = Math.max(pos, x.end);
    }
    assert.equal(pos, text.length);
    const fl = enc.tokens.filter((x) => x.start === 0);
    assert.ok(fl.length >= 1 && fl.every((x) => x.end >= 1));
    assert.ok(
      enc.tokens.some((x) => x.text.includes('fl') || x.text === 'f'),
      'the ligature was normalised to f+l',
    );
    // "é" written as e + combining acute is one cluster: every token touching it maps to both units.
    const e = text.indexOf('e\u0301');
    for (const x of enc.tokens.filter((y) => y.start <= e && y.end > e)) assert.ok(x.end >= e + 2);
  });

  test('a normalizer that cannot be replayed falls back to proportional offsets and says so', () => {
    const bert = { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true };
    const t = MoeTokenizer.fromJson(withChanges({ normalizer: bert }), demo.tokenizerConfig);
    const text = 'HELLO Wörld ①';
    const enc = t.encode(text);
    assert.equal(enc.offsetsExact, false);
    let prev = 0;
    for (const x of enc.tokens) {
      assert.ok(x.start >= prev - 1 && x.start <= x.end && x.end <= text.length, JSON.stringify(x));
      prev = x.start;
    }
  });

  test('added tokens with lstrip swallow the whitespace before them', () => {
    const json = withChanges({});
    (json.added_tokens as Json[]).push({ id: 4096, content: '<mask>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true });
    const t = MoeTokenizer.fromJson(json, demo.tokenizerConfig);
    const text = 'The answer is   <mask> indeed';
    const enc = t.encode(text);
    const mask = enc.tokens.find((x) => x.id === 4096)!;
    assert.deepEqual([mask.start, mask.end], [text.indexOf('   <mask>'), text.indexOf('<mask>') + 6]);
    assert.equal(t.vocabSize, 4097);
    assertOffsetsTile(t, text.replace('   <mask>', '<mask>'), t.encode(text.replace('   <mask>', '<mask>')));
  });

  test('GPT-NeoX style space-run added tokens (normalized, not special)', () => {
    const json = withChanges({});
    (json.added_tokens as Json[]).push(
      { id: 4096, content: '    ', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
      { id: 4097, content: '  ', single_word: false, lstrip: false, rstrip: false, normalized: true, special: false },
    );
    const t = MoeTokenizer.fromJson(json, demo.tokenizerConfig);
    const text = 'def f():\n    return  1';
    const enc = t.encode(text);
    assert.ok(enc.ids.includes(4096) && enc.ids.includes(4097));
    assert.equal(t.decode(enc.ids), text);
    assertOffsetsTile(t, text, enc);
  });

  test('SentencePiece-style BPE (Llama-2/Mixtral layout): metaspace, byte fallback, BOS', () => {
    // Re-spell the trained byte-level vocabulary the SentencePiece way: text with "▁" for spaces,
    // plus <0xNN> byte tokens for what has no whole-character token.
    const bl = demo.tokenizerJson.model as { vocab: Record<string, number>; merges: string[] };
    const decoder = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));
    const respell = (tokenStr: string): string | undefined => {
      const bytes = Uint8Array.from(Array.from(tokenStr, (c) => decoder.get(c) ?? -1));
      if (bytes.some((b) => b < 0)) return undefined;
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(bytes).replaceAll(' ', '▁');
      } catch {
        return undefined;
      }
    };
    const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
    for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
    let next = 259;
    for (const tokStr of Object.keys(bl.vocab).sort((a, b) => bl.vocab[a]! - bl.vocab[b]!)) {
      const s = respell(tokStr);
      if (s !== undefined && !(s in vocab) && !tokStr.startsWith('<|')) vocab[s] = next++;
    }
    const merges: string[] = [];
    for (const m of bl.merges) {
      const [a, b] = m.split(' ').map(respell);
      if (a !== undefined && b !== undefined && a + b in vocab) merges.push(`${a} ${b}`);
    }
    const json: Json = {
      version: '1.0',
      added_tokens: [
        { id: 0, content: '<unk>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false },
        { id: 1, content: '<s>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false },
        { id: 2, content: '</s>', special: true, normalized: false, lstrip: false, rstrip: false, single_word: false },
      ],
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Prepend', prepend: '▁' },
          { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ],
      },
      pre_tokenizer: null,
      post_processor: {
        type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [],
        special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
      },
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ],
      },
      model: { type: 'BPE', dropout: null, unk_token: '<unk>', byte_fallback: true, fuse_unk: true, vocab, merges },
    };
    const t = MoeTokenizer.fromJson(json, { bos_token: '<s>', eos_token: '</s>' });
    assert.equal(t.byteScheme, 'metaspace');
    assert.equal(t.bosTokenId, 1);
    assert.equal(t.eosTokenId, 2);
    const texts = ['Which of the following is true?', 'Öl costs €5 — naïve “quotes”', renderQuestion(rows[7]!)];
    for (const text of texts) {
      const enc = t.encode(text);
      assert.ok(enc.offsetsExact, text);
      assert.equal(enc.ids[0], 1);
      assert.deepEqual([enc.tokens[0]!.start, enc.tokens[0]!.end], [0, 0]);
      assert.equal(t.decode(enc.ids.slice(1)), text);
      // The prepended "▁" belongs to the first word's token but has no source character of its own.
      assert.equal(enc.tokens[1]!.start, 0);
      let pos = 0;
      for (const x of enc.tokens.slice(1)) {
        assert.ok(x.start >= pos || (x.text.includes('\uFFFD') && x.start >= pos - 1), `${JSON.stringify(x)} after ${pos} in ${text}`);
        pos = x.end;
      }
      assert.equal(pos, text.length);
    }
    const euro = t.encode('€').tokens.slice(1);
    assert.ok(euro.some((x) => x.text.includes('\uFFFD')) || euro.length === 1);
    // " A" alone would become "▁▁A"; after "Answer:" it is the single token "▁A".
    const letters = t.answerScoring().letterTokenIds;
    assert.equal(letters[0].length, 1);
    assert.equal(t.idToToken(letters[0][0]!), '▁A');
  });
});

// ---------------------------------------------------------------------------------------------------

describe('loadTokenizer errors', () => {
  const scratch = () => mkdtempSync(join(tmpdir(), 'moe-scope-tokerr-'));

  test('a missing folder and a folder without tokenizer.json', async () => {
    await assert.rejects(loadTokenizer('/nonexistent/moe-scope-model'), /\/nonexistent\/moe-scope-model: no such folder/);
    const d = scratch();
    writeFileSync(join(d, 'config.json'), '{}');
    await assert.rejects(loadTokenizer(d), (e: unknown) => {
      assert.ok(e instanceof TokenizerLoadError);
      assert.match(e.message, new RegExp(`The folder ${d} lacks tokenizer\\.json; a Hugging Face checkpoint folder is expected`));
      return true;
    });
    rmSync(d, { recursive: true });
  });

  test('invalid JSON names the file and the line and column', async () => {
    const d = scratch();
    writeFileSync(join(d, 'tokenizer.json'), '{\n  "model": {\n    "type": "BPE",,\n  }\n}');
    await assert.rejects(loadTokenizer(d), (e: unknown) => {
      assert.ok(e instanceof TokenizerLoadError);
      assert.equal(e.file, join(d, 'tokenizer.json'));
      assert.match(e.message, /tokenizer\.json: invalid JSON at line 3, column 19/);
      return true;
    });
    writeFileSync(join(d, 'tokenizer.json'), '{"model": {"type": "BPE"');
    await assert.rejects(loadTokenizer(d), /tokenizer\.json: invalid JSON at the end of the file \(line 1, column 25\)/);
    rmSync(d, { recursive: true });
  });

  test('a broken tokenizer_config.json is reported as that file', async () => {
    const d = scratch();
    writeTokenizerFiles(d, demo);
    writeFileSync(join(d, 'tokenizer_config.json'), '{"eos_token": }');
    await assert.rejects(loadTokenizer(d), /tokenizer_config\.json: invalid JSON at line 1, column 15/);
    rmSync(d, { recursive: true });
  });

  test('tokenizer_config.json is optional; a path to tokenizer.json works too', async () => {
    const d = scratch();
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(demo.tokenizerJson));
    const t = await loadTokenizer(join(d, 'tokenizer.json'));
    assert.equal(t.eosTokenId, 0, '<|endoftext|> is taken as EOS without a config');
    assert.equal(t.padTokenId, undefined);
    assert.deepEqual(t.encode('Answer: B').ids, tok.encode('Answer: B').ids);
    rmSync(d, { recursive: true });
  });

  test('unsupported model types and malformed tokenizer.json say what is wrong', async () => {
    const d = scratch();
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ added_tokens: [], model: { type: 'Unigram', vocab: [['a', 0]] } }));
    await assert.rejects(loadTokenizer(d), /tokenizer\.json: tokenizer model type "Unigram" is not supported/);
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }));
    await assert.rejects(loadTokenizer(d), /model type "WordPiece" is not supported/);
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ version: '1.0' }));
    await assert.rejects(loadTokenizer(d), /tokenizer\.json: no "model" object/);
    writeFileSync(join(d, 'tokenizer.json'), JSON.stringify({ ...demo.tokenizerJson, pre_tokenizer: { type: 'NoSuchThing' } }));
    await assert.rejects(loadTokenizer(d), /tokenizer\.json: the tokenizer could not be built: .*NoSuchThing/);
    writeFileSync(join(d, 'tokenizer.json'), '[1, 2]');
    await assert.rejects(loadTokenizer(d), /tokenizer\.json: the top level must be a JSON object/);
    rmSync(d, { recursive: true });
  });

  test('answerScoring: letters of several tokens are scored as continuations, with the ids they add after "Answer:"', () => {
    const r = trainByteLevelBpe(demoTexts.slice(0, 3), { vocabSize: 2 + 256 + 5, specialTokens: SPECIALS, requiredTokens: [' A', ' B'] });
    const t = MoeTokenizer.fromJson(r.tokenizerJson, r.tokenizerConfig, '/models/tiny');
    const scoring = t.answerScoring();
    assert.equal(scoring.method, 'continuation');
    const base = t.encode('Answer:').ids;
    ['A', 'B', 'C', 'D'].forEach((letter, i) => assert.deepEqual(scoring.letterTokenIds[i], t.encode(`Answer: ${letter}`).ids.slice(base.length)));
    assert.equal(scoring.letterTokenIds[0].length, 1, '" A" was made one token');
    assert.deepEqual(
      scoring.letterTokenIds[2].map((id) => t.idToToken(id)),
      ['Ġ', 'C'],
    );
  });
});
