/*
 * The heatmap view's data (src/analysis/heatmap.ts) and the pair statistics shared by the weight analysis
 * and the structure charts (src/analysis/pairStats.ts), on small hand-made inputs.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heatmapFromSummary, heatmapFromTrace, neverActivatedPerLayer } from '../../src/analysis/heatmap';
import { meanOffDiagonal, olsFit, pairRegression, upperPairs } from '../../src/analysis/pairStats';
import type { RunSummary } from '../../src/shared/protocol';
import { syntheticSummary } from '../support/synthetic';

// 2 layers, 3 tokens, 4 experts, top-2; experts of layer 1: (0,1) (0,2) (0,1) -> counts 3,2,1,0.
const routing = {
  numLayers: 2,
  numTokens: 3,
  numExperts: 4,
  topK: 2,
  topExperts: Uint16Array.from([3, 2, 3, 1, 3, 2, 0, 1, 0, 2, 0, 1]),
  topWeights: new Float32Array(12).fill(0.5),
  entropy: new Float32Array(6),
};

test('heatmapFromTrace: (token, slot) counts per layer with the trace shape', () => {
  const d = heatmapFromTrace(routing, 'q1');
  assert.deepEqual(d.counts, [
    [0, 1, 2, 3],
    [3, 2, 1, 0],
  ]);
  assert.deepEqual([d.source, d.label, d.numLayers, d.numExperts, d.topK], ['trace', 'q1', 2, 4, 2]);
  assert.deepEqual(neverActivatedPerLayer(d), [1, 1]);
});

/** Shares per layer and expert, written as 'layer 0 values | layer 1 values'. */
const layers = (text: string): number[][] => text.split('|').map((row) => row.trim().split(/\s+/).map(Number));

test('heatmapFromSummary: run counts and accuracy per layer, the three most specialised subjects with a share > 0', () => {
  const base = syntheticSummary({ numLayers: 2, numExperts: 4, topK: 2 });
  const s: RunSummary = {
    ...base,
    subjectSpecialisation: {
      physics: layers('0.9 0 0.1 0.2 | 0.1 0.2 0.3 0.4'),
      history: layers('0.5 0 0.3 0.1 | 0.4 0.3 0.2 0.1'),
      law: layers('0.7 0 0.2 0.05 | 0.2 0.1 0.1 0'),
      music: layers('0.1 0 0.4 0.3 | 0.3 0.4 0.4 0.5'),
    },
  };
  const d = heatmapFromSummary(s, 'run A');
  assert.equal(d.source, 'run');
  assert.equal(d.label, 'run A');
  assert.equal(d.numLayers, s.layers.length);
  assert.equal(d.numExperts, s.model.numExperts);
  assert.equal(d.topK, s.model.topK);
  assert.equal(d.tokenScope, s.tokenScope);
  assert.deepEqual(
    d.counts,
    s.layers.map((l) => l.activationCounts),
  );
  assert.deepEqual(
    d.expertAccuracy,
    s.layers.map((l) => l.expertAccuracy),
  );
  const names = (l: number, e: number) => d.topSubjects![l]![e]!.map((x) => x.subject);
  assert.deepEqual(names(0, 0), ['physics', 'law', 'history']);
  assert.deepEqual(names(0, 1), [], 'no subject with a share > 0');
  assert.deepEqual(names(1, 3), ['music', 'physics', 'history'], 'law has share 0 and is left out');
  assert.deepEqual(
    d.topSubjects![0]![2]!.map((x) => x.share),
    [0.4, 0.3, 0.2],
  );
});

test('meanOffDiagonal: mean over a != b, skipping non-finite entries; the empty value without pairs', () => {
  const m = [1, 0.2, 0.4, 0.6, 1, 0.8, 0.1, 0.3, 1];
  assert.ok(Math.abs(meanOffDiagonal(m, 3) - (0.2 + 0.4 + 0.6 + 0.8 + 0.1 + 0.3) / 6) < 1e-15);
  assert.ok(Math.abs(meanOffDiagonal([1, NaN, 0.5, 1], 2) - 0.5) < 1e-15);
  assert.ok(Number.isNaN(meanOffDiagonal([1], 1)));
  assert.equal(meanOffDiagonal([1], 1, 0), 0);
});

test('olsFit skips non-finite points; pairRegression fits the pairs a < b of two matrices', () => {
  const f = olsFit([0, 1, NaN, 2, 3], [1, 3, 100, 5, 7]);
  assert.equal(f.slope, 2);
  assert.equal(f.intercept, 1);
  assert.equal(f.pairs, 4);
  const x = [1, 0.1, 0.2, 0.1, 1, 0.4, 0.2, 0.4, 1];
  const y = [9, 2, 5, 2, 9, 1, 5, 1, 9];
  const p = upperPairs(3, x, y);
  assert.deepEqual(
    [p.a, p.b, p.x, p.y],
    [
      [0, 0, 1],
      [1, 2, 2],
      [0.1, 0.2, 0.4],
      [2, 5, 1],
    ],
  );
  assert.deepEqual(pairRegression(x, y, 3), olsFit(p.x, p.y));
});
