/**
 * The trace panel's "Expert outputs (all experts)" section: the dynamic analyses of "A Closer Look into
 * Mixture-of-Experts in Large Language Models" over a trace run in the all-experts mode
 * (TraceResult.expertOutputs): (a) gate score vs unweighted output norm, as a rank-pair heatmap for one layer
 * and the per-layer share of tokens whose top-scored expert has the largest norm (or one of the k largest)
 * against the chance levels 1/E and k/E; (b) expert diversity by depth, the mean angular similarity of the
 * experts' outputs per layer with the last layer marked. Without expertOutputs: a button that asks the host
 * to run the trace again in that mode.
 *
 * The derived numbers (small: L x E x E counts and two per-layer series) are what the webview state keeps;
 * the raw [layers][tokens][experts] norms are not persisted.
 */
import { normVersusScore, similarityByDepth, type NormScoreLayer } from '../../src/analysis/expertOutputs';
import type { ExpertOutputStats, TraceResult, TraceViewToHost } from '../../src/shared/protocol';
import { depthCurves, type DepthCurvesUpdate } from '../charts/depthCurves';
import { toCsv, type ExportMessage } from '../charts/export';
import { rankPairHeatmap, type RankPairUpdate } from '../charts/rankPairHeatmap';
import { packArray, unpackArray, type PackedArray } from '../common/arrays';
import { clear, formatPercent, h, labeledSelect } from '../common/dom';
import { exportButtons } from '../common/exportButtons';

export interface ExpertOutputsSummary {
  numLayers: number;
  numTokens: number;
  numExperts: number;
  topK: number;
  /** similarityByDepth(): mean angular similarity per layer. */
  diversity: number[];
  /** normVersusScore() per layer; null when it could not be computed (see note). */
  normScore: NormScoreLayer[] | null;
  normScoreNote?: string;
}

export interface ExpertOutputsSaved {
  layer: number;
  ranks: 'top' | 'all';
  summary?: Omit<ExpertOutputsSummary, 'normScore'> & {
    /** All layers' counts, L x E x E, as float32 (exact for counts below 2^24). */
    counts?: PackedArray;
    top?: number[];
    inTopK?: number[];
  };
}

export interface ExpertOutputsSection {
  /** Shows the section for a trace; `restored` is the summary kept in the webview state (the raw statistics are not). */
  setTrace(result: TraceResult, restored?: ExpertOutputsSaved | null): void;
  /** The host answered a request (new trace or failure): the button works again. */
  requestDone(): void;
  /** What the webview state keeps. */
  saved(): ExpertOutputsSaved;
  summary(): ExpertOutputsSummary | null;
  destroy(): void;
}

/** Above this many count values (L x E x E) the rank-pair counts are not kept in the webview state. */
export const MAX_PERSISTED_COUNTS = 1 << 18;
/** Ranks per axis in the "top" view of the rank-pair heatmap. */
export const TOP_RANKS = 8;

function toF32(v: unknown): Float32Array {
  if (v instanceof Float32Array) return v;
  if (ArrayBuffer.isView(v)) return Float32Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return Float32Array.from(v as number[]);
  if (v && typeof v === 'object') {
    const o = v as Record<string, number>;
    const n = Object.keys(o).length;
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = Number(o[i] ?? 0);
    return out;
  }
  return new Float32Array(0);
}

/** The all-experts statistics with typed arrays restored (postMessage / JSON may turn them into arrays or objects). */
export function coerceExpertOutputs(s: ExpertOutputStats): ExpertOutputStats {
  return {
    numLayers: s.numLayers,
    numTokens: s.numTokens,
    numExperts: s.numExperts,
    norms: toF32(s.norms),
    meanAngularSimilarity: toF32(s.meanAngularSimilarity),
  };
}

