/** The side-panel heatmap says when a new trace replaces the run it showed, and offers the way back (issue 24, items 9 and 10). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { heatmapFromSummary, heatmapFromTrace } from '../../src/analysis/heatmap';
import { createHeatmapView, type HeatmapViewState } from '../../webview/heatmap/view';
import { fakeApi, setupDom } from '../support/domEnv';
import { syntheticSummary, syntheticTrace } from '../support/synthetic';
import { REPO_ROOT } from '../support/models';

const env = setupDom();
const trace = heatmapFromTrace(syntheticTrace({ numTokens: 30 }).result.routing, 'trace of question 1');
const run = heatmapFromSummary(syntheticSummary(), 'run 2024-01-01');

test('heatmap: a host switch from the run to a new trace is announced, and "Back to the run" returns', () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  const api = fakeApi<HeatmapViewState>();
  const v = createHeatmapView(host, api);
  v.handle({ type: 'heatmap', trace: null, run });
  v.handle({ type: 'select-source', source: 'run' });
  const notice = () => host.querySelector('[data-testid="heatmap-switched"]') as HTMLElement;
  v.handle({ type: 'heatmap', trace, run });
  v.handle({ type: 'select-source', source: 'trace' });
  assert.equal(notice().hidden, false);
  assert.match(notice().textContent!, /new trace instead of run 2024-01-01/);
  notice().querySelector('[data-testid="heatmap-switch-back"]')!.dispatchEvent(new env.window.Event('click'));
  assert.deepEqual(api.posted.at(-1), { type: 'select-source', source: 'run' });
  assert.match(host.querySelector('[data-testid="heatmap-label"]')!.textContent!, /run 2024-01-01/);
  assert.equal(notice().hidden, true);
});

test("heatmap: a clicked expert's details come right after the heatmap, with a button that opens it in the trace's lens", () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  const api = fakeApi<HeatmapViewState>();
  const v = createHeatmapView(host, api);
  v.handle({ type: 'heatmap', trace, run: null });
  host.querySelector('rect.cell[data-layer="2"][data-expert="5"]')!.dispatchEvent(new env.window.Event('click'));
  const detail = host.querySelector('[data-testid="heatmap-detail"]')!;
  const order = Array.from(detail.parentElement!.children);
  assert.ok(order.indexOf(detail) < order.indexOf(host.querySelector('[data-testid="never-activated-per-layer"]')!), 'details above the per-layer chart');
  detail.querySelector('[data-testid="heatmap-lens"]')!.dispatchEvent(new env.window.Event('click'));
  assert.deepEqual(api.posted.at(-1), { type: 'lens-expert', layer: 2, expert: 5 });
});

test('the empty Sweeps view has a hint with a command that exists; the heatmap starts taller than the Sweeps view', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8'));
  const views = pkg.contributes.views.moeScope as { id: string; initialSize?: number }[];
  const size = (id: string) => views.find((v) => v.id === id)?.initialSize ?? 1;
  assert.ok(size('moeScope.heatmap') > size('moeScope.sweeps'), 'the heatmap gets most of the side bar');
  const welcome = (pkg.contributes.viewsWelcome as { view: string; contents: string }[]).find((w) => w.view === 'moeScope.sweeps');
  assert.ok(welcome, 'a viewsWelcome entry for moeScope.sweeps');
  const command = /\(command:([\w.]+)\)/.exec(welcome.contents)?.[1];
  assert.ok(command && pkg.contributes.commands.some((c: { command: string }) => c.command === command), `${command} is a contributed command`);
});
