/**
 * The two engines' tokenizers agree: the ONNX Runtime engine's (formats/tokenizer, @huggingface/tokenizers
 * plus our offset alignment) and the PyTorch worker's (the `tokenizers` library through
 * python/moe_scope_worker/tokenizer.py, exactly what the host receives). Same ids, same UTF-16 offsets, and
 * the same answer-letter scoring, for the cases that differ between them when one side is wrong:
 * a ByteLevel post-processor with trim_offsets true (the demo tokenizer sets it false; GPT-2-style
 * tokenizers set it true) and answer letters that are two tokens each.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadTokenizer } from '../../src/engines/onnxruntime/formats/tokenizer';
import { answerContinuation, type AnswerScoring } from '../../src/shared/protocol';
import { REPO_ROOT, makeModel, tempDir } from '../support/models';
import { testPython } from '../support/python';

const TEXTS = [
  'Answer: A',
  answerContinuation('D'),
  ' leading space and  two spaces',
  'trailing spaces   ',
  'The cell membrane\n\nA. transports ions\nB. café ünïcode 𝛼 beta\nAnswer:',
  '   ',
];

interface PythonSide {
  ids: number[];
  offsets: number[];
  counts: number[];
  scoring: AnswerScoring;
}

function pythonSide(dir: string): PythonSide {
  const code = `import json, sys
from moe_scope_worker.tokenizer import WorkerTokenizer
t = WorkerTokenizer(sys.argv[1])
ids, offsets, counts, _ = t.encode_batch(json.loads(sys.argv[2]))
print(json.dumps({"ids": ids.tolist(), "offsets": offsets.tolist(), "counts": counts.tolist(), "scoring": t.answer_scoring()}))`;
  const out = execFileSync(testPython(), ['-c', code, dir, JSON.stringify(TEXTS)], {
    env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, 'python') },
    encoding: 'utf8',
  });
  return JSON.parse(out) as PythonSide;
}

/** The model's tokenizer.json with its ByteLevel post-processor's trim_offsets set, in a folder of its own. */
function withTrimOffsets(modelDir: string, trim: boolean): string {
  const json = JSON.parse(fs.readFileSync(path.join(modelDir, 'tokenizer.json'), 'utf8')) as { post_processor: { type: string; trim_offsets?: boolean } };
  assert.equal(json.post_processor.type, 'ByteLevel', 'the demo tokenizer has a ByteLevel post-processor');
  json.post_processor.trim_offsets = trim;
  const dir = tempDir('trim-offsets');
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json));
  return dir;
}

const cases = [
  { name: 'single-token letters', multiTokenLetters: false },
  { name: 'two-token letters', multiTokenLetters: true },
];

for (const c of cases) {
  for (const trim of [true, false]) {
    test(`TypeScript and Python tokenizers agree: ${c.name}, trim_offsets ${trim}`, async () => {
      const dir = withTrimOffsets(makeModel({ family: 'olmoe', multiTokenLetters: c.multiTokenLetters }), trim);
      const tok = await loadTokenizer(dir);
      const py = pythonSide(dir);
      let pos = 0;
      TEXTS.forEach((text, i) => {
        const enc = tok.encode(text);
        const n = py.counts[i];
        assert.deepEqual(enc.ids, py.ids.slice(pos, pos + n), `ids of ${JSON.stringify(text)}`);
        const spans = enc.tokens.map((t) => [t.start, t.end]);
        const pySpans = Array.from({ length: n }, (_, j) => [py.offsets[2 * (pos + j)], py.offsets[2 * (pos + j) + 1]]);
        assert.deepEqual(spans, pySpans, `offsets of ${JSON.stringify(text)} (tokens ${JSON.stringify(enc.tokens.map((t) => t.text))})`);
        pos += n;
      });
      const scoring = tok.answerScoring();
      assert.deepEqual(scoring, py.scoring);
      assert.equal(scoring.method, c.multiTokenLetters ? 'continuation' : 'single-token');
    });
  }
}

test('trim_offsets true leaves the space out of " A": the span is the letter alone', async () => {
  const dir = withTrimOffsets(makeModel({ family: 'olmoe' }), true);
  const tok = await loadTokenizer(dir);
  const text = 'Answer: A';
  const last = tok.encode(text).tokens.at(-1)!;
  assert.equal(text.slice(last.start, last.end), 'A');
  const untrimmed = (await loadTokenizer(withTrimOffsets(makeModel({ family: 'olmoe' }), false))).encode(text).tokens.at(-1)!;
  assert.equal(text.slice(untrimmed.start, untrimmed.end), ' A');
});
