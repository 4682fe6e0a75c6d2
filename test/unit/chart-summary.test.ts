import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setupDom } from '../support/domEnv';
import { syntheticSummary } from '../support/synthetic';
import { accuracyBySubject, rowsFor } from '../../webview/charts/accuracyBySubject';
import { entropyByLayer } from '../../webview/charts/entropyByLayer';
import { expertAccuracyStrip } from '../../webview/charts/expertAccuracyStrip';
import { neverActivatedByLayer } from '../../webview/charts/neverActivatedByLayer';

const env = setupDom();
const host = () => {
  const d = env.document.createElement('div');
  env.app.append(d);
  return d;
};
const summary = syntheticSummary();

test('accuracyBySubject: one bar per subject, grouped by category, sortable', () => {
  const el = host();
  const subjects = Object.values(summary.accuracy.perSubject);
  const u = accuracyBySubject(el, { subjects, micro: summary.accuracy.micro });
  assert.equal(el.querySelectorAll('[data-testid="subject-bar"]').length, subjects.length);
  const cats = new Set(subjects.map((s) => s.category ?? 'other'));
  assert.equal(el.querySelectorAll('[data-testid="category-row"]').length, cats.size);
  u.setSort('accuracy');
  const order = Array.from(el.querySelectorAll('[data-testid="subject-bar"]'), (b) => b.getAttribute('data-subject'));
  const expected = subjects
    .slice()
    .sort((a, b) => b.accuracy - a.accuracy || a.subject.localeCompare(b.subject))
    .map((s) => s.subject);
  assert.deepEqual(order, expected);
  assert.equal(el.querySelectorAll('[data-testid="category-row"]').length, 0);
  u.setSort('name');
  assert.deepEqual(
    Array.from(el.querySelectorAll('[data-testid="subject-bar"]'), (b) => b.getAttribute('data-subject')),
    subjects.map((s) => s.subject).sort(),
  );
  assert.ok(el.querySelector('[data-testid="micro-line"]'));
});

test('rowsFor: subjects without a category land in "other"', () => {
  const rows = rowsFor([{ subject: 'x', category: null, questions: 2, correct: 1, accuracy: 0.5 }], 'category');
  assert.equal(rows[0]!.kind, 'category');
  assert.equal(rows.length, 2);
});

test('entropyByLayer: one item per layer, the uniform line, quantile bands', () => {
  const el = host();
  entropyByLayer(el, { layers: summary.layers.map((l) => ({ layer: l.layer, mean: l.entropyNormalized, quantiles: l.entropyQuantiles })), numExperts: 64 });
  assert.equal(el.querySelectorAll('[data-testid="entropy-layer"]').length, 16);
  assert.equal(el.querySelectorAll('[data-testid="uniform-line"]').length, 1);
  assert.equal(el.querySelectorAll('rect.band-outer').length, 16);
  assert.equal(el.querySelectorAll('rect.band-inner').length, 16);
});

test('expertAccuracyStrip: one strip per layer, one dot per used expert carrying its count', () => {
  const el = host();
  expertAccuracyStrip(el, {
    layers: summary.layers.map((l) => ({ layer: l.layer, accuracy: l.expertAccuracy, count: l.expertAccuracyCount })),
    numExperts: 64,
    reference: summary.accuracy.micro,
  });
  assert.equal(el.querySelectorAll('[data-testid="strip-row"]').length, 16);
  const used = summary.layers.reduce((a, l) => a + l.expertAccuracy.filter((x) => x !== null).length, 0);
  const dots = el.querySelectorAll('[data-testid="strip-dot"]');
  assert.equal(dots.length, used);
  const d = dots[0]!;
  const layer = Number(d.parentElement!.getAttribute('data-layer'));
  const expert = Number(d.getAttribute('data-expert'));
  assert.equal(Number(d.getAttribute('data-count')), summary.layers[layer]!.expertAccuracyCount[expert]);
  assert.match(d.querySelector('title')!.textContent!, /over \d+ questions/);
});

test('neverActivatedByLayer: one bar per layer with the count', () => {
  const el = host();
  const layers = summary.layers.map((l) => ({ layer: l.layer, count: l.neverActivated.length }));
  neverActivatedByLayer(el, { layers, numExperts: 64 });
  const bars = el.querySelectorAll('[data-testid="never-bar"]');
  assert.equal(bars.length, 16);
  assert.deepEqual(
    Array.from(bars, (b) => Number(b.getAttribute('data-count'))),
    layers.map((l) => l.count),
  );
});
