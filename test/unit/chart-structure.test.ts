/** Charts of the expert-structure view and of the trace panel's all-experts section (linkedom). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { normVersusScore, similarityByDepth } from '../../src/analysis/expertOutputs';
import type { ExpertOutputStats } from '../../src/shared/protocol';
import { depthCurves } from '../../webview/charts/depthCurves';
import { meanOffDiagonal, olsFit, upperPairs } from '../../src/analysis/pairStats';
import { pairScatter } from '../../webview/charts/pairScatter';
import { rankPairHeatmap } from '../../webview/charts/rankPairHeatmap';
import { maxAbsOffDiagonal, similarityMatrix } from '../../webview/charts/similarityMatrix';
import { setupDom } from '../support/domEnv';
import { HAND_EXPERT_OUTPUTS as HAND, syntheticWeightAnalysis } from '../support/syntheticStructure';

const env = setupDom();
const host = () => {
  const d = env.document.createElement('div');
  env.app.append(d);
  return d;
};
const num = (el: Element, attr: string) => Number(el.getAttribute(attr));

/** A 4 x 4 symmetric matrix with a known largest |off-diagonal| value (-0.6, experts 1 and 3). */
const M4 = [1, 0.2, -0.1, 0.05, 0.2, 1, 0.3, -0.6, -0.1, 0.3, 1, 0, 0.05, -0.6, 0, 1];

test('similarityMatrix: E x E cells carry their values; the diagonal is dimmed; colours scale to the largest |off-diagonal| value', () => {
  const el = host();
  const u = similarityMatrix(el, { numExperts: 4, values: M4, label: 'cosine similarity of gate_proj', layer: 2 });
  const svg = el.querySelector('[data-testid="similarity-heatmap"]')!;
  assert.ok(svg);
  assert.equal(svg.getAttribute('data-layer'), '2');
  const cells = el.querySelectorAll('rect.cell[data-a]');
  assert.equal(cells.length, 16);
  for (const c of Array.from(cells)) {
    const a = num(c, 'data-a');
    const b = num(c, 'data-b');
    assert.equal(num(c, 'data-value'), M4[a * 4 + b]);
  }
  assert.equal(el.querySelectorAll('rect.cell.diag').length, 4);
  for (const d of Array.from(el.querySelectorAll('rect.cell.diag'))) assert.equal(d.getAttribute('data-a'), d.getAttribute('data-b'));
  assert.equal(u.scaleMax(), 0.6);
  assert.equal(maxAbsOffDiagonal(M4, 4), 0.6);
  // |value| / max drives the opacity: the -0.6 pair is fully saturated, 0.3 half, 0 invisible; signs pick the colour class
  const cell = (a: number, b: number) => el.querySelector(`rect.cell[data-a="${a}"][data-b="${b}"]`)!;
  assert.match(cell(1, 3).getAttribute('class')!, /\bneg\b/);
  assert.match(cell(1, 2).getAttribute('class')!, /\bpos\b/);
  assert.ok(Math.abs(num(cell(1, 2), 'fill-opacity') / num(cell(1, 3), 'fill-opacity') - 0.5) < 0.01);
  assert.equal(num(cell(2, 3), 'fill-opacity'), 0);
  assert.equal(cell(0, 0).getAttribute('fill-opacity'), null);
  // the legend states the range
  assert.match(el.querySelector('[data-testid="similarity-legend"]')!.textContent!, /−0\.6000.*\+0\.6000/);
  u.setScale('fixed');
  assert.equal(u.scaleMax(), 1);
  assert.equal(el.querySelector('[data-testid="similarity-heatmap"]')!.getAttribute('data-scale'), 'fixed');
  assert.ok(Math.abs(num(el.querySelector('rect.cell[data-a="1"][data-b="3"]')!, 'fill-opacity') - 0.6 * 0.92) < 0.001);
});

test('similarityMatrix: hover and arrow keys show the expert pair and the value', () => {
  const el = host();
  const hovered: unknown[] = [];
  similarityMatrix(el, { numExperts: 4, values: M4, label: 'cosine similarity of router rows' }, { onHover: (c) => hovered.push(c) });
  el.querySelector('rect.cell[data-a="1"][data-b="3"]')!.dispatchEvent(new env.window.Event('mousemove', { bubbles: true }));
  const readout = el.querySelector('[data-testid="similarity-hover"]')!;
  assert.match(readout.textContent!, /expert 1 × expert 3: -0\.6000 cosine similarity of router rows/);
  assert.deepEqual(hovered.at(-1), { a: 1, b: 3, value: -0.6 });
  assert.equal(el.querySelector('rect.hover-mark')!.getAttribute('visibility'), 'visible');
  const key = (k: string) => {
    const e = new env.window.Event('keydown', { bubbles: true });
    Object.defineProperty(e, 'key', { value: k });
    el.querySelector('svg')!.dispatchEvent(e);
  };
  key('ArrowLeft');
  assert.match(readout.textContent!, /expert 1 × expert 2: 0\.3000/);
  key('ArrowUp');
  key('ArrowDown');
  key('ArrowLeft');
  assert.match(readout.textContent!, /expert 1 × expert 1: 1\.0000 .*1 by definition/);
  el.querySelector('g.cells')!.dispatchEvent(new env.window.Event('mouseleave'));
  assert.equal(hovered.at(-1), null);
});

