import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TraceViewToHost } from '../../src/shared/protocol';
import { fakeApi, setupDom } from '../support/domEnv';
import { syntheticTrace } from '../support/synthetic';
import { createTraceView, type TraceViewState } from '../../webview/trace/view';

const env = setupDom();

function mount() {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
}

function key(el: Element, k: string, shift = false) {
  const e = new env.window.Event('keydown', { bubbles: true });
  Object.defineProperty(e, 'key', { value: k });
  Object.defineProperty(e, 'shiftKey', { value: shift });
  el.dispatchEvent(e);
}

const state = (host: Element) => host.querySelector('[data-testid="trace-view"]')!.getAttribute('data-state');

test('trace view: empty -> loading -> ready, with question, model info, answers, tokens, sparklines', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  assert.equal(state(host), 'empty');
  v.handle({ type: 'trace-started', requestId: 1, label: 'question 3' });
  assert.equal(state(host), 'loading');
  const p = syntheticTrace({ requestId: 1, numTokens: 80 });
  v.handle({ type: 'trace', payload: p });
  assert.equal(state(host), 'ready');
  assert.equal(host.querySelector('[data-testid="question-text"]')!.textContent, p.question!.text);
  assert.equal(host.querySelectorAll('[data-testid="token"]').length, p.result.tokens.length);
  assert.equal(host.querySelectorAll('[data-testid="layer-label"]').length, 16);
  assert.ok(host.querySelectorAll('canvas.rm-tile').length >= 1, 'cells are drawn on canvas tiles');
  assert.equal(host.querySelectorAll('[data-testid="answer-prob"]').length, 4);
  assert.equal(host.querySelector('[data-gold="true"]')!.getAttribute('data-letter'), 'C');
  assert.equal(host.querySelectorAll('[data-testid="entropy-sparkline"]').length, 16);
  const info = host.querySelector('[data-testid="model-info"]')!.textContent!;
  assert.match(info, /olmoe/);
  assert.match(info, /CPU/);
  assert.match(host.querySelector('[data-testid="demo-note"]')!.textContent!, /demo model: random weights/);
});

test('trace view: no demo note for a real model', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 1, numTokens: 20, demo: false }) });
  assert.equal(host.querySelector('[data-testid="demo-note"]'), null);
});

test('trace view: a stale request never renders over a newer one', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  v.handle({ type: 'trace-started', requestId: 5, label: 'new' });
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 4, numTokens: 30, question: 'OLD question' }) });
  assert.equal(state(host), 'loading');
  assert.equal(host.querySelector('[data-testid="question-text"]'), null);
  v.handle({ type: 'trace-failed', requestId: 3, message: 'old failure' });
  assert.equal(state(host), 'loading');
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 5, numTokens: 30, question: 'NEW question' }) });
  assert.equal(state(host), 'ready');
  assert.equal(host.querySelector('[data-testid="question-text"]')!.textContent, 'NEW question');
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 4, numTokens: 30, question: 'OLD question' }) });
  assert.equal(host.querySelector('[data-testid="question-text"]')!.textContent, 'NEW question');
  v.handle({ type: 'trace-started', requestId: 2, label: 'older start' });
  assert.equal(state(host), 'ready');
});

test('trace view: error state shows the message and Retry posts retry', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  v.handle({ type: 'trace-started', requestId: 2, label: 'q' });
  v.handle({ type: 'trace-failed', requestId: 2, message: 'model not loaded' });
  assert.equal(state(host), 'error');
  assert.equal(host.querySelector('[data-testid="trace-error"]')!.textContent, 'model not loaded');
  host.querySelector('[data-testid="retry-button"]')!.dispatchEvent(new env.window.Event('click'));
  assert.deepEqual(api.posted.at(-1), { type: 'retry' } satisfies TraceViewToHost);
});

test('trace view: Enter on the routing map opens the gate distribution; absent probs are reported', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 1, numTokens: 20 }) });
  assert.ok(host.querySelector('[data-testid="gate-hint"]'));
  const canvas = host.querySelector('[data-testid="routing-grid"]')!;
  canvas.dispatchEvent(new env.window.Event('focus'));
  key(canvas, 'ArrowDown');
  key(canvas, 'ArrowRight');
  key(canvas, 'Enter');
  const gd = host.querySelector('[data-testid="gate-distribution"]')!;
  assert.equal(gd.getAttribute('data-layer'), '1');
  assert.equal(gd.getAttribute('data-token'), '1');
  assert.equal(gd.querySelectorAll('rect.bar').length, 64);
  assert.equal(gd.querySelectorAll('[data-chosen="true"]').length, 8);

  const v2host = mount();
  const v2 = createTraceView(v2host, fakeApi<TraceViewState>());
  v2.handle({ type: 'trace', payload: syntheticTrace({ requestId: 1, numTokens: 20, includeProbs: false }) });
  const c2 = v2host.querySelector('[data-testid="routing-grid"]')!;
  c2.dispatchEvent(new env.window.Event('focus'));
  key(c2, 'Enter');
  assert.ok(v2host.querySelector('[data-testid="gate-probs-missing"]'));
});

