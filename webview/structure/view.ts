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
import type { HostToStructureView, LayerWeightSimilarity, StructureViewToHost, WeightAnalysis } from '../../src/shared/protocol';
import { depthCurves, type DepthCurvesUpdate } from '../charts/depthCurves';
import { toCsv } from '../charts/export';
import { meanOffDiagonal, upperPairs } from '../../src/analysis/pairStats';
import { pairScatter, type PairScatterUpdate } from '../charts/pairScatter';
import { formatSimilarity, similarityMatrix, type SimilarityMatrixUpdate, type SimilarityScale } from '../charts/similarityMatrix';
import { packArray, unpackArray, type PackedArray } from '../common/arrays';
import { append, clear, h, icon, labeledSelect, measureWidth, observeWidth, section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';
import type { VsCodeApiLike } from '../common/vscode';

export type StructureStatus = 'loading' | 'ready' | 'error';

/** Matrices of the protocol; the up/down neuron-level ones are shown only when the analysis carries them (older cached results may not). */
export type MatrixKey =
  | 'gate'
  | 'up'
  | 'down'
  | 'all'
  | 'router'
  | 'neuronRowMean'
  | 'neuronColMean'
  | 'neuronUpRowMean'
  | 'neuronUpColMean'
  | 'neuronDownRowMean'
  | 'neuronDownColMean';

interface MatrixSpec {
  key: MatrixKey;
  /** Menu text. */
  option: string;
  /** Legend / tooltip text: what one value is. */
  label: string;
  definition: string;
  get(l: LayerWeightSimilarity): unknown;
}

const FLAT_COS =
  "Cosine similarity cos(a, b) = a·b / (|a| |b|) between two experts' flattened weight matrices (every value, row-major): 1 = same direction, 0 = orthogonal, −1 = opposite.";
const NEURON_ORDER =
  'The order of neurons inside an expert is arbitrary (permuting them changes nothing the expert computes), so per-neuron vectors are only comparable between experts that share an origin, e.g. experts upcycled from one dense FFN.';

export const MATRICES: readonly MatrixSpec[] = [
  {
    key: 'gate',
    option: 'gate_proj (w1)',
    label: 'cosine similarity of gate_proj',
    get: (l) => l.gate,
    definition: `gate_proj (w1, intermediate × hidden). ${FLAT_COS}`,
  },
  {
    key: 'up',
    option: 'up_proj (w3)',
    label: 'cosine similarity of up_proj',
    get: (l) => l.up,
    definition: `up_proj (w3, intermediate × hidden). ${FLAT_COS}`,
  },
  {
    key: 'down',
    option: 'down_proj (w2)',
    label: 'cosine similarity of down_proj',
    get: (l) => l.down,
    definition: `down_proj (w2, hidden × intermediate). ${FLAT_COS}`,
  },
  {
    key: 'all',
    option: 'all expert weights',
    label: 'cosine similarity of all expert weights',
    get: (l) => l.all,
    definition: `All three matrices concatenated, [gate_proj; up_proj; down_proj]. ${FLAT_COS} A matrix with larger weights counts for more.`,
  },
  {
    key: 'router',
    option: 'router rows',
    label: 'cosine similarity of router rows',
    get: (l) => l.router,
    definition:
      'Cosine similarity between two rows of the layer\'s router (gate) weight [E × hidden]: each row is the direction an expert "listens" to. Similar rows mean the two experts tend to be scored alike.',
  },
  {
    key: 'neuronRowMean',
    option: 'neuron row means',
    label: 'cosine similarity of gate_proj row means',
    get: (l) => l.neuronRowMean,
    definition: `Neuron level: each expert's vector of gate_proj row means (one value per intermediate neuron: the mean of its input weights), compared by cosine similarity. ${NEURON_ORDER}`,
  },
  {
    key: 'neuronColMean',
    option: 'neuron column means',
    label: 'cosine similarity of gate_proj column means',
    get: (l) => l.neuronColMean,
    definition:
      "Neuron level: each expert's vector of gate_proj column means (one value per hidden input dimension: the mean over the expert's neurons), compared by cosine similarity. Does not depend on the order of neurons.",
  },
  {
    key: 'neuronUpRowMean',
    option: 'up_proj row means',
    label: 'cosine similarity of up_proj row means',
    get: (l) => l.neuronUp?.rowMean,
    definition: `Neuron level: each expert's vector of up_proj row means (one per intermediate neuron), compared by cosine similarity. ${NEURON_ORDER}`,
  },
  {
    key: 'neuronUpColMean',
    option: 'up_proj column means',
    label: 'cosine similarity of up_proj column means',
    get: (l) => l.neuronUp?.colMean,
    definition: "Neuron level: each expert's vector of up_proj column means (one per hidden dimension), compared by cosine similarity.",
  },
  {
    key: 'neuronDownRowMean',
    option: 'down_proj row means',
    label: 'cosine similarity of down_proj row means',
    get: (l) => l.neuronDown?.rowMean,
    definition: "Neuron level: each expert's vector of down_proj row means (one per hidden output dimension), compared by cosine similarity.",
  },
  {
    key: 'neuronDownColMean',
    option: 'down_proj column means',
    label: 'cosine similarity of down_proj column means',
    get: (l) => l.neuronDown?.colMean,
    definition: `Neuron level: each expert's vector of down_proj column means (one per intermediate neuron), compared by cosine similarity. ${NEURON_ORDER}`,
  },
];
const CORE_KEYS: readonly MatrixKey[] = ['gate', 'up', 'down', 'all', 'router', 'neuronRowMean', 'neuronColMean'];
const DEPTH_KEYS = ['gate', 'up', 'down', 'all', 'router'] as const;
const DEPTH_LABELS: Record<(typeof DEPTH_KEYS)[number], string> = {
  gate: 'gate_proj',
  up: 'up_proj',
  down: 'down_proj',
  all: 'all weights',
  router: 'router rows',
};

/** One layer as the view uses it: every matrix checked to be E x E numbers (else absent). */
export interface StructureLayer {
  layer: number;
  matrices: Partial<Record<MatrixKey, Float64Array>>;
  r2: number;
  meanOff: Record<(typeof DEPTH_KEYS)[number], number>;
}

export interface StructureModel {
  modelPath: string;
  numExperts: number;
  ms: number;
  layers: StructureLayer[];
}

function matrixOf(v: unknown, E: number): Float64Array | undefined {
  if (!v || typeof v !== 'object') return undefined;
  const arr = v as ArrayLike<number>;
  if (typeof arr.length !== 'number' || arr.length !== E * E) return undefined;
  const out = new Float64Array(E * E);
  for (let i = 0; i < out.length; i++) out[i] = Number(arr[i]);
  return out;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);

/** Checks and normalises a WeightAnalysis (layers sorted by id; malformed matrices dropped, not fatal). */
export function structureModel(a: WeightAnalysis): StructureModel {
  const E = Math.max(0, Math.floor(Number(a.numExperts) || 0));
  const layers = (Array.isArray(a.layers) ? a.layers : [])
    .filter((l) => l && typeof l === 'object')
    .map((l, i): StructureLayer => {
      const matrices: StructureLayer['matrices'] = {};
      for (const spec of MATRICES) {
        const m = matrixOf(spec.get(l), E);
        if (m) matrices[spec.key] = m;
      }
      const mo = (l.meanOffDiagonal ?? {}) as Partial<Record<string, unknown>>;
      const meanOff = Object.fromEntries(
        DEPTH_KEYS.map((k) => {
          const v = num(mo[k]);
          const m = matrices[k];
          return [k, Number.isFinite(v) ? v : m ? meanOffDiagonal(m, E) : NaN];
        }),
      ) as StructureLayer['meanOff'];
      return { layer: Number.isFinite(Number(l.layer)) ? Number(l.layer) : i, matrices, r2: num(l.routerVsExpertR2), meanOff };
    })
    .sort((x, y) => x.layer - y.layer);
  return { modelPath: String(a.modelPath ?? ''), numExperts: E, ms: Number(a.ms) || 0, layers };
}

// --- persistence: the core matrices as base64 float32, within a budget ---------------------------------

export interface PackedStructure {
  modelPath: string;
  numExperts: number;
  ms: number;
  layers: { layer: number; r2: number; meanOff: StructureLayer['meanOff']; keys: MatrixKey[]; data: PackedArray }[];
}

/** Above this many matrix values the analysis is not kept in the webview state (the host keeps the panel alive and re-sends). */
export const MAX_PERSISTED_VALUES = 1 << 19;

function packModel(m: StructureModel): PackedStructure | null {
  const E2 = m.numExperts * m.numExperts;
  let total = 0;
  for (const l of m.layers) for (const k of CORE_KEYS) if (l.matrices[k]) total += E2;
  if (total > MAX_PERSISTED_VALUES) return null;
  return {
    modelPath: m.modelPath,
    numExperts: m.numExperts,
    ms: m.ms,
    layers: m.layers.map((l) => {
      const keys = CORE_KEYS.filter((k) => l.matrices[k]);
      const buf = new Float32Array(keys.length * E2);
      keys.forEach((k, i) => buf.set(l.matrices[k]!, i * E2));
      return { layer: l.layer, r2: l.r2, meanOff: l.meanOff, keys, data: packArray(buf) };
    }),
  };
}

function unpackModel(p: PackedStructure): StructureModel {
  const E2 = p.numExperts * p.numExperts;
  return {
    modelPath: p.modelPath,
    numExperts: p.numExperts,
    ms: p.ms,
    layers: p.layers.map((l) => {
      const buf = unpackArray(l.data) as Float32Array;
      const matrices: StructureLayer['matrices'] = {};
      l.keys.forEach((k, i) => (matrices[k] = Float64Array.from(buf.subarray(i * E2, (i + 1) * E2))));
      return { layer: l.layer, r2: l.r2 ?? NaN, meanOff: l.meanOff, matrices };
    }),
  };
}

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
  let layerId: number | null = null;
  let matrixKey: MatrixKey = 'all';
  let scale: SimilarityScale = 'data';
  let matrix: SimilarityMatrixUpdate | null = null;
  let byDepth: DepthCurvesUpdate | null = null;
  let r2Chart: DepthCurvesUpdate | null = null;
  let scatter: PairScatterUpdate | null = null;
  /** The pair under the pointer or keyboard cursor; kept across re-renders (width changes, layer changes). */
  let hoverPair: { a: number; b: number } | null = null;

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
    api.setState({ v: 1, status, message, modelLabel, analysis: model ? (packed?.value ?? null) : null, layer: layerId, matrix: matrixKey, scale });
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

  const currentLayer = (): StructureLayer | null => model?.layers.find((l) => l.layer === layerId) ?? model?.layers[0] ?? null;
  const spec = (k: MatrixKey) => MATRICES.find((m) => m.key === k)!;
  const available = (): MatrixSpec[] => (model ? MATRICES.filter((m) => CORE_KEYS.includes(m.key) || model!.layers.some((l) => l.matrices[m.key])) : []);

  // --- content (rebuilt when an analysis arrives or the width changes) ------------------------------------
  let layerSelect: { set(v: string): void } | null = null;
  let matrixDef: HTMLElement | null = null;
  let matrixTitle: HTMLElement | null = null;
  let statsEl: HTMLElement | null = null;
  let scatterCaption: HTMLElement | null = null;
  let matrixHost: HTMLElement | null = null;
  let scatterHost: HTMLElement | null = null;
  /** Chart widths, measured once per content render (one layout instead of one per chart). */
  let widths = { matrix: 560, depth: 720, scatter: 440, r2: 440 };

  function destroyCharts(): void {
    for (const c of [matrix, byDepth, r2Chart, scatter]) c?.destroy();
    matrix = byDepth = r2Chart = scatter = null;
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
    if (!m.layers.some((l) => l.layer === layerId)) layerId = m.layers[0]!.layer;
    if (!available().some((s) => s.key === matrixKey)) matrixKey = 'all';
    const base = () => `structure-L${layerId}`;

    // 1. similarity matrix of one layer
    const sm = section(content, 'Expert similarity', 'symbol-structure', 'structure-matrix-section');
    const ls = labeledSelect(
      doc,
      'structure-layer',
      'Layer',
      m.layers.map((l) => [String(l.layer), `L${l.layer}`]),
      String(layerId),
      (v) => selectLayer(Number(v)),
    );
    layerSelect = ls;
    const ms = labeledSelect(
      doc,
      'structure-matrix',
      'Matrix',
      available().map((s) => [s.key, s.option]),
      matrixKey,
      (v) => {
        if (!MATRICES.some((s) => s.key === v)) return;
        matrixKey = v as MatrixKey;
        renderMatrix();
        save();
      },
    );
    const ss = labeledSelect(
      doc,
      'structure-scale',
      'Colour scale',
      [
        ['data', 'data range'],
        ['fixed', '−1 … 1'],
      ],
      scale,
      (v) => {
        scale = v === 'fixed' ? 'fixed' : 'data';
        matrix?.setScale(scale);
        save();
      },
    );
    sm.tools.append(
      ls.wrap,
      ms.wrap,
      ss.wrap,
      exportButtons(
        doc,
        {
          name: 'similarity',
          svg: () => matrix?.svg() ?? null,
          csv: () => {
            const l = currentLayer();
            const mat = l?.matrices[matrixKey];
            const rows: (number | string)[][] = [];
            if (l && mat) for (let a = 0; a < E; a++) for (let b = 0; b < E; b++) rows.push([l.layer, matrixKey, a, b, mat[a * E + b]!]);
            return toCsv(['layer', 'matrix', 'expert_a', 'expert_b', 'similarity'], rows);
          },
          json: () => {
            const l = currentLayer();
            return {
              modelPath: m.modelPath,
              numExperts: E,
              layer: l?.layer,
              matrix: matrixKey,
              definition: spec(matrixKey).definition,
              values: l?.matrices[matrixKey] ?? null,
            };
          },
        },
        (msg) => post({ ...msg, name: `${base()}-${matrixKey}-${msg.name}` }),
      ),
    );
    const mGrid = h(doc, 'div', { class: 'st-matrix-grid' });
    matrixHost = h(doc, 'div', { class: 'st-matrix' });
    const side = h(doc, 'aside', { class: 'st-matrix-side card' });
    matrixTitle = h(doc, 'h3', { 'data-testid': 'matrix-title' });
    matrixDef = h(doc, 'p', { class: 'caption', 'data-testid': 'matrix-definition' });
    statsEl = h(doc, 'dl', { class: 'defs st-stats', 'data-testid': 'matrix-stats' });
    side.append(
      matrixTitle,
      matrixDef,
      statsEl,
      h(
        doc,
        'p',
        { class: 'caption' },
        'Reading the matrix: row a, column b is the similarity of experts a and b (symmetric). Red: the two experts point the same way; blue: opposite ways; ' +
          'background colour: unrelated (orthogonal). Red blocks along the diagonal are groups of related experts. Hover a cell to find the pair in the scatter below.',
      ),
    );
    mGrid.append(matrixHost, side);
    sm.body.append(mGrid);

    // 2. mean off-diagonal similarity by depth
    const dp = section(content, 'Similarity by depth', 'graph-line', 'structure-depth-section');
    const depthHost = h(doc, 'div', {});
    dp.tools.append(
      exportButtons(
        doc,
        {
          name: 'similarity-by-depth',
          svg: () => byDepth?.svg() ?? null,
          csv: () =>
            toCsv(
              ['layer', ...DEPTH_KEYS.map((k) => `mean_offdiag_${k}`), 'router_vs_expert_r2'],
              m.layers.map((l) => [l.layer, ...DEPTH_KEYS.map((k) => l.meanOff[k]), l.r2]),
            ),
          json: () => ({ layers: m.layers.map((l) => ({ layer: l.layer, meanOffDiagonal: l.meanOff, routerVsExpertR2: l.r2 })) }),
        },
        post,
      ),
    );
    dp.body.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        `Per layer, the mean similarity over the ${E * (E - 1)} ordered pairs of different experts (the diagonal left out). ` +
          'Near 0: the experts point in unrelated directions; clearly above 0: they share structure. Click a layer to show it above.',
      ),
      depthHost,
    );
    const depthChart = () =>
      depthCurves(
        depthHost,
        {
          layers: m.layers.map((l) => l.layer),
          series: DEPTH_KEYS.map((k) => ({ key: k, label: DEPTH_LABELS[k], values: m.layers.map((l) => l.meanOff[k]) })),
          yLabel: 'mean off-diagonal cosine',
          refs: [{ value: 0, label: '0', className: 'neutral' }],
        },
        {
          testid: 'similarity-by-depth',
          selectedLayer: layerId,
          onLayerClick: selectLayer,
          format: formatSimilarity,
          height: 240,
          width: Math.min(900, widths.depth),
        },
      );

    // 3. router rows vs expert weights
    const rv = section(content, 'Router rows vs expert weights', 'git-compare', 'structure-router-section');
    rv.body.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        'Do experts with similar weights also get similar router rows? Each dot is a pair of experts of the selected layer; the line is the least-squares fit and R² the share of the variance of router-row similarity it explains (1 = fully, 0 = not at all).',
      ),
    );
    const grid = h(doc, 'div', { class: 'st-grid' });
    const left = h(doc, 'div', { class: 'st-panel' });
    const right = h(doc, 'div', { class: 'st-panel' });
    grid.append(left, right);
    rv.body.append(grid);
    const lHead = h(doc, 'div', { class: 'st-panel-head' });
    scatterCaption = h(doc, 'h3', { 'data-testid': 'router-r2' });
    lHead.append(
      scatterCaption,
      exportButtons(
        doc,
        {
          name: 'router-scatter',
          svg: () => scatter?.svg() ?? null,
          csv: () => {
            const l = currentLayer();
            const x = l?.matrices.all;
            const y = l?.matrices.router;
            if (!l || !x || !y) return toCsv(['layer', 'expert_a', 'expert_b', 'all_similarity', 'router_similarity'], []);
            const p = upperPairs(E, x, y);
            return toCsv(
              ['layer', 'expert_a', 'expert_b', 'all_similarity', 'router_similarity'],
              p.a.map((a, i) => [l.layer, a, p.b[i]!, p.x[i]!, p.y[i]!]),
            );
          },
        },
        (msg) => post({ ...msg, name: `${base()}-${msg.name}` }),
      ),
    );
    scatterHost = h(doc, 'div', {});
    left.append(lHead, scatterHost);
    const rHead = h(doc, 'div', { class: 'st-panel-head' });
    const r2Host = h(doc, 'div', {});
    rHead.append(
      h(doc, 'h3', {}, 'R² by depth'),
      exportButtons(
        doc,
        {
          name: 'r2-by-depth',
          svg: () => r2Chart?.svg() ?? null,
          csv: () =>
            toCsv(
              ['layer', 'router_vs_expert_r2'],
              m.layers.map((l) => [l.layer, l.r2]),
            ),
        },
        post,
      ),
    );
    right.append(rHead, r2Host);
    const r2 = () =>
      depthCurves(
        r2Host,
        {
          layers: m.layers.map((l) => l.layer),
          series: [{ key: 'r2', label: 'R² router vs all-weights similarity', values: m.layers.map((l) => l.r2) }],
          yLabel: 'R²',
          yDomain: [0, 1],
        },
        { testid: 'r2-by-depth', selectedLayer: layerId, onLayerClick: selectLayer, height: 240, width: Math.min(460, widths.r2) },
      );

    // 4. definitions
    const df = section(content, 'Definitions', 'book', 'structure-definitions-section');
    const dl = h(doc, 'dl', { class: 'defs', 'data-testid': 'structure-definitions' });
    const defs: [string, string][] = [
      [
        'Cosine similarity',
        'cos(a, b) = a·b / (|a| |b|) for two vectors a and b; 1 = same direction, 0 = orthogonal, −1 = opposite. A vector of zeros gets 0. Cosine ignores scale: it compares directions, not sizes.',
      ],
      [
        'Expert weight similarity',
        'gate_proj (w1), up_proj (w3), down_proj (w2): the cosine similarity of two experts\' flattened weight matrices (all of the matrix\'s values as one vector). "All": of the three matrices concatenated.',
      ],
      [
        'Neuron-level similarity',
        "For an expert's gate_proj matrix W (one row per intermediate neuron, one column per hidden dimension): the row-mean vector (mean of each row: one value per neuron) and the column-mean vector (mean of each column: one value per hidden dimension). Neuron row / column means: the cosine similarity of two experts' row-mean / column-mean vectors. " +
          NEURON_ORDER,
      ],
      [
        'Router rows',
        'The router (gate) of a layer is a matrix with one row per expert; the router-row similarity of two experts is the cosine similarity of their rows.',
      ],
      [
        'Diagonal',
        'An expert compared with itself: 1 by definition (0 only for an all-zero matrix). Drawn dimmed and left out of the colour scale and of every mean.',
      ],
      [
        'Mean off-diagonal similarity',
        `The mean of a similarity matrix over the E(E−1) = ${E * (E - 1)} ordered pairs of different experts, per layer; "Similarity by depth" plots it over the layers.`,
      ],
      [
        'Router-vs-expert R²',
        `Ordinary least squares with intercept of y = router-row similarity on x = expert-weight similarity ("all") over the E(E−1)/2 = ${(E * (E - 1)) / 2} pairs a < b of a layer; R² = 1 − SS_res / SS_tot (the squared Pearson correlation). 0 when x or y has no variance.`,
      ],
      [
        'Colour scale',
        'Red: positive similarity, blue: negative, opacity proportional to |value|. "Data range" scales to the largest |off-diagonal| value of the matrix shown (real experts are often nearly orthogonal, so a −1 … 1 scale would look empty); "−1 … 1" uses the full range of cosine.',
      ],
    ];
    for (const [t, d] of defs) append(dl, h(doc, 'dt', {}, t), h(doc, 'dd', {}, d));
    df.body.append(dl);

    // every host is in place and still empty: measure them all in one layout, then draw
    widths = {
      matrix: measureWidth(matrixHost!, widths.matrix),
      depth: measureWidth(depthHost, widths.depth),
      scatter: measureWidth(scatterHost!, widths.scatter),
      r2: measureWidth(r2Host, widths.r2),
    };
    byDepth = depthChart();
    r2Chart = r2();
    renderMatrix();
    renderScatter();
  }

  function renderMatrix(): void {
    if (!model || !matrixHost || !matrixDef || !statsEl) return;
    const E = model.numExperts;
    const l = currentLayer();
    const s = spec(matrixKey);
    matrixDef.textContent = s.definition;
    if (matrixTitle) matrixTitle.textContent = `Layer ${l?.layer ?? '?'} · ${s.option}`;
    clear(statsEl);
    const mat = l?.matrices[matrixKey];
    if (!l || !mat) {
      matrix?.destroy();
      matrix = null;
      clear(matrixHost);
      matrixHost.append(
        h(doc, 'p', { class: 'note', 'data-testid': 'matrix-missing' }, `This analysis has no ${s.option} matrix for layer ${l?.layer ?? '?'}.`),
      );
      return;
    }
    let best = { a: -1, b: -1, v: -Infinity };
    let worst = { a: -1, b: -1, v: Infinity };
    for (let a = 0; a < E; a++)
      for (let b = a + 1; b < E; b++) {
        const v = mat[a * E + b]!;
        if (v > best.v) best = { a, b, v };
        if (v < worst.v) worst = { a, b, v };
      }
    append(
      statsEl,
      h(doc, 'dt', {}, 'Mean off-diagonal'),
      h(doc, 'dd', { 'data-testid': 'stat-mean' }, formatSimilarity(meanOffDiagonal(mat, E))),
      h(doc, 'dt', {}, 'Most similar pair'),
      h(doc, 'dd', { 'data-testid': 'stat-max' }, best.a >= 0 ? `experts ${best.a} & ${best.b}: ${formatSimilarity(best.v)}` : '–'),
      h(doc, 'dt', {}, 'Least similar pair'),
      h(doc, 'dd', { 'data-testid': 'stat-min' }, worst.a >= 0 ? `experts ${worst.a} & ${worst.b}: ${formatSimilarity(worst.v)}` : '–'),
      h(doc, 'dt', {}, 'Router vs experts'),
      h(doc, 'dd', {}, `R² ${Number.isFinite(l.r2) ? l.r2.toFixed(3) : '–'} in this layer`),
    );
    const data = { numExperts: E, values: mat, label: s.label, layer: l.layer };
    if (matrix) {
      matrix(data); // same cells, new values: updated in place
      return;
    }
    clear(matrixHost);
    matrix = similarityMatrix(matrixHost, data, {
      scale,
      width: widths.matrix,
      onHover: (c) => {
        hoverPair = c ? { a: c.a, b: c.b } : null;
        scatter?.highlight(hoverPair);
      },
    });
    if (hoverPair) matrix.highlight(hoverPair);
  }

  function renderScatter(): void {
    if (!model || !scatterHost || !scatterCaption) return;
    const E = model.numExperts;
    const l = currentLayer();
    const x = l?.matrices.all;
    const y = l?.matrices.router;
    if (l && x && y && E >= 2 && scatter) {
      scatterCaption.textContent = `Layer ${l.layer}: R² = ${Number.isFinite(l.r2) ? l.r2.toFixed(3) : '–'} over ${(E * (E - 1)) / 2} pairs`;
      scatter({
        numExperts: E,
        x,
        y,
        layer: l.layer,
        xLabel: 'expert similarity (all weights)',
        yLabel: 'router-row similarity',
        r2: Number.isFinite(l.r2) ? l.r2 : null,
      });
      if (hoverPair) scatter.highlight(hoverPair);
      return;
    }
    scatter?.destroy();
    scatter = null;
    clear(scatterHost);
    if (!l || !x || !y || E < 2) {
      scatterCaption.textContent = `Layer ${l?.layer ?? '?'}: R² ${l && Number.isFinite(l.r2) ? l.r2.toFixed(3) : '–'}`;
      scatterHost.append(
        h(doc, 'p', { class: 'note', 'data-testid': 'scatter-missing' }, 'The analysis of this layer lacks the "all" or the router similarity matrix.'),
      );
      return;
    }
    scatterCaption.textContent = `Layer ${l.layer}: R² = ${Number.isFinite(l.r2) ? l.r2.toFixed(3) : '–'} over ${(E * (E - 1)) / 2} pairs`;
    scatter = pairScatter(
      scatterHost,
      {
        numExperts: E,
        x,
        y,
        layer: l.layer,
        xLabel: 'expert similarity (all weights)',
        yLabel: 'router-row similarity',
        r2: Number.isFinite(l.r2) ? l.r2 : null,
      },
      { testid: 'router-scatter', width: Math.min(460, widths.scatter) },
    );
    if (hoverPair) scatter.highlight(hoverPair);
  }

  function selectLayer(layer: number): void {
    if (!model?.layers.some((l) => l.layer === layer)) return;
    layerId = layer;
    layerSelect?.set(String(layer));
    byDepth?.select(layer);
    r2Chart?.select(layer);
    renderMatrix();
    renderScatter();
    save();
  }

  // --- restore ---------------------------------------------------------------------------------------------
  if (saved && saved.v === 1) {
    layerId = saved.layer ?? null;
    matrixKey = MATRICES.some((s) => s.key === saved.matrix) ? saved.matrix : 'all';
    scale = saved.scale === 'fixed' ? 'fixed' : 'data';
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
