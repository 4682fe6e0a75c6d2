import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setupDom } from '../support/domEnv';
import { syntheticRouting } from '../support/synthetic';
import { answerBars } from '../../webview/charts/answerBars';
import { gateDistribution } from '../../webview/charts/gateDistribution';
import { entropyNormalized, meanEntropyNormalized } from '../../src/analysis/trace';
import { entropySparklines } from '../../webview/charts/entropySparklines';
import { expertHeatmap } from '../../webview/charts/expertHeatmap';
import { expertColor, expertPalette } from '../../webview/charts/palette';

const env = setupDom();
const host = () => {
  const d = env.document.createElement('div');
  env.app.append(d);
  return d;
};

test('answerBars: four probabilities summing to ~100%, gold and predicted marked', () => {
  const el = host();
  answerBars(el, { probs: [0.1, 0.2, 0.6, 0.1], gold: 'B' });
  const rows = el.querySelectorAll('[data-testid="answer-prob"]');
  assert.equal(rows.length, 4);
  assert.deepEqual(
    Array.from(rows, (r) => r.getAttribute('data-letter')),
    ['A', 'B', 'C', 'D'],
  );
  const pcts = Array.from(rows, (r) => parseFloat(r.querySelector('.prob-label')!.textContent!));
  assert.ok(Math.abs(pcts.reduce((a, b) => a + b, 0) - 100) < 0.5, `sum ${pcts}`);
  const gold = el.querySelectorAll('[data-gold="true"]');
  assert.equal(gold.length, 1);
  assert.equal(gold[0]!.getAttribute('data-letter'), 'B');
  const pred = el.querySelectorAll('[data-predicted="true"]');
  assert.equal(pred.length, 1);
  assert.equal(pred[0]!.getAttribute('data-letter'), 'C');
  assert.match(el.querySelector('[data-testid="answer-caption"]')!.textContent!, /wrong/);
});

test('answerBars: the caption states how the letters were scored', () => {
  const el = host();
  const u = answerBars(el, { probs: [0.1, 0.2, 0.6, 0.1] });
  const caption = () => el.querySelector('[data-testid="answer-caption"]')!;
  assert.equal(caption().getAttribute('data-scoring'), 'single-token');
  assert.match(caption().textContent!, /letter tokens/);
  u({ probs: [0.1, 0.2, 0.6, 0.1], scoring: 'continuation' });
  assert.equal(caption().getAttribute('data-scoring'), 'continuation');
  assert.match(caption().textContent!, /several tokens.*full continuations.*summed/);
});

test('answerBars: no gold -> nothing marked gold; update redraws', () => {
  const el = host();
  const u = answerBars(el, { probs: [0.7, 0.1, 0.1, 0.1] });
  assert.equal(el.querySelectorAll('[data-gold="true"]').length, 0);
  u({ probs: [0.1, 0.1, 0.1, 0.7], gold: 'D' });
  assert.equal(el.querySelector('[data-gold="true"]')!.getAttribute('data-letter'), 'D');
  assert.equal(el.querySelector('[data-predicted="true"]')!.getAttribute('data-letter'), 'D');
  assert.equal(el.querySelectorAll('svg').length, 1);
});

test('gateDistribution: one bar per expert, the chosen ones marked, the uniform line drawn', () => {
  const el = host();
  const r = syntheticRouting(2, 3, 64, 8, { seed: 5 });
  const base = (1 * 3 + 2) * 8;
  const chosen = Array.from(r.topExperts.subarray(base, base + 8));
  gateDistribution(el, {
    layer: 1,
    token: 2,
    tokenText: 'x',
    numExperts: 64,
    probs: r.probs!.subarray((1 * 3 + 2) * 64, (1 * 3 + 3) * 64),
    chosen,
    weights: Array.from(r.topWeights.subarray(base, base + 8)),
  });
  assert.equal(el.querySelectorAll('rect.bar').length, 64);
  const marked = Array.from(el.querySelectorAll('[data-chosen="true"]'), (b) => Number(b.getAttribute('data-expert'))).sort((a, b) => a - b);
  assert.deepEqual(
    marked,
    chosen.slice().sort((a, b) => a - b),
  );
  assert.equal(el.querySelectorAll('.uniform-line').length, 1);
});

