/**
 * The trace panel's expert lens: pick an expert (here, by clicking a bar of the gate chart, a column of the
 * layer x expert matrix, or from the side-panel heatmap) and see where it is chosen and with what weight
 * across layers and tokens; or colour the same layers x tokens grid by top-1 weight, top-k mass or
 * entropy. Below it, the layer x expert matrix of the selected token, the answer position or all tokens.
 * Both charts fit the panel's width, so the scored answer position (the last column) is always visible.
 */
import type { TraceResult, TraceViewToHost } from '../../src/shared/protocol';
import { LENS_METRIC_LABELS, LENS_METRICS, expertLensSummary, layerExpertMatrix, lensGrid, type LensMetric } from '../../src/analysis/expertLens';
import { toCsv } from '../charts/export';
import { gridChart, type GridChartUpdate } from '../charts/lensCharts';
import { append, clear, h, labeledSelect, measureWidth, observeWidth, visibleToken, type LabeledSelect, type Section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';

export type LensTokens = 'selected' | 'answer' | 'all';

export interface LensSaved {
  expert: number;
  metric: LensMetric;
  tokens: LensTokens;
}

export interface ExpertLensSection {
  setTrace(result: TraceResult, saved?: LensSaved | null): void;
  /** Points the lens at an expert (colouring by its weight); layer, when given, puts the cursor on that row. */
  setExpert(expert: number, layer?: number | null): void;
  /** The token selected in the routing map (for the matrix's "selected token"). */
  setSelectedToken(token: number | null): void;
  saved(): LensSaved;
  destroy(): void;
}

const TOKEN_CHOICES: [LensTokens, string][] = [
  ['answer', 'answer position'],
  ['selected', 'selected token'],
  ['all', 'all tokens'],
];

export function expertLensSection(
  doc: Document,
  sec: Section,
  post: (m: TraceViewToHost) => void,
  opts: { baseName: () => string; onChange: () => void; onCellPick: (layer: number, token: number) => void },
): ExpertLensSection {
  let result: TraceResult | null = null;
  let expert = 0;
  let metric: LensMetric = 'expert';
  let tokens: LensTokens = 'answer';
  let selectedToken: number | null = null;
  let grid: GridChartUpdate | null = null;
  let matrix: GridChartUpdate | null = null;

  const metricSelect: LabeledSelect = labeledSelect(
    doc,
    'lens-metric',
    'Colour by',
    LENS_METRICS.map((m) => [m, m === 'expert' ? 'expert weight' : LENS_METRIC_LABELS[m]]),
    metric,
    (v) => {
      metric = (LENS_METRICS as readonly string[]).includes(v) ? (v as LensMetric) : 'expert';
      render();
      opts.onChange();
    },
  );
  const expertWrap = h(doc, 'label', { class: 'inline-select' });
  const expertInput = h(doc, 'input', {
    type: 'number',
    class: 'lens-expert-input',
    'data-testid': 'lens-expert',
    min: 0,
    step: 1,
    value: 0,
    'aria-label': 'Expert shown by the lens',
  }) as HTMLInputElement;
  expertInput.addEventListener('change', () => {
    const v = Number(expertInput.value);
    if (result && Number.isInteger(v) && v >= 0 && v < result.routing.numExperts) setExpert(v);
    else expertInput.value = String(expert);
  });
  append(expertWrap, h(doc, 'span', { class: 'muted' }, 'Expert'), expertInput);
  const tokensSelect = labeledSelect(doc, 'lens-tokens', 'Matrix of', TOKEN_CHOICES, tokens, (v) => {
    tokens = v === 'selected' || v === 'all' ? v : 'answer';
    render();
    opts.onChange();
  });
  sec.tools.append(
    expertWrap,
    metricSelect.wrap,
    exportButtons(doc, { name: 'lens', svg: () => grid?.svg() ?? null, csv: () => lensCsv(), json: () => lensJson() }, (m) =>
      post({ ...m, name: `${opts.baseName()}-${m.name.replace(/^lens/, `lens-${metric === 'expert' ? `expert${expert}` : metric}`)}` }),
    ),
  );
  const summary = h(doc, 'p', { class: 'lens-summary', 'data-testid': 'lens-summary', 'aria-live': 'polite' });
  const caption = h(doc, 'p', { class: 'caption' });
  const gridHost = h(doc, 'div', { class: 'lens-host' });
  const matrixHead = h(doc, 'div', { class: 'lens-matrix-head' });
  const matrixTitle = h(doc, 'h3', { class: 'lens-sub', 'data-testid': 'lens-matrix-title' });
  matrixHead.append(
    matrixTitle,
    tokensSelect.wrap,
    exportButtons(doc, { name: 'layer-expert', svg: () => matrix?.svg() ?? null, csv: () => matrixCsv() }, (m) =>
      post({ ...m, name: `${opts.baseName()}-${m.name.replace(/^layer-expert/, `layer-expert-${tokens}`)}` }),
    ),
  );
  const matrixCaption = h(doc, 'p', { class: 'caption' });
  const matrixHost = h(doc, 'div', { class: 'lens-host' });
  sec.body.append(summary, caption, gridHost, matrixHead, matrixCaption, matrixHost);
  sec.body.setAttribute('data-testid', 'lens-body');

  function tokenName(t: number): string {
    return `token ${t} ${JSON.stringify(visibleToken(result?.tokens[t]?.text ?? ''))}`;
  }

  function matrixTokens(): number[] {
    const T = result!.routing.numTokens;
    if (tokens === 'all') return Array.from({ length: T }, (_, t) => t);
    if (tokens === 'selected') return selectedToken !== null && selectedToken < T ? [selectedToken] : [];
    return [T - 1];
  }

  /** Draws both charts; existing ones are updated in place, so keyboard focus and the cursor survive a new pick. */
  function render(): void {
    if (!result) {
      grid?.destroy();
      matrix?.destroy();
      grid = matrix = null;
      clear(gridHost);
      clear(matrixHost);
      return;
    }
    const R = result.routing;
    expertInput.max = String(R.numExperts - 1);
    expertInput.value = String(expert);
    const width = measureWidth(sec.body, 600);
    const values = lensGrid(R, metric, expert);
    let max = 0;
    for (const v of values) if (!Number.isNaN(v) && v > max) max = v;
    if (metric === 'entropy') max = 1;
    const s = expertLensSummary(R, expert);
    summary.textContent =
      `Expert ${expert}: chosen in ${s.chosen} of ${s.cells} (layer, token) cells` +
      (s.strongest
        ? `; mean weight ${s.meanWeight.toFixed(3)}; strongest at layer ${s.strongest.layer}, ${tokenName(s.strongest.token)} (${s.strongest.weight.toFixed(3)}). ` +
          `Layers that choose it: ${
            s.perLayer
              .map((n, l) => (n ? `${l} (${n})` : ''))
              .filter(Boolean)
              .join(', ') || 'none'
          }.`
        : '; never chosen in this trace.');
    summary.setAttribute('data-chosen', String(s.chosen));
    caption.textContent = `Rows are layers, columns are tokens (the last column is the scored answer position). Colour: ${
      metric === 'expert' ? `the gate weight of expert ${expert} where it is among the top-${R.topK}, empty elsewhere` : LENS_METRIC_LABELS[metric]
    }, from 0 (dark) to ${max.toFixed(3)} (bright). Arrow keys move; Enter shows that cell in the routing map and gate chart.`;
    const gridData = {
      rows: R.numLayers,
      cols: R.numTokens,
      values,
      max,
      rowName: (l: number) => `layer ${l}`,
      colName: tokenName,
      valueName: metric === 'expert' ? `weight of expert ${expert}` : LENS_METRIC_LABELS[metric],
      marked: selectedToken !== null ? [selectedToken] : [],
      ariaLabel: `Expert lens: layers by tokens, coloured by ${metric === 'expert' ? `the weight of expert ${expert}` : LENS_METRIC_LABELS[metric]}`,
      width,
    };
    if (grid) grid(gridData);
    else
      grid = gridChart(gridHost, gridData, { testid: 'lens-grid', ariaLabel: gridData.ariaLabel, onActivate: (layer, token) => opts.onCellPick(layer, token) });
    const toks = matrixTokens();
    const m = layerExpertMatrix(R, toks);
    let mmax = 0;
    for (const v of m.meanWeight) if (v > mmax) mmax = v;
    const what = tokens === 'all' ? `all ${R.numTokens} tokens` : toks.length ? tokenName(toks[0]!) : 'no token selected';
    matrixTitle.textContent = `Layer × expert: ${what}`;
    matrixCaption.textContent = toks.length
      ? `Mean gate weight each expert got from ${tokens === 'all' ? 'the tokens' : 'this token'} in each layer (0 where not chosen); expert ${expert} is outlined. Enter or click picks an expert for the lens.`
      : 'Click a cell of the routing map (or press Enter on it) to select a token.';
    const matrixData = {
      rows: R.numLayers,
      cols: R.numExperts,
      values: Float64Array.from(m.meanWeight, (v, i) => (m.chosenBy[i] ? v : NaN)),
      max: mmax,
      rowName: (l: number) => `layer ${l}`,
      colName: (e: number) => `expert ${e}`,
      valueName: 'mean weight',
      marked: [expert],
      ariaLabel: `Layer by expert matrix of ${what}`,
      width,
    };
    if (matrix) matrix(matrixData);
    else matrix = gridChart(matrixHost, matrixData, { testid: 'lens-matrix', ariaLabel: matrixData.ariaLabel, onActivate: (layer, e) => setExpert(e, layer) });
  }

  function setExpert(e: number, _layer?: number | null): void {
    if (!result || !Number.isInteger(e) || e < 0 || e >= result.routing.numExperts) return;
    expert = e;
    metric = 'expert';
    metricSelect.set('expert');
    render();
    opts.onChange();
  }

  function lensCsv(): string {
    const R = result!.routing;
    const values = lensGrid(R, metric, expert);
    const rows: (string | number)[][] = [];
    for (let l = 0; l < R.numLayers; l++)
      for (let t = 0; t < R.numTokens; t++) {
        const v = values[l * R.numTokens + t]!;
        rows.push([l, t, result!.tokens[t]?.text ?? '', Number.isNaN(v) ? '' : v]);
      }
    return toCsv(['layer', 'token', 'token_text', metric === 'expert' ? `weight_expert_${expert}` : metric], rows);
  }

  function lensJson(): unknown {
    const R = result!.routing;
    return { metric, expert: metric === 'expert' ? expert : undefined, summary: expertLensSummary(R, expert), tokens: result!.tokens.map((t) => t.text) };
  }

  function matrixCsv(): string {
    const R = result!.routing;
    const m = layerExpertMatrix(R, matrixTokens());
    const rows: (string | number)[][] = [];
    for (let l = 0; l < R.numLayers; l++)
      for (let e = 0; e < R.numExperts; e++) rows.push([l, e, m.meanWeight[l * R.numExperts + e]!, m.chosenBy[l * R.numExperts + e]!]);
    return toCsv(['layer', 'expert', 'mean_weight', 'tokens_choosing'], rows);
  }

  const unobserve = observeWidth(sec.body, () => render());

  return {
    setTrace(r, saved) {
      result = r;
      if (saved) {
        expert = saved.expert < r.routing.numExperts ? saved.expert : 0;
        metric = saved.metric;
        tokens = saved.tokens;
        metricSelect.set(metric);
        tokensSelect.set(tokens);
      } else if (expert >= r.routing.numExperts) expert = 0;
      selectedToken = null;
      render();
    },
    setExpert,
    setSelectedToken(t) {
      selectedToken = t;
      if (tokens === 'answer' && t !== null) {
        tokens = 'selected';
        tokensSelect.set(tokens);
      }
      render();
    },
    saved: () => ({ expert, metric, tokens }),
    destroy() {
      unobserve();
      grid?.destroy();
      matrix?.destroy();
    },
  };
}
