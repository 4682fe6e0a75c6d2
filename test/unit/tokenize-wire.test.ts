import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TokenizeResult } from '../../src/shared/protocol';
import { packTokenizeResults, unpackTokenizeResults } from '../../src/shared/tokenizeWire';

test('tokenize results cross the process boundary as flat arrays and come back the same', () => {
  const texts = ['Answer: A', 'x🙂y', ''];
  const results: TokenizeResult[] = [
    {
      ids: [0, 11, 12],
      // An inserted BOS (empty span, its own text) and two text tokens.
      tokens: [
        { id: 0, text: '<|endoftext|>', start: 0, end: 0 },
        { id: 11, text: 'Answer:', start: 0, end: 7 },
        { id: 12, text: ' A', start: 7, end: 9 },
      ],
    },
    {
      ids: [5, 6, 7, 8],
      // The emoji split in two byte-level tokens: both point at the whole character, each text holds U+FFFD.
      tokens: [
        { id: 5, text: 'x', start: 0, end: 1 },
        { id: 6, text: '\ufffd', start: 1, end: 3 },
        { id: 7, text: '\ufffd', start: 1, end: 3 },
        { id: 8, text: 'y', start: 3, end: 4 },
      ],
    },
    { ids: [], tokens: [] },
  ];
  const wire = packTokenizeResults(texts, results);
  assert.ok(wire.ids instanceof Int32Array && wire.offsets instanceof Int32Array);
  assert.deepEqual([...wire.counts], [3, 4, 0]);
  assert.deepEqual(
    wire.inserted.map(([i]) => i),
    [0, 4, 5],
    'only tokens whose text is not their slice carry their text',
  );
  assert.deepEqual(unpackTokenizeResults(texts, wire), results);
  assert.throws(() => unpackTokenizeResults(texts.slice(1), wire), /3 encodings for 2 texts/);
});
