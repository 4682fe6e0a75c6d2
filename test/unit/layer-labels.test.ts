/**
 * Routing rows are labelled by decoder layer wherever a layer number is shown or exported: a model whose
 * decoder layer 0 is dense (qwen2_moe with mlp_only_layers=[0]) has routing rows for layers 1 and 2.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { heatmapFromSummary, heatmapFromTrace } from '../../src/analysis/heatmap';
import type { TraceViewToHost } from '../../src/shared/protocol';
import { createHeatmapView, type HeatmapViewState } from '../../webview/heatmap/view';
import { createSummaryView, type SummaryViewState } from '../../webview/summary/view';
import { createTraceView, type TraceViewState } from '../../webview/trace/view';
import { fakeApi, setupDom } from '../support/domEnv';
import { syntheticSummary, syntheticTrace } from '../support/synthetic';

const env = setupDom();
const mount = () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
};
const texts = (host: Element, selector: string) => Array.from(host.querySelectorAll(selector), (e) => e.textContent ?? '');

function denseFirstTrace() {
  const p = syntheticTrace({ requestId: 1, numTokens: 12, numLayers: 2, numExperts: 8, topK: 2, includeProbs: true });
  p.result.model = { ...p.result.model, numLayers: 2, moeLayers: [1, 2], numDecoderLayers: 3 };
  return p;
}

test('trace view: routing map rows, sparklines, model line and CSV exports use the decoder layer', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  const p = denseFirstTrace();
  v.handle({ type: 'trace', payload: p });
  assert.deepEqual(texts(host, '[data-testid="layer-label"][data-layer]'), ['L1', 'L2']);
  assert.deepEqual(texts(host, '.spark-row[data-layer] .spark-label'), ['L1', 'L2']);
  assert.match(host.querySelector('[data-testid="model-layers"]')!.textContent!, /2 MoE layers \(1, 2\) of 3 .*no routing \(dense or other layers\): 0$/);
  const exports: string[] = [];
  for (const button of host.querySelectorAll('[data-export="csv"]')) button.dispatchEvent(new env.window.Event('click'));
  for (const m of api.posted as TraceViewToHost[]) if (m.type === 'export' && m.format === 'csv') exports.push(m.data);
  const routing = exports.find((c) => c.startsWith('layer,token,token_text,slot'));
  assert.ok(routing, `a routing CSV was exported (got ${exports.map((c) => c.split('\n')[0]).join(' | ')})`);
  const layers = new Set(
    routing
      .split('\n')
      .filter((row) => /^\d+,\d+,/.test(row))
      .map((row) => row.split(',')[0]),
  );
  assert.deepEqual([...layers], ['1', '2']);
});

test('heatmap and summary views label rows by decoder layer', () => {
  const p = denseFirstTrace();
  const heat = mount();
  createHeatmapView(heat, fakeApi<HeatmapViewState>()).handle({
    type: 'heatmap',
    trace: heatmapFromTrace(p.result.routing, 'trace', p.result.model),
    run: null,
  });
  assert.deepEqual(texts(heat, '[data-testid="heatmap-layer-label"]'), ['L1', 'L2']);
  assert.deepEqual(
    texts(heat, '[data-testid="never-activated-layer"]').map((t) => t.split(':')[0]),
    ['layer 1', 'layer 2'],
  );

  const summary = syntheticSummary({ numLayers: 2, numExperts: 8, topK: 2 });
  summary.model = { ...summary.model, moeLayers: [1, 2], numDecoderLayers: 3 };
  assert.deepEqual(heatmapFromSummary(summary, 'run').layerOfRow, [1, 2]);
  const host = mount();
  createSummaryView(host, fakeApi<SummaryViewState>()).handle({ type: 'summary', summary, runDir: '/runs/a' });
  assert.deepEqual(
    texts(host, '[data-testid="never-activated-layer"]').map((t) => t.split(':')[0]),
    ['L1', 'L2'],
  );
  assert.match(host.querySelector('[data-testid="summary-model"]')!.textContent!, /2 MoE layers \(1, 2\) of 3 .*no routing \(dense or other layers\): 0$/);
});
