/**
 * Summary page of an MMLU evaluation run: headline numbers, accuracy by subject and category, expert
 * activation heatmap with never-activated experts per layer, gate entropy per layer against the uniform
 * maximum, per-expert accuracy strips with counts, and every definition the numbers rest on.
 */
import { ANSWER_SCORING_DEFINITIONS, TOKEN_SCOPE_LABELS, type HostToSummaryView, type RunSummary, type SummaryViewToHost } from '../../src/shared/protocol';
import { decoderLayerOfRows } from '../../src/analysis/layers';
import { accuracyBySubject, type AccuracyBySubjectUpdate, type SubjectSort } from '../charts/accuracyBySubject';
import { entropyByLayer, type EntropyByLayerUpdate } from '../charts/entropyByLayer';
import { expertAccuracyStrip, type ExpertAccuracyStripUpdate } from '../charts/expertAccuracyStrip';
import { expertHeatmap, type ExpertHeatmapUpdate } from '../charts/expertHeatmap';
import { toCsv } from '../charts/export';
import { neverActivatedByLayer } from '../charts/neverActivatedByLayer';
import { append, clear, figure, formatPercent, h, icon, labeledSelect, observeWidth, section } from '../common/dom';
import { expertDetail } from '../common/expertDetail';
import { exportButtons } from '../common/exportButtons';
import { expertScoresSection } from './expertScores';
import type { VsCodeApiLike } from '../common/vscode';
import { compactDefinitions } from '../../src/analysis/definitions';
import { demoModelLabel, demoResultsCaveat } from '../../src/shared/demoLabel';

export interface SummaryViewState {
  v: 1;
  summary: RunSummary | null;
  runDir: string;
  sort: SubjectSort;
  entropyScale: 'full' | 'zoom';
  selected: { layer: number; expert: number } | null;
}

export interface SummaryView {
  handle(message: HostToSummaryView): void;
  destroy(): void;
}

const DEFINITION_TITLES: Record<string, string> = {
  tokenScope: 'Token scope',
  questions: 'Questions',
  accuracyMicro: 'Micro accuracy',
  accuracyMacro: 'Macro accuracy',
  accuracyPerSubject: 'Accuracy per subject',
  accuracyPerCategory: 'Accuracy per category',
  activationCounts: 'Activation counts',
  neverActivated: 'Never-activated experts',
  neverActivatedTotal: 'Never-activated total',
  entropyNormalized: 'Normalised gate entropy',
  entropyQuantiles: 'Entropy quantiles',
  meanTop1Weight: 'Mean top-1 weight',
  meanTopKMass: 'Mean top-k mass',
  expertAccuracy: 'Per-expert accuracy',
  expertAccuracyCount: 'Per-expert accuracy count',
  expertAccuracyTokenWeighted: 'Token-weighted per-expert accuracy',
  coactivation: 'Co-activation',
  subjectSpecialisation: 'Subject specialisation',
};

function definitionTitle(key: string): string {
  return DEFINITION_TITLES[key] ?? key.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/^./, (c) => c.toUpperCase());
}

/** Drops the large matrices the page does not draw before the summary goes into vscode.setState. */
function slim(s: RunSummary): RunSummary {
  return { ...s, subjectSpecialisation: {}, layers: s.layers.map((l) => ({ ...l, coactivation: [] })) };
}

