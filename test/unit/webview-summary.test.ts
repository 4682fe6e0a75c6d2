import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TOKEN_SCOPE_LABELS } from '../../src/shared/protocol';
import { createSummaryView, type SummaryViewState } from '../../webview/summary/view';
import { fakeApi, setupDom } from '../support/domEnv';
import { syntheticSummary } from '../support/synthetic';

const env = setupDom();
const mount = () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
};

test('summary view: headline numbers as plain digits and percent with one decimal', () => {
  const host = mount();
  const v = createSummaryView(host, fakeApi<SummaryViewState>());
  assert.ok(host.querySelector('[data-testid="summary-empty"]'));
  const s = syntheticSummary();
  v.handle({ type: 'summary', summary: s, runDir: '/runs/a' });
  assert.equal(host.querySelector('[data-testid="summary-questions"]')!.textContent, String(s.questions));
  assert.match(host.querySelector('[data-testid="summary-questions"]')!.textContent!, /^\d+$/);
  assert.equal(host.querySelector('[data-testid="summary-accuracy-micro"]')!.textContent, `${(s.accuracy.micro * 100).toFixed(1)}%`);
  assert.equal(host.querySelector('[data-testid="summary-accuracy-macro"]')!.textContent, `${(s.accuracy.macro * 100).toFixed(1)}%`);
  assert.equal(host.querySelector('[data-testid="never-activated-total"]')!.textContent, String(s.neverActivatedTotal));
});

test('summary view: charts, never-activated per layer, token scope and every definition as text', () => {
  const host = mount();
  const v = createSummaryView(host, fakeApi<SummaryViewState>());
  const s = syntheticSummary();
  v.handle({ type: 'summary', summary: s, runDir: '/runs/a' });
  assert.equal(host.querySelectorAll('[data-testid="subject-bar"]').length, Object.keys(s.accuracy.perSubject).length);
  assert.equal(host.querySelectorAll('[data-testid="category-table"] [data-testid="category-row"]').length, Object.keys(s.accuracy.perCategory).length);
  assert.ok(host.querySelector('[data-testid="heatmap"]'));
  assert.equal(host.querySelectorAll('rect.cell[data-never="true"]').length, s.neverActivatedTotal);
  const perLayer = Array.from(host.querySelectorAll('[data-testid="never-activated-layer"]'), (li) => li.textContent);
  assert.deepEqual(
    perLayer,
    s.layers.map((l) => `L${l.layer}: ${l.neverActivated.length}`),
  );
  assert.equal(host.querySelectorAll('[data-testid="never-bar"]').length, 16);
  assert.equal(host.querySelectorAll('[data-testid="entropy-layer"]').length, 16);
  assert.ok(host.querySelector('[data-testid="entropy-by-layer"] [data-testid="uniform-line"]'));
  assert.equal(host.querySelectorAll('[data-testid="strip-row"]').length, 16);
  const scope = host.querySelector('[data-testid="summary-token-scope"]')!.textContent!;
  assert.ok(scope.includes(TOKEN_SCOPE_LABELS[s.tokenScope]));
  assert.ok(scope.includes(s.tokenScopeDefinition));
  const defs = host.querySelector('[data-testid="definitions"]')!.textContent!;
  for (const text of Object.values(s.definitions)) assert.ok(defs.includes(text), `definition shown: ${text}`);
});

test('summary view: clicking a heatmap cell shows the expert with accuracy and its count; sort select reorders', () => {
  const host = mount();
  const api = fakeApi<SummaryViewState>();
  const v = createSummaryView(host, api);
  const s = syntheticSummary();
  v.handle({ type: 'summary', summary: s, runDir: '/runs/a' });
  const e = s.layers[2]!.expertAccuracy.findIndex((a) => a !== null);
  host.querySelector(`rect.cell[data-layer="2"][data-expert="${e}"]`)!.dispatchEvent(new env.window.Event('click'));
  const d = host.querySelector('[data-testid="expert-detail"]')!;
  assert.match(d.querySelector('[data-testid="expert-accuracy-count"]')!.textContent!, new RegExp(`^${s.layers[2]!.expertAccuracyCount[e]} questions`));
  assert.equal(d.querySelector('[data-testid="expert-accuracy-definition"]')!.textContent, s.definitions.expertAccuracy);
  const sel = host.querySelector('[data-testid="subject-sort"]')! as unknown as { value: string; dispatchEvent(e: Event): boolean };
  sel.value = 'name';
  sel.dispatchEvent(new env.window.Event('change'));
  const names = Array.from(host.querySelectorAll('[data-testid="subject-bar"]'), (b) => b.getAttribute('data-subject'));
  assert.deepEqual(names, Object.keys(s.accuracy.perSubject).sort());
  assert.equal(api.state?.sort, 'name');
});

test('summary view: states how the answer letters were scored when the summary says', () => {
  const host = mount();
  const v = createSummaryView(host, fakeApi<SummaryViewState>());
  v.handle({ type: 'summary', summary: { ...syntheticSummary(), answerScoring: 'continuation' }, runDir: '/runs/a' });
  assert.match(host.querySelector('[data-testid="summary-answer-scoring"]')!.textContent!, /full continuations/);
  v.handle({ type: 'summary', summary: { ...syntheticSummary(), answerScoring: 'single-token' }, runDir: '/runs/b' });
  assert.match(host.querySelector('[data-testid="summary-answer-scoring"]')!.textContent!, /single tokens/);
});
