import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decoderLayerOfRows, rowLabel } from '../../src/analysis/layers';

test('rows are labelled by decoder layer when the model has dense layers', () => {
  const info = { numLayers: 2, moeLayers: [1, 2] };
  assert.deepEqual(decoderLayerOfRows(info), [1, 2]);
  assert.equal(rowLabel(info, 0), 'layer 1');
});

test('files without moeLayers (or with a wrong length) label row i as decoder layer i', () => {
  assert.deepEqual(decoderLayerOfRows({ numLayers: 3 }), [0, 1, 2]);
  assert.deepEqual(decoderLayerOfRows({ numLayers: 3, moeLayers: [4] }), [0, 1, 2]);
});
