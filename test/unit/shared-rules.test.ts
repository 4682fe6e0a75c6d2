/**
 * Rules both engines (or two modules) once kept copies of, now written once: the token spans of a trace given
 * as ids (spansOfDecodedTokens, used by the ONNX Runtime engine and by the host for the PyTorch worker's
 * results), and the model size bounds (MODEL_LIMITS) the accumulator and the summary check both enforce.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODEL_LIMITS, spansOfDecodedTokens, type TraceResult, type WorkerTraceResult } from '../../src/shared/protocol';
import { adaptWorkerResult } from '../../src/engines/client/pythonWorker';
import { createAccumulator } from '../../src/analysis/accumulator';
import { checkSummary } from '../../src/eval/summaryCheck';

test('a trace by ids: token texts laid end to end in UTF-16 units, the same on the PyTorch host side', () => {
  const texts = ['a', 'é', '\u{1D6FC}', ''];
  const ids = [5, 9, 7, 3];
  const spans = spansOfDecodedTokens(ids, (i) => texts[i]!);
  assert.deepEqual(
    spans.map((s) => [s.id, s.text, s.start, s.end]),
    [
      [5, 'a', 0, 1],
      [9, 'é', 1, 2],
      [7, '\u{1D6FC}', 2, 4],
      [3, '', 4, 4],
    ],
  );
  const worker = { model: {}, routing: [], answerLogProbs: [0, 0, 0, 0], ms: 1, ids: Int32Array.from(ids), tokenTexts: texts } as unknown as WorkerTraceResult;
  const adapted = adaptWorkerResult('trace', { input: { ids } }, worker) as TraceResult;
  assert.deepEqual(adapted.tokens, spans);
  assert.equal(adapted.text, undefined);
});

test('one bound on experts and layers: the accumulator and the summary check refuse the same sizes', () => {
  const { maxExperts, maxLayers } = MODEL_LIMITS;
  assert.throws(
    () => createAccumulator({ numLayers: 1, numExperts: maxExperts + 1, topK: 1 }, 'all'),
    new RegExp(`numExperts must be an integer in \\[2, ${maxExperts}\\]`),
  );
  assert.throws(
    () => createAccumulator({ numLayers: maxLayers + 1, numExperts: 2, topK: 1 }, 'all'),
    new RegExp(`numLayers must be an integer in \\[1, ${maxLayers}\\]`),
  );
  const summary = (numLayers: number, numExperts: number) => () => checkSummary({ model: { numLayers, numExperts, topK: 1 } }, 'summary.json');
  assert.throws(summary(1, maxExperts + 1), new RegExp(`"model.numExperts" is ${maxExperts + 1}, not an integer from 1 to ${maxExperts}`));
  assert.throws(summary(maxLayers + 1, 2), new RegExp(`"model.numLayers" is ${maxLayers + 1}, not an integer from 1 to ${maxLayers}`));
  // At the bound itself the summary check moves on to the next field.
  assert.throws(summary(1, maxExperts), /field "questions"/);
});
