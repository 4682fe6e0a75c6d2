/**
 * Side-panel view: expert activation heatmap of the current trace or of an evaluation run, never-activated
 * experts per layer, and the detail of a clicked expert.
 */
import { TOKEN_SCOPE_LABELS, type HeatmapData, type HeatmapViewToHost, type HostToHeatmapView } from '../../src/shared/protocol';
import { neverActivatedPerLayer } from '../../src/analysis/heatmap';
import { toCsv } from '../charts/export';
import { expertHeatmap, type ExpertHeatmapUpdate } from '../charts/expertHeatmap';
import { neverActivatedByLayer, type NeverActivatedUpdate } from '../charts/neverActivatedByLayer';
import { append, clear, h, icon, observeWidth } from '../common/dom';
import { expertDetail } from '../common/expertDetail';
import { exportButtons } from '../common/exportButtons';
import type { VsCodeApiLike } from '../common/vscode';

type Source = 'trace' | 'run';

export interface HeatmapViewState {
  v: 1;
  source: Source;
  trace: HeatmapData | null;
  run: HeatmapData | null;
  selected: { layer: number; expert: number } | null;
  /** Set when the host switched the source (a new trace replaced the run on screen): said, with a way back. */
  switchedFrom?: { source: Source; label: string } | null;
}

export interface HeatmapView {
  handle(message: HostToHeatmapView): void;
  destroy(): void;
}

