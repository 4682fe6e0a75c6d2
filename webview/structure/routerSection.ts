/**
 * "Router rows vs expert weights": for the selected layer, each pair of experts' router-row similarity against
 * their all-weights similarity with the least-squares fit, and that fit's R² by depth.
 */
import { depthCurves, type DepthCurvesUpdate } from '../charts/depthCurves';
import { toCsv } from '../charts/export';
import { upperPairs } from '../../src/analysis/pairStats';
import { pairScatter, type PairScatterUpdate } from '../charts/pairScatter';
import { clear, h, measureWidth, section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';
import type { ExpertPair, SectionContext, StructureSection } from './section';

export interface RouterSection extends StructureSection {
  draw(): void;
  /** Draws the selected layer's scatter (in place when the chart exists). */
  render(): void;
  select(layer: number): void;
  highlight(pair: ExpertPair | null): void;
}

export function routerSection(content: HTMLElement, ctx: SectionContext): RouterSection {
  const { doc, model: m } = ctx;
  const E = m.numExperts;
  let scatter: PairScatterUpdate | null = null;
  let r2Chart: DepthCurvesUpdate | null = null;
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
  const scatterCaption = h(doc, 'h3', { 'data-testid': 'router-r2' });
  lHead.append(
    scatterCaption,
    exportButtons(
      doc,
      {
        name: 'router-scatter',
        svg: () => scatter?.svg() ?? null,
        csv: () => {
          const l = ctx.currentLayer();
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
      (msg) => ctx.post({ ...msg, name: `${ctx.base()}-${msg.name}` }),
    ),
  );
  const scatterHost = h(doc, 'div', {});
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
      ctx.post,
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
      { testid: 'r2-by-depth', selectedLayer: ctx.selection.layerId, onLayerClick: ctx.selectLayer, height: 240, width: Math.min(460, ctx.widths.r2) },
    );

  function renderScatter(): void {
    const l = ctx.currentLayer();
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
      if (ctx.selection.hoverPair) scatter.highlight(ctx.selection.hoverPair);
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
      { testid: 'router-scatter', width: Math.min(460, ctx.widths.scatter) },
    );
    if (ctx.selection.hoverPair) scatter.highlight(ctx.selection.hoverPair);
  }

  return {
    measure: () => {
      ctx.widths.scatter = measureWidth(scatterHost, ctx.widths.scatter);
      ctx.widths.r2 = measureWidth(r2Host, ctx.widths.r2);
    },
    draw: () => {
      r2Chart = r2();
    },
    render: renderScatter,
    select: (layer) => r2Chart?.select(layer),
    highlight: (pair) => scatter?.highlight(pair),
    destroy: () => {
      scatter?.destroy();
      r2Chart?.destroy();
      scatter = r2Chart = null;
    },
  };
}
