/** The expert-structure view, and the trace panel's "Expert outputs (all experts)" section (linkedom). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TraceViewToHost, WeightAnalysis } from '../../src/shared/protocol';
import { createStructureView, structureModel, type StructureViewState } from '../../webview/structure/view';
import { fakeApi, setupDom, XSS, XSS_IMG, XSS_SCRIPT } from '../support/domEnv';
import { syntheticTrace } from '../support/synthetic';
import { HAND_EXPERT_OUTPUTS, handTrace, syntheticTraceWithExperts, syntheticWeightAnalysis } from '../support/syntheticStructure';
import { createTraceView, type TraceViewState } from '../../webview/trace/view';

const env = setupDom();
const mount = () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  return host;
};
const num = (el: Element, attr: string) => Number(el.getAttribute(attr));
const stateOf = (host: Element) => host.querySelector('[data-testid="structure-view"]')!.getAttribute('data-state');

function choose(host: Element, testid: string, value: string) {
  const sel = host.querySelector(`[data-testid="${testid}"]`)! as unknown as { value: string; dispatchEvent(e: Event): boolean };
  sel.value = value;
  sel.dispatchEvent(new env.window.Event('change'));
}

function assertNoInjectedElements(host: Element) {
  assert.equal(host.querySelectorAll('script').length, 0, 'no <script> created');
  assert.equal(host.querySelectorAll('img').length, 0, 'no <img> created');
  for (const el of Array.from(host.querySelectorAll('*'))) {
    for (const a of Array.from(el.attributes)) assert.ok(!/^on/i.test(a.name), `no event-handler attribute ${a.name} on <${el.tagName}>`);
  }
}

const L = 6;
const E = 16;
const analysis = syntheticWeightAnalysis({ numLayers: L, numExperts: E, dim: 24 });

function heatValues(host: Element): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of Array.from(host.querySelectorAll('[data-testid="similarity-heatmap"] rect.cell[data-a]')))
    out.set(`${c.getAttribute('data-a')},${c.getAttribute('data-b')}`, num(c, 'data-value'));
  return out;
}

test('structure view: loading with the progress text, then ready with the E x E matrix of the first layer', () => {
  const host = mount();
  const v = createStructureView(host, fakeApi<StructureViewState>());
  assert.equal(stateOf(host), 'loading');
  v.handle({ type: 'structure-progress', message: 'Analysing the expert weights of 6 layers...' });
  assert.equal(stateOf(host), 'loading');
  assert.equal(host.querySelector('[data-testid="structure-progress"]')!.textContent, 'Analysing the expert weights of 6 layers...');
  v.handle({ type: 'structure', analysis, modelLabel: 'olmoe · OLMoE-1B-7B-0924' });
  assert.equal(stateOf(host), 'ready');
  assert.equal(v.status(), 'ready');
  assert.equal(host.querySelector('[data-testid="structure-model"]')!.textContent, 'olmoe · OLMoE-1B-7B-0924');
  const vals = heatValues(host);
  assert.equal(vals.size, E * E);
  for (let a = 0; a < E; a++) for (let b = 0; b < E; b++) assert.equal(vals.get(`${a},${b}`), analysis.layers[0]!.all[a * E + b]);
  assert.equal(host.querySelector('[data-testid="similarity-heatmap"]')!.getAttribute('data-layer'), '0');
  assert.match(host.querySelector('[data-testid="matrix-definition"]')!.textContent!, /concatenated/);
});

test('structure view: layer and matrix selectors switch the heatmap; clicking a layer on a depth chart selects it', () => {
  const host = mount();
  const api = fakeApi<StructureViewState>();
  const v = createStructureView(host, api);
  v.handle({ type: 'structure', analysis, modelLabel: 'm' });
  choose(host, 'structure-matrix', 'router');
  choose(host, 'structure-layer', '3');
  let vals = heatValues(host);
  assert.equal(vals.get('2,9'), analysis.layers[3]!.router[2 * E + 9]);
  assert.equal(host.querySelector('[data-testid="similarity-heatmap"]')!.getAttribute('data-layer'), '3');
  assert.match(host.querySelector('[data-testid="matrix-definition"]')!.textContent!, /router/);
  for (const [key, field] of [
    ['neuronRowMean', 'neuronRowMean'],
    ['neuronColMean', 'neuronColMean'],
    ['gate', 'gate'],
    ['up', 'up'],
    ['down', 'down'],
  ] as const) {
    choose(host, 'structure-matrix', key);
    vals = heatValues(host);
    assert.equal(vals.get('1,4'), analysis.layers[3]![field][1 * E + 4], key);
  }
  choose(host, 'structure-matrix', 'neuronUpColMean');
  assert.equal(heatValues(host).get('5,0'), analysis.layers[3]!.neuronUp.colMean[5 * E + 0]);
  // the depth charts: the marker follows the layer; a click on a layer column selects it everywhere
  assert.equal(host.querySelector('[data-testid="similarity-by-depth"] [data-testid="layer-marker"]')!.getAttribute('data-layer'), '3');
  host.querySelector('[data-testid="r2-by-depth"] rect.layer-hit[data-layer="5"]')!.dispatchEvent(new env.window.Event('click'));
  assert.equal(host.querySelector('[data-testid="similarity-heatmap"]')!.getAttribute('data-layer'), '5');
  assert.equal(host.querySelector('[data-testid="r2-by-depth"] [data-testid="layer-marker"]')!.getAttribute('data-layer'), '5');
  assert.equal((host.querySelector('[data-testid="structure-layer"]') as unknown as { value: string }).value, '5');
  assert.match(host.querySelector('[data-testid="router-r2"]')!.textContent!, new RegExp(`Layer 5: R² = ${analysis.layers[5]!.routerVsExpertR2.toFixed(3)}`));
  const saved = () => api.state;
  assert.equal(saved(), undefined, 'persisting waits for a quiet moment');
  v.flushState();
  assert.equal(saved()?.layer, 5);
  assert.equal(saved()?.matrix, 'neuronUpColMean');
});

test('structure view: depth curves have one point per layer per series with the analysis values; R² by depth; the scatter', () => {
  const host = mount();
  const v = createStructureView(host, fakeApi<StructureViewState>());
  v.handle({ type: 'structure', analysis, modelLabel: 'm' });
  const depth = host.querySelector('[data-testid="similarity-by-depth"]')!;
  for (const k of ['gate', 'up', 'down', 'all', 'router'] as const) {
    const pts = Array.from(depth.querySelectorAll(`[data-testid="depth-point"][data-series="${k}"]`));
    assert.equal(pts.length, L, k);
    pts.forEach((p, i) => assert.equal(num(p, 'data-value'), analysis.layers[i]!.meanOffDiagonal[k]));
  }
  assert.equal(depth.querySelectorAll('[data-testid="depth-legend"] .legend-item').length, 5);
  const r2 = Array.from(host.querySelectorAll('[data-testid="r2-by-depth"] [data-testid="depth-point"]'));
  assert.deepEqual(
    r2.map((p) => num(p, 'data-value')),
    analysis.layers.map((l) => l.routerVsExpertR2),
  );
  const sc = host.querySelector('[data-testid="router-scatter"]')!;
  assert.equal(sc.querySelectorAll('[data-testid="pair-point"]').length, (E * (E - 1)) / 2);
  assert.match(sc.querySelector('[data-testid="scatter-r2"]')!.textContent!, new RegExp(`R² = ${analysis.layers[0]!.routerVsExpertR2.toFixed(3)}`));
  // slope and intercept of the line drawn = the engine's fit
  const fit = analysis.layers[0]!.routerVsExpertFit;
  assert.ok(Math.abs(num(sc.querySelector('[data-testid="fit-line"]')!, 'data-slope') - fit.slope) < 1e-9);
  assert.ok(Math.abs(num(sc.querySelector('[data-testid="fit-line"]')!, 'data-intercept') - fit.intercept) < 1e-9);
  // hover in the matrix rings the same pair in the scatter
  host
    .querySelector('[data-testid="similarity-heatmap"] rect.cell[data-a="4"][data-b="1"]')!
    .dispatchEvent(new env.window.Event('mousemove', { bubbles: true }));
  assert.match(host.querySelector('[data-testid="similarity-hover"]')!.textContent!, /layer 0, expert 4 × expert 1: /);
  assert.equal(sc.querySelector('circle.pair-ring')!.getAttribute('visibility'), 'visible');
  // every measure is defined on the page
  const defs = host.querySelector('[data-testid="structure-definitions"]')!.textContent!;
  for (const re of [
    /cos\(a, b\) = a·b/,
    /flattened/,
    /row-mean vector/,
    /column-mean/,
    /Ordinary least squares/,
    /R² = 1 − SS_res \/ SS_tot/,
    /1 by definition/,
  ])
    assert.match(defs, re);
});

test('structure view: exports post the matrix as CSV and JSON, named by layer and matrix', () => {
  const host = mount();
  const api = fakeApi<StructureViewState>();
  const v = createStructureView(host, api);
  v.handle({ type: 'structure', analysis, modelLabel: 'm' });
  choose(host, 'structure-layer', '2');
  const section = host.querySelector('[data-testid="structure-matrix-section"]')!;
  section.querySelector('[data-export="csv"]')!.dispatchEvent(new env.window.Event('click'));
  const csv = api.posted.at(-1) as { type: string; format: string; name: string; data: string };
  assert.equal(csv.format, 'csv');
  assert.equal(csv.name, 'structure-L2-all-similarity.csv');
  const lines = csv.data.trim().split('\r\n');
  assert.equal(lines.length, 1 + E * E);
  assert.equal(lines[1 + 3 * E + 7], `2,all,3,7,${analysis.layers[2]!.all[3 * E + 7]}`);
  section.querySelector('[data-export="json"]')!.dispatchEvent(new env.window.Event('click'));
  const json = JSON.parse((api.posted.at(-1) as { data: string }).data);
  assert.equal(json.layer, 2);
  assert.equal(json.values.length, E * E);
  host.querySelector('[data-testid="structure-depth-section"] [data-export="csv"]')!.dispatchEvent(new env.window.Event('click'));
  assert.equal((api.posted.at(-1) as { data: string }).data.trim().split('\r\n').length, 1 + L);
});

test('structure view: error state shows the message; a later analysis recovers', () => {
  const host = mount();
  const v = createStructureView(host, fakeApi<StructureViewState>());
  v.handle({ type: 'structure-progress', message: 'working' });
  v.handle({ type: 'structure-failed', message: 'model.layers.3.mlp.gate.weight is missing' });
  assert.equal(stateOf(host), 'error');
  assert.equal(host.querySelector('[data-testid="structure-error"]')!.textContent, 'model.layers.3.mlp.gate.weight is missing');
  assert.ok(host.querySelector('[data-testid="structure-error"]')!.closest('[hidden]') === null);
  v.handle({ type: 'structure', analysis, modelLabel: 'm' });
  assert.equal(stateOf(host), 'ready');
  assert.ok(host.querySelector('.error-box')!.hasAttribute('hidden'));
});

test('structure view: the state restores analysis, layer, matrix and scale after a reload; errors too', () => {
  const host = mount();
  const api = fakeApi<StructureViewState>();
  const v = createStructureView(host, api);
  v.handle({ type: 'structure', analysis, modelLabel: 'label' });
  choose(host, 'structure-layer', '4');
  choose(host, 'structure-matrix', 'down');
  choose(host, 'structure-scale', 'fixed');
  v.flushState();
  const host2 = mount();
  createStructureView(host2, fakeApi<StructureViewState>(api.state));
  assert.equal(stateOf(host2), 'ready');
  assert.equal(host2.querySelector('[data-testid="structure-model"]')!.textContent, 'label');
  const svg = host2.querySelector('[data-testid="similarity-heatmap"]')!;
  assert.equal(svg.getAttribute('data-layer'), '4');
  assert.equal(svg.getAttribute('data-scale'), 'fixed');
  const got = heatValues(host2).get('3,11')!;
  assert.ok(Math.abs(got - analysis.layers[4]!.down[3 * E + 11]!) < 1e-6, 'float32 in the state');
  const api3 = fakeApi<StructureViewState>();
  const v3 = createStructureView(mount(), api3);
  v3.handle({ type: 'structure-failed', message: 'boom' });
  v3.flushState();
  const host4 = mount();
  createStructureView(host4, fakeApi<StructureViewState>(api3.state));
  assert.equal(stateOf(host4), 'error');
  assert.equal(host4.querySelector('[data-testid="structure-error"]')!.textContent, 'boom');
});

test('structure view: tolerates extra fields, missing optional ones and malformed matrices', () => {
  const a = syntheticWeightAnalysis({ numLayers: 2, numExperts: 4, dim: 8 }) as WeightAnalysis & { futureField?: unknown };
  a.futureField = { anything: [1, 2, 3] };
  const l0 = a.layers[0]! as unknown as Record<string, unknown>;
  delete l0.neuronUp;
  delete l0.neuronDown;
  delete l0.routerVsExpertFit;
  delete l0.norms;
  l0.gate = [1, 2, 3]; // wrong length
  (a.layers[1]! as unknown as Record<string, unknown>).meanOffDiagonal = { all: 0.5 };
  const m = structureModel(a);
  assert.equal(m.layers[0]!.matrices.gate, undefined);
  assert.ok(m.layers[1]!.matrices.neuronUpRowMean, 'extras kept where present');
  assert.equal(m.layers[1]!.meanOff.all, 0.5);
  assert.ok(Number.isFinite(m.layers[1]!.meanOff.gate), 'a missing mean is computed from the matrix');
  const host = mount();
  const v = createStructureView(host, fakeApi<StructureViewState>());
  v.handle({ type: 'structure', analysis: a, modelLabel: 'm' });
  choose(host, 'structure-matrix', 'gate');
  assert.ok(host.querySelector('[data-testid="matrix-missing"]'));
  choose(host, 'structure-layer', '1');
  assert.equal(heatValues(host).size, 16);
});

test('structure view renders a hostile model label, path and error as text', () => {
  const host = mount();
  const v = createStructureView(host, fakeApi<StructureViewState>());
  v.handle({ type: 'structure-progress', message: XSS_IMG });
  assert.equal(host.querySelector('[data-testid="structure-progress"]')!.textContent, XSS_IMG);
  const a = { ...analysis, modelPath: XSS };
  v.handle({ type: 'structure', analysis: a, modelLabel: XSS });
  assertNoInjectedElements(host);
  assert.equal(host.querySelector('[data-testid="structure-model"]')!.textContent, XSS);
  assert.ok(host.querySelector('[data-testid="structure-meta"]')!.textContent!.includes(XSS));
  v.handle({ type: 'structure-failed', message: XSS_SCRIPT });
  assertNoInjectedElements(host);
  assert.equal(host.querySelector('[data-testid="structure-error"]')!.textContent, XSS_SCRIPT);
});

// --- trace panel: expert outputs ------------------------------------------------------------------------

test('trace view: without expertOutputs, "Run all-experts analysis" explains the cost and posts analyze-experts once', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 1, numTokens: 20 }) });
  const section = host.querySelector('[data-testid="expert-outputs-section"]')!;
  assert.match(section.querySelector('h2')!.textContent!, /Expert outputs \(all experts\)/);
  assert.match(section.textContent!, /every expert on every token/);
  assert.match(section.textContent!, /E\/k = 64\/8 = 8 times the MoE cost/);
  assert.equal(section.querySelector('[data-testid="norm-vs-score"]'), null);
  const button = section.querySelector('[data-testid="analyze-experts"]')!;
  assert.equal(button.tagName.toLowerCase(), 'vscode-button');
  assert.equal(button.textContent, 'Run all-experts analysis');
  button.dispatchEvent(new env.window.Event('click'));
  assert.deepEqual(api.posted.at(-1), { type: 'analyze-experts' } satisfies TraceViewToHost);
  assert.ok(button.hasAttribute('disabled'));
  button.dispatchEvent(new env.window.Event('click'));
  assert.equal(api.posted.filter((m) => (m as { type: string }).type === 'analyze-experts').length, 1, 'no second request while one runs');
  v.handle({ type: 'trace-started', requestId: 2, label: 'running every expert on every token...' });
  v.handle({ type: 'trace-failed', requestId: 2, message: 'out of memory' });
  assert.ok(!section.querySelector('[data-testid="analyze-experts"]')!.hasAttribute('disabled'), 'a failure re-enables the button');
  // a new ordinary trace reuses the same button (no web-component set-up per trace) with the new model's E/k
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 3, numTokens: 12, numExperts: 8, topK: 2 }) });
  assert.equal(section.querySelector('[data-testid="analyze-experts"]'), button);
  assert.match(section.textContent!, /E\/k = 8\/2 = 4 times/);
  // with the analysis, then without it again
  v.handle({ type: 'trace', payload: handTrace(4) });
  assert.equal(section.querySelector('[data-testid="analyze-experts"]'), null);
  v.handle({ type: 'trace', payload: syntheticTrace({ requestId: 5, numTokens: 12, numExperts: 16, topK: 3 }) });
  assert.equal(section.querySelector('[data-testid="norm-vs-score"]'), null);
  assert.match(section.textContent!, /E\/k = 16\/3 ≈ 5\.3 times/);
  section.querySelector('[data-testid="analyze-experts"]')!.dispatchEvent(new env.window.Event('click'));
  assert.equal(api.posted.filter((m) => (m as { type: string }).type === 'analyze-experts').length, 2);
});

test('trace view: with expertOutputs, norm vs score draws the hand-checkable counts and shares', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  v.handle({ type: 'trace', payload: handTrace(1) });
  const section = host.querySelector('[data-testid="expert-outputs-section"]')!;
  assert.equal(section.querySelector('[data-testid="analyze-experts"]'), null);
  const nvs = section.querySelector('[data-testid="norm-vs-score"]')!;
  const cells = Array.from(nvs.querySelectorAll('[data-testid="rank-pair-cell"]'));
  assert.equal(cells.length, 16);
  for (const c of cells) {
    const k = `${c.getAttribute('data-score-rank')},${c.getAttribute('data-norm-rank')}`;
    assert.equal(num(c, 'data-count'), HAND_EXPERT_OUTPUTS.counts[k] ?? 0, k);
  }
  const share = nvs.querySelector('[data-testid="norm-share-by-layer"]')!;
  assert.equal(num(share.querySelector('[data-series="top1"][data-testid="depth-point"]')!, 'data-value'), HAND_EXPERT_OUTPUTS.top);
  assert.equal(num(share.querySelector('[data-series="topk"][data-testid="depth-point"]')!, 'data-value'), HAND_EXPERT_OUTPUTS.inTopK);
  assert.deepEqual(
    Array.from(share.querySelectorAll('[data-testid="depth-ref"]'), (r) => num(r, 'data-value')),
    [1 / 4, 2 / 4],
  );
  assert.match(nvs.querySelector('[data-testid="rank-pair-title"]')!.textContent!, /66\.7% of tokens \(chance 25\.0%\).*100\.0% \(chance 50\.0%\)/);
  assert.match(nvs.querySelector('[data-testid="norm-vs-score-definition"]')!.textContent!, /UNWEIGHTED|unweighted/);
  // diversity: the mean of the three tokens' values, one layer, marked as the last
  const div = section.querySelector('[data-testid="diversity-by-depth"]')!;
  const pts = div.querySelectorAll('[data-testid="depth-point"]');
  assert.equal(pts.length, 1);
  assert.ok(Math.abs(num(pts[0]!, 'data-value') - 0.6) < 1e-6);
  assert.equal(pts[0]!.getAttribute('data-last'), 'true');
  assert.match(section.querySelector('[data-testid="diversity-definition"]')!.textContent!, /0\.5 = orthogonal/);
});

test('trace view: diversity by depth marks the last of 16 layers; layer choice moves the rank-pair heatmap; export CSV', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  const p = syntheticTraceWithExperts({ requestId: 3, numTokens: 40 });
  v.handle({ type: 'trace', payload: p });
  const div = host.querySelector('[data-testid="diversity-by-depth"]')!;
  assert.equal(div.querySelectorAll('[data-testid="depth-point"]').length, 16);
  assert.deepEqual(
    Array.from(div.querySelectorAll('[data-last="true"]'), (e) => e.getAttribute('data-layer')),
    ['15'],
  );
  assert.match(div.querySelector('[data-testid="last-layer-mark"]')!.textContent!, /last layer \(L15\)/);
  const nvs = host.querySelector('[data-testid="norm-vs-score"]')!;
  assert.equal(nvs.querySelectorAll('[data-testid="rank-pair-cell"]').length, 64, 'top 8 x 8 by default');
  assert.equal(nvs.querySelectorAll('[data-testid="norm-share-by-layer"] [data-testid="depth-point"]').length, 32);
  choose(host, 'norm-layer', '7');
  assert.equal(nvs.querySelector('[data-testid="rank-pair-heatmap"]')!.getAttribute('data-layer'), '7');
  nvs.querySelector('[data-testid="norm-share-by-layer"] rect.layer-hit[data-layer="9"]')!.dispatchEvent(new env.window.Event('click'));
  assert.equal(nvs.querySelector('[data-testid="rank-pair-heatmap"]')!.getAttribute('data-layer'), '9');
  choose(host, 'rank-range', 'all');
  assert.equal(nvs.querySelectorAll('[data-testid="rank-pair-cell"]').length, 64 * 64);
  // row sums = tokens
  const row0 = Array.from(nvs.querySelectorAll('[data-testid="rank-pair-cell"][data-score-rank="0"]')).reduce((a, c) => a + num(c, 'data-count'), 0);
  assert.equal(row0, p.result.tokens.length);
  nvs.querySelector('.eo-head [data-export="csv"]')!.dispatchEvent(new env.window.Event('click'));
  const m = api.posted.at(-1) as { name: string; data: string };
  assert.equal(m.name, 'trace-3-norm-vs-score.csv');
  assert.equal(m.data.trim().split('\r\n').length, 1 + 16 * 64 * 64);
});

test('trace view: the all-experts results survive a reload (derived numbers in the state, not the raw norms)', () => {
  const host = mount();
  const api = fakeApi<TraceViewState>();
  const v = createTraceView(host, api);
  v.handle({ type: 'trace', payload: syntheticTraceWithExperts({ requestId: 4, numTokens: 30 }) });
  choose(host, 'norm-layer', '5');
  const before = Array.from(host.querySelectorAll('[data-testid="rank-pair-cell"]'), (c) => c.getAttribute('data-count'));
  v.flushState();
  assert.equal((api.state?.payload?.result as { expertOutputs?: unknown }).expertOutputs, undefined, 'raw norms are not persisted');
  assert.ok(api.state?.experts?.summary?.counts);
  const host2 = mount();
  createTraceView(host2, fakeApi<TraceViewState>(api.state));
  assert.equal(host2.querySelector('[data-testid="analyze-experts"]'), null);
  assert.equal(host2.querySelector('[data-testid="rank-pair-heatmap"]')!.getAttribute('data-layer'), '5');
  assert.deepEqual(
    Array.from(host2.querySelectorAll('[data-testid="rank-pair-cell"]'), (c) => c.getAttribute('data-count')),
    before,
  );
  assert.equal(host2.querySelectorAll('[data-testid="diversity-by-depth"] [data-testid="depth-point"]').length, 16);
  // a new ordinary trace replaces them with the button again
  const host3 = mount();
  const v3 = createTraceView(host3, fakeApi<TraceViewState>(api.state));
  v3.handle({ type: 'trace', payload: syntheticTrace({ requestId: 9, numTokens: 10 }) });
  assert.ok(host3.querySelector('[data-testid="analyze-experts"]'));
  assert.equal(host3.querySelector('[data-testid="norm-vs-score"]'), null);
});

test('trace view: expertOutputs without gate probabilities, or as plain arrays after a JSON round trip', () => {
  const host = mount();
  const v = createTraceView(host, fakeApi<TraceViewState>());
  const p = handTrace(1);
  const json = JSON.parse(JSON.stringify(p, (_k, val) => (ArrayBuffer.isView(val) ? Array.from(val as unknown as ArrayLike<number>) : val)));
  v.handle({ type: 'trace', payload: json });
  assert.equal(num(host.querySelector('[data-testid="rank-pair-cell"][data-score-rank="1"][data-norm-rank="3"]')!, 'data-count'), 2);
  const p2 = handTrace(2);
  p2.result.routing.probs = undefined;
  v.handle({ type: 'trace', payload: p2 });
  assert.ok(host.querySelector('[data-testid="norm-vs-score-missing"]'));
  assert.equal(host.querySelectorAll('[data-testid="diversity-by-depth"] [data-testid="depth-point"]').length, 1);
});
