/**
 * Gate score rank vs output norm rank of one layer (normVersusScore in src/analysis/expertOutputs.ts):
 * cell (r, n) counts the tokens where the expert with the r-th highest gate probability has the n-th
 * largest UNWEIGHTED output norm. Every row sums to the number of tokens; with no relation between score
 * and norm each cell holds T/E tokens on average. A router that prefers large-norm experts puts its mass
 * near the top-left of the diagonal.
 *
 * Shows the top `ranks` x `ranks` corner (default 8) or all E x E ranks; the top-left k x k block (the ranks
 * the router actually uses) is outlined, the diagonal (score rank = norm rank) drawn with a thin border.
 * Cell opacity: count / the largest count shown. Counts are written in the cells when they fit.
 */
import { select } from 'd3';
import { clear, h } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

export interface RankPairData {
  layer: number;
  numExperts: number;
  numTokens: number;
  topK: number;
  /** counts[r * E + n], ranks from 0 (NormScoreLayer.counts). */
  counts: ArrayLike<number>;
}

export interface RankPairOptions {
  /** Ranks shown per axis: a number (default 8, capped at E) or 'all'. */
  ranks?: number | 'all';
  /** Side of the cell area in CSS px (default 300). */
  size?: number;
}

export type RankPairUpdate = ChartUpdate<RankPairData> & SvgChart & { setRanks(ranks: number | 'all'): void };

let instance = 0;

