/**
 * Per-expert accuracy, one strip per layer: each dot is an expert placed at its accuracy (over the
 * questions whose answer-position routing used it); dot area and opacity grow with the number of
 * questions that accuracy rests on, so small-sample experts do not dominate the eye. Hover (and the
 * native tooltip) shows the count. Reference lines: overall (micro) accuracy and chance (25%).
 */
import { max, scaleLinear, scaleSqrt, select } from 'd3';
import { clear, formatPercent, h, measureWidth } from '../common/dom';
import { expertColor } from './palette';
import { verticalGrid } from './gridlines';
import type { ChartUpdate, SvgChart } from './types';

export interface ExpertAccuracyStripData {
  layers: readonly { layer: number; accuracy: readonly (number | null)[]; count: readonly number[] }[];
  numExperts: number;
  /** Overall accuracy, as a reference line. */
  reference?: number;
  /** The decoder layer of each row (src/analysis/layers.ts); absent: row i is layer i. */
  layerOfRow?: readonly number[];
}

export interface ExpertAccuracyStripOptions {
  width?: number;
  onHover?: (d: { layer: number; expert: number; accuracy: number; count: number } | null) => void;
  onClick?: (layer: number, expert: number) => void;
}

export type ExpertAccuracyStripUpdate = ChartUpdate<ExpertAccuracyStripData> & SvgChart;

export function expertAccuracyStrip(
  container: HTMLElement,
  data: ExpertAccuracyStripData,
  options: ExpertAccuracyStripOptions = {},
): ExpertAccuracyStripUpdate {
  const doc = container.ownerDocument;
  let current = data;
  /** Rows are labelled by decoder layer: a model with dense layers has fewer rows than layers. */
  const layerOf = (row: number): number => current.layerOfRow?.[row] ?? row;
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const layers = current.layers.slice().sort((a, b) => a.layer - b.layer);
    const width = options.width ?? Math.max(360, Math.min(1000, measureWidth(container, 760)));
    const rowH = 24;
    const m = { top: 22, right: 70, bottom: 26, left: 40 };
    const height = m.top + layers.length * rowH + m.bottom;
    const x = scaleLinear()
      .domain([0, 1])
      .range([m.left, width - m.right]);
    const maxCount = max(layers, (l) => max(l.count)) ?? 1;
    const r = scaleSqrt()
      .domain([0, Math.max(1, maxCount)])
      .range([1.5, 7]);
    const opacity = scaleSqrt()
      .domain([0, Math.max(1, maxCount)])
      .range([0.25, 0.9]);
    const root = h(doc, 'div', { class: 'strip-chart' });
    const hoverLine = h(
      doc,
      'p',
      { class: 'caption strip-hover', 'data-testid': 'strip-hover', 'aria-live': 'polite' },
      'Hover a dot to see the expert, its accuracy and the number of questions it rests on.',
    );
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart strip')
      .attr('data-testid', 'expert-accuracy-strip')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', 'Per-expert accuracy per layer');
    svgEl = svg.node();
    const axis = svg.append('g').attr('class', 'axis');
    verticalGrid(axis, [0, 0.25, 0.5, 0.75, 1], x, m.top - 4, height - m.bottom, m.top - 8, (t) => `${t * 100}%`);
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('x', (m.left + width - m.right) / 2)
      .attr('y', height - 6)
      .attr('text-anchor', 'middle')
      .text('per-expert accuracy (dot size and opacity: number of questions)');
    svg
      .append('line')
      .attr('class', 'chance-line')
      .attr('x1', x(0.25))
      .attr('x2', x(0.25))
      .attr('y1', m.top - 4)
      .attr('y2', height - m.bottom);
    if (current.reference !== undefined) {
      svg
        .append('line')
        .attr('class', 'ref-line')
        .attr('x1', x(current.reference))
        .attr('x2', x(current.reference))
        .attr('y1', m.top - 4)
        .attr('y2', height - m.bottom);
    }
    const rows = svg
      .append('g')
      .selectAll('g.strip-row')
      .data(layers)
      .join('g')
      .attr('class', 'strip-row')
      .attr('data-testid', 'strip-row')
      .attr('data-layer', (l) => l.layer)
      .attr('transform', (_l, i) => `translate(0,${m.top + i * rowH})`);
    rows
      .append('line')
      .attr('class', 'strip-base')
      .attr('x1', m.left)
      .attr('x2', width - m.right)
      .attr('y1', rowH / 2)
      .attr('y2', rowH / 2);
    rows
      .append('text')
      .attr('class', 'axis')
      .attr('x', m.left - 6)
      .attr('y', rowH / 2)
      .attr('dy', '0.32em')
      .attr('text-anchor', 'end')
      .text((l) => `L${layerOf(l.layer)}`);
    rows
      .append('text')
      .attr('class', 'axis')
      .attr('x', width - m.right + 6)
      .attr('y', rowH / 2)
      .attr('dy', '0.32em')
      .text((l) => `${l.accuracy.filter((a) => a !== null).length} used`);
    rows.each(function (l) {
      const pts = l.accuracy
        .map((a, e) => (a === null || a === undefined ? null : { layer: l.layer, expert: e, accuracy: a, count: Number(l.count[e] ?? 0) }))
        .filter((p): p is { layer: number; expert: number; accuracy: number; count: number } => p !== null)
        .sort((a, b) => b.count - a.count);
      select(this)
        .selectAll('circle')
        .data(pts)
        .join('circle')
        .attr('class', 'dot')
        .attr('data-testid', 'strip-dot')
        .attr('data-expert', (p) => p.expert)
        .attr('data-count', (p) => p.count)
        .attr('cx', (p) => x(p.accuracy))
        .attr('cy', rowH / 2)
        .attr('r', (p) => r(p.count))
        .attr('fill-opacity', (p) => opacity(p.count).toFixed(3))
        .each(function (p) {
          (this as SVGCircleElement).style.fill = expertColor(p.expert, current.numExperts);
        })
        .on('mouseenter', (_ev, p) => {
          hoverLine.textContent = `Layer ${layerOf(p.layer)}, expert ${p.expert}: accuracy ${formatPercent(p.accuracy)} over ${p.count} question${p.count === 1 ? '' : 's'}.`;
          options.onHover?.(p);
        })
        .on('mouseleave', () => options.onHover?.(null))
        .on('click', (_ev, p) => options.onClick?.(p.layer, p.expert))
        .append('title')
        .text((p) => `layer ${layerOf(p.layer)}, expert ${p.expert}: ${formatPercent(p.accuracy)} over ${p.count} questions`);
    });
    root.append(hoverLine);
    root.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        `Dotted line: chance (25%).${current.reference !== undefined ? ` Solid line: overall accuracy ${formatPercent(current.reference)}.` : ''} ` +
          'Experts never used at the answer position have no accuracy and no dot.',
      ),
    );
  }

  render();
  const update = ((next: ExpertAccuracyStripData) => {
    current = next;
    render();
  }) as ExpertAccuracyStripUpdate;
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
