/**
 * Accuracy change between two runs per group (subject or category) as diverging horizontal bars around
 * zero, with both accuracies written beside each bar. Groups missing from one run have no bar.
 */
import { scaleLinear, select } from 'd3';
import { clear, formatPercent, h, measureWidth } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

export interface AccuracyDeltaRow {
  label: string;
  a: number | null;
  b: number | null;
  delta: number | null;
  questionsA: number;
  questionsB: number;
}

export interface AccuracyDeltaData {
  rows: readonly AccuracyDeltaRow[];
  labelA: string;
  labelB: string;
}

export interface AccuracyDeltaOptions {
  width?: number;
  sort?: 'delta' | 'name';
}

export type AccuracyDeltaUpdate = ChartUpdate<AccuracyDeltaData> & SvgChart;

/** Symmetric axis limit: the largest |delta| rounded up to 5 points, at least 5 points. */
export function deltaDomain(rows: readonly AccuracyDeltaRow[]): number {
  const max = Math.max(0, ...rows.map((r) => Math.abs(r.delta ?? 0)));
  return Math.max(5, Math.ceil((max * 100) / 5 - 1e-9) * 5) / 100;
}

const signed = (d: number) => `${d > 0 ? '+' : d < 0 ? '−' : '±'}${(100 * Math.abs(d)).toFixed(1)}`;

export function accuracyDelta(container: HTMLElement, data: AccuracyDeltaData, options: AccuracyDeltaOptions = {}): AccuracyDeltaUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const rows = current.rows.slice();
    if (options.sort === 'name') rows.sort((x, y) => x.label.localeCompare(y.label));
    else rows.sort((x, y) => (x.delta ?? -Infinity) - (y.delta ?? -Infinity) || x.label.localeCompare(y.label));
    const width = options.width ?? Math.max(460, measureWidth(container, 760));
    const rowH = 18;
    const m = { top: 24, right: 150, bottom: 8, left: Math.min(240, Math.max(130, width * 0.28)) };
    const height = m.top + Math.max(1, rows.length) * rowH + m.bottom;
    const lim = deltaDomain(rows);
    const x = scaleLinear()
      .domain([-lim, lim])
      .range([m.left, width - m.right]);
    const root = h(doc, 'div', { class: 'delta-chart' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart accuracy-delta')
      .attr('data-testid', 'accuracy-delta')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', `Accuracy change from ${current.labelA} to ${current.labelB} for ${rows.length} groups`);
    svgEl = svg.node();
    const axis = svg.append('g').attr('class', 'axis');
    for (const t of [-lim, -lim / 2, 0, lim / 2, lim]) {
      axis
        .append('line')
        .attr('class', t === 0 ? 'zero-line' : 'grid')
        .attr('x1', x(t))
        .attr('x2', x(t))
        .attr('y1', m.top - 4)
        .attr('y2', height - m.bottom);
      axis
        .append('text')
        .attr('x', x(t))
        .attr('y', m.top - 8)
        .attr('text-anchor', 'middle')
        .text(t === 0 ? '0' : `${signed(t)} pt`);
    }
    const g = svg
      .selectAll('g.row')
      .data(rows)
      .join('g')
      .attr('class', 'row')
      .attr('data-testid', 'delta-row')
      .attr('data-label', (r) => r.label)
      .attr('data-delta', (r) => (r.delta === null ? '' : String(r.delta)))
      .attr('transform', (_r, i) => `translate(0,${m.top + i * rowH})`);
    g.append('title').text(
      (r) =>
        `${r.label}: ${r.a === null ? '–' : formatPercent(r.a)} (n=${r.questionsA}) in ${current.labelA}, ${r.b === null ? '–' : formatPercent(r.b)} (n=${r.questionsB}) in ${current.labelB}`,
    );
    g.append('text')
      .attr('class', 'subject-label')
      .attr('x', m.left - 6)
      .attr('y', rowH / 2)
      .attr('dy', '0.32em')
      .attr('text-anchor', 'end')
      .text((r) => r.label.replace(/_/g, ' '));
    g.filter((r) => r.delta !== null)
      .append('rect')
      .attr('class', (r) => `bar ${r.delta! > 0 ? 'gain' : r.delta! < 0 ? 'loss' : 'same'}`)
      .attr('x', (r) => Math.min(x(0), x(r.delta!)))
      .attr('y', 3)
      .attr('height', rowH - 6)
      .attr('width', (r) => Math.max(r.delta === 0 ? 1 : 0, Math.abs(x(r.delta!) - x(0))));
    g.append('text')
      .attr('class', 'value')
      .attr('x', width - m.right + 6)
      .attr('y', rowH / 2)
      .attr('dy', '0.32em')
      .text((r) => (r.delta === null ? 'only in one run' : `${signed(r.delta)} pt (${formatPercent(r.a!)} → ${formatPercent(r.b!)})`));
  }

  render();
  const update = ((next: AccuracyDeltaData) => {
    current = next;
    render();
  }) as AccuracyDeltaUpdate;
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