test('gateDistribution: says so when routing.probs is absent', () => {
  const el = host();
  gateDistribution(el, { layer: 0, token: 0, tokenText: 'x', numExperts: 64, probs: null, chosen: [3, 9], weights: [0.2, 0.1] });
  assert.ok(el.querySelector('[data-testid="gate-probs-missing"]'));
  assert.equal(el.querySelectorAll('li').length, 2);
});

test('entropySparklines: one sparkline per layer with the uniform line and the mean', () => {
  const el = host();
  const L = 16;
  const T = 50;
  const E = 64;
  const entropy = new Float32Array(L * T);
  for (let l = 0; l < L; l++) for (let t = 0; t < T; t++) entropy[l * T + t] = Math.log(E) * (l === 0 ? 0.5 : 0.9);
  const routing = { numLayers: L, numTokens: T, numExperts: E, topK: 0, topExperts: new Uint16Array(0), topWeights: new Float32Array(0), entropy };
  const u = entropySparklines(el, { normalized: entropyNormalized(routing), means: meanEntropyNormalized(routing), numExperts: E });
  const lines = el.querySelectorAll('[data-testid="entropy-sparkline"]');
  assert.equal(lines.length, L);
  for (const s of Array.from(lines)) assert.equal(s.querySelectorAll('[data-testid="uniform-line"]').length, 1);
  const means = Array.from(el.querySelectorAll('[data-testid="entropy-mean"]'), (m) => m.textContent);
  assert.equal(means[0], '0.500');
  assert.equal(means[1], '0.900');
  assert.ok(Math.abs(u.means()[3]! - 0.9) < 1e-6);
  // uniform line at y of 1.0 is the top of the plot; the path stays below it
  const uni = lines[0]!.querySelector('[data-testid="uniform-line"]')!;
  assert.equal(uni.getAttribute('y1'), uni.getAttribute('y2'));
});

test('expertHeatmap: marks exactly the never-activated experts; click calls back', () => {
  const el = host();
  const counts = Array.from({ length: 4 }, (_, l) => Array.from({ length: 16 }, (_, e) => ((l + e) % 5 === 0 ? 0 : l * 10 + e)));
  const clicks: [number, number][] = [];
  expertHeatmap(el, { numLayers: 4, numExperts: 16, counts }, { onCellClick: (l, e) => clicks.push([l, e]) });
  const svg = el.querySelector('[data-testid="heatmap"]');
  assert.ok(svg);
  assert.equal(el.querySelectorAll('rect.cell[data-layer]').length, 64);
  const never = Array.from(
    el.querySelectorAll('rect.cell[data-never="true"]'),
    (c) => `${c.getAttribute('data-layer')}:${c.getAttribute('data-expert')}`,
  ).sort();
  const expected: string[] = [];
  counts.forEach((row, l) => row.forEach((c, e) => c === 0 && expected.push(`${l}:${e}`)));
  assert.deepEqual(never, expected.sort());
  const cell = el.querySelector('rect.cell[data-layer="2"][data-expert="7"]')!;
  cell.dispatchEvent(new env.window.Event('click', { bubbles: true }));
  assert.deepEqual(clicks, [[2, 7]]);
  assert.ok(el.querySelector('.legend'), 'has a legend');
});

test('palette: deterministic, distinct colours for 64 experts', () => {
  const p = expertPalette(64);
  assert.equal(p.length, 64);
  assert.equal(new Set(p).size, 64);
  assert.equal(expertColor(17, 64), p[17]);
  assert.equal(expertColor(17, 64), expertPalette(64)[17]);
  for (const c of p) assert.match(c, /^#[0-9a-f]{6}$/);
  assert.equal(expertPalette(8).length, 8);
});
