/** The comparison view and its two charts, in a DOM (linkedom), on a comparison of two synthetic runs. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compareRuns, mcnemarInWords } from '../../src/analysis/compare';
import type { RunComparison, RunSummary } from '../../src/shared/protocol';
import { createCompareView, type CompareViewState } from '../../webview/compare/view';
import { deltaDomain } from '../../webview/charts/accuracyDelta';
import { fakeApi, setupDom, XSS_IMG, XSS_SCRIPT } from '../support/domEnv';
import { syntheticSummary } from '../support/synthetic';

const env = setupDom();
const mount = () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
};

function comparison(subjects?: [string, string | null][]): { c: RunComparison; b: RunSummary } {
  const a = syntheticSummary({ seed: 3, subjects });
  const b = syntheticSummary({ seed: 4, subjects });
  b.intervention = {
    mask: [
      [0, 1],
      [0, 2],
      [5, 9],
    ],
    bias: [[3, 4, 2]],
    description: 'prune never-activated experts of run a (answer scope)',
  };
  const qa = Array.from({ length: 40 }, (_, i) => ({ id: `q${i}`, correct: i % 3 === 0 }));
  const qb = Array.from({ length: 40 }, (_, i) => ({ id: `q${i}`, correct: i % 4 === 0 }));
  return { c: compareRuns({ label: 'a', runDir: '/runs/a', summary: a, questions: qa }, { label: 'b', runDir: '/runs/b', summary: b, questions: qb }), b };
}

test('compare view: figures, McNemar in words and as a table, one delta row per subject, masked experts crossed out', () => {
  const host = mount();
  const api = fakeApi<CompareViewState>();
  const v = createCompareView(host, api);
  assert.ok(host.querySelector('[data-testid="compare-empty"]'));
  const { c } = comparison();
  v.handle({ type: 'comparison', comparison: c });
  assert.equal(host.querySelector('[data-testid="mcnemar-words"]')!.textContent, mcnemarInWords(c.mcnemar, 'A', 'B'));
  assert.equal(host.querySelector('[data-testid="mcnemar-b01"]')!.textContent, String(c.mcnemar.b01));
  assert.equal(host.querySelector('[data-testid="mcnemar-b10"]')!.textContent, String(c.mcnemar.b10));
  const d = c.accuracy.micro.delta!;
  assert.equal(
    host.querySelector('[data-testid="compare-micro-delta"]')!.textContent,
    `${d > 0 ? '+' : d < 0 ? '−' : '±'}${(100 * Math.abs(d)).toFixed(1)} pt`,
  );
  const rows = Array.from(host.querySelectorAll('[data-testid="delta-row"]'));
  assert.equal(rows.length, c.accuracy.perSubject.length);
  for (const r of rows) {
    const s = c.accuracy.perSubject.find((x) => x.subject === r.getAttribute('data-label'))!;
    assert.equal(Number(r.getAttribute('data-delta')), s.delta);
  }
  assert.equal(host.querySelectorAll('[data-testid="compare-category-row"]').length, c.accuracy.perCategory.length);
  assert.equal(host.querySelectorAll('.diff-cell').length, c.activation.numLayers * c.activation.numExperts);
  assert.deepEqual(
    Array.from(host.querySelectorAll('.diff-cell[data-masked="true"]'), (g) => [Number(g.getAttribute('data-layer')), Number(g.getAttribute('data-expert'))]),
    c.b.intervention!.mask,
  );
  assert.match(host.querySelector('[data-testid="compare-run-b"]')!.textContent!, /3 experts masked in 2 layers, 1 router biases in 1 layers/);
  assert.ok(host.querySelector('[data-testid="demo-note"]') === null, 'no demo note for non-demo runs');
  // State survives a reload of the webview.
  assert.equal(api.state!.comparison!.mcnemar.b01, c.mcnemar.b01);
});

test('compare view: exports post CSV with one row per subject and per (layer, expert)', () => {
  const host = mount();
  const api = fakeApi<CompareViewState>();
  const v = createCompareView(host, api);
  const { c } = comparison();
  v.handle({ type: 'comparison', comparison: c });
  (host.querySelector('[data-testid="compare-subjects"] [data-export="csv"]') as HTMLElement).dispatchEvent(new env.window.Event('click'));
  (host.querySelector('[data-testid="compare-activation"] [data-export="csv"]') as HTMLElement).dispatchEvent(new env.window.Event('click'));
  (host.querySelector('[data-testid="compare-activation"] [data-export="svg"]') as HTMLElement).dispatchEvent(new env.window.Event('click'));
  const posted = api.posted as { type: string; format: string; data: string }[];
  const csvs = posted.filter((m) => m.type === 'export' && m.format === 'csv');
  assert.equal(csvs[0].data.trim().split('\n').length, 1 + c.accuracy.perSubject.length);
  assert.equal(csvs[1].data.trim().split('\n').length, 1 + c.activation.numLayers * c.activation.numExperts);
  assert.ok(posted.some((m) => m.format === 'svg' && m.data.includes('activation-diff')));
});

test('compare view: subject names and run labels are rendered as text', () => {
  const host = mount();
  const v = createCompareView(host, fakeApi<CompareViewState>());
  const { c } = comparison([
    [XSS_SCRIPT, XSS_IMG],
    ['plain', null],
  ]);
  c.a.label = XSS_IMG;
  v.handle({ type: 'comparison', comparison: c });
  assert.equal(host.querySelectorAll('script').length, 0);
  assert.equal(host.querySelectorAll('img').length, 0);
  assert.ok(host.textContent!.includes(XSS_IMG));
});

test('accuracy delta axis is symmetric, at least 5 points, rounded up to 5 points', () => {
  const row = (delta: number | null) => ({ label: 'x', a: 0.5, b: delta === null ? null : 0.5 + delta, delta, questionsA: 1, questionsB: 1 });
  assert.equal(deltaDomain([row(0.01), row(null)]), 0.05);
  assert.equal(deltaDomain([row(-0.12), row(0.07)]), 0.15);
});

test('summary view: a finished run offers "New experiment from this run…" and an experiment states its intervention', async () => {
  const { createSummaryView } = await import('../../webview/summary/view');
  const host = mount();
  const api = fakeApi<never>();
  const v = createSummaryView(host, api as never);
  const s = syntheticSummary();
  v.handle({ type: 'summary', summary: s, runDir: '/runs/a' });
  (host.querySelector('[data-testid="new-experiment"]') as HTMLElement).dispatchEvent(new env.window.Event('click'));
  assert.deepEqual(api.posted.at(-1), { type: 'new-experiment' });
  assert.equal(host.querySelector('[data-testid="summary-intervention"]'), null);
  v.handle({
    type: 'summary',
    summary: { ...s, intervention: { mask: [[1, 2]], bias: [], description: 'prune never-activated experts of run a' } },
    runDir: '/runs/b',
  });
  assert.match(
    host.querySelector('[data-testid="summary-intervention"]')!.textContent!,
    /prune never-activated experts of run a \(1 experts masked, 0 router biases\)/,
  );
  v.handle({ type: 'summary', summary: { ...s, complete: false }, runDir: '/runs/c' });
  assert.equal(host.querySelector('[data-testid="new-experiment"]'), null, 'no experiment from an unfinished run');
});