test('similarityMatrix: new values of the same size update the drawn cells in place; a new size redraws', () => {
  const el = host();
  const u = similarityMatrix(el, { numExperts: 4, values: M4, label: 'a', layer: 0 });
  const first = el.querySelector('rect.cell[data-a="1"][data-b="2"]')!;
  el.querySelector('rect.cell[data-a="1"][data-b="3"]')!.dispatchEvent(new env.window.Event('mousemove', { bubbles: true }));
  const flipped = M4.map((v, i) => (i % 5 === 0 ? 1 : -v / 2));
  u({ numExperts: 4, values: flipped, label: 'b', layer: 7 });
  assert.equal(el.querySelector('rect.cell[data-a="1"][data-b="2"]'), first, 'same element');
  assert.equal(num(first, 'data-value'), -0.15);
  assert.match(first.getAttribute('class')!, /\bneg\b/);
  assert.equal(u.scaleMax(), 0.3);
  assert.equal(el.querySelector('[data-testid="similarity-heatmap"]')!.getAttribute('data-layer'), '7');
  assert.match(
    el.querySelector('[data-testid="similarity-hover"]')!.textContent!,
    /layer 7, expert 1 × expert 3: 0\.3000 b/,
    'the cursor stays and shows the new value',
  );
  assert.match(el.querySelector('[data-testid="similarity-legend"]')!.textContent!, /\+0\.3000/);
  u({ numExperts: 3, values: [1, 0.5, 0.2, 0.5, 1, -0.1, 0.2, -0.1, 1], label: 'c' });
  assert.equal(el.querySelectorAll('rect.cell[data-a]').length, 9);
  assert.equal(el.querySelector('[data-testid="similarity-heatmap"]')!.getAttribute('data-layer'), null);
});

test('similarityMatrix: 64 experts draw 4096 cells; a real-sized synthetic layer keeps its values', () => {
  const a = syntheticWeightAnalysis({ numLayers: 1, numExperts: 64, dim: 24 });
  const el = host();
  similarityMatrix(el, { numExperts: 64, values: a.layers[0]!.all, label: 'x' });
  const cells = el.querySelectorAll('rect.cell[data-a]');
  assert.equal(cells.length, 64 * 64);
  const c = el.querySelector('rect.cell[data-a="17"][data-b="42"]')!;
  assert.equal(num(c, 'data-value'), a.layers[0]!.all[17 * 64 + 42]);
  assert.equal(el.querySelectorAll('rect.cell.diag').length, 64);
  assert.ok(Math.abs(meanOffDiagonal(a.layers[0]!.all, 64) - a.layers[0]!.meanOffDiagonal.all) < 1e-12);
});

test('depthCurves: one point per layer per series, gaps for missing values, legend, references, selection', () => {
  const el = host();
  const layers = [0, 1, 2, 3, 4, 5];
  const clicked: number[] = [];
  const u = depthCurves(
    el,
    {
      layers,
      series: [
        { key: 'gate', label: 'gate_proj', values: [0.1, 0.2, 0.3, 0.2, 0.1, 0.05] },
        { key: 'up', label: 'up_proj', values: [0.05, 0.1, null, 0.15, 0.12, 0.1] },
        { key: 'router', label: 'router rows', values: [0.3, 0.25, 0.2, 0.15, 0.1, Number.NaN] },
      ],
      yLabel: 'mean off-diagonal cosine',
      refs: [{ value: 0, label: '0' }],
    },
    { testid: 'similarity-by-depth', onLayerClick: (l) => clicked.push(l), selectedLayer: 2 },
  );
  const svg = el.querySelector('[data-testid="similarity-by-depth"]')!;
  assert.ok(svg);
  assert.equal(svg.querySelectorAll('[data-testid="depth-point"][data-series="gate"]').length, 6);
  assert.equal(svg.querySelectorAll('[data-testid="depth-point"][data-series="up"]').length, 5);
  assert.equal(svg.querySelectorAll('[data-testid="depth-point"][data-series="router"]').length, 5);
  assert.deepEqual(
    Array.from(svg.querySelectorAll('[data-testid="depth-point"][data-series="gate"]'), (p) => num(p, 'data-layer')),
    layers,
  );
  assert.equal(num(svg.querySelector('[data-testid="depth-point"][data-series="gate"][data-layer="2"]')!, 'data-value'), 0.3);
  // the gap: the up_proj line has two pieces
  assert.equal(svg.querySelector('g.series[data-series="up"] path.depth-line')!.getAttribute('d')!.match(/M/g)!.length, 2);
  assert.equal(svg.querySelectorAll('[data-testid="depth-legend"] .legend-item').length, 3);
  assert.equal(svg.querySelectorAll('[data-testid="depth-ref"]').length, 1);
  assert.equal(svg.querySelector('[data-testid="layer-marker"]')!.getAttribute('data-layer'), '2');
  svg.querySelector('rect.layer-hit[data-layer="4"]')!.dispatchEvent(new env.window.Event('click'));
  assert.deepEqual(clicked, [4]);
  assert.match(svg.querySelector('rect.layer-hit[data-layer="4"] title')!.textContent!, /Layer 4: gate_proj 0\.100, up_proj 0\.120, router rows 0\.100/);
  u.select(5);
  assert.equal(svg.querySelector('[data-testid="layer-marker"]')!.getAttribute('data-layer'), '5');
  u.select(null);
  assert.equal(svg.querySelector('[data-testid="layer-marker"]')!.getAttribute('visibility'), 'hidden');
  assert.equal(svg.querySelector('[data-testid="last-layer-mark"]'), null);
});