export function rankPairHeatmap(container: HTMLElement, data: RankPairData, options: RankPairOptions = {}): RankPairUpdate {
  const doc = container.ownerDocument;
  const uid = `rp${++instance}`;
  let current = data;
  let ranks = options.ranks ?? 8;
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const E = current.numExperts;
    const T = current.numTokens;
    const N = Math.max(1, Math.min(E, ranks === 'all' ? E : ranks));
    const side = options.size ?? 300;
    const cw = side / N;
    const gap = cw >= 6 ? 1 : 0;
    const m = { top: 34, right: 12, bottom: 62, left: 48 };
    const width = m.left + side + m.right;
    const height = m.top + side + m.bottom;
    const cells: { r: number; n: number; c: number }[] = [];
    let maxC = 0;
    for (let r = 0; r < N; r++)
      for (let n = 0; n < N; n++) {
        const c = Number(current.counts[r * E + n] ?? 0);
        cells.push({ r, n, c });
        if (c > maxC) maxC = c;
      }
    const chance = E ? T / E : 0;
    const root = h(doc, 'div', { class: 'rank-pair' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart rank-pair-chart')
      .attr('data-testid', 'rank-pair-heatmap')
      .attr('data-layer', current.layer)
      .attr('data-ranks', N)
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', `Layer ${current.layer}: tokens per (gate score rank, output norm rank), top ${N} of ${E} ranks, ${T} tokens`);
    svgEl = svg.node();
    const grad = svg.append('defs').append('linearGradient').attr('id', `${uid}-legend`);
    grad.append('stop').attr('offset', '0%').attr('class', 'legend-stop').attr('stop-opacity', 0.04);
    grad.append('stop').attr('offset', '100%').attr('class', 'legend-stop').attr('stop-opacity', 0.95);

    const step = N > 32 ? 8 : N > 16 ? 4 : 1;
    const ticks = Array.from({ length: N }, (_, i) => i).filter((i) => i % step === 0 || (N <= 16 && i === N - 1));
    const axis = svg.append('g').attr('class', 'axis');
    axis
      .selectAll('text.xt')
      .data(ticks)
      .join('text')
      .attr('class', 'xt')
      .attr('x', (i) => m.left + i * cw + cw / 2)
      .attr('y', m.top - 6)
      .attr('text-anchor', 'middle')
      .text((i) => String(i + 1));
    axis
      .selectAll('text.yt')
      .data(ticks)
      .join('text')
      .attr('class', 'yt')
      .attr('x', m.left - 5)
      .attr('y', (i) => m.top + i * cw + cw / 2)
      .attr('dy', '0.32em')
      .attr('text-anchor', 'end')
      .text((i) => String(i + 1));
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('x', m.left + side / 2)
      .attr('y', 11)
      .attr('text-anchor', 'middle')
      .text('output norm rank (1 = largest)');
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('transform', `translate(12,${m.top + side / 2}) rotate(-90)`)
      .attr('text-anchor', 'middle')
      .text('gate score rank (1 = highest)');

    svg.append('rect').attr('class', 'matrix-bg').attr('x', m.left).attr('y', m.top).attr('width', side).attr('height', side);
    const g = svg.append('g').attr('class', 'cells');
    g.selectAll('rect')
      .data(cells)
      .join('rect')
      .attr('class', (d) => (d.r === d.n ? 'rp-cell diag' : 'rp-cell'))
      .attr('data-testid', 'rank-pair-cell')
      .attr('data-score-rank', (d) => d.r)
      .attr('data-norm-rank', (d) => d.n)
      .attr('data-count', (d) => d.c)
      .attr('x', (d) => m.left + d.n * cw)
      .attr('y', (d) => m.top + d.r * cw)
      .attr('width', Math.max(0.5, cw - gap))
      .attr('height', Math.max(0.5, cw - gap))
      .attr('fill-opacity', (d) => (maxC > 0 ? (0.04 + 0.91 * (d.c / maxC)).toFixed(3) : '0'))
      .append('title')
      .text(
        (d) => `score rank ${d.r + 1}, norm rank ${d.n + 1}: ${d.c} of ${T} tokens (${T ? ((100 * d.c) / T).toFixed(1) : '0'}%; chance ${chance.toFixed(1)})`,
      );
    if (cw >= 26) {
      g.selectAll('text')
        .data(cells)
        .join('text')
        .attr('class', (d) => (maxC > 0 && d.c / maxC > 0.55 ? 'cell-value strong' : 'cell-value'))
        .attr('x', (d) => m.left + d.n * cw + (cw - gap) / 2)
        .attr('y', (d) => m.top + d.r * cw + (cw - gap) / 2)
        .attr('dy', '0.32em')
        .attr('text-anchor', 'middle')
        .text((d) => String(d.c));
    }
    const K = Math.min(current.topK, N);
    if (K > 0 && K < N) {
      svg
        .append('rect')
        .attr('class', 'topk-emphasis')
        .attr('data-testid', 'topk-emphasis')
        .attr('x', m.left - 1)
        .attr('y', m.top - 1)
        .attr('width', K * cw + 1)
        .attr('height', K * cw + 1);
    }

    const ly = m.top + side + 12;
    const lw = Math.min(160, side * 0.5);
    const lg = svg.append('g').attr('class', 'legend').attr('transform', `translate(${m.left},${ly})`);
    lg.append('text').attr('x', 0).attr('y', 5).attr('dy', '0.32em').text('0');
    lg.append('rect').attr('class', 'legend-ramp').attr('x', 10).attr('y', 0).attr('width', lw).attr('height', 10).attr('fill', `url(#${uid}-legend)`);
    lg.append('text')
      .attr('x', lw + 14)
      .attr('y', 5)
      .attr('dy', '0.32em')
      .text(`${maxC} tokens`);
    lg.append('text')
      .attr('x', 0)
      .attr('y', 26)
      .text(`${T} tokens per row · chance ${chance.toFixed(1)} per cell (T/E)`);
    lg.append('text')
      .attr('x', 0)
      .attr('y', 40)
      .text(K > 0 && K < N ? `outlined: the top-${K} block (ranks the router uses)` : `showing ranks 1–${N} of ${E}`);
  }

  render();
  const update = ((next: RankPairData) => {
    current = next;
    render();
  }) as RankPairUpdate;
  update.setRanks = (r) => {
    ranks = r;
    render();
  };
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