export function createHeatmapView(container: HTMLElement, api: VsCodeApiLike<HeatmapViewState>): HeatmapView {
  const doc = container.ownerDocument;
  const post = (m: HeatmapViewToHost) => api.postMessage(m);
  const saved = api.getState();
  const state: HeatmapViewState = saved && saved.v === 1 ? saved : { v: 1, source: 'trace', trace: null, run: null, selected: null, switchedFrom: null };
  let chart: ExpertHeatmapUpdate | null = null;
  let never: NeverActivatedUpdate | null = null;
  let detailHost: HTMLElement | null = null;

  clear(container);
  const root = h(doc, 'main', { class: 'heatmap-view', 'data-testid': 'heatmap-view' });
  const toolbar = h(doc, 'div', { class: 'hv-toolbar' });
  const sel = h(doc, 'vscode-single-select', { 'data-testid': 'heatmap-source', 'aria-label': 'Heatmap source' });
  const optTrace = h(doc, 'vscode-option', { value: 'trace' }, 'Current trace');
  const optRun = h(doc, 'vscode-option', { value: 'run' }, 'Evaluation run');
  sel.append(optTrace, optRun);
  sel.addEventListener('change', () => {
    const v = (sel as unknown as { value?: string }).value === 'run' ? 'run' : 'trace';
    if (v === state.source) return;
    state.source = v;
    state.selected = null;
    state.switchedFrom = null;
    render();
    post({ type: 'select-source', source: v });
  });
  const label = h(doc, 'div', { class: 'hv-label', 'data-testid': 'heatmap-label' });
  toolbar.append(h(doc, 'span', { class: 'muted' }, 'Source'), sel);
  const notice = h(doc, 'div', { class: 'hv-notice', 'data-testid': 'heatmap-switched', role: 'status', hidden: true });
  const body = h(doc, 'div', { class: 'hv-body' });
  root.append(toolbar, notice, label, body);
  container.append(root);

  function save(): void {
    api.setState(state);
  }

  function syncSelect(): void {
    (sel as unknown as { value: string }).value = state.source;
    sel.setAttribute('value', state.source);
    optTrace.toggleAttribute('selected', state.source === 'trace');
    optRun.toggleAttribute('selected', state.source === 'run');
    optTrace.toggleAttribute('disabled', state.trace === null && state.source !== 'trace');
    optRun.toggleAttribute('disabled', state.run === null && state.source !== 'run');
  }

  function render(): void {
    chart?.destroy();
    never?.destroy();
    chart = never = null;
    syncSelect();
    renderNotice();
    clear(body);
    clear(label);
    const d = state.source === 'run' ? state.run : state.trace;
    if (!d) {
      const empty = h(doc, 'div', { class: 'empty-state', 'data-testid': 'heatmap-empty' });
      append(
        empty,
        icon(doc, state.source === 'run' ? 'beaker' : 'symbol-class'),
        h(
          doc,
          'p',
          {},
          state.source === 'run'
            ? 'No evaluation run loaded. Open a run summary to see its expert activations.'
            : 'No trace yet. Trace a question to see its expert activations.',
        ),
      );
      body.append(empty);
      save();
      return;
    }
    append(label, h(doc, 'strong', {}, d.label));
    if (d.tokenScope) label.append(h(doc, 'div', { class: 'muted' }, `Counting ${TOKEN_SCOPE_LABELS[d.tokenScope]}.`));
    const perLayer = neverActivatedPerLayer(d);
    const total = perLayer.reduce((a, b) => a + b, 0);
    const summary = h(doc, 'p', { class: 'hv-total' });
    append(
      summary,
      h(doc, 'strong', { 'data-testid': 'never-activated-total' }, String(total)),
      ` of ${d.numLayers * d.numExperts} (layer, expert) pairs never activated`,
    );
    const hmHost = h(doc, 'div', { class: 'hv-heatmap' });
    const tools = exportButtons(
      doc,
      {
        name: `heatmap-${d.source}`,
        svg: () => chart?.svg() ?? null,
        csv: () => {
          const rows: (string | number)[][] = [];
          for (let l = 0; l < d.numLayers; l++) for (let e = 0; e < d.numExperts; e++) rows.push([d.layerOfRow?.[l] ?? l, e, d.counts[l]?.[e] ?? 0]);
          return toCsv(['layer', 'expert', 'count'], rows);
        },
        json: () => d,
      },
      post,
    );
    body.append(summary, tools, hmHost);
    chart = expertHeatmap(hmHost, d, {
      onCellClick: (layer, expert) => {
        state.selected = { layer, expert };
        renderDetail();
        detailHost?.scrollIntoView?.({ block: 'nearest' });
        save();
      },
    });
    // The clicked expert's details sit right under the heatmap, not below the per-layer chart.
    detailHost = h(doc, 'div', { class: 'hv-detail', 'data-testid': 'heatmap-detail' });
    body.append(detailHost);
    const neverHead = h(doc, 'h3', { class: 'hv-sub' }, 'Never activated per layer');
    const neverHost = h(doc, 'div', { 'data-testid': 'never-activated-per-layer' });
    const list = h(doc, 'ol', { class: 'visually-hidden' });
    const layerOf = (row: number): number => d.layerOfRow?.[row] ?? row;
    perLayer.forEach((n, l) => list.append(h(doc, 'li', { 'data-testid': 'never-activated-layer', 'data-layer': l }, `layer ${layerOf(l)}: ${n}`)));
    body.append(neverHead, neverHost, list);
    never = neverActivatedByLayer(
      neverHost,
      { layers: perLayer.map((count, row) => ({ layer: layerOf(row), count })), numExperts: d.numExperts },
      { height: 130 },
    );
    renderDetail();
    save();
  }

  function renderDetail(): void {
    if (!detailHost) return;
    clear(detailHost);
    const d = state.source === 'run' ? state.run : state.trace;
    const s = state.selected;
    if (!d || !s || s.layer >= d.numLayers || s.expert >= d.numExperts) {
      detailHost.append(h(doc, 'p', { class: 'muted' }, 'Click a cell (or use the arrow keys and Enter) to see an expert.'));
      chart?.select(null);
      return;
    }
    chart?.select(s);
    detailHost.append(
      expertDetail(doc, {
        layer: d.layerOfRow?.[s.layer] ?? s.layer,
        expert: s.expert,
        numExperts: d.numExperts,
        topK: null,
        count: Number(d.counts[s.layer]?.[s.expert] ?? 0),
        source: d.source,
        tokenScope: d.tokenScope,
        accuracy: d.expertAccuracy?.[s.layer]?.[s.expert] ?? null,
        accuracyCount: d.expertAccuracyCount?.[s.layer]?.[s.expert] ?? 0,
        topSubjects: d.topSubjects?.[s.layer]?.[s.expert] ?? [],
      }),
    );
    const lens = h(doc, 'vscode-button', { secondary: true, 'data-testid': 'heatmap-lens', icon: 'eye' }, `Show expert ${s.expert} in the trace's expert lens`);
    lens.addEventListener('click', () => post({ type: 'lens-expert', layer: s.layer, expert: s.expert }));
    detailHost.append(lens);
  }

  function renderNotice(): void {
    clear(notice);
    const from = state.switchedFrom;
    notice.hidden = !from;
    if (!from) return;
    const back = h(
      doc,
      'vscode-button',
      { secondary: true, 'data-testid': 'heatmap-switch-back' },
      `Back to ${from.source === 'run' ? 'the run' : 'the trace'}`,
    );
    back.addEventListener('click', () => {
      state.source = from.source;
      state.selected = null;
      state.switchedFrom = null;
      render();
      post({ type: 'select-source', source: from.source });
    });
    append(
      notice,
      icon(doc, 'info'),
      h(doc, 'span', {}, `Now showing the ${state.source === 'trace' ? 'new trace' : 'finished run'} instead of ${from.label}. `),
      back,
    );
  }

  function handle(msg: HostToHeatmapView): void {
    if (msg.type === 'heatmap') {
      const prev = state.source === 'run' ? state.run : state.trace;
      state.trace = msg.trace;
      state.run = msg.run;
      const next = state.source === 'run' ? state.run : state.trace;
      // Keep the selection only while the same data set is shown.
      if (!next || !prev || next.label !== prev.label) state.selected = null;
      // New data for the other source only: switch to it when the current one is empty.
      if (!next && (state.source === 'trace' ? msg.run : msg.trace)) state.source = state.source === 'trace' ? 'run' : 'trace';
      render();
    } else if (msg.type === 'select-source') {
      if (msg.source === state.source) return;
      const shown = state.source === 'run' ? state.run : state.trace;
      // Never silently: the view says what it replaced and offers the way back.
      state.switchedFrom = shown ? { source: state.source, label: shown.label } : null;
      state.source = msg.source;
      state.selected = null;
      render();
    }
  }

  render();
  const unobserve = observeWidth(body, () => render());
  return {
    handle,
    destroy: () => {
      unobserve();
      chart?.destroy();
      never?.destroy();
    },
  };
}