export function createSummaryView(container: HTMLElement, api: VsCodeApiLike<SummaryViewState>): SummaryView {
  const doc = container.ownerDocument;
  const post = (m: SummaryViewToHost) => api.postMessage(m);
  const saved = api.getState();
  const state: SummaryViewState = saved && saved.v === 1 ? saved : { v: 1, summary: null, runDir: '', sort: 'category', entropyScale: 'full', selected: null };
  let charts: { destroy(): void }[] = [];
  let heat: ExpertHeatmapUpdate | null = null;
  let detailHost: HTMLElement | null = null;

  clear(container);
  const root = h(doc, 'main', { class: 'summary-view', 'data-testid': 'summary-view' });
  container.append(root);

  let scoresLayer = 0;
  function save(): void {
    api.setState({ ...state, summary: state.summary ? slim(state.summary) : null });
  }

  function renderEmpty(): void {
    clear(root);
    const e = h(doc, 'div', { class: 'empty-state', 'data-testid': 'summary-empty' });
    append(
      e,
      icon(doc, 'graph'),
      h(doc, 'p', {}, 'No run summary loaded.'),
      h(doc, 'p', { class: 'muted' }, 'Run "MoE Scope: Evaluate MMLU" or open a run folder to see its summary.'),
    );
    root.append(e);
  }

  function render(): void {
    for (const c of charts) c.destroy();
    charts = [];
    heat = null;
    const s = state.summary;
    if (!s) return renderEmpty();
    clear(root);
    const L = s.model.numLayers;
    const E = s.model.numExperts;
    const defs = s.definitions ?? {};
    // Rows are labelled by decoder layer: a model with dense layers has fewer rows than layers.
    const layerOfRow = decoderLayerOfRows(s.model);
    const layerOf = (row: number): number => layerOfRow[row] ?? row;

    // --- header ---
    const header = h(doc, 'header', { class: 'sv-header' });
    const title = h(doc, 'h1', {}, 'MMLU evaluation summary');
    const meta = h(doc, 'div', { class: 'sv-meta' });
    append(
      meta,
      h(
        doc,
        'span',
        { class: 'chip outline', 'data-testid': 'summary-model' },
        s.model.numDecoderLayers && s.model.numDecoderLayers !== L
          ? `${s.model.family} · ${L} MoE layers (${layerOfRow.join(', ')}) of ${s.model.numDecoderLayers} × ${E} experts, top-${s.model.topK}; ` +
              `no routing (dense or other layers): ${Array.from({ length: s.model.numDecoderLayers }, (_, i) => i)
                .filter((i) => !layerOfRow.includes(i))
                .join(', ')}`
          : `${s.model.family} · ${s.model.numLayers} layers × ${s.model.numExperts} experts, top-${s.model.topK}`,
      ),
      ...(s.model.precision ? [h(doc, 'span', { class: 'chip outline', 'data-testid': 'summary-precision' }, `precision: ${s.model.precision}`)] : []),
      h(doc, 'span', { class: 'muted', title: s.model.path }, s.model.path),
      h(doc, 'span', { 'data-testid': 'summary-dataset' }, `${s.dataset.split} split · ${s.shots}-shot · ${s.dataset.path}`),
      s.answerScoring
        ? h(
            doc,
            'span',
            { class: 'chip outline', 'data-testid': 'summary-answer-scoring', title: ANSWER_SCORING_DEFINITIONS[s.answerScoring] },
            s.answerScoring === 'single-token' ? 'letters scored as single tokens' : 'letters scored as full continuations',
          )
        : null,
      state.runDir ? h(doc, 'span', { class: 'muted', title: state.runDir }, `run: ${state.runDir}`) : null,
    );
    header.append(title, meta);
    if (s.complete) {
      const actions = h(doc, 'div', { class: 'sv-actions' });
      const btn = h(
        doc,
        'vscode-button',
        { 'data-testid': 'new-experiment', title: 'Prune or steer experts based on this run and compare the result with it' },
        'New experiment from this run…',
      );
      btn.addEventListener('click', () => post({ type: 'new-experiment' }));
      actions.append(btn);
      header.append(actions);
    }
    if (s.intervention) {
      header.append(
        h(
          doc,
          'p',
          { class: 'note', 'data-testid': 'summary-intervention' },
          `Router intervention: ${s.intervention.description ?? ''} (${s.intervention.mask.length} experts masked, ${s.intervention.bias.length} router biases).`,
        ),
      );
    }
    if (s.model.demo) {
      const w = h(doc, 'div', { class: 'warning', 'data-testid': 'demo-note' });
      append(w, icon(doc, 'warning'), h(doc, 'span', {}, `${demoModelLabel(s.model.demoTrained)}. ${demoResultsCaveat(s.model.demoTrained, 'run')}`));
      header.append(w);
    }
    if (!s.complete) {
      const w = h(doc, 'div', { class: 'warning', 'data-testid': 'summary-partial' });
      append(w, icon(doc, 'info'), h(doc, 'span', {}, `Partial run: ${s.questions} questions evaluated so far.`));
      header.append(w);
    }
    root.append(header);

    // --- key figures ---
    const figs = h(doc, 'div', { class: 'sv-figures' });
    const meanEntropy = s.layers.length ? s.layers.reduce((a, l) => a + l.entropyNormalized, 0) / s.layers.length : NaN;
    append(
      figs,
      figure(doc, 'Questions', String(s.questions), 'summary-questions', `${Object.keys(s.accuracy.perSubject).length} subjects`),
      figure(doc, 'Accuracy (micro)', formatPercent(s.accuracy.micro), 'summary-accuracy-micro', 'over all questions'),
      figure(doc, 'Accuracy (macro)', formatPercent(s.accuracy.macro), 'summary-accuracy-macro', 'mean over subjects'),
      figure(doc, 'Never-activated experts', String(s.neverActivatedTotal), 'never-activated-total', `of ${L * E} (layer, expert) pairs`),
      figure(doc, 'Mean gate entropy', Number.isFinite(meanEntropy) ? meanEntropy.toFixed(3) : '–', 'summary-mean-entropy', `H / ln ${E}; 1 = uniform`),
    );
    root.append(figs);
    const scope = h(doc, 'p', { class: 'note sv-scope', 'data-testid': 'summary-token-scope' });
    append(scope, h(doc, 'strong', {}, 'Token scope: '), scopeSentence(s));
    root.append(scope);

    // --- accuracy ---
    const acc = section(root, 'Accuracy by subject', 'checklist', 'summary-subjects');
    const subjects = Object.values(s.accuracy.perSubject);
    let subjChart: AccuracyBySubjectUpdate | null = null;
    acc.tools.append(
      labeledSelect(
        doc,
        'subject-sort',
        'Sort',
        [
          ['category', 'by category'],
          ['accuracy', 'by accuracy'],
          ['name', 'by name'],
          ['questions', 'by size'],
        ],
        state.sort,
        (v) => {
          state.sort = (['category', 'accuracy', 'name', 'questions'] as const).find((x) => x === v) ?? 'category';
          subjChart?.setSort(state.sort);
          save();
        },
      ).wrap,
      exportButtons(
        doc,
        {
          name: 'accuracy-by-subject',
          svg: () => subjChart?.svg() ?? null,
          csv: () =>
            toCsv(
              ['subject', 'category', 'questions', 'correct', 'accuracy'],
              subjects.map((x) => [x.subject, x.category, x.questions, x.correct, x.accuracy]),
            ),
        },
        post,
      ),
    );
    const cats = Object.entries(s.accuracy.perCategory);
    if (cats.length) {
      const table = h(doc, 'table', { class: 'plain sv-categories', 'data-testid': 'category-table' });
      const thead = h(doc, 'thead');
      const hr = h(doc, 'tr');
      append(
        hr,
        h(doc, 'th', {}, 'Category'),
        h(doc, 'th', { class: 'num' }, 'Subjects'),
        h(doc, 'th', { class: 'num' }, 'Questions'),
        h(doc, 'th', { class: 'num' }, 'Accuracy'),
      );
      thead.append(hr);
      const tbody = h(doc, 'tbody');
      for (const [name, c] of cats.sort((a, b) => b[1].accuracy - a[1].accuracy)) {
        const tr = h(doc, 'tr', { 'data-testid': 'category-row', 'data-category': name });
        append(
          tr,
          h(doc, 'td', {}, name),
          h(doc, 'td', { class: 'num' }, String(c.subjects)),
          h(doc, 'td', { class: 'num' }, String(c.questions)),
          h(doc, 'td', { class: 'num' }, formatPercent(c.accuracy)),
        );
        tbody.append(tr);
      }
      table.append(thead, tbody);
      acc.body.append(table);
    }
    const subjHost = h(doc, 'div', { class: 'sv-chart' });
    acc.body.append(subjHost);
    subjChart = accuracyBySubject(subjHost, { subjects, micro: s.accuracy.micro }, { sort: state.sort });
    charts.push(subjChart);

    // --- activations ---
    const act = section(root, 'Expert activations', 'symbol-class', 'summary-activations');
    const counts = s.layers.map((l) => l.activationCounts);
    act.tools.append(
      exportButtons(
        doc,
        {
          name: 'expert-activations',
          svg: () => heat?.svg() ?? null,
          csv: () => {
            const rows: (string | number | null)[][] = [];
            for (const l of s.layers)
              for (let e = 0; e < E; e++)
                rows.push([
                  layerOf(l.layer),
                  e,
                  l.activationCounts[e] ?? 0,
                  l.neverActivated.includes(e) ? 'true' : '',
                  l.expertAccuracy[e] ?? null,
                  l.expertAccuracyCount[e] ?? 0,
                ]);
            return toCsv(['layer', 'expert', 'activations', 'never_activated', 'expert_accuracy', 'expert_accuracy_count'], rows);
          },
        },
        post,
      ),
    );
    act.body.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        `(token, slot) assignments per layer and expert, counting ${TOKEN_SCOPE_LABELS[s.tokenScope] ?? s.tokenScope}. Hatched: never activated. Click a cell for the expert's accuracy.`,
      ),
    );
    const grid = h(doc, 'div', { class: 'sv-activation-grid' });
    const heatHost = h(doc, 'div', { class: 'sv-heatmap' });
    const side = h(doc, 'div', { class: 'sv-never' });
    grid.append(heatHost, side);
    act.body.append(grid);
    heat = expertHeatmap(
      heatHost,
      { numLayers: L, numExperts: E, counts, layerOfRow },
      {
        onCellClick: (layer, expert) => {
          state.selected = { layer, expert };
          renderDetail();
          save();
        },
      },
    );
    charts.push(heat);
    const neverTitle = h(doc, 'h3', {}, 'Never activated per layer');
    const neverHost = h(doc, 'div', {});
    const neverList = h(doc, 'ul', { class: 'sv-never-list', 'data-testid': 'never-activated-per-layer' });
    for (const l of s.layers) {
      neverList.append(h(doc, 'li', { 'data-testid': 'never-activated-layer', 'data-layer': l.layer }, `L${layerOf(l.layer)}: ${l.neverActivated.length}`));
    }
    side.append(neverTitle, neverHost, neverList);
    charts.push(
      neverActivatedByLayer(
        neverHost,
        { layers: s.layers.map((l) => ({ layer: layerOf(l.layer), count: l.neverActivated.length })), numExperts: E },
        { height: 150 },
      ),
    );
    detailHost = h(doc, 'div', { class: 'sv-detail' });
    act.body.append(detailHost);
    renderDetail();

    // --- entropy ---
    const ent = section(root, 'Gate entropy per layer', 'pulse', 'summary-entropy');
    let entChart: EntropyByLayerUpdate | null = null;
    ent.tools.append(
      labeledSelect(
        doc,
        'entropy-scale',
        'Scale',
        [
          ['full', '0 – 1'],
          ['zoom', 'zoom'],
        ],
        state.entropyScale,
        (v) => {
          state.entropyScale = v === 'zoom' ? 'zoom' : 'full';
          entChart?.setScale(state.entropyScale);
          save();
        },
      ).wrap,
      exportButtons(
        doc,
        {
          name: 'entropy-by-layer',
          svg: () => entChart?.svg() ?? null,
          csv: () =>
            toCsv(
              ['layer', 'mean', 'p05', 'p25', 'p50', 'p75', 'p95', 'mean_top1_weight', 'mean_topk_mass'],
              s.layers.map((l) => [
                layerOf(l.layer),
                l.entropyNormalized,
                l.entropyQuantiles.p05,
                l.entropyQuantiles.p25,
                l.entropyQuantiles.p50,
                l.entropyQuantiles.p75,
                l.entropyQuantiles.p95,
                l.meanTop1Weight,
                l.meanTopKMass,
              ]),
            ),
        },
        post,
      ),
    );
    const entHost = h(doc, 'div', {});
    ent.body.append(entHost);
    entChart = entropyByLayer(
      entHost,
      { layers: s.layers.map((l) => ({ layer: layerOf(l.layer), mean: l.entropyNormalized, quantiles: l.entropyQuantiles })), numExperts: E },
      { scale: state.entropyScale },
    );
    charts.push(entChart);

    // --- per-expert accuracy ---
    const strip = section(root, 'Per-expert accuracy', 'target', 'summary-expert-accuracy');
    let stripChart: ExpertAccuracyStripUpdate | null = null;
    strip.tools.append(
      exportButtons(
        doc,
        {
          name: 'expert-accuracy',
          svg: () => stripChart?.svg() ?? null,
          csv: () => {
            const rows: (string | number | null)[][] = [];
            for (const l of s.layers) for (let e = 0; e < E; e++) rows.push([layerOf(l.layer), e, l.expertAccuracy[e] ?? null, l.expertAccuracyCount[e] ?? 0]);
            return toCsv(['layer', 'expert', 'accuracy', 'questions'], rows);
          },
        },
        post,
      ),
    );
    strip.body.append(
      h(
        doc,
        'p',
        { class: 'caption', 'data-testid': 'expert-accuracy-definition' },
        defs.expertAccuracy ?? 'Per-expert accuracy: accuracy over the questions whose answer-position routing used the expert.',
      ),
    );
    const stripHost = h(doc, 'div', {});
    strip.body.append(stripHost);
    stripChart = expertAccuracyStrip(
      stripHost,
      {
        layers: s.layers.map((l) => ({ layer: l.layer, accuracy: l.expertAccuracy, count: l.expertAccuracyCount })),
        numExperts: E,
        reference: s.accuracy.micro,
        layerOfRow,
      },
      {
        onClick: (layer, expert) => {
          state.selected = { layer, expert };
          renderDetail();
          detailHost?.scrollIntoView?.({ block: 'nearest' });
          save();
        },
      },
    );
    charts.push(stripChart);

    // --- pruning scores (own module) ---
    expertScoresSection(root, s, post, scoresLayer, (l) => (scoresLayer = l));

    // --- definitions ---
    const def = section(root, 'Definitions', 'book', 'summary-definitions');
    const dl = h(doc, 'dl', { class: 'defs', 'data-testid': 'definitions' });
    append(dl, h(doc, 'dt', {}, 'Token scope of this run'), h(doc, 'dd', { 'data-testid': 'definition', 'data-key': 'tokenScope.label' }, scopeSentence(s)));
    for (const [key, text] of Object.entries(compactDefinitions(defs, s.tokenScope))) {
      append(dl, h(doc, 'dt', {}, definitionTitle(key)), h(doc, 'dd', { 'data-testid': 'definition', 'data-key': key }, text));
    }
    def.body.append(dl);

    // --- footer ---
    const foot = h(doc, 'footer', { class: 'sv-footer muted' });
    foot.append(
      h(
        doc,
        'span',
        {},
        `${s.tokens.computed} tokens computed (${s.tokens.padding} padding, ${s.tokens.prefixReusedTokens} from reused prefixes) · ` +
          `${Math.round(s.elapsedSeconds)} s · dataset fingerprint ${s.dataset.fingerprint}`,
      ),
    );
    root.append(foot);
  }

  function renderDetail(): void {
    if (!detailHost) return;
    clear(detailHost);
    const s = state.summary;
    const sel = state.selected;
    if (!s || !sel) {
      heat?.select(null);
      return;
    }
    const layer = s.layers.find((l) => l.layer === sel.layer);
    if (!layer || sel.expert >= s.model.numExperts) return;
    heat?.select(sel);
    const top = Object.entries(s.subjectSpecialisation ?? {})
      .map(([subject, m]) => ({ subject, share: m[sel.layer]?.[sel.expert] ?? 0 }))
      .filter((x) => x.share > 0)
      .sort((a, b) => b.share - a.share)
      .slice(0, 5);
    detailHost.append(
      expertDetail(doc, {
        layer: decoderLayerOfRows(s.model)[sel.layer] ?? sel.layer,
        expert: sel.expert,
        numExperts: s.model.numExperts,
        topK: s.model.topK,
        count: layer.activationCounts[sel.expert] ?? 0,
        source: 'run',
        tokenScope: s.tokenScope,
        accuracy: layer.expertAccuracy[sel.expert] ?? null,
        accuracyCount: layer.expertAccuracyCount[sel.expert] ?? 0,
        topSubjects: top,
        accuracyDefinition: s.definitions?.expertAccuracy,
      }),
    );
  }

  function handle(msg: HostToSummaryView): void {
    if (msg.type !== 'summary') return;
    const same = state.summary && state.runDir === msg.runDir;
    state.summary = msg.summary;
    state.runDir = msg.runDir;
    if (!same) state.selected = null;
    render();
    save();
  }

  render();
  const unobserve = observeWidth(root, () => render());
  return {
    handle,
    destroy: () => {
      unobserve();
      charts.forEach((c) => c.destroy());
    },
  };
}

/** "label: definition" once, whether or not the run's definition already starts with the label. */
function scopeSentence(s: RunSummary): string {
  const label = TOKEN_SCOPE_LABELS[s.tokenScope] ?? s.tokenScope;
  const def = s.tokenScopeDefinition ?? '';
  if (!def) return label;
  return def.startsWith(label) ? def : `${label}: ${def}`;
}