/** Derives both analyses from a trace; null when the trace has no expertOutputs. */
export function summarizeExpertOutputs(result: TraceResult): ExpertOutputsSummary | null {
  if (!result.expertOutputs) return null;
  const stats = coerceExpertOutputs(result.expertOutputs);
  const R = result.routing;
  const { numLayers: L, numTokens: T, numExperts: E } = stats;
  const summary: ExpertOutputsSummary = { numLayers: L, numTokens: T, numExperts: E, topK: R.topK, diversity: [], normScore: null };
  if (stats.meanAngularSimilarity.length === L * T) summary.diversity = similarityByDepth(stats);
  if (stats.norms.length !== L * T * E) summary.normScoreNote = 'The expert output norms of this trace are incomplete.';
  else if (!R.probs) summary.normScoreNote = 'This trace has no full gate distribution (routing.probs), which the score ranks need. Run the analysis again.';
  else {
    try {
      summary.normScore = normVersusScore(R, stats);
    } catch (e) {
      summary.normScoreNote = (e as Error).message;
    }
  }
  return summary;
}

function packSummary(s: ExpertOutputsSummary): ExpertOutputsSaved['summary'] {
  const { normScore, ...rest } = s;
  const E2 = s.numExperts * s.numExperts;
  if (!normScore) return rest;
  if (normScore.length * E2 > MAX_PERSISTED_COUNTS)
    return { ...rest, normScoreNote: 'The rank-pair counts were too large to keep when the panel was reloaded. Run the analysis again to see them.' };
  const buf = new Float32Array(normScore.length * E2);
  normScore.forEach((l, i) => buf.set(l.counts, i * E2));
  return { ...rest, counts: packArray(buf), top: normScore.map((l) => l.topScoredHasLargestNorm), inTopK: normScore.map((l) => l.topScoredNormInTopK) };
}

function unpackSummary(p: NonNullable<ExpertOutputsSaved['summary']>): ExpertOutputsSummary {
  const { counts, top, inTopK, ...rest } = p;
  let normScore: NormScoreLayer[] | null = null;
  if (counts && top && inTopK) {
    const E2 = p.numExperts * p.numExperts;
    const buf = unpackArray(counts) as Float32Array;
    normScore = top.map((t, l) => ({
      layer: l,
      counts: Array.from(buf.subarray(l * E2, (l + 1) * E2)),
      topScoredHasLargestNorm: t,
      topScoredNormInTopK: inTopK[l] ?? 0,
    }));
  }
  return { ...rest, diversity: rest.diversity ?? [], normScore };
}