test('depthCurves: markLast marks the last layer only', () => {
  const el = host();
  depthCurves(
    el,
    { layers: [0, 1, 2, 3], series: [{ key: 's', label: 's', values: [0.6, 0.58, 0.55, 0.64] }], yLabel: 'y' },
    { testid: 'diversity-by-depth', markLast: true },
  );
  const pts = el.querySelectorAll('[data-testid="depth-point"]');
  assert.equal(pts.length, 4);
  assert.deepEqual(
    Array.from(el.querySelectorAll('[data-last="true"]'), (p) => num(p, 'data-layer')),
    [3],
  );
  assert.equal(el.querySelector('[data-testid="last-layer-mark"]')!.getAttribute('data-layer'), '3');
  assert.match(el.querySelector('[data-testid="last-layer-mark"]')!.textContent!, /last layer/);
});

test('olsFit: exact line, no variance, and R² = squared Pearson correlation', () => {
  const f = olsFit([0, 1, 2, 3], [1, 3, 5, 7]);
  assert.equal(f.slope, 2);
  assert.equal(f.intercept, 1);
  assert.equal(f.r2, 1);
  assert.equal(olsFit([1, 1, 1], [1, 2, 3]).r2, 0);
  assert.equal(olsFit([1, 2, 3], [2, 2, 2]).r2, 0);
  const x = [0.1, 0.5, -0.2, 0.3, 0.9, 0.0];
  const y = [0.2, 0.3, -0.1, 0.5, 0.7, 0.1];
  const g = olsFit(x, y);
  // by hand: means, then r = sxy / sqrt(sxx syy)
  const mx = x.reduce((a, b) => a + b) / 6;
  const my = y.reduce((a, b) => a + b) / 6;
  const sxy = x.reduce((a, xi, i) => a + (xi - mx) * (y[i]! - my), 0);
  const sxx = x.reduce((a, xi) => a + (xi - mx) ** 2, 0);
  const syy = y.reduce((a, yi) => a + (yi - my) ** 2, 0);
  assert.ok(Math.abs(g.r2 - (sxy * sxy) / (sxx * syy)) < 1e-12);
  assert.ok(Math.abs(g.slope - sxy / sxx) < 1e-12);
});

test('pairScatter: one dot per pair a < b, the OLS line and the stated R²', () => {
  const a = syntheticWeightAnalysis({ numLayers: 2, numExperts: 12, dim: 16 });
  const l = a.layers[1]!;
  const el = host();
  const u = pairScatter(el, { numExperts: 12, x: l.all, y: l.router, xLabel: 'all', yLabel: 'router', r2: l.routerVsExpertR2 }, { testid: 'router-scatter' });
  const svg = el.querySelector('[data-testid="router-scatter"]')!;
  assert.equal(svg.querySelectorAll('[data-testid="pair-point"]').length, (12 * 11) / 2);
  const p = upperPairs(12, l.all, l.router);
  assert.ok(Math.abs(u.fit().r2 - l.routerVsExpertR2) < 1e-12);
  assert.ok(Math.abs(u.fit().slope - olsFit(p.x, p.y).slope) < 1e-12);
  assert.ok(svg.querySelector('[data-testid="fit-line"]'));
  assert.match(svg.querySelector('[data-testid="scatter-r2"]')!.textContent!, new RegExp(`R² = ${l.routerVsExpertR2.toFixed(3)}`));
  assert.match(svg.querySelector('[data-testid="pair-point"][data-a="2"][data-b="7"] title')!.textContent!, /experts 2 and 7/);
  u.highlight({ a: 7, b: 2 });
  assert.equal(svg.querySelector('circle.pair-ring')!.getAttribute('visibility'), 'visible');
  u.highlight({ a: 3, b: 3 });
  assert.equal(svg.querySelector('circle.pair-ring')!.getAttribute('visibility'), 'hidden');
});

