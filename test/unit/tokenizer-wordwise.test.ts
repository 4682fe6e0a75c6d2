/**
 * The word-at-a-time encoder (formats/tokenizer/wordwise.ts) and the per-word memory in the library's steps
 * (wordMemory.ts) give exactly what the general path gives: the same ids as @huggingface/tokenizers left as it
 * is, and the same offsets as the general alignment. The general path is forced by wrapping the same ByteLevel
 * pre-tokenizer in a Sequence, which tokenizes identically but is not the plain pipeline wordwise.ts takes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { trainByteLevelBpe } from '../../src/engines/onnxruntime/demo/bpeTrainer';
import { MoeTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';

const DEV = path.join(__dirname, '..', '..', 'media', 'demo-data', 'mmlu', 'data', 'dev');

function corpus(): string[] {
  const texts: string[] = [];
  for (const f of fs.readdirSync(DEV).sort()) texts.push(...fs.readFileSync(path.join(DEV, f), 'utf8').split('\n').filter(Boolean));
  return texts;
}

const CRAFTED = [
  '',
  ' ',
  'Answer: A',
  '   leading, two  spaces and trailing   ',
  'tabs\tand\r\nwindows\r\nline ends\n\n\nx',
  "it's we've they'll I'd you're 'quoted'",
  'café naïve ﬂuid 𝛼β γ ∑ 中文字符 emoji 🙂👍🏽 flags 🇩🇪',
  'combining e\u0301 and zero\u200bwidth',
  'a lone surrogate \ud800 here and \udc00 there',
  `${'a'.repeat(300)} ${'7'.repeat(40)} ${'!?'.repeat(200)}`,
  'an added token <|endoftext|> inside and <|padding|><|endoftext|> twice',
  '1234567890 3.14159 -2e10 $100 50% #tag @user',
  'aaa eee ttt sss ... !!! --- 000 1111 aaaaa the the thethe',
];

function withSequencePreTokenizer(json: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(json);
  copy.pre_tokenizer = { type: 'Sequence', pretokenizers: [copy.pre_tokenizer] };
  return copy;
}

function withTrimOffsets(json: Record<string, unknown>): Record<string, unknown> {
  const copy = structuredClone(json);
  copy.post_processor = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return copy;
}

const trained = trainByteLevelBpe(corpus(), { vocabSize: 1024, specialTokens: ['<|endoftext|>', '<|padding|>'] });

for (const [label, json] of [
  ['demo-style byte-level BPE', trained.tokenizerJson],
  ['with trim_offsets true', withTrimOffsets(trained.tokenizerJson)],
] as const) {
  test(`word-at-a-time encoding equals the general path: ${label}`, () => {
    const fast = MoeTokenizer.fromJson(json, trained.tokenizerConfig);
    const general = MoeTokenizer.fromJson(withSequencePreTokenizer(json), trained.tokenizerConfig);
    const library = new Tokenizer(structuredClone(json), structuredClone(trained.tokenizerConfig));
    const texts = [...CRAFTED, ...corpus()];
    let words = 0;
    // Twice: the second pass is served from memory.
    for (let pass = 0; pass < 2; pass++) {
      for (const text of texts) {
        const a = fast.encode(text);
        const b = general.encode(text);
        assert.deepEqual(a.ids, library.encode(text).ids, `ids of ${JSON.stringify(text.slice(0, 60))} differ from the library's`);
        assert.deepEqual(a.ids, b.ids, `ids of ${JSON.stringify(text.slice(0, 60))}`);
        assert.deepEqual(a.tokens, b.tokens, `offsets of ${JSON.stringify(text.slice(0, 60))}`);
        assert.equal(a.offsetsExact, b.offsetsExact);
        words += a.ids.length;
      }
    }
    assert.ok(words > 5_000, `the corpus is big enough to repeat words (${words} tokens)`);
  });
}

test('the general path really is another path: its pipeline is not the plain one', () => {
  const general = MoeTokenizer.fromJson(withSequencePreTokenizer(trained.tokenizerJson), trained.tokenizerConfig);
  const fast = MoeTokenizer.fromJson(trained.tokenizerJson, trained.tokenizerConfig);
  assert.equal((general as unknown as { wordwise: unknown }).wordwise, undefined);
  assert.notEqual((fast as unknown as { wordwise: unknown }).wordwise, undefined);
});
