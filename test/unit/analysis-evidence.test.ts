/** Flipped questions, the calibration comparison (Jensen-Shannon, overlap of plans) and their sections in the comparison view. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareRuns, flippedQuestions } from '../../src/analysis/compare';
import { compareCalibration, jaccard, jensenShannon } from '../../src/analysis/calibration';
import { flippedCsv } from '../../src/analysis/evidence';
import { createCompareView, type CompareViewState } from '../../webview/compare/view';
import { fakeApi, setupDom, XSS_SCRIPT } from '../support/domEnv';
import { syntheticSummary, syntheticTrace } from '../support/synthetic';
import type { RunSummary } from '../../src/shared/protocol';

const env = setupDom();

test('flipped questions: only paired questions whose correctness differs, right-to-wrong first', () => {
  const a = [
    { id: 'q1', correct: true, subject: 'x', gold: 0, predicted: 0 },
    { id: 'q2', correct: false, subject: 'x', gold: 1, predicted: 2 },
    { id: 'q3', correct: true, subject: 'x', gold: 2, predicted: 2 },
    { id: 'q4', correct: true, subject: 'x', gold: 3, predicted: 3 },
  ];
  const b = [
    { id: 'q2', correct: true, subject: 'x', gold: 1, predicted: 1 },
    { id: 'q1', correct: false, subject: 'x', gold: 0, predicted: 3 },
    { id: 'q3', correct: true, subject: 'x', gold: 2, predicted: 2 },
  ];
  const f = flippedQuestions(a, b);
  assert.deepEqual(
    f.map((x) => [x.id, x.direction, x.predictedA, x.predictedB]),
    [
      ['q1', 'right-to-wrong', 0, 3],
      ['q2', 'wrong-to-right', 2, 1],
    ],
  );
  assert.equal(flippedCsv(f), 'id,subject,direction,gold,predicted_a,predicted_b\nq1,x,right-to-wrong,A,A,D\nq2,x,wrong-to-right,B,C,B\n');
});

test('Jensen-Shannon divergence and Jaccard overlap', () => {
  assert.equal(jensenShannon([1, 2, 3], [2, 4, 6]), 0);
  assert.equal(jensenShannon([1, 0], [0, 1]), 1);
  // P = (1/2, 1/2), Q = (1, 0): M = (3/4, 1/4); JS = 1/2 (1/2 log2(2/3) + 1/2 log2 2) + 1/2 log2(4/3).
  const expected = 0.5 * (0.5 * Math.log2(0.5 / 0.75) + 0.5 * Math.log2(0.5 / 0.25)) + 0.5 * Math.log2(1 / 0.75);
  assert.ok(Math.abs(jensenShannon([1, 1], [1, 0]) - expected) < 1e-12);
  assert.deepEqual(jaccard([1, 2, 3], [2, 3, 4]), { jaccard: 0.5, shared: 2 });
  assert.deepEqual(jaccard([], []), { jaccard: 1, shared: 0 });
});

function withCounts(s: RunSummary, counts: (l: number, e: number) => number): RunSummary {
  return { ...s, layers: s.layers.map((l) => ({ ...l, activationCounts: l.activationCounts.map((_, e) => counts(l.layer, e)) })) };
}

test('calibration comparison: identical routing overlaps fully; reversed routing prunes disjoint experts', () => {
  const base = syntheticSummary({ seed: 1 });
  const E = base.model.numExperts;
  const a = withCounts(base, (_, e) => e + 1);
  const same = compareCalibration(
    a,
    withCounts(base, (_, e) => 2 * (e + 1)),
  )!;
  assert.deepEqual(same.criteria, ['count'], 'the synthetic summaries have no expertScores');
  assert.equal(same.meanJsDivergence, 0);
  assert.equal(same.meanJaccard['count'], 1);
  const rev = compareCalibration(
    a,
    withCounts(base, (_, e) => E - e),
  )!;
  assert.equal(rev.meanJaccard['count'], 0);
  assert.ok(rev.meanJsDivergence > 0.1);
  assert.equal(rev.layers[0]!.overlap['count']!.prunedA, Math.floor(0.25 * E));
});

test('compare view: flipped list with export, traces side by side on request, calibration table', () => {
  const a = syntheticSummary({ seed: 3 });
  const b = syntheticSummary({ seed: 4 });
  const qa = Array.from({ length: 12 }, (_, i) => ({ id: `q${i}`, correct: i % 2 === 0, subject: XSS_SCRIPT, gold: 0, predicted: i % 2 === 0 ? 0 : 1 }));
  const qb = Array.from({ length: 12 }, (_, i) => ({ id: `q${i}`, correct: i % 3 === 0, subject: XSS_SCRIPT, gold: 0, predicted: i % 3 === 0 ? 0 : 2 }));
  const c = compareRuns({ label: 'a', runDir: '/runs/a', summary: a, questions: qa }, { label: 'b', runDir: '/runs/b', summary: b, questions: qb });
  const host = env.document.createElement('div');
  env.app.append(host);
  const api = fakeApi<CompareViewState>();
  const v = createCompareView(host, api);
  v.handle({ type: 'comparison', comparison: c });
  const rows = host.querySelectorAll('[data-testid="flipped-row"]');
  assert.equal(rows.length, c.flipped!.length);
  assert.ok(rows.length > 0);
  assert.equal(host.querySelectorAll('script').length, 0, 'subjects are text');
  (rows[0]!.querySelector('[data-testid="flipped-open"]') as HTMLElement).dispatchEvent(new env.window.Event('click'));
  assert.deepEqual(api.posted.at(-1), { type: 'open-flipped', id: c.flipped![0]!.id });
  const t = syntheticTrace({ numLayers: 16, numExperts: 64, topK: 8 }).result;
  v.handle({ type: 'flipped-traces', id: c.flipped![0]!.id, before: t, after: t });
  assert.ok(host.querySelector('[data-testid="flipped-trace-a"] canvas, [data-testid="flipped-trace-a"] svg, [data-testid="flipped-trace-a"] .routing-map'));
  assert.ok(host.querySelector('[data-testid="flipped-trace-b"]'));
  v.handle({ type: 'flipped-failed', id: 'q1', message: 'no engine' });
  assert.match(host.querySelector('[data-testid="flipped-trace-failed"]')!.textContent!, /no engine/);
  assert.equal(host.querySelectorAll('[data-testid="calibration-row"]').length, a.model.numLayers);
  (host.querySelector('[data-testid="compare-flipped"] [data-export="csv"]') as HTMLElement).dispatchEvent(new env.window.Event('click'));
  const sent = api.posted.at(-1) as { name: string; data: string };
  assert.equal(sent.name, 'flipped-questions.csv');
  assert.equal(sent.data.trim().split(/\r?\n/).length, 1 + c.flipped!.length);
});