test('rankPairHeatmap: draws normVersusScore counts of hand-made data cell by cell', () => {
  const ns = normVersusScore(HAND.routing, HAND.stats);
  assert.equal(ns[0]!.topScoredHasLargestNorm, 2 / 3);
  assert.equal(ns[0]!.topScoredNormInTopK, 1);
  const el = host();
  rankPairHeatmap(el, { layer: 0, numExperts: 4, numTokens: 3, topK: 2, counts: ns[0]!.counts });
  const svg = el.querySelector('[data-testid="rank-pair-heatmap"]')!;
  const cells = svg.querySelectorAll('[data-testid="rank-pair-cell"]');
  assert.equal(cells.length, 16, 'E < 8: all 4 x 4 ranks');
  for (const c of Array.from(cells)) {
    const k = `${c.getAttribute('data-score-rank')},${c.getAttribute('data-norm-rank')}`;
    assert.equal(num(c, 'data-count'), HAND.counts[k] ?? 0, `cell ${k}`);
  }
  // rows sum to the number of tokens
  for (let r = 0; r < 4; r++)
    assert.equal(
      Array.from(svg.querySelectorAll(`[data-score-rank="${r}"]`)).reduce((a, c) => a + num(c, 'data-count'), 0),
      3,
    );
  // counts are written in the cells, the fullest cells are the most opaque, and the top-k block is outlined
  assert.deepEqual(Array.from(svg.querySelectorAll('text.cell-value'), (t) => t.textContent).slice(0, 4), ['2', '1', '0', '0']);
  assert.ok(
    num(svg.querySelector('[data-score-rank="0"][data-norm-rank="0"]')!, 'fill-opacity') >
      num(svg.querySelector('[data-score-rank="0"][data-norm-rank="1"]')!, 'fill-opacity'),
  );
  assert.ok(svg.querySelector('[data-testid="topk-emphasis"]'));
  assert.match(svg.querySelector('[data-score-rank="1"][data-norm-rank="3"] title')!.textContent!, /score rank 2, norm rank 4: 2 of 3 tokens/);
});

test('rankPairHeatmap: top 8 x 8 of 64 experts, or all 64 x 64 with the top-left k x k outlined', () => {
  const E = 64;
  const counts = Array.from({ length: E * E }, (_, i) => i % 7);
  const el = host();
  const u = rankPairHeatmap(el, { layer: 3, numExperts: E, numTokens: 100, topK: 8, counts });
  assert.equal(el.querySelectorAll('[data-testid="rank-pair-cell"]').length, 64);
  assert.equal(el.querySelector('[data-testid="topk-emphasis"]'), null, 'k = shown ranks: nothing to outline');
  assert.equal(num(el.querySelector('[data-score-rank="2"][data-norm-rank="5"]')!, 'data-count'), (2 * E + 5) % 7);
  u.setRanks('all');
  assert.equal(el.querySelectorAll('[data-testid="rank-pair-cell"]').length, E * E);
  assert.ok(el.querySelector('[data-testid="topk-emphasis"]'));
  assert.equal(el.querySelectorAll('text.cell-value').length, 0, 'no numbers in 4 px cells');
});

test('similarityByDepth feeds the diversity chart: one point per layer, the last marked', () => {
  const stats: ExpertOutputStats = {
    numLayers: 3,
    numTokens: 2,
    numExperts: 2,
    norms: new Float32Array(12),
    meanAngularSimilarity: Float32Array.from([0.6, 0.62, 0.55, 0.57, 0.66, 0.7]),
  };
  const d = similarityByDepth(stats);
  const el = host();
  depthCurves(
    el,
    {
      layers: [0, 1, 2],
      series: [{ key: 'similarity', label: 'sim', values: d }],
      yLabel: 'mean angular similarity',
      refs: [{ value: 0.5, label: 'orthogonal (0.5)' }],
    },
    { testid: 'diversity-by-depth', markLast: true, legend: false },
  );
  const pts = Array.from(el.querySelectorAll('[data-testid="depth-point"]'));
  assert.deepEqual(
    pts.map((p) => Number(num(p, 'data-value').toFixed(4))),
    [0.61, 0.56, 0.68],
  );
  assert.equal(pts[2]!.getAttribute('data-last'), 'true');
  assert.equal(el.querySelectorAll('[data-testid="depth-ref"]').length, 1);
});
