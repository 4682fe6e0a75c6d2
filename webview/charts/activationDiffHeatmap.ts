/**
 * Change in activation share per (layer, expert) between two runs: rows are layers, columns experts,
 * a diverging colour scale (blue: more used in B, red: less), symmetric around zero. Experts masked in
 * B are crossed out, experts whose router logit B biased are outlined.
 */
import { interpolateRdBu, scaleBand, scaleDiverging, select } from 'd3';
import { clear, h, measureWidth } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

export interface ActivationDiffData {
  numLayers: number;
  numExperts: number;
  /** [layer][expert] B - A share of the layer's assignments. */
  delta: readonly (readonly number[])[];
  masked?: readonly (readonly [number, number])[];
  biased?: readonly (readonly [number, number, number])[];
}

export interface ActivationDiffOptions {
  width?: number;
  onCellClick?: (layer: number, expert: number) => void;
}

export type ActivationDiffUpdate = ChartUpdate<ActivationDiffData> & SvgChart;

/** The colour limit: the largest |delta|, never 0. */
export function diffLimit(delta: readonly (readonly number[])[]): number {
  let max = 0;
  for (const row of delta) for (const v of row) if (Number.isFinite(v)) max = Math.max(max, Math.abs(v));
  return max > 0 ? max : 1e-6;
}

export function activationDiffHeatmap(container: HTMLElement, data: ActivationDiffData, options: ActivationDiffOptions = {}): ActivationDiffUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const L = current.numLayers;
    const E = current.numExperts;
    const width = options.width ?? Math.max(420, measureWidth(container, 900));
    const m = { top: 22, right: 12, bottom: 40, left: 36 };
    const cell = Math.max(4, Math.min(22, (width - m.left - m.right) / E));
    const plotW = cell * E;
    const height = m.top + cell * L + m.bottom;
    const x = scaleBand<number>()
      .domain([...Array(E).keys()])
      .range([m.left, m.left + plotW]);
    const y = scaleBand<number>()
      .domain([...Array(L).keys()])
      .range([m.top, m.top + cell * L]);
    const lim = diffLimit(current.delta);
    // interpolateRdBu runs red -> blue; gains (positive) are blue.
    const colour = scaleDiverging<string>(interpolateRdBu).domain([-lim, 0, lim]);
    const masked = new Set((current.masked ?? []).map(([l, e]) => `${l}:${e}`));
    const biased = new Set((current.biased ?? []).map(([l, e]) => `${l}:${e}`));
    const root = h(doc, 'div', { class: 'diff-chart' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart activation-diff')
      .attr('data-testid', 'activation-diff')
      .attr('width', m.left + plotW + m.right)
      .attr('height', height)
      .attr('viewBox', `0 0 ${m.left + plotW + m.right} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', `Change in activation share for ${L} layers x ${E} experts`);
    svgEl = svg.node();
    const cells: { l: number; e: number; d: number }[] = [];
    for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) cells.push({ l, e, d: current.delta[l]?.[e] ?? 0 });
    const g = svg
      .append('g')
      .selectAll('g')
      .data(cells)
      .join('g')
      .attr('class', 'diff-cell')
      .attr('data-layer', (c) => c.l)
      .attr('data-expert', (c) => c.e)
      .attr('data-masked', (c) => (masked.has(`${c.l}:${c.e}`) ? 'true' : null));
    g.append('rect')
      .attr('x', (c) => x(c.e)!)
      .attr('y', (c) => y(c.l)!)
      .attr('width', x.bandwidth())
      .attr('height', y.bandwidth())
      .attr('fill', (c) => colour(c.d))
      .attr('class', (c) => (biased.has(`${c.l}:${c.e}`) ? 'biased' : null));
    g.filter((c) => masked.has(`${c.l}:${c.e}`))
      .append('path')
      .attr('class', 'masked-mark')
      .attr('d', (c) => {
        const x0 = x(c.e)! + 1;
        const y0 = y(c.l)! + 1;
        const s = cell - 2;
        return `M${x0},${y0}L${x0 + s},${y0 + s}M${x0 + s},${y0}L${x0},${y0 + s}`;
      });
    g.append('title').text(
      (c) =>
        `layer ${c.l}, expert ${c.e}: ${c.d >= 0 ? '+' : '−'}${(100 * Math.abs(c.d)).toFixed(2)} points of the layer's assignments${masked.has(`${c.l}:${c.e}`) ? ' (masked in B)' : ''}${biased.has(`${c.l}:${c.e}`) ? ' (router bias in B)' : ''}`,
    );
    if (options.onCellClick) g.on('click', (_ev, c) => options.onCellClick!(c.l, c.e));
    const axis = svg.append('g').attr('class', 'axis');
    const everyL = L > 24 ? 4 : L > 12 ? 2 : 1;
    for (let l = 0; l < L; l += everyL)
      axis
        .append('text')
        .attr('x', m.left - 4)
        .attr('y', y(l)! + cell / 2)
        .attr('dy', '0.32em')
        .attr('text-anchor', 'end')
        .text(`L${l}`);
    const everyE = cell < 8 ? 8 : cell < 14 ? 4 : 1;
    for (let e = 0; e < E; e += everyE)
      axis
        .append('text')
        .attr('x', x(e)! + cell / 2)
        .attr('y', m.top - 6)
        .attr('text-anchor', 'middle')
        .text(String(e));
    // Legend: the colour ramp with its limits.
    const lg = svg
      .append('g')
      .attr('class', 'legend')
      .attr('transform', `translate(${m.left},${m.top + cell * L + 12})`);
    const steps = 40;
    const lw = Math.min(240, plotW * 0.5);
    for (let i = 0; i < steps; i++)
      lg.append('rect')
        .attr('x', (i * lw) / steps)
        .attr('y', 0)
        .attr('width', lw / steps + 0.5)
        .attr('height', 8)
        .attr('fill', colour(-lim + (2 * lim * i) / (steps - 1)));
    lg.append('text')
      .attr('x', 0)
      .attr('y', 22)
      .text(`−${(100 * lim).toFixed(1)} pt`);
    lg.append('text')
      .attr('x', lw)
      .attr('y', 22)
      .attr('text-anchor', 'end')
      .text(`+${(100 * lim).toFixed(1)} pt`);
    lg.append('text')
      .attr('x', lw + 12)
      .attr('y', 8)
      .text("share of the layer's assignments, B − A; ✕ masked in B");
  }

  render();
  const update = ((next: ActivationDiffData) => {
    current = next;
    render();
  }) as ActivationDiffUpdate;
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
