/** The expert lens's statistics against hand-built routing (issue 24, "a routing map a person can read"). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expertLensSummary, layerExpertMatrix, lensGrid } from '../../src/analysis/expertLens';
import type { RoutingView } from '../../src/analysis/trace';

// 2 layers x 3 tokens, 4 experts, top-2. Cell (l, t) chose topExperts[(l*3+t)*2 .. +1].
const routing: RoutingView = {
  numLayers: 2,
  numTokens: 3,
  numExperts: 4,
  topK: 2,
  topExperts: Int32Array.from([0, 1, 1, 2, 3, 0, /* layer 1 */ 2, 3, 2, 1, 0, 2]),
  topWeights: Float32Array.from([0.5, 0.25, 0.6, 0.2, 0.4, 0.3, /* layer 1 */ 0.7, 0.1, 0.5, 0.45, 0.35, 0.3]),
  entropy: Float32Array.from([Math.log(4), 0, Math.log(2), 1, 0.5, 0]),
} as unknown as RoutingView;

const near = (a: number, b: number) => Math.abs(a - b) < 1e-6;

test('lensGrid: the expert weight where chosen (NaN elsewhere), top-1 weight, top-k mass, entropy / ln E', () => {
  const e2 = Array.from(lensGrid(routing, 'expert', 2));
  assert.deepEqual(
    e2.map((v) => (Number.isNaN(v) ? null : Number(v.toFixed(4)))),
    [null, 0.2, null, 0.7, 0.5, 0.3],
  );
  assert.ok(Array.from(lensGrid(routing, 'top1')).every((v, i) => near(v, [0.5, 0.6, 0.4, 0.7, 0.5, 0.35][i]!)));
  assert.ok(Array.from(lensGrid(routing, 'mass')).every((v, i) => near(v, [0.75, 0.8, 0.7, 0.8, 0.95, 0.65][i]!)));
  const ent = lensGrid(routing, 'entropy');
  assert.ok(near(ent[0]!, 1) && near(ent[2]!, 0.5) && near(ent[1]!, 0));
});

test('expertLensSummary: cells, per-layer counts, mean and strongest weight; a never-chosen expert says so', () => {
  const s = expertLensSummary(routing, 2);
  assert.equal(s.chosen, 4);
  assert.equal(s.cells, 6);
  assert.deepEqual(s.perLayer, [1, 3]);
  assert.ok(near(s.meanWeight, (0.2 + 0.7 + 0.5 + 0.3) / 4));
  assert.deepEqual({ layer: s.strongest!.layer, token: s.strongest!.token }, { layer: 1, token: 0 });
  const none = expertLensSummary({ ...routing, numExperts: 5 } as RoutingView, 4);
  assert.equal(none.chosen, 0);
  assert.equal(none.strongest, null);
  assert.ok(Number.isNaN(none.meanWeight));
});

test('layerExpertMatrix: mean weight over the selected tokens (0 where not chosen) and how many chose each expert', () => {
  const one = layerExpertMatrix(routing, [2]);
  assert.ok(near(one.meanWeight[0 * 4 + 3]!, 0.4) && near(one.meanWeight[0 * 4 + 0]!, 0.3));
  assert.ok(near(one.meanWeight[1 * 4 + 0]!, 0.35) && near(one.meanWeight[1 * 4 + 2]!, 0.3));
  assert.equal(one.chosenBy[0 * 4 + 1], 0);
  const all = layerExpertMatrix(routing, [0, 1, 2]);
  assert.ok(near(all.meanWeight[1 * 4 + 2]!, (0.7 + 0.5 + 0.3) / 3));
  assert.equal(all.chosenBy[1 * 4 + 2], 3);
  assert.equal(all.chosenBy[0 * 4 + 1], 2);
  // Out-of-range tokens are ignored rather than read past the arrays.
  assert.deepEqual(Array.from(layerExpertMatrix(routing, [7, -1]).chosenBy), new Array(8).fill(0));
});
