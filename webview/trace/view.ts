/**
 * The trace panel: question, model, answer probabilities, routing map, gate distribution of the clicked
 * cell, entropy sparklines. Knows the protocol (HostToTraceView / TraceViewToHost) but not the page:
 * main.ts wires it to window messages and the real VS Code API; tests and the benchmark drive it directly.
 *
 * The page skeleton (sections, toolbars, selects) is built once; a new trace only updates the charts in
 * place, so rendering a trace touches no web-component set-up and forces no layout.
 */
import { ANSWER_LETTERS, type HostToTraceView, type TracePayload, type TraceResult, type TraceViewToHost } from '../../src/shared/protocol';
import { entropyNormalized, meanEntropyNormalized, tokenRoute } from '../../src/analysis/trace';
import { decoderLayerOfRows } from '../../src/analysis/layers';
import { demoModelLabel } from '../../src/shared/demoLabel';
import { answerBars, type AnswerBarsUpdate } from '../charts/answerBars';
import { entropySparklines, type EntropySparklinesUpdate } from '../charts/entropySparklines';
import { toCsv } from '../charts/export';
import { gateDistribution, type GateDistributionUpdate } from '../charts/gateDistribution';
import { routingMap, type RoutingMapUpdate } from '../charts/routingMap';
import { coerceTraceResult, packRouting, unpackRouting, type PackedRouting } from '../common/arrays';
import { append, clear, h, icon, labeledSelect, measureWidth, observeWidth, section, visibleToken } from '../common/dom';
import { exportButtons } from '../common/exportButtons';
import type { VsCodeApiLike } from '../common/vscode';
import { expertOutputsSection, type ExpertOutputsSaved } from './expertOutputs';
import { expertLensSection, type LensSaved } from './expertLens';

export type TraceViewStatus = 'empty' | 'loading' | 'ready' | 'error';

type PackedPayload = Omit<TracePayload, 'result'> & {
  result: Omit<TraceResult, 'routing' | 'lastLogits' | 'expertOutputs'> & { routing: PackedRouting };
};

export interface TraceViewState {
  v: 1;
  latestRequestId: number;
  status?: TraceViewStatus;
  error?: string;
  payload?: PackedPayload;
  selected?: { layer: number; token: number } | null;
  scrollLeft?: number;
  cellWidth?: number;
  gateOrder?: 'expert' | 'rank';
  entropyScale?: 'full' | 'zoom';
  /** The all-experts analysis section: chosen layer, rank range and the derived numbers (not the raw norms). */
  experts?: ExpertOutputsSaved;
  /** Routing map column width: 'fit' (the panel's width shared by the tokens) or a fixed width. */
  columns?: ColumnMode;
  lens?: LensSaved;
}

type ColumnMode = 'fit' | 'compact' | 'normal' | 'wide';

export interface TraceView {
  handle(message: HostToTraceView): void;
  status(): TraceViewStatus;
  /** The routing map of the current trace (benchmark and tests). */
  map(): RoutingMapUpdate | null;
  /** Writes pending state now (called on pagehide / visibility change, and by tests). */
  flushState(): void;
  destroy(): void;
}

const CELL_WIDTHS: Record<string, number> = { compact: 8, normal: 16, wide: 26 };
/** 'fit': columns share the panel's width, but never narrower than this (then the map scrolls). */
const FIT_MIN_WIDTH = 6;
const FIT_MAX_WIDTH = 26;
const MAP_LABEL_WIDTH = 36;

/** The column width that fits `tokens` columns into `available` CSS px, within [FIT_MIN_WIDTH, FIT_MAX_WIDTH]. */
export function fitCellWidth(available: number, tokens: number): number {
  return Math.max(FIT_MIN_WIDTH, Math.min(FIT_MAX_WIDTH, Math.floor((available - MAP_LABEL_WIDTH - 4) / Math.max(1, tokens))));
}