export function expertOutputsSection(
  doc: Document,
  parts: { tools: HTMLElement; body: HTMLElement },
  post: (m: TraceViewToHost) => void,
  opts: { baseName: () => string; onChange: () => void; initial?: Partial<Pick<ExpertOutputsSaved, 'layer' | 'ranks'>> },
): ExpertOutputsSection {
  let layer = opts.initial?.layer ?? 0;
  let ranks: 'top' | 'all' = opts.initial?.ranks === 'all' ? 'all' : 'top';
  let summary: ExpertOutputsSummary | null = null;
  let computedFor: TraceResult | null = null;
  let packed: { for: ExpertOutputsSummary; value: ExpertOutputsSaved['summary'] } | null = null;
  let pending = false;
  let rankChart: RankPairUpdate | null = null;
  let shareChart: DepthCurvesUpdate | null = null;
  let diversityChart: DepthCurvesUpdate | null = null;
  let button: HTMLElement | null = null;
  let buttonNote: HTMLElement | null = null;
  let layerSel: { set(v: string): void } | null = null;
  let rankCaption: HTMLElement | null = null;

  const postExport = (m: ExportMessage) => post({ ...m, name: `${opts.baseName()}-${m.name}` });
  const body = parts.body;
  const sectionExport = exportButtons(
    doc,
    {
      name: 'expert-outputs',
      json: () => (summary ? { definitions: DEFINITIONS, ...summary } : null),
    },
    postExport,
  );
  parts.tools.append(sectionExport);

  function destroyCharts(): void {
    for (const c of [rankChart, shareChart, diversityChart]) c?.destroy();
    rankChart = shareChart = diversityChart = null;
  }

  /** Built once and reused for every trace without the analysis (no web-component set-up per trace). */
  let absent: { box: HTMLElement; text: HTMLElement; button: HTMLElement; note: HTMLElement } | null = null;

  function renderAbsent(result: TraceResult): void {
    const R = result.routing;
    const E = R.numExperts;
    const k = R.topK;
    const factor = k > 0 ? E / k : NaN;
    if (!absent) {
      const box = h(doc, 'div', { class: 'eo-absent', 'data-testid': 'expert-outputs-absent' });
      const text = h(doc, 'p', {});
      const row = h(doc, 'div', { class: 'eo-actions' });
      const b = h(doc, 'vscode-button', { 'data-testid': 'analyze-experts', icon: 'run-all' }, 'Run all-experts analysis');
      b.addEventListener('click', () => {
        if (pending) return;
        pending = true;
        syncButton();
        post({ type: 'analyze-experts' });
      });
      const note = h(doc, 'span', { class: 'muted', 'aria-live': 'polite' });
      row.append(b, note);
      box.append(text, row);
      absent = { box, text, button: b, note };
    }
    absent.text.textContent =
      `This trace ran only the ${k} chosen experts per token. The all-experts analysis runs every expert on every token ` +
      `(all ${E} instead of ${k}: about E/k = ${E}/${k} ${Number.isInteger(factor) ? '=' : '≈'} ${Number.isFinite(factor) ? Number(factor.toFixed(1)) : '?'} times the MoE cost of a normal trace) ` +
      "and records each expert's unweighted output, to show whether the router prefers experts with large outputs and how diverse the experts' outputs are at each depth.";
    button = absent.button;
    buttonNote = absent.note;
    body.append(absent.box);
    syncButton();
  }

  function syncButton(): void {
    if (button) {
      button.toggleAttribute('disabled', pending);
      (button as unknown as { disabled?: boolean }).disabled = pending;
    }
    if (buttonNote) buttonNote.textContent = pending ? 'Requested: the trace runs again with every expert…' : '';
  }

  function renderPresent(s: ExpertOutputsSummary): void {
    const { numLayers: L, numExperts: E, numTokens: T, topK: K } = s;
    if (layer >= L || layer < 0) layer = 0;
    const layers = Array.from({ length: L }, (_, i) => i);
    body.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        `Every expert was run on every token: ${T} tokens × ${E} experts × ${L} layers. "Output" means an expert's UNWEIGHTED output, before the router's weight is applied.`,
      ),
    );

    // (a) gate score vs output norm
    const a = h(doc, 'div', { class: 'eo-block', 'data-testid': 'norm-vs-score' });
    const aHead = h(doc, 'div', { class: 'eo-head' });
    const aTools = h(doc, 'div', { class: 'section-tools' });
    aHead.append(h(doc, 'h3', {}, 'Router score vs output norm'), aTools);
    a.append(aHead);
    body.append(a);
    if (!s.normScore) {
      a.append(h(doc, 'p', { class: 'note', 'data-testid': 'norm-vs-score-missing' }, s.normScoreNote ?? 'Not available for this trace.'));
    } else {
      const ns = s.normScore;
      const ls = labeledSelect(
        doc,
        'norm-layer',
        'Layer',
        layers.map((l) => [String(l), `L${l}`]),
        String(layer),
        (v) => selectLayer(Number(v)),
      );
      layerSel = ls;
      const rs = labeledSelect(
        doc,
        'rank-range',
        'Ranks',
        [
          ['top', `top ${Math.min(TOP_RANKS, E)}`],
          ['all', `all ${E}`],
        ],
        ranks,
        (v) => {
          ranks = v === 'all' ? 'all' : 'top';
          rankChart?.setRanks(ranks === 'all' ? 'all' : TOP_RANKS);
          opts.onChange();
        },
      );
      aTools.append(
        ls.wrap,
        rs.wrap,
        exportButtons(
          doc,
          {
            name: 'norm-vs-score',
            svg: () => rankChart?.svg() ?? null,
            csv: () => {
              const rows: number[][] = [];
              for (const l of ns) for (let r = 0; r < E; r++) for (let n = 0; n < E; n++) rows.push([l.layer, r + 1, n + 1, l.counts[r * E + n] ?? 0]);
              return toCsv(['layer', 'score_rank', 'norm_rank', 'tokens'], rows);
            },
            json: () => ({ definition: DEFINITIONS.rankPairs, numTokens: T, numExperts: E, topK: K, layers: ns }),
          },
          postExport,
        ),
      );
      const grid = h(doc, 'div', { class: 'eo-grid' });
      const left = h(doc, 'div', { class: 'eo-panel' });
      const right = h(doc, 'div', { class: 'eo-panel' });
      grid.append(left, right);
      a.append(grid);
      rankCaption = h(doc, 'p', { class: 'eo-panel-title', 'data-testid': 'rank-pair-title' });
      const rankHost = h(doc, 'div', {});
      left.append(rankCaption, rankHost);
      rankChart = rankPairHeatmap(
        rankHost,
        { layer, numExperts: E, numTokens: T, topK: K, counts: ns[layer]!.counts },
        { ranks: ranks === 'all' ? 'all' : TOP_RANKS, size: 280 },
      );
      const shareHead = h(doc, 'div', { class: 'eo-panel-head' });
      shareHead.append(
        h(doc, 'p', { class: 'eo-panel-title' }, 'Share of tokens per layer'),
        exportButtons(
          doc,
          {
            name: 'norm-share-by-layer',
            svg: () => shareChart?.svg() ?? null,
            csv: () =>
              toCsv(
                ['layer', 'top_scored_has_largest_norm', 'top_scored_norm_in_top_k', 'chance_1_over_E', 'chance_k_over_E'],
                ns.map((l) => [l.layer, l.topScoredHasLargestNorm, l.topScoredNormInTopK, 1 / E, K / E]),
              ),
          },
          postExport,
        ),
      );
      const shareHost = h(doc, 'div', {});
      right.append(shareHead, shareHost);
      shareChart = depthCurves(
        shareHost,
        {
          layers,
          series: [
            { key: 'top1', label: 'top-scored expert has the largest norm', values: ns.map((l) => l.topScoredHasLargestNorm) },
            { key: 'topk', label: `its norm is among the ${K} largest`, values: ns.map((l) => l.topScoredNormInTopK) },
          ],
          yLabel: 'share of tokens',
          yDomain: [0, 1],
          refs: [
            { value: 1 / E, label: `chance 1/${E}`, className: 'series-0' },
            { value: K / E, label: `chance ${K}/${E}`, className: 'series-1' },
          ],
        },
        { testid: 'norm-share-by-layer', width: 540, height: 250, selectedLayer: layer, onLayerClick: selectLayer, format: (v) => formatPercent(v) },
      );
      a.append(h(doc, 'p', { class: 'caption', 'data-testid': 'norm-vs-score-definition' }, `${DEFINITIONS.rankPairs} ${DEFINITIONS.share}`));
      updateRankCaption();
    }

    // (b) diversity by depth
    const b = h(doc, 'div', { class: 'eo-block', 'data-testid': 'diversity-section' });
    const bHead = h(doc, 'div', { class: 'eo-head' });
    bHead.append(
      h(doc, 'h3', {}, 'Expert diversity by depth'),
      exportButtons(
        doc,
        {
          name: 'diversity-by-depth',
          svg: () => diversityChart?.svg() ?? null,
          csv: () =>
            toCsv(
              ['layer', 'mean_angular_similarity'],
              s.diversity.map((v, l) => [l, v]),
            ),
        },
        postExport,
      ),
    );
    b.append(bHead);
    body.append(b);
    if (s.diversity.length !== L) {
      b.append(h(doc, 'p', { class: 'note' }, 'The output similarity of this trace is incomplete.'));
    } else {
      const host = h(doc, 'div', {});
      b.append(host);
      diversityChart = depthCurves(
        host,
        {
          layers,
          series: [{ key: 'similarity', label: "mean angular similarity of different experts' outputs", values: s.diversity }],
          yLabel: 'mean angular similarity',
          refs: [{ value: 0.5, label: 'orthogonal (0.5)', className: 'neutral' }],
        },
        { testid: 'diversity-by-depth', width: 640, height: 220, markLast: `last layer (L${L - 1})`, legend: false, format: (v) => v.toFixed(4) },
      );
      b.append(h(doc, 'p', { class: 'caption', 'data-testid': 'diversity-definition' }, DEFINITIONS.diversity));
    }
  }

  function updateRankCaption(): void {
    const l = summary?.normScore?.[layer];
    if (!rankCaption || !l || !summary) return;
    const E = summary.numExperts;
    rankCaption.textContent =
      `Layer ${layer}: the top-scored expert has the largest norm for ${formatPercent(l.topScoredHasLargestNorm)} of tokens (chance ${formatPercent(1 / E)}), ` +
      `a norm among the ${summary.topK} largest for ${formatPercent(l.topScoredNormInTopK)} (chance ${formatPercent(summary.topK / E)}).`;
  }

  function selectLayer(l: number): void {
    const s = summary;
    if (!s?.normScore || !Number.isInteger(l) || l < 0 || l >= s.numLayers) return;
    layer = l;
    layerSel?.set(String(l));
    shareChart?.select(l);
    rankChart?.({ layer: l, numExperts: s.numExperts, numTokens: s.numTokens, topK: s.topK, counts: s.normScore[l]!.counts });
    updateRankCaption();
    opts.onChange();
  }

  function render(result: TraceResult): void {
    destroyCharts();
    if (!summary && absent?.box.parentNode === body && body.childNodes.length === 1) {
      renderAbsent(result); // the common case, a trace after a trace: update the text only
      sectionExport.hidden = true;
      return;
    }
    clear(body);
    button = buttonNote = null;
    layerSel = null;
    rankCaption = null;
    if (summary) renderPresent(summary);
    else renderAbsent(result);
    sectionExport.hidden = !summary;
  }

  return {
    setTrace(result, restored) {
      pending = false;
      if (result !== computedFor) {
        computedFor = result;
        summary = result.expertOutputs ? summarizeExpertOutputs(result) : restored?.summary ? unpackSummary(restored.summary) : null;
        if (restored?.summary && summary && !result.expertOutputs) packed = { for: summary, value: restored.summary };
      }
      render(result);
    },
    requestDone() {
      pending = false;
      syncButton();
    },
    saved() {
      if (summary && packed?.for !== summary) packed = { for: summary, value: packSummary(summary) };
      return { layer, ranks, summary: summary ? packed?.value : undefined };
    },
    summary: () => summary,
    destroy: destroyCharts,
  };
}

export const DEFINITIONS = {
  rankPairs:
    'Rank pairs: per token, rank all experts by gate probability (score rank 1 = highest, from the full softmax) and by the L2 norm of their unweighted output (norm rank 1 = largest). ' +
    'Cell (r, n) counts the tokens where the expert of score rank r has norm rank n; each row sums to the number of tokens, and with no relation between score and norm every cell holds T/E tokens on average. Mass in the top-left corner means the router picks experts with large outputs.',
  share:
    "Share per layer: the fraction of tokens whose top-scored expert also has the largest output norm (chance 1/E), and whose top-scored expert's norm is among the k largest (chance k/E), drawn against those chance levels.",
  diversity:
    "Diversity: for each token and layer, the angular similarity 1 − arccos(cos(o_a, o_b)) / π of every pair of different experts' outputs o_a, o_b, averaged over the pairs and then over the tokens. 1 = the same direction, 0.5 = orthogonal, 0 = opposite; lower similarity means more diverse experts. " +
    '"A Closer Look into Mixture-of-Experts" finds diversity rising with depth, with the last layer an outlier (marked).',
} as const;
