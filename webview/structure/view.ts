/**
 * Expert structure: the static analyses of "A Closer Look into Mixture-of-Experts in Large Language Models"
 * (Lo et al.) over the checkpoint's weights. Per layer an E x E similarity matrix (gate / up / down / all,
 * router rows, neuron-level row and column means), the mean off-diagonal similarity and the router-vs-expert
 * R² by depth, and the scatter behind that R² for the selected layer, with every definition on the page.
 *
 * Knows the protocol (HostToStructureView / StructureViewToHost) but not the page: main.ts wires it to
 * window messages and the VS Code API; tests drive it directly. Unknown fields of the analysis are ignored;
 * optional extras are used only when present and well formed.
 */
import type { HostToStructureView, StructureViewToHost } from '../../src/shared/protocol';
import type { SimilarityScale } from '../charts/similarityMatrix';
import { append, clear, h, icon, observeWidth } from '../common/dom';
import type { VsCodeApiLike } from '../common/vscode';
import { definitionsSection } from './definitionsSection';
import { depthSection, type DepthSection } from './depthSection';
import {
  MATRICES,
  availableMatrices,
  packModel,
  structureModel,
  unpackModel,
  type MatrixKey,
  type PackedStructure,
  type StructureLayer,
  type StructureModel,
} from './model';
import { routerSection, type RouterSection } from './routerSection';
import type { SectionContext, StructureSelection } from './section';
import { similaritySection, type SimilaritySection } from './similaritySection';

export { MATRICES, MAX_PERSISTED_VALUES, structureModel, type MatrixKey, type PackedStructure, type StructureLayer, type StructureModel } from './model';

export type StructureStatus = 'loading' | 'ready' | 'error';

export interface StructureViewState {
  v: 1;
  status: StructureStatus;
  message?: string;
  modelLabel?: string;
  analysis?: PackedStructure | null;
  layer: number | null;
  matrix: MatrixKey;
  scale: SimilarityScale;
}

export interface StructureView {
  handle(message: HostToStructureView): void;
  status(): StructureStatus;
  /** Writes pending state now (called on pagehide / visibility change, and by tests). */
  flushState(): void;
  destroy(): void;
}