export function createTraceView(container: HTMLElement, api: VsCodeApiLike<TraceViewState>): TraceView {
  const doc = container.ownerDocument;
  const post = (m: TraceViewToHost) => api.postMessage(m);

  let status: TraceViewStatus = 'empty';
  let latestRequestId = -Infinity;
  let payload: TracePayload | null = null;
  let packed: { for: TracePayload; value: PackedPayload } | null = null;
  let errorText: string | undefined;
  let selected: { layer: number; token: number } | null = null;
  let cellWidth = 16;
  let columns: ColumnMode = 'fit';
  let gateOrder: 'expert' | 'rank' = 'expert';
  let entropyScale: 'full' | 'zoom' = 'full';
  let lastHover: number | null = null;
  let saveTimer: ReturnType<typeof setTimeout> | undefined;
  let probsLostOnReload = false;

  let map: RoutingMapUpdate | null = null;
  let bars: AnswerBarsUpdate | null = null;
  let sparks: EntropySparklinesUpdate | null = null;
  let gate: GateDistributionUpdate | null = null;

  // --- skeleton (built once) ---------------------------------------------------------------------------
  clear(container);
  const root = h(doc, 'main', { class: 'trace-view', 'data-testid': 'trace-view', 'data-state': 'empty' });
  const header = h(doc, 'header', { class: 'tv-header', hidden: true });
  const emptyEl = h(doc, 'section', { class: 'empty-state', 'data-testid': 'trace-empty' });
  append(
    emptyEl,
    icon(doc, 'symbol-class'),
    h(doc, 'p', {}, 'No trace yet.'),
    h(doc, 'p', { class: 'muted' }, 'Select an MMLU question and run "MoE: Trace selection" (Ctrl+Alt+M) to see which experts every token is routed to.'),
  );
  const loadingEl = h(doc, 'section', { class: 'tv-loading', 'data-testid': 'trace-loading', hidden: true });
  const loadingLabel = h(doc, 'p', { class: 'muted' }, 'Tracing…');
  loadingEl.append(h(doc, 'vscode-progress-bar', { indeterminate: true, 'aria-label': 'Tracing' }), loadingLabel);
  const errorEl = h(doc, 'section', { class: 'error-box', hidden: true, role: 'alert' });
  const errorHead = h(doc, 'div', { class: 'error-head' });
  errorHead.append(icon(doc, 'error'), h(doc, 'strong', {}, 'The trace failed'));
  const errorMsg = h(doc, 'div', { class: 'message', 'data-testid': 'trace-error' });
  const retry = h(doc, 'vscode-button', { 'data-testid': 'retry-button', icon: 'refresh' }, 'Retry');
  retry.addEventListener('click', () => post({ type: 'retry' }));
  errorEl.append(errorHead, errorMsg, retry);
  const content = h(doc, 'div', { class: 'tv-content', hidden: true });
  root.append(header, loadingEl, errorEl, emptyEl, content);
  container.append(root);

  const base = () => `trace-${payload?.requestId ?? 0}`;

  // answer probabilities
  const ans = section(content, 'Answer probabilities', 'checklist', 'answer-section');
  ans.tools.append(
    exportButtons(
      doc,
      {
        name: 'answer',
        svg: () => bars?.svg() ?? null,
        csv: () => {
          const r = payload!.result;
          return toCsv(
            ['letter', 'probability', 'log_prob_full_vocab', 'gold'],
            ANSWER_LETTERS.map((l, i) => [l, r.answerProbs[i], r.answerLogProbs[i], payload!.question?.gold === l ? 'true' : '']),
          );
        },
      },
      (m) => post({ ...m, name: `${base()}-${m.name}` }),
    ),
  );

  // routing map
  const rm = section(content, 'Routing map', 'type-hierarchy', 'routing-section', [
    labeledSelect(
      doc,
      'rm-zoom',
      'Columns',
      [
        ['fit', 'fit the panel'],
        ['compact', 'compact'],
        ['normal', 'normal'],
        ['wide', 'wide'],
      ],
      columns,
      (v) => {
        columns = v === 'compact' || v === 'normal' || v === 'wide' ? v : 'fit';
        if (columns !== 'fit') cellWidth = CELL_WIDTHS[columns] ?? 16;
        if (payload) mountMap();
        scheduleSave();
      },
    ).wrap,
  ]);
  const answerButton = h(
    doc,
    'vscode-button',
    { secondary: true, 'data-testid': 'rm-answer', icon: 'target', title: 'Scroll to the scored answer position and select it' },
    'Answer position',
  );
  answerButton.addEventListener('click', () => goToAnswer());
  rm.tools.prepend(answerButton);
  rm.tools.append(
    exportButtons(
      doc,
      {
        name: 'routing',
        canvas: () => map?.renderFull(2) ?? null,
        csv: () => routingCsv(),
        json: () => ({ tokens: payload!.result.tokens, layerOfRow: layerOfRow(), routing: { ...payload!.result.routing, probs: undefined } }),
      },
      (m) => post({ ...m, name: `${base()}-${m.name}` }),
    ),
  );
  const legend = h(doc, 'p', { class: 'caption' });
  const mapHost = h(doc, 'div', { class: 'rm-host' });
  rm.body.append(legend, mapHost);

  // gate distribution
  const gd = section(content, 'Gate distribution', 'graph', 'gate-section', [
    labeledSelect(
      doc,
      'gate-order',
      'Order',
      [
        ['expert', 'expert id'],
        ['rank', 'probability'],
      ],
      gateOrder,
      (v) => {
        gateOrder = v === 'rank' ? 'rank' : 'expert';
        gate?.setOrder(gateOrder);
        scheduleSave();
      },
    ).wrap,
  ]);
  const gateExport = exportButtons(
    doc,
    {
      name: 'gate',
      svg: () => gate?.svg() ?? null,
      csv: () => gateCsv(),
    },
    (m) => post({ ...m, name: `${base()}-${m.name.replace(/^gate/, `gate-L${selected ? layerOfRow()[selected.layer] : ''}-T${selected?.token}`)}` }),
  );
  gd.tools.append(gateExport);
  gd.body.setAttribute('data-testid', 'gate-details');

  // expert lens
  const lensSec = section(content, 'Expert lens', 'eye', 'lens-section');
  const lens = expertLensSection(doc, lensSec, (m) => post(m), {
    baseName: base,
    onChange: () => scheduleSave(),
    onCellPick: (layer, token) => selectCell(layer, token, true),
  });

  // entropy
  const en = section(content, 'Gate entropy per layer', 'pulse', 'entropy-section', [
    labeledSelect(
      doc,
      'entropy-scale',
      'Scale',
      [
        ['full', '0 – 1'],
        ['zoom', 'zoom'],
      ],
      entropyScale,
      (v) => {
        entropyScale = v === 'zoom' ? 'zoom' : 'full';
        sparks?.setScale(entropyScale);
        scheduleSave();
      },
    ).wrap,
  ]);
  en.tools.append(
    exportButtons(
      doc,
      {
        name: 'entropy',
        svg: () => sparks?.svg() ?? null,
        csv: () => {
          const r = payload!.result;
          const R = r.routing;
          const normalized = entropyNormalized(R);
          const rows: (string | number)[][] = [];
          for (let l = 0; l < R.numLayers; l++)
            for (let t = 0; t < R.numTokens; t++)
              rows.push([layerOfRow()[l]!, t, r.tokens[t]?.text ?? '', R.entropy[l * R.numTokens + t]!, normalized[l]![t]!]);
          return toCsv(['layer', 'token', 'token_text', 'entropy_nats', 'entropy_normalised'], rows);
        },
      },
      (m) => post({ ...m, name: `${base()}-${m.name}` }),
    ),
  );
  const entropyCaption = h(doc, 'p', { class: 'caption' });
  const sparkHost = h(doc, 'div', {});
  en.body.append(entropyCaption, sparkHost);

  // expert outputs (all-experts analysis mode)
  const eo = section(content, 'Expert outputs (all experts)', 'layers', 'expert-outputs-section');
  const savedEarly = api.getState();
  const experts = expertOutputsSection(doc, eo, (m) => post(m), {
    baseName: base,
    onChange: () => scheduleSave(),
    initial: savedEarly?.v === 1 ? savedEarly.experts : undefined,
  });
  let restoredExperts: ExpertOutputsSaved | null = null;
  let restoredLens: LensSaved | null = null;

  function setStatus(s: TraceViewStatus): void {
    status = s;
    root.setAttribute('data-state', s);
    emptyEl.hidden = s !== 'empty';
    loadingEl.hidden = s !== 'loading';
    errorEl.hidden = s !== 'error';
    // The previous trace stays visible (dimmed) while a new one loads.
    content.hidden = payload === null || s === 'empty' || s === 'error';
    content.classList.toggle('is-stale', s === 'loading');
    header.hidden = payload === null || s === 'error';
  }

  // --- persistence (deferred: never on the render path) ---------------------------------------------
  function packPayload(p: TracePayload): PackedPayload {
    const { routing, lastLogits: _l, expertOutputs: _e, ...rest } = p.result;
    return { ...p, result: { ...rest, routing: packRouting(routing) } };
  }

  function flushState(): void {
    clearTimeout(saveTimer);
    saveTimer = undefined;
    if (payload && packed?.for !== payload) packed = { for: payload, value: packPayload(payload) };
    api.setState({
      v: 1,
      latestRequestId: Number.isFinite(latestRequestId) ? latestRequestId : -1,
      status,
      error: errorText,
      payload: payload ? packed?.value : undefined,
      selected,
      scrollLeft: map?.scrollLeft() ?? 0,
      cellWidth,
      columns,
      lens: payload ? lens.saved() : undefined,
      gateOrder,
      entropyScale,
      experts: payload ? experts.saved() : undefined,
    });
  }

  function scheduleSave(): void {
    clearTimeout(saveTimer);
    saveTimer = setTimeout(flushState, 300);
  }

  // --- rendering --------------------------------------------------------------------------------------
  function renderHeader(p: TracePayload): void {
    clear(header);
    const r = p.result;
    const m = r.model;
    const titleRow = h(doc, 'div', { class: 'tv-title-row' });
    if (p.question?.subject) titleRow.append(h(doc, 'span', { class: 'chip', 'data-testid': 'question-subject' }, p.question.subject.replace(/_/g, ' ')));
    if (p.question?.gold) titleRow.append(h(doc, 'span', { class: 'chip outline', 'data-testid': 'question-gold' }, `gold: ${p.question.gold}`));
    titleRow.append(h(doc, 'span', { class: 'muted' }, `${r.tokens.length} tokens · request ${p.requestId}`));
    const qText = p.question?.text ?? r.text ?? r.tokens.map((t) => t.text).join('');
    const q = h(doc, 'div', { class: 'question-text', 'data-testid': 'question-text', tabindex: 0, 'aria-label': 'Question text' }, qText);
    const info = h(doc, 'div', { class: 'model-info', 'data-testid': 'model-info' });
    const provider = `${m.executionProvider.toUpperCase()}${m.providerNote ? ` (${m.providerNote})` : ''}`;
    append(
      info,
      h(
        doc,
        'span',
        { class: 'chip outline', 'data-testid': 'model-family' },
        `${m.family}${m.modelType && m.modelType !== m.family ? ` · ${m.modelType}` : ''}`,
      ),
      h(
        doc,
        'span',
        { 'data-testid': 'model-layers' },
        m.numDecoderLayers && m.numDecoderLayers !== m.numLayers
          ? `${m.numLayers} MoE layers (${layerOfRow().join(', ')}) of ${m.numDecoderLayers} × ${m.numExperts} experts, top-${m.topK}; ` +
              `no routing (dense or other layers): ${withoutRouting(m.numDecoderLayers, layerOfRow()).join(', ')}`
          : `${m.numLayers} layers × ${m.numExperts} experts, top-${m.topK}`,
      ),
      ...(m.routing
        ? [h(doc, 'span', { class: 'muted', 'data-testid': 'model-routing' }, `${m.routing.scoreFunction} router · weight: ${m.routing.appliedWeight}`)]
        : []),
      h(doc, 'span', { class: 'muted' }, m.normTopKProb ? 'weights renormalised' : 'weights not renormalised (sum < 1)'),
      h(doc, 'span', { 'data-testid': 'execution-provider' }, `execution provider: ${provider}`),
      h(doc, 'span', { class: 'muted' }, `${m.dtype} · ${Math.round(r.ms)} ms`),
      ...(m.precision
        ? [
            h(
              doc,
              'span',
              { 'data-testid': 'precision', title: m.precisionWhy ?? '' },
              `precision: ${m.precision}${m.precisionCheck ? ` · vs fp32: ${(m.precisionCheck.setAgreement * 100).toFixed(1)}% top-k sets, ${(m.precisionCheck.answerAgreement * 100).toFixed(0)}% answers (${m.precisionCheck.prompts} prompts)` : ''}`,
            ),
          ]
        : []),
      h(doc, 'span', { class: 'muted model-path', title: m.path }, m.path),
    );
    header.append(titleRow, q, info);
    if (m.demo) {
      const demo = h(doc, 'div', { class: 'warning', 'data-testid': 'demo-note', role: 'note' });
      append(demo, icon(doc, 'warning'), h(doc, 'span', {}, m.demo.trained ? m.demo.note : `${demoModelLabel(false)}. ${m.demo.note ?? ''}`.trim()));
      header.append(demo);
    }
  }

  /** Decoder layers with no routing row (dense, or another kind of layer): shown as such, never as routing. */
  function withoutRouting(decoderLayers: number, rows: readonly number[]): number[] {
    return Array.from({ length: decoderLayers }, (_, i) => i).filter((i) => !rows.includes(i));
  }

  /** The decoder layer of each routing row: what every label and export shows (dense layers have no row). */
  function layerOfRow(): number[] {
    return payload ? decoderLayerOfRows({ numLayers: payload.result.routing.numLayers, moeLayers: payload.result.model.moeLayers }) : [];
  }

  function tokenTexts(): string[] {
    return payload ? payload.result.tokens.map((t) => t.text) : [];
  }

  function routingCsv(): string {
    const r = payload!.result.routing;
    const toks = tokenTexts();
    const rows: (string | number)[][] = [];
    for (let l = 0; l < r.numLayers; l++)
      for (let t = 0; t < r.numTokens; t++)
        for (let s = 0; s < r.topK; s++) {
          const i = (l * r.numTokens + t) * r.topK + s;
          rows.push([layerOfRow()[l]!, t, toks[t] ?? '', s, r.topExperts[i]!, r.topWeights[i]!]);
        }
    return toCsv(['layer', 'token', 'token_text', 'slot', 'expert', 'weight'], rows);
  }

  function gateCsv(): string {
    const R = payload!.result.routing;
    if (!selected || !R.probs) return toCsv(['expert', 'probability', 'chosen', 'weight'], []);
    const { layer, token } = selected;
    const E = R.numExperts;
    const { experts: chosen, weights } = tokenRoute(R, layer, token);
    const probs = R.probs.subarray((layer * R.numTokens + token) * E, (layer * R.numTokens + token + 1) * E);
    return toCsv(
      ['expert', 'probability', 'chosen', 'weight'],
      Array.from(probs, (pr, e) => [e, pr, chosen.includes(e) ? 'true' : '', chosen.includes(e) ? weights[chosen.indexOf(e)]! : '']),
    );
  }

  function effectiveCellWidth(): number {
    return columns === 'fit' ? fitCellWidth(measureWidth(mapHost, 600), payload!.result.routing.numTokens) : cellWidth;
  }

  /** A cell picked in the routing map or the lens: the gate chart and the lens's matrix follow. */
  function selectCell(layer: number, token: number, reveal = false): void {
    selected = { layer, token };
    map?.select(selected);
    if (reveal) map?.highlightToken(token, true);
    renderGate();
    lens.setSelectedToken(token);
    scheduleSave();
  }

  /** The scored position (the prompt's last token, "Answer:"): scrolled into view and selected in the last layer. */
  function goToAnswer(): void {
    if (!payload) return;
    const R = payload.result.routing;
    selectCell(R.numLayers - 1, R.numTokens - 1, true);
  }

  let mountedWidth = -1;
  function mountMap(): void {
    map?.destroy();
    const r = payload!.result;
    mountedWidth = effectiveCellWidth();
    map = routingMap(
      mapHost,
      { routing: r.routing, tokens: tokenTexts(), layerOfRow: layerOfRow() },
      {
        cellWidth: mountedWidth,
        onCellClick: (layer, token) => selectCell(layer, token),
        onTokenHover: (t) => hoverToken(t, 'map'),
        onTokenActivate: (t) => post({ type: 'reveal-token', index: t }),
      },
    );
    if (selected) map.select(selected);
    mapHost.querySelector('.rm-scroll')?.addEventListener('scroll', scheduleSave, { passive: true });
  }

  function renderCharts(p: TracePayload): void {
    const r = p.result;
    const R = r.routing;
    const answerData = { probs: r.answerProbs, gold: p.question?.gold ?? null, logProbs: r.answerLogProbs, scoring: r.model.answerScoring?.method };
    if (bars) bars(answerData);
    else bars = answerBars(ans.body, answerData);

    legend.textContent =
      `Columns are tokens, rows are layers. Each cell shows the ${R.topK} experts the token was routed to in that layer, ` +
      'one stripe per expert (colour = expert id, width ∝ gate weight). Hover for details; click or press Enter for the full gate distribution.';
    // A new trace may have another token count: in 'fit' mode that is another column width.
    if (map && mountedWidth === effectiveCellWidth()) map({ routing: R, tokens: tokenTexts(), layerOfRow: layerOfRow() });
    else mountMap();
    if (selected) map!.select(selected);

    renderGate();

    entropyCaption.textContent =
      `Normalised entropy H / ln ${R.numExperts} of each token's full gate distribution (${r.model.routing?.scoreFunction === 'sigmoid' ? 'sigmoid scores normalised to sum to 1' : 'softmax'}): 1.0 (dashed line) means the router spreads ` +
      `probability evenly over all ${R.numExperts} experts; lower means a more decided router. Grey line: layer mean.`;
    const entropyData = { normalized: entropyNormalized(R), means: meanEntropyNormalized(R), numExperts: R.numExperts, layerOfRow: layerOfRow() };
    if (sparks) sparks(entropyData);
    else sparks = entropySparklines(sparkHost, entropyData, { scale: entropyScale, onHoverToken: (t) => hoverToken(t, 'sparkline') });
  }

  function renderGate(): void {
    const body = gd.body;
    clear(body);
    gate?.destroy();
    gate = null;
    gateExport.hidden = true;
    if (!payload) return;
    const R = payload.result.routing;
    if (!selected || selected.layer >= R.numLayers || selected.token >= R.numTokens) {
      body.append(
        h(
          doc,
          'p',
          { class: 'muted', 'data-testid': 'gate-hint' },
          "Click a cell of the routing map (or focus the map and press Enter) to see that token's full gate distribution in that layer.",
        ),
      );
      return;
    }
    const { layer, token } = selected;
    const E = R.numExperts;
    const { experts: chosen, weights, mass, entropyNormalized: ent } = tokenRoute(R, layer, token);
    const probs = R.probs ? R.probs.subarray((layer * R.numTokens + token) * E, (layer * R.numTokens + token + 1) * E) : null;
    const tokText = visibleToken(payload.result.tokens[token]?.text ?? '');
    const title = h(doc, 'p', { class: 'gate-title' });
    append(
      title,
      'Token ',
      h(doc, 'code', { 'data-testid': 'gate-token' }, tokText),
      ` (#${token}), layer ${layerOfRow()[layer]}: top-${R.topK} mass ${mass.toFixed(3)}, entropy ${ent.toFixed(3)} of ln ${E}.`,
    );
    const chartHost = h(doc, 'div', {});
    body.append(title, chartHost);
    const missingReason = probsLostOnReload
      ? 'The full gate distribution of this trace was too large to keep when the panel was reloaded; only the top-k choice is shown. Trace again to see all experts.'
      : undefined;
    gate = gateDistribution(
      chartHost,
      { layer: layerOfRow()[layer] ?? layer, token, tokenText: tokText, numExperts: E, probs, chosen, weights, missingReason },
      {
        order: gateOrder,
        onExpertClick: (e) => {
          lens.setExpert(e, layer);
          lensSec.el.scrollIntoView?.({ block: 'nearest' });
        },
      },
    );
    gateExport.hidden = !probs;
  }

  function hoverToken(t: number | null, from: 'map' | 'sparkline'): void {
    if (from === 'map') sparks?.highlightToken(t);
    else map?.highlightToken(t);
    if (t === lastHover) return;
    lastHover = t;
    post({ type: 'hover-token', index: t });
  }

  function showTrace(p: TracePayload, restoring = false): void {
    payload = { ...p, result: coerceTraceResult(p.result) };
    if (!restoring) {
      selected = null;
      probsLostOnReload = false;
    }
    errorText = undefined;
    renderHeader(payload);
    setStatus('ready');
    renderCharts(payload);
    lens.setTrace(payload.result, restoring ? restoredLens : null);
    experts.setTrace(payload.result, restoring ? restoredExperts : null);
    if (!restoring) {
      // A new question (e.g. the cursor moved to another one): show it from its top, with the map at
      // the scored answer position, instead of keeping the previous trace's scroll positions.
      root.scrollIntoView?.({ block: 'start' });
      doc.defaultView?.scrollTo?.(0, 0);
      const scroller = mapHost.querySelector<HTMLElement>('.rm-scroll');
      if (scroller && scroller.scrollWidth > scroller.clientWidth) map?.scrollLeft(scroller.scrollWidth - scroller.clientWidth);
      scheduleSave();
    }
  }

  // 'fit' columns follow the panel's width.
  const unobserveMap = observeWidth(mapHost, () => {
    if (payload && columns === 'fit' && effectiveCellWidth() !== mountedWidth) {
      const left = map?.scrollLeft() ?? 0;
      mountMap();
      map?.scrollLeft(left);
    }
  });

  // --- restore -----------------------------------------------------------------------------------------
  const saved = api.getState();
  if (saved && saved.v === 1) {
    latestRequestId = saved.latestRequestId;
    cellWidth = saved.cellWidth ?? cellWidth;
    columns = saved.columns ?? (saved.cellWidth ? (Object.keys(CELL_WIDTHS).find((k) => CELL_WIDTHS[k] === saved.cellWidth) as ColumnMode) : 'fit');
    gateOrder = saved.gateOrder ?? gateOrder;
    entropyScale = saved.entropyScale ?? entropyScale;
    if (saved.payload) {
      try {
        selected = saved.selected ?? null;
        probsLostOnReload = !!saved.payload.result.routing.probsOmitted;
        restoredExperts = saved.experts ?? null;
        restoredLens = saved.lens ?? null;
        const restored: TracePayload = { ...saved.payload, result: { ...saved.payload.result, routing: unpackRouting(saved.payload.result.routing) } };
        showTrace(restored, true);
        packed = { for: payload!, value: saved.payload };
        if (saved.scrollLeft) (map as RoutingMapUpdate | null)?.scrollLeft(saved.scrollLeft);
      } catch {
        payload = null;
      }
    }
    if (saved.status === 'error' && saved.error !== undefined) {
      errorText = saved.error;
      errorMsg.textContent = saved.error;
      setStatus('error');
    }
  }
  if (status === 'empty') setStatus('empty');

  // --- messages ----------------------------------------------------------------------------------------
  function handle(msg: HostToTraceView): void {
    switch (msg.type) {
      case 'trace-started':
        if (msg.requestId < latestRequestId) return;
        latestRequestId = msg.requestId;
        loadingLabel.textContent = msg.label ? `Tracing ${msg.label}…` : 'Tracing…';
        setStatus('loading');
        scheduleSave();
        return;
      case 'trace':
        if (msg.payload.requestId < latestRequestId) return; // stale: a newer request was started
        latestRequestId = msg.payload.requestId;
        showTrace(msg.payload);
        return;
      case 'trace-failed':
        if (msg.requestId < latestRequestId) return;
        latestRequestId = msg.requestId;
        errorText = msg.message;
        errorMsg.textContent = msg.message;
        experts.requestDone();
        setStatus('error');
        scheduleSave();
        return;
      case 'highlight-token':
        map?.highlightToken(msg.index, true);
        sparks?.highlightToken(msg.index);
        return;
      case 'theme-changed':
        map?.redraw();
        return;
      case 'lens-expert':
        lens.setExpert(msg.expert, msg.layer);
        lensSec.el.scrollIntoView?.({ block: 'start' });
        return;
    }
  }

  return {
    handle,
    status: () => status,
    map: () => map,
    flushState,
    destroy: () => {
      for (const c of [map, bars, sparks, gate]) c?.destroy();
      experts.destroy();
      lens.destroy();
      unobserveMap();
      clearTimeout(saveTimer);
    },
  };
}
