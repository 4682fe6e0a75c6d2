/**
 * Dataset text (questions, tokens, subjects, labels, definitions) must be rendered as text in every view:
 * no element is created from it and the literal characters are shown.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createHeatmapView, type HeatmapViewState } from '../../webview/heatmap/view';
import { createSummaryView, type SummaryViewState } from '../../webview/summary/view';
import { fakeApi, setupDom, XSS, XSS_IMG, XSS_SCRIPT } from '../support/domEnv';
import { heatmapFromSummary } from '../../src/analysis/heatmap';
import { syntheticSummary, syntheticTrace } from '../support/synthetic';
import { createTraceView, type TraceViewState } from '../../webview/trace/view';

const env = setupDom();
const mount = () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
};

function assertNoInjectedElements(host: Element) {
  assert.equal(host.querySelectorAll('script').length, 0, 'no <script> created');
  assert.equal(host.querySelectorAll('img').length, 0, 'no <img> created');
  for (const el of Array.from(host.querySelectorAll('*'))) {
    for (const a of Array.from(el.attributes)) assert.ok(!/^on/i.test(a.name), `no event-handler attribute ${a.name} on <${el.tagName}>`);
  }
}

test('trace view renders hostile question and token text as text', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  const p = syntheticTrace({ requestId: 1, numTokens: 40, question: XSS });
  p.question!.subject = XSS_IMG;
  p.result.tokens[0]!.text = XSS_SCRIPT;
  p.result.tokens[1]!.text = XSS_IMG;
  p.result.model.providerNote = XSS_IMG;
  p.result.model.demo = { note: XSS_SCRIPT };
  v.handle({ type: 'trace', payload: p });
  assertNoInjectedElements(host);
  assert.equal(host.querySelector('[data-testid="question-text"]')!.textContent, XSS);
  const toks = host.querySelectorAll('[data-testid="token"]');
  assert.equal(toks[0]!.textContent, XSS_SCRIPT);
  assert.equal(toks[1]!.textContent, XSS_IMG.replace(/ /g, '·'));
  assert.ok(host.textContent!.includes(XSS_SCRIPT));
  v.handle({ type: 'trace-failed', requestId: 2, message: XSS });
  assertNoInjectedElements(host);
  assert.equal(host.querySelector('[data-testid="trace-error"]')!.textContent, XSS);
});

test('heatmap view renders hostile labels and subjects as text', () => {
  const host = mount();
  const v = createHeatmapView(host, fakeApi<HeatmapViewState>());
  const s = syntheticSummary({
    subjects: [
      [XSS_SCRIPT, XSS_IMG],
      [XSS_IMG, null],
    ],
  });
  const run = heatmapFromSummary(s, XSS);
  v.handle({ type: 'heatmap', trace: null, run });
  assertNoInjectedElements(host);
  assert.ok(host.querySelector('[data-testid="heatmap-label"]')!.textContent!.includes(XSS));
  host.querySelector('rect.cell[data-count]:not([data-never])')!.dispatchEvent(new env.window.Event('click'));
  const detail = host.querySelector('[data-testid="expert-detail"]')!;
  assertNoInjectedElements(host);
  assert.ok(detail.textContent!.includes(XSS_SCRIPT) || detail.textContent!.includes(XSS_IMG));
});

test('summary view renders hostile subjects, categories, paths and definitions as text', () => {
  const host = mount();
  const v = createSummaryView(host, fakeApi<SummaryViewState>());
  const s = syntheticSummary({
    subjects: [
      [XSS_SCRIPT, XSS_IMG],
      [XSS_IMG, 'STEM'],
      ['ok', null],
    ],
  });
  s.definitions = { ...s.definitions, [XSS_IMG]: XSS };
  s.dataset.path = XSS;
  s.tokenScopeDefinition = XSS_SCRIPT;
  v.handle({ type: 'summary', summary: s, runDir: XSS });
  assertNoInjectedElements(host);
  const text = host.textContent!;
  assert.ok(text.includes(XSS_SCRIPT));
  assert.ok(text.includes(XSS_IMG));
  assert.ok(host.querySelector('[data-testid="definitions"]')!.textContent!.includes(XSS));
  const subjects = Array.from(host.querySelectorAll('[data-testid="subject-bar"]'), (b) => b.getAttribute('data-subject'));
  assert.ok(subjects.includes(XSS_SCRIPT));
});
