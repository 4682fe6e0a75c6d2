/**
 * Comparison of two evaluation runs (typically a baseline and an experiment): the runs and their
 * interventions, accuracy with deltas, McNemar's exact test in words and as a 2x2 table, accuracy change
 * by subject and category, and the change in activation share per (layer, expert). Every chart exports.
 */
import type { CompareViewToHost, HostToCompareView, RunComparison } from '../../src/shared/protocol';
import { mcnemarInWords, formatP } from '../../src/analysis/compare';
import { accuracyDelta, type AccuracyDeltaUpdate } from '../charts/accuracyDelta';
import { activationDiffHeatmap, type ActivationDiffUpdate } from '../charts/activationDiffHeatmap';
import { toCsv } from '../charts/export';
import { append, clear, figure, formatPercent, h, icon, observeWidth, section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';
import type { VsCodeApiLike } from '../common/vscode';
import { createEvidence } from './evidence';
import { demoModelLabel, demoResultsCaveat } from '../../src/shared/demoLabel';

export interface CompareViewState {
  v: 1;
  comparison: RunComparison | null;
}

export interface CompareView {
  handle(message: HostToCompareView): void;
  destroy(): void;
}

const points = (d: number | null) => (d === null ? '–' : `${d > 0 ? '+' : d < 0 ? '−' : '±'}${(100 * Math.abs(d)).toFixed(1)} pt`);
const pct = (x: number | null) => (x === null ? '–' : formatPercent(x));

export function createCompareView(container: HTMLElement, api: VsCodeApiLike<CompareViewState>): CompareView {
  const doc = container.ownerDocument;
  const post = (m: CompareViewToHost) => api.postMessage(m);
  const saved = api.getState();
  const state: CompareViewState = saved && saved.v === 1 ? saved : { v: 1, comparison: null };
  let charts: { destroy(): void }[] = [];
  clear(container);
  const root = h(doc, 'main', { class: 'compare-view', 'data-testid': 'compare-view' });
  container.append(root);
  const evidence = createEvidence(doc, post);

  function render(): void {
    for (const c of charts) c.destroy();
    charts = [];
    clear(root);
    const c = state.comparison;
    if (!c) {
      const e = h(doc, 'div', { class: 'empty-state', 'data-testid': 'compare-empty' });
      append(e, icon(doc, 'diff'), h(doc, 'p', {}, 'No comparison loaded.'));
      root.append(e);
      return;
    }
    // The runs are named once in the header; tables and sentences call them A and B.
    const A = 'A';
    const B = 'B';

    // --- header: the two runs ---
    const header = h(doc, 'header', { class: 'cv-header' });
    header.append(h(doc, 'h1', {}, 'Run comparison'));
    const runs = h(doc, 'dl', { class: 'cv-runs' });
    for (const [tag, r] of [
      ['A', c.a],
      ['B', c.b],
    ] as const) {
      append(
        runs,
        h(doc, 'dt', {}, `${tag}: ${r.label}${r.precision ? ` (${r.precision})` : ''}`),
        h(
          doc,
          'dd',
          { 'data-testid': `compare-run-${tag.toLowerCase()}`, title: r.runDir },
          `${r.questions} questions${r.complete ? '' : ' (incomplete)'} · ${r.intervention ? describe(r.intervention, c.activation.numLayers) : 'the unmodified model'}`,
        ),
      );
    }
    header.append(runs);
    if (c.a.demo || c.b.demo) {
      // The trained wording only when no side is the random demo model.
      const demoTrained = (!c.a.demo || !!c.a.demoTrained) && (!c.b.demo || !!c.b.demoTrained);
      const w = h(doc, 'div', { class: 'warning', 'data-testid': 'demo-note' });
      append(w, icon(doc, 'warning'), h(doc, 'span', {}, `${demoModelLabel(demoTrained)}. ${demoResultsCaveat(demoTrained, 'comparison')}`));
      header.append(w);
    }
    for (const text of c.warnings) {
      const w = h(doc, 'div', { class: 'warning', 'data-testid': 'compare-warning' });
      append(w, icon(doc, 'info'), h(doc, 'span', {}, text));
      header.append(w);
    }
    root.append(header);

    // --- key figures and McNemar ---
    const figs = h(doc, 'div', { class: 'sv-figures' });
    append(
      figs,
      figure(doc, 'Accuracy (micro)', points(c.accuracy.micro.delta), 'compare-micro-delta', `${pct(c.accuracy.micro.a)} → ${pct(c.accuracy.micro.b)}`),
      figure(doc, 'Accuracy (macro)', points(c.accuracy.macro.delta), 'compare-macro-delta', `${pct(c.accuracy.macro.a)} → ${pct(c.accuracy.macro.b)}`),
      figure(doc, 'McNemar exact p', formatP(c.mcnemar.pValue), 'compare-p-value', `b01 ${c.mcnemar.b01} · b10 ${c.mcnemar.b10}`),
      figure(doc, 'Paired questions', String(c.mcnemar.paired), 'compare-paired', 'answered by both runs'),
    );
    root.append(figs);
    const mc = section(root, "McNemar's exact test", 'law', 'compare-mcnemar');
    mc.body.append(h(doc, 'p', { class: 'cv-words', 'data-testid': 'mcnemar-words' }, mcnemarInWords(c.mcnemar, A, B)));
    const table = h(doc, 'table', { class: 'plain cv-table', 'data-testid': 'mcnemar-table' });
    const head = h(doc, 'tr');
    append(head, h(doc, 'th', {}, ''), h(doc, 'th', { class: 'num' }, `${B} right`), h(doc, 'th', { class: 'num' }, `${B} wrong`));
    const r1 = h(doc, 'tr');
    append(
      r1,
      h(doc, 'th', {}, `${A} right`),
      h(doc, 'td', { class: 'num' }, String(c.mcnemar.bothCorrect)),
      h(doc, 'td', { class: 'num', 'data-testid': 'mcnemar-b10' }, String(c.mcnemar.b10)),
    );
    const r2 = h(doc, 'tr');
    append(
      r2,
      h(doc, 'th', {}, `${A} wrong`),
      h(doc, 'td', { class: 'num', 'data-testid': 'mcnemar-b01' }, String(c.mcnemar.b01)),
      h(doc, 'td', { class: 'num' }, String(c.mcnemar.bothWrong)),
    );
    table.append(head, r1, r2);
    mc.body.append(
      table,
      h(
        doc,
        'p',
        { class: 'caption' },
        'Two-sided exact test on the discordant questions: under no difference, each is equally likely to go either way, so p = min(1, 2·P(X ≤ min(b01, b10))) with X ~ Binomial(b01 + b10, ½).',
      ),
    );

    // --- accuracy deltas ---
    const acc = section(root, 'Accuracy change by subject', 'checklist', 'compare-subjects');
    let subjChart: AccuracyDeltaUpdate | null = null;
    const subjectRows = c.accuracy.perSubject.map((x) => ({ ...x, label: x.subject }));
    acc.tools.append(
      exportButtons(
        doc,
        {
          name: 'accuracy-change-by-subject',
          svg: () => subjChart?.svg() ?? null,
          csv: () =>
            toCsv(
              ['subject', 'category', 'accuracy_a', 'accuracy_b', 'delta', 'questions_a', 'questions_b'],
              c.accuracy.perSubject.map((x) => [x.subject, x.category, x.a, x.b, x.delta, x.questionsA, x.questionsB]),
            ),
          json: () => ({ micro: c.accuracy.micro, macro: c.accuracy.macro, perSubject: c.accuracy.perSubject, perCategory: c.accuracy.perCategory }),
        },
        post,
      ),
    );
    const catTable = h(doc, 'table', { class: 'plain sv-categories', 'data-testid': 'compare-categories' });
    const ch = h(doc, 'tr');
    append(ch, h(doc, 'th', {}, 'Category'), h(doc, 'th', { class: 'num' }, A), h(doc, 'th', { class: 'num' }, B), h(doc, 'th', { class: 'num' }, 'Change'));
    catTable.append(ch);
    for (const x of c.accuracy.perCategory) {
      const tr = h(doc, 'tr', { 'data-testid': 'compare-category-row', 'data-category': x.category });
      append(
        tr,
        h(doc, 'td', {}, x.category),
        h(doc, 'td', { class: 'num' }, pct(x.a)),
        h(doc, 'td', { class: 'num' }, pct(x.b)),
        h(doc, 'td', { class: 'num' }, points(x.delta)),
      );
      catTable.append(tr);
    }
    acc.body.append(catTable);
    const subjHost = h(doc, 'div', { class: 'sv-chart' });
    acc.body.append(subjHost);
    subjChart = accuracyDelta(subjHost, { rows: subjectRows, labelA: A, labelB: B });
    charts.push(subjChart);

    // --- activation difference ---
    const act = section(root, 'Change in expert activation', 'symbol-class', 'compare-activation');
    let heat: ActivationDiffUpdate | null = null;
    const { numLayers: L, numExperts: E } = c.activation;
    act.tools.append(
      exportButtons(
        doc,
        {
          name: 'activation-change',
          svg: () => heat?.svg() ?? null,
          csv: () => {
            const rows: (string | number)[][] = [];
            for (let l = 0; l < L; l++)
              for (let e = 0; e < E; e++) rows.push([l, e, c.activation.shareA[l][e], c.activation.shareB[l][e], c.activation.deltaShare[l][e]]);
            return toCsv(['layer', 'expert', 'share_a', 'share_b', 'delta'], rows);
          },
          json: () => c.activation,
        },
        post,
      ),
    );
    act.body.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        `Each cell: the expert's share of its layer's (token, slot) assignments in ${B} minus that in ${A} (token scope: ${c.activation.tokenScope}). Blue: used more in ${B}; red: used less; ✕: masked in ${B}; outlined: router bias in ${B}.`,
      ),
    );
    const heatHost = h(doc, 'div', { class: 'sv-heatmap' });
    act.body.append(heatHost);
    heat = activationDiffHeatmap(heatHost, {
      numLayers: L,
      numExperts: E,
      delta: c.activation.deltaShare,
      masked: c.b.intervention?.mask,
      biased: c.b.intervention?.bias,
    });
    charts.push(heat);

    // --- flipped questions and calibration comparison (own module) ---
    evidence.render(root, c);
  }

  function handle(msg: HostToCompareView): void {
    if (msg.type !== 'comparison') return evidence.handle(msg);
    state.comparison = msg.comparison;
    render();
    api.setState(state);
  }

  render();
  const unobserve = observeWidth(root, () => render());
  return {
    handle,
    destroy: () => {
      unobserve();
      charts.forEach((c) => c.destroy());
      evidence.destroy();
    },
  };
}

function describe(iv: NonNullable<RunComparison['b']['intervention']>, numLayers: number): string {
  const layersWith = (pairs: readonly (readonly number[])[]) => new Set(pairs.map((p) => p[0]).filter((l) => l < numLayers)).size;
  const parts: string[] = [];
  if (iv.mask.length) parts.push(`${iv.mask.length} experts masked in ${layersWith(iv.mask)} layers`);
  if (iv.bias.length) parts.push(`${iv.bias.length} router biases in ${layersWith(iv.bias)} layers`);
  return iv.description ? `${iv.description}: ${parts.join(', ')}` : parts.join(', ');
}
