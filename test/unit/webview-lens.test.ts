/** The trace panel's expert lens and layout fixes, driven in a linkedom page (issue 24, items 7, 8, 10 and the expert lens). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TraceViewToHost } from '../../src/shared/protocol';
import { expertLensSummary, layerExpertMatrix } from '../../src/analysis/expertLens';
import { fakeApi, setupDom } from '../support/domEnv';
import { syntheticTrace } from '../support/synthetic';
import { createTraceView, fitCellWidth, type TraceViewState } from '../../webview/trace/view';
import { gateDistribution } from '../../webview/charts/gateDistribution';

const env = setupDom();
const mount = () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
};
function key(el: Element, k: string) {
  const e = new env.window.Event('keydown', { bubbles: true });
  Object.defineProperty(e, 'key', { value: k });
  el.dispatchEvent(e);
}
function choose(host: Element, testid: string, value: string) {
  const sel = host.querySelector(`[data-testid="${testid}"]`)! as unknown as { value: string; dispatchEvent(e: Event): boolean };
  sel.value = value;
  sel.dispatchEvent(new env.window.Event('change'));
}

test('expert lens: a click on a gate-chart bar points the lens at that expert; its summary matches the statistics', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  const p = syntheticTrace({ requestId: 1, numTokens: 40 });
  v.handle({ type: 'trace', payload: p });
  const R = p.result.routing;
  // The lens grid: one cell per (layer, token), fitted to the panel (no sideways scrolling).
  const grid = host.querySelector('[data-testid="lens-grid"]')!;
  assert.equal(grid.querySelectorAll('rect.lens-cell').length, R.numLayers * R.numTokens);
  assert.equal(grid.querySelector('svg')!.getAttribute('width'), '100%');
  // Open a cell's gate chart, click one of its chosen experts.
  key(host.querySelector('[data-testid="routing-grid"]')!, 'Enter');
  const chosenBar = host.querySelector('[data-testid="gate-distribution"] rect.bar[data-chosen="true"]')!;
  const expert = Number(chosenBar.getAttribute('data-expert'));
  chosenBar.dispatchEvent(new env.window.Event('click'));
  const s = expertLensSummary(R, expert);
  const summary = host.querySelector('[data-testid="lens-summary"]')!;
  assert.match(summary.textContent!, new RegExp(`^Expert ${expert}: chosen in ${s.chosen} of ${s.cells}`));
  assert.equal((host.querySelector('[data-testid="lens-expert"]') as HTMLInputElement).value, String(expert));
  // Filled cells are exactly where the expert is chosen.
  assert.equal(grid.querySelectorAll('rect.lens-cell:not(.empty)').length, s.chosen);
});

test('expert lens: the host (heatmap) picks an expert; colour-by metrics fill every cell; the matrix follows the selected token', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  const p = syntheticTrace({ requestId: 1, numTokens: 30 });
  v.handle({ type: 'trace', payload: p });
  const R = p.result.routing;
  v.handle({ type: 'lens-expert', layer: 2, expert: 5 });
  assert.match(host.querySelector('[data-testid="lens-summary"]')!.textContent!, /^Expert 5:/);
  choose(host, 'lens-metric', 'mass');
  const grid = host.querySelector('[data-testid="lens-grid"]')!;
  assert.equal(grid.querySelectorAll('rect.lens-cell.empty').length, 0, 'top-k mass has a value in every cell');
  // Default matrix: the answer position (last token); its filled cells are the (layer, expert) pairs it chose.
  const matrix = () => host.querySelector('[data-testid="lens-matrix"]')!;
  assert.match(host.querySelector('[data-testid="lens-matrix-title"]')!.textContent!, new RegExp(`token ${R.numTokens - 1} `));
  assert.equal(matrix().querySelectorAll('rect.lens-cell:not(.empty)').length, R.numLayers * R.topK);
  // Selecting a routing-map cell switches the matrix to that token.
  const rg = host.querySelector('[data-testid="routing-grid"]')!;
  key(rg, 'ArrowRight');
  key(rg, 'ArrowRight');
  key(rg, 'Enter');
  const t = Number(host.querySelector('[data-testid="gate-distribution"]')!.getAttribute('data-token'));
  assert.match(host.querySelector('[data-testid="lens-matrix-title"]')!.textContent!, new RegExp(`token ${t} `));
  const m = layerExpertMatrix(R, [t]);
  assert.equal(matrix().querySelectorAll('rect.lens-cell:not(.empty)').length, Array.from(m.chosenBy).filter(Boolean).length);
  // Keyboard on the matrix: Enter picks the expert under the cursor for the lens.
  const mx = matrix();
  key(mx, 'Home');
  key(mx, 'ArrowRight');
  key(mx, 'ArrowRight');
  key(mx, 'ArrowRight');
  assert.match(host.querySelector('[data-testid="lens-matrix-live"]')!.textContent!, /layer 0, expert 3: mean weight/);
  key(mx, 'Enter');
  assert.match(host.querySelector('[data-testid="lens-summary"]')!.textContent!, /^Expert 3:/);
  // The pick redraws in place: the same focusable element, the cursor where it was (keyboard users keep their place).
  assert.equal(matrix(), mx);
  assert.equal(mx.getAttribute('data-cursor'), '0,3');
  // Keyboard on the lens grid: Enter selects that cell in the routing map (the gate chart follows).
  const lg = host.querySelector('[data-testid="lens-grid"]')!;
  key(lg, 'Home');
  key(lg, 'ArrowDown');
  key(lg, 'Enter');
  const gd = host.querySelector('[data-testid="gate-distribution"]')!;
  assert.deepEqual([gd.getAttribute('data-layer'), gd.getAttribute('data-token')], ['1', '0']);
  // Exported: CSV of the lens grid, one row per (layer, token).
  const csvButton = host.querySelector('[data-testid="lens-section"] [data-export="csv"]')!;
  csvButton.dispatchEvent(new env.window.Event('click'));
  const exported = api.posted.at(-1) as Extract<TraceViewToHost, { type: 'export' }>;
  assert.equal(exported.type, 'export');
  assert.match(exported.name, /lens-expert3/);
  // (token texts with a newline are quoted over two lines: count the rows by their leading layer,token)
  assert.equal(
    String(exported.data)
      .split('\n')
      .filter((l) => /^\d+,\d+,/.test(l)).length,
    R.numLayers * R.numTokens,
  );
  // The lens choice survives a reload of the panel.
  v.flushState();
  assert.deepEqual(api.state!.lens, { expert: 3, metric: 'expert', tokens: 'selected' });
});

test("routing map 'fit': columns share the panel's width within [6, 26] px; 'Answer position' selects the last token", () => {
  assert.equal(fitCellWidth(640, 40), 15);
  assert.equal(fitCellWidth(640, 2000), 6, 'never narrower than 6 px: then the map scrolls');
  assert.equal(fitCellWidth(2000, 10), 26);
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  const p = syntheticTrace({ requestId: 1, numTokens: 50 });
  v.handle({ type: 'trace', payload: p });
  host.querySelector('[data-testid="rm-answer"]')!.dispatchEvent(new env.window.Event('click'));
  const gd = host.querySelector('[data-testid="gate-distribution"]')!;
  assert.equal(gd.getAttribute('data-token'), String(p.result.routing.numTokens - 1));
  assert.equal(gd.getAttribute('data-layer'), String(p.result.routing.numLayers - 1));
});

test('gate chart: drawn again at the new width when the panel is resized', () => {
  const g = globalThis as Record<string, unknown>;
  const observers: { cb: (entries: { contentRect: { width: number } }[]) => void }[] = [];
  g.ResizeObserver = class {
    constructor(public cb: (entries: { contentRect: { width: number } }[]) => void) {
      observers.push(this);
    }
    observe() {}
    disconnect() {}
  };
  g.requestAnimationFrame = (f: () => void) => {
    f();
    return 1;
  };
  g.cancelAnimationFrame = () => {};
  try {
    const host = mount();
    let width = 1210;
    Object.defineProperty(host, 'clientWidth', { get: () => width });
    const probs = Array.from({ length: 64 }, () => 1 / 64);
    gateDistribution(host, { layer: 0, token: 0, tokenText: 'x', numExperts: 64, probs, chosen: [1, 2], weights: [0.1, 0.1] });
    assert.equal(host.querySelector('svg')!.getAttribute('width'), '1210');
    const ro = observers.at(-1)!;
    ro.cb([{ contentRect: { width: 1210 } }]); // the first observation: drawn at this width already
    width = 621;
    ro.cb([{ contentRect: { width: 621 } }]);
    assert.equal(host.querySelector('svg')!.getAttribute('width'), '621');
  } finally {
    delete g.ResizeObserver;
    delete g.requestAnimationFrame;
    delete g.cancelAnimationFrame;
  }
});