test('trace view: hover posts hover-token once per change; host highlight-token marks the header; Shift+Enter reveals', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 1, numTokens: 20 }) });
  const tok = host.querySelectorAll('[data-testid="token"]')[7]!;
  tok.dispatchEvent(new env.window.Event('mouseover', { bubbles: true }));
  tok.dispatchEvent(new env.window.Event('mouseover', { bubbles: true }));
  assert.deepEqual(
    api.posted.filter((m) => (m as { type: string }).type === 'hover-token'),
    [{ type: 'hover-token', index: 7 }],
  );
  v.handle({ type: 'highlight-token', index: 4 });
  assert.equal(host.querySelector('.rm-token.is-highlighted')!.getAttribute('data-index'), '4');
  const canvas = host.querySelector('[data-testid="routing-grid"]')!;
  canvas.dispatchEvent(new env.window.Event('focus'));
  key(canvas, 'End');
  key(canvas, 'Enter', true);
  assert.deepEqual(api.posted.at(-1), { type: 'reveal-token', index: 19 });
});

test('trace view: state is persisted and restored after a reload', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  const p = syntheticTrace({ requestId: 9, numTokens: 60 });
  v.handle({ type: 'trace', payload: p });
  const canvas = host.querySelector('[data-testid="routing-grid"]')!;
  canvas.dispatchEvent(new env.window.Event('focus'));
  key(canvas, 'Enter');
  v.flushState();
  assert.ok(api.state?.payload, 'payload saved');
  // reload: a fresh view on the same (JSON round-tripped) state
  const host2 = mount();
  const v2 = createTraceView(host2, fakeApi<TraceViewState>(api.state));
  assert.equal(state(host2), 'ready');
  assert.equal(host2.querySelector('[data-testid="question-text"]')!.textContent, p.question!.text);
  assert.equal(host2.querySelectorAll('[data-testid="token"]').length, p.result.tokens.length);
  assert.ok(host2.querySelector('[data-testid="gate-distribution"]'), 'selected cell restored');
  // and the restored request id still guards against stale messages
  v2.handle({ type: 'trace', payload: syntheticTrace({ requestId: 8, numTokens: 10, question: 'stale' }) });
  assert.equal(host2.querySelector('[data-testid="question-text"]')!.textContent, p.question!.text);
});

test('trace view: a second trace updates the charts in place', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 1, numTokens: 80 }) });
  const sectionsBefore = host.querySelectorAll('section.section').length;
  const p2 = syntheticTrace({ requestId: 2, numTokens: 33, numLayers: 4, seed: 11 });
  v.handle({ type: 'trace', payload: p2 });
  assert.equal(host.querySelectorAll('section.section').length, sectionsBefore);
  assert.equal(host.querySelectorAll('[data-testid="token"]').length, p2.result.tokens.length);
  assert.equal(host.querySelectorAll('[data-testid="layer-label"]').length, 4);
  assert.equal(host.querySelectorAll('[data-testid="entropy-sparkline"]').length, 4);
  assert.equal(host.querySelectorAll('[data-testid="answer-prob"]').length, 4);
});

test('trace view: an error is restored after a reload', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  v.handle({ type: 'trace-failed', requestId: 3, message: 'out of memory' });
  v.flushState();
  const host2 = mount();
  createTraceView(host2, fakeApi<TraceViewState>(api.state));
  assert.equal(state(host2), 'error');
  assert.equal(host2.querySelector('[data-testid="trace-error"]')!.textContent, 'out of memory');
});

test('trace view: after a reload that dropped large gate probabilities, the gate panel says why', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 1, numTokens: 300 }) }); // 16 x 300 x 64 > persisted limit
  v.flushState();
  assert.equal(api.state?.payload?.result.routing.probs, undefined);
  assert.equal(api.state?.payload?.result.routing.probsOmitted, true);
  const host2 = mount();
  createTraceView(host2, fakeApi<TraceViewState>(api.state));
  const grid = host2.querySelector('[data-testid="routing-grid"]')!;
  grid.dispatchEvent(new env.window.Event('focus'));
  key(grid, 'Enter');
  assert.match(host2.querySelector('[data-testid="gate-probs-missing"]')!.textContent!, /too large to keep/);
});

test('trace view: the answer caption states how the letters were scored', () => {
  for (const method of ['single-token', 'continuation'] as const) {
    const host = mount();
    const v = createTraceView(host, fakeApi<TraceViewState>());
    const p = syntheticTrace({ requestId: 1, numTokens: 20 });
    p.result.model = {
      ...p.result.model,
      answerScoring: {
        method,
        letterTokenIds:
          method === 'continuation'
            ? [
                [5, 6],
                [5, 7],
                [5, 8],
                [5, 9],
              ]
            : [[6], [7], [8], [9]],
      },
    };
    v.handle({ type: 'trace', payload: p });
    const caption = host.querySelector('[data-testid="answer-caption"]')!;
    assert.equal(caption.getAttribute('data-scoring'), method);
    assert.match(caption.textContent!, method === 'continuation' ? /full continuations/ : /letter tokens/);
  }
});