export function createStructureView(container: HTMLElement, api: VsCodeApiLike<StructureViewState>): StructureView {
  const doc = container.ownerDocument;
  const post = (m: StructureViewToHost) => api.postMessage(m);
  const saved = api.getState();
  let status: StructureStatus = 'loading';
  let message = '';
  let modelLabel = '';
  let model: StructureModel | null = null;
  let packed: { for: StructureModel; value: PackedStructure | null } | null = null;
  const selection: StructureSelection = { layerId: null, matrixKey: 'all', scale: 'data', hoverPair: null };

  clear(container);
  const root = h(doc, 'main', { class: 'structure-view', 'data-testid': 'structure-view', 'data-state': 'loading', 'aria-busy': 'true' });
  const header = h(doc, 'header', { class: 'st-header' });
  const title = h(doc, 'h1', {});
  append(title, icon(doc, 'symbol-structure'), ' Expert structure');
  const labelEl = h(doc, 'span', { class: 'chip outline st-model', 'data-testid': 'structure-model' });
  const metaEl = h(doc, 'div', { class: 'st-meta', 'data-testid': 'structure-meta' });
  const titleRow = h(doc, 'div', { class: 'st-title-row' });
  titleRow.append(title, labelEl);
  header.append(
    titleRow,
    metaEl,
    h(
      doc,
      'p',
      { class: 'muted st-intro' },
      'Static analyses of the checkpoint\'s weights alone (no forward pass), after "A Closer Look into Mixture-of-Experts in Large Language Models" (Lo et al.): how alike the experts of a layer are, and whether the router\'s view of the experts follows their weights.',
    ),
  );
  const loadingEl = h(doc, 'section', { class: 'st-loading', hidden: true });
  const progressText = h(doc, 'p', { class: 'muted', 'data-testid': 'structure-progress' }, 'Waiting for the weight analysis…');
  loadingEl.append(h(doc, 'vscode-progress-bar', { indeterminate: true, 'aria-label': 'Analysing the expert weights' }), progressText);
  const errorEl = h(doc, 'section', { class: 'error-box', role: 'alert', hidden: true });
  const errorHead = h(doc, 'div', { class: 'error-head' });
  errorHead.append(icon(doc, 'error'), h(doc, 'strong', {}, 'The weight analysis failed'));
  const errorMsg = h(doc, 'div', { class: 'message', 'data-testid': 'structure-error' });
  errorEl.append(errorHead, errorMsg);
  const content = h(doc, 'div', { class: 'st-content', hidden: true });
  root.append(header, loadingEl, errorEl, content);
  container.append(root);

  let saveTimer: ReturnType<typeof setTimeout> | undefined;

  /** Persisting packs the whole analysis (base64): a moment after changes, never on the render path. */
  function flushState(): void {
    clearTimeout(saveTimer);
    saveTimer = undefined;
    if (model && packed?.for !== model) packed = { for: model, value: packModel(model) };
    api.setState({
      v: 1,
      status,
      message,
      modelLabel,
      analysis: model ? (packed?.value ?? null) : null,
      layer: selection.layerId,
      matrix: selection.matrixKey,
      scale: selection.scale,
    });
  }

  function save(): void {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(flushState, 300);
  }

  function setStatus(s: StructureStatus): void {
    status = s;
    root.setAttribute('data-state', s);
    root.setAttribute('aria-busy', s === 'loading' ? 'true' : 'false');
    loadingEl.hidden = s !== 'loading';
    errorEl.hidden = s !== 'error';
    content.hidden = model === null || s === 'error';
    content.classList.toggle('is-stale', s === 'loading');
    header.hidden = false;
  }

  function renderHeader(): void {
    labelEl.textContent = modelLabel || 'model';
    labelEl.hidden = !modelLabel;
    clear(metaEl);
    if (!model) return;
    const L = model.layers.length;
    append(
      metaEl,
      h(doc, 'span', {}, `${model.numExperts} experts per layer · ${L} layer${L === 1 ? '' : 's'} analysed`),
      h(doc, 'span', { class: 'muted' }, `${(model.ms / 1000).toFixed(1)} s`),
      model.modelPath ? h(doc, 'span', { class: 'muted st-path', title: model.modelPath }, model.modelPath) : null,
    );
  }

  const currentLayer = (): StructureLayer | null => model?.layers.find((l) => l.layer === selection.layerId) ?? model?.layers[0] ?? null;

  // --- content (rebuilt when an analysis arrives or the width changes) ------------------------------------
  let similarity: SimilaritySection | null = null;
  let depth: DepthSection | null = null;
  let router: RouterSection | null = null;
  /** Chart widths, measured once per content render (one layout instead of one per chart). */
  const widths = { matrix: 560, depth: 720, scatter: 440, r2: 440 };

  function destroyCharts(): void {
    for (const s of [similarity, depth, router]) s?.destroy();
    similarity = depth = router = null;
  }

  function renderContent(): void {
    destroyCharts();
    clear(content);
    if (!model) return;
    const m = model;
    const E = m.numExperts;
    if (!m.layers.length || E < 1) {
      content.append(h(doc, 'p', { class: 'note', 'data-testid': 'structure-empty' }, 'The analysis contains no layers.'));
      return;
    }
    if (!m.layers.some((l) => l.layer === selection.layerId)) selection.layerId = m.layers[0]!.layer;
    const available = availableMatrices(m);
    if (!available.some((s) => s.key === selection.matrixKey)) selection.matrixKey = 'all';
    const ctx: SectionContext = { doc, model: m, selection, widths, currentLayer, selectLayer, save, post, base: () => `structure-L${selection.layerId}` };
    similarity = similaritySection(content, ctx, available, (pair) => router?.highlight(pair));
    depth = depthSection(content, ctx);
    router = routerSection(content, ctx);
    definitionsSection(content, doc, E);

    // every host is in place and still empty: measure them all in one layout, then draw
    for (const s of [similarity, depth, router]) s.measure();
    depth.draw();
    router.draw();
    similarity.render();
    router.render();
  }

  function selectLayer(layer: number): void {
    if (!model?.layers.some((l) => l.layer === layer)) return;
    selection.layerId = layer;
    similarity?.setLayer(layer);
    depth?.select(layer);
    router?.select(layer);
    similarity?.render();
    router?.render();
    save();
  }

  // --- restore ---------------------------------------------------------------------------------------------
  if (saved && saved.v === 1) {
    selection.layerId = saved.layer ?? null;
    selection.matrixKey = MATRICES.some((s) => s.key === saved.matrix) ? saved.matrix : 'all';
    selection.scale = saved.scale === 'fixed' ? 'fixed' : 'data';
    modelLabel = saved.modelLabel ?? '';
    message = saved.message ?? '';
    if (saved.analysis) {
      try {
        model = unpackModel(saved.analysis);
        packed = { for: model, value: saved.analysis };
      } catch {
        model = null;
      }
    }
    renderHeader();
    renderContent();
    if (saved.status === 'error') {
      errorMsg.textContent = message;
      setStatus('error');
    } else if (model && saved.status === 'ready') setStatus('ready');
    else {
      if (message) progressText.textContent = message;
      setStatus('loading');
    }
  } else setStatus('loading');

  // --- messages --------------------------------------------------------------------------------------------
  function handle(msg: HostToStructureView): void {
    switch (msg.type) {
      case 'structure-progress':
        message = String(msg.message ?? '');
        progressText.textContent = message || 'Analysing the expert weights…';
        setStatus('loading');
        save();
        return;
      case 'structure': {
        model = structureModel(msg.analysis);
        modelLabel = String(msg.modelLabel ?? '');
        message = '';
        renderHeader();
        setStatus('ready');
        renderContent();
        save();
        return;
      }
      case 'structure-failed':
        message = String(msg.message ?? '');
        errorMsg.textContent = message;
        setStatus('error');
        save();
        return;
    }
  }

  const unobserve = observeWidth(root, () => {
    if (model) renderContent();
  });
  return {
    handle,
    status: () => status,
    flushState,
    destroy: () => {
      unobserve();
      clearTimeout(saveTimer);
      destroyCharts();
    },
  };
}
