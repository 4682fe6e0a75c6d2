import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heatmapFromSummary, heatmapFromTrace, neverActivatedPerLayer } from '../../src/analysis/heatmap';
import { createHeatmapView, type HeatmapViewState } from '../../webview/heatmap/view';
import { fakeApi, setupDom } from '../support/domEnv';
import { syntheticSummary, syntheticTrace } from '../support/synthetic';

const env = setupDom();
const mount = () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
};
const trace = heatmapFromTrace(syntheticTrace({ numTokens: 30 }).result.routing, 'trace of question 1');
const summary = syntheticSummary();
const run = heatmapFromSummary(summary, 'run 2024-01-01');

function choose(host: Element, value: 'trace' | 'run') {
  const sel = host.querySelector('[data-testid="heatmap-source"]')! as unknown as { value: string; dispatchEvent(e: Event): boolean };
  sel.value = value;
  sel.dispatchEvent(new env.window.Event('change'));
}

test('heatmap view: empty until data arrives; trace source shows the heatmap and never-activated counts', () => {
  const host = mount();
  const v = createHeatmapView(host, fakeApi<HeatmapViewState>());
  assert.ok(host.querySelector('[data-testid="heatmap-empty"]'));
  assert.ok(host.querySelector('[data-testid="heatmap-source"]'));
  v.handle({ type: 'heatmap', trace, run: null });
  assert.ok(host.querySelector('[data-testid="heatmap"]'));
  const perLayer = neverActivatedPerLayer(trace);
  assert.equal(host.querySelector('[data-testid="never-activated-total"]')!.textContent, String(perLayer.reduce((a, b) => a + b, 0)));
  assert.equal(host.querySelectorAll('[data-testid="never-activated-layer"]').length, 16);
  assert.equal(
    host.querySelectorAll('rect.cell[data-never="true"]').length,
    perLayer.reduce((a, b) => a + b, 0),
  );
});

test('heatmap view: switching to run posts select-source; clicking an expert shows accuracy, count, top subjects and the definition', () => {
  const host = mount();
  const api = fakeApi<HeatmapViewState>();
  const v = createHeatmapView(host, api);
  v.handle({ type: 'heatmap', trace, run });
  choose(host, 'run');
  assert.deepEqual(api.posted.at(-1), { type: 'select-source', source: 'run' });
  assert.match(host.querySelector('[data-testid="heatmap-label"]')!.textContent!, /run 2024-01-01/);
  // pick a used expert
  const layer = 3;
  const expert = summary.layers[layer]!.expertAccuracy.findIndex((a) => a !== null);
  host.querySelector(`rect.cell[data-layer="${layer}"][data-expert="${expert}"]`)!.dispatchEvent(new env.window.Event('click'));
  const d = host.querySelector('[data-testid="expert-detail"]')!;
  assert.ok(d);
  const acc = summary.layers[layer]!.expertAccuracy[expert]!;
  assert.match(d.querySelector('[data-testid="expert-accuracy"]')!.textContent!, new RegExp(`${(acc * 100).toFixed(1)}%`));
  assert.match(
    d.querySelector('[data-testid="expert-accuracy-count"]')!.textContent!,
    new RegExp(`^${summary.layers[layer]!.expertAccuracyCount[expert]} questions`),
  );
  assert.equal(d.querySelectorAll('[data-testid="expert-top-subjects"] li').length, 3);
  assert.match(d.querySelector('[data-testid="expert-accuracy-definition"]')!.textContent!, /answer position/);
  // host switches back
  v.handle({ type: 'select-source', source: 'trace' });
  assert.match(host.querySelector('[data-testid="heatmap-label"]')!.textContent!, /trace of question 1/);
  assert.equal(host.querySelector('[data-testid="expert-detail"]'), null);
});

test('heatmap view: state restores the source and selection', () => {
  const host = mount();
  const api = fakeApi<HeatmapViewState>();
  const v = createHeatmapView(host, api);
  v.handle({ type: 'heatmap', trace, run });
  choose(host, 'run');
  host.querySelector('rect.cell[data-layer="0"][data-expert="1"]')!.dispatchEvent(new env.window.Event('click'));
  const host2 = mount();
  createHeatmapView(host2, fakeApi<HeatmapViewState>(api.state));
  assert.ok(host2.querySelector('[data-testid="expert-detail"][data-layer="0"][data-expert="1"]'));
});
