import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createSummaryView, type SummaryViewState } from '../../webview/summary/view';
import { fakeApi, setupDom } from '../support/domEnv';
import { syntheticSummary } from '../support/synthetic';
import { checkSummary } from '../../src/eval/summaryCheck';
import type { RunSummary } from '../../src/shared/protocol';

const env = setupDom();

function withScores(): RunSummary {
  const s = syntheticSummary();
  const E = s.model.numExperts;
  s.layers = s.layers.map((l) => ({
    ...l,
    expertScores: {
      gateWeighted: l.activationCounts.map((c) => c * 0.25),
      meanOutputNorm: l.activationCounts.map((c, e) => (c > 0 ? 1 + e / E + l.layer : null)),
      meanSquaredOutputNorm: l.activationCounts.map((c, e) => (c > 0 ? (1 + e / E + l.layer) ** 2 : null)),
      outputNormCount: l.activationCounts.slice(),
      weightsCriterion: l.activationCounts.map((_, e) => 0.01 * (e + 1)),
    },
  }));
  s.definitions = { ...s.definitions, meanOutputNorm: 'MAN definition text', gateWeighted: 'gate definition text' };
  return s;
}

test('summary view: pruning scores per expert for the chosen layer, with definitions, exported as CSV', () => {
  const host = env.document.createElement('div');
  env.app.append(host);
  const api = fakeApi<SummaryViewState>();
  const v = createSummaryView(host, api);
  const s = withScores();
  v.handle({ type: 'summary', summary: s, runDir: '/runs/a' });
  const rows = host.querySelectorAll('[data-testid="expert-scores-table"] [data-testid="expert-score-row"]');
  assert.equal(rows.length, s.model.numExperts);
  const used = s.layers[0]!.activationCounts.findIndex((c) => c > 0);
  const unused = s.layers[0]!.activationCounts.findIndex((c) => c === 0);
  const man = (e: number) => host.querySelector(`[data-testid="expert-score-row"][data-expert="${e}"] [data-testid="expert-score-man"]`)!.textContent;
  assert.equal(man(used), s.layers[0]!.expertScores!.meanOutputNorm[used]!.toPrecision(4));
  if (unused >= 0) assert.equal(man(unused), '–');
  assert.equal(
    host.querySelector('[data-testid="expert-score-row"][data-expert="2"] [data-testid="expert-score-weights"]')!.textContent,
    (0.03).toPrecision(4),
  );
  const defs = host.querySelector('[data-testid="expert-score-definitions"]')!.textContent!;
  assert.ok(defs.includes('MAN definition text') && defs.includes('gate definition text'));
  const csvButton = host.querySelector('[data-testid="summary-expert-scores"] [data-export="csv"]') as HTMLElement;
  csvButton.dispatchEvent(new env.window.Event('click'));
  const sent = api.posted.find((m) => (m as { type: string; name?: string }).type === 'export' && (m as { name: string }).name === 'expert-scores.csv') as
    { data: string } | undefined;
  assert.ok(sent, 'the CSV was sent to the host');
  const lines = sent.data.trim().split(/\r?\n/);
  assert.equal(lines[0], 'layer,expert,activation_count,gate_weighted_count,man,msan,norm_assignments,weights_abs_mean_over_rms');
  assert.equal(lines.length, 1 + s.model.numLayers * s.model.numExperts);
});

test('summary check: expertScores of the wrong length are refused naming the field', () => {
  const s = withScores();
  // The synthetic summary leaves the co-activation matrices out, which the check allows only when absent.
  s.layers = s.layers.map((l) => ({ ...l, coactivation: undefined as unknown as number[] }));
  assert.doesNotThrow(() => checkSummary(JSON.parse(JSON.stringify(s)), '/runs/a/summary.json'));
  s.layers[3]!.expertScores!.meanOutputNorm = [1, 2];
  assert.throws(() => checkSummary(JSON.parse(JSON.stringify(s)), '/runs/a/summary.json'), /layers\[3\]\.expertScores\.meanOutputNorm has 2 entries/);
});
