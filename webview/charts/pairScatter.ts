/**
 * Scatter over the E(E-1)/2 expert pairs a < b of one layer: x = one similarity (expert weights, "all"),
 * y = another (router rows), with the ordinary-least-squares line y = slope·x + intercept and its R² written
 * on the chart. Hover a dot (native tooltip) for the pair; highlight() rings a pair chosen elsewhere (e.g.
 * the cell hovered in the similarity matrix). New data for the same number of experts moves the existing
 * dots (a layer switch creates no elements but the axis ticks).
 */
import { extent, scaleLinear, select } from 'd3';
import { olsFit, upperPairs, type LinearFit } from '../../src/analysis/pairStats';
import { clear, h, measureWidth } from '../common/dom';
import { formatSimilarity } from './similarityMatrix';
import { horizontalGrid, verticalGrid } from './gridlines';
import type { ChartUpdate, SvgChart } from './types';

export interface PairScatterData {
  numExperts: number;
  /** E x E row-major; only a < b is used. */
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  xLabel: string;
  yLabel: string;
  /** The R² the analysis reports; stated on the chart. Default: the R² of the fit drawn. */
  r2?: number | null;
  layer?: number;
}

export interface PairScatterOptions {
  width?: number;
  height?: number;
  /** data-testid of the SVG (default "pair-scatter"). */
  testid?: string;
}

export type PairScatterUpdate = ChartUpdate<PairScatterData> &
  SvgChart & {
    highlight(pair: { a: number; b: number } | null): void;
    fit(): LinearFit;
  };

export function pairScatter(container: HTMLElement, data: PairScatterData, options: PairScatterOptions = {}): PairScatterUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let svgEl: SVGSVGElement | null = null;
  let fit: LinearFit = { slope: 0, intercept: 0, r2: 0, pairs: 0 };
  let ring: SVGCircleElement | null = null;
  let place: (a: number, b: number) => [number, number] | null = () => null;
  /** Built once per expert count: one circle (and title) per pair, repositioned by paint(). */
  let points: { el: SVGCircleElement; title: Element }[] = [];
  let frame: { E: number; width: number; height: number; axis: SVGGElement; fitLine: SVGLineElement; fitLabel: SVGTextElement } | null = null;
  const m = { top: 30, right: 14, bottom: 40, left: 58 };

  function build(): void {
    clear(container);
    const E = current.numExperts;
    const width = options.width ?? Math.max(280, Math.min(560, measureWidth(container, 420)));
    const height = options.height ?? Math.min(360, Math.round(width * 0.78));
    const root = h(doc, 'div', { class: 'pair-scatter' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart scatter')
      .attr('data-testid', options.testid ?? 'pair-scatter')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img');
    svgEl = svg.node();
    const axis = svg.append('g').attr('class', 'axis').node()!;
    const pairs: { a: number; b: number }[] = [];
    for (let a = 0; a < E; a++) for (let b = a + 1; b < E; b++) pairs.push({ a, b });
    const circles = svg
      .append('g')
      .attr('class', 'points')
      .selectAll('circle')
      .data(pairs)
      .join('circle')
      .attr('class', 'pair-point')
      .attr('data-testid', 'pair-point')
      .attr('data-a', (p) => p.a)
      .attr('data-b', (p) => p.b)
      .attr('r', E > 32 ? 2 : 3);
    points = (circles.nodes() as SVGCircleElement[]).map((el) => ({ el, title: el.appendChild(doc.createElementNS('http://www.w3.org/2000/svg', 'title')) }));
    const fitLine = svg.append('line').attr('class', 'fit-line').attr('data-testid', 'fit-line').node()!;
    const fitLabel = svg
      .append('text')
      .attr('class', 'fit-label')
      .attr('data-testid', 'scatter-r2')
      .attr('x', m.left + 4)
      .attr('y', m.top - 10)
      .node()!;
    ring = svg.append('circle').attr('class', 'pair-ring').attr('r', 6).attr('visibility', 'hidden').node();
    frame = { E, width, height, axis, fitLine, fitLabel };
  }

  function paint(): void {
    if (!frame || !svgEl) return;
    const { E, width, height } = frame;
    const p = upperPairs(E, current.x, current.y);
    fit = olsFit(p.x, p.y);
    const ok = p.x.map((v, i) => Number.isFinite(v) && Number.isFinite(p.y[i]!));
    const pad = (e: [number, number] | [undefined, undefined]): [number, number] => {
      const [lo, hi] = e[0] === undefined ? [0, 1] : (e as [number, number]);
      const d = (hi - lo) * 0.06 || Math.max(1e-3, Math.abs(hi) * 0.1);
      return [lo - d, hi + d];
    };
    const x = scaleLinear()
      .domain(pad(extent(p.x.filter((_v, i) => ok[i])) as [number, number]))
      .range([m.left, width - m.right])
      .nice(5);
    const y = scaleLinear()
      .domain(pad(extent(p.y.filter((_v, i) => ok[i])) as [number, number]))
      .range([height - m.bottom, m.top])
      .nice(5);
    const r2 = current.r2 ?? fit.r2;
    const n = ok.filter(Boolean).length;
    svgEl.setAttribute('data-pairs', String(p.a.length));
    svgEl.setAttribute(
      'aria-label',
      `${current.yLabel} against ${current.xLabel} over ${n} expert pairs${current.layer !== undefined ? ` of layer ${current.layer}` : ''}; R² ${r2.toFixed(3)}`,
    );

    clear(frame.axis);
    const axis = select(frame.axis);
    const tickLabel = (t: number) => String(Number(t.toPrecision(6)));
    verticalGrid(axis, x.ticks(5), x, m.top, height - m.bottom, height - m.bottom + 14, tickLabel);
    horizontalGrid(axis, y.ticks(5), y, m.left, width - m.right, tickLabel);
    const [x0, x1] = x.domain() as [number, number];
    if (x0 <= 0 && x1 >= 0)
      axis
        .append('line')
        .attr('class', 'zero-line')
        .attr('x1', x(0))
        .attr('x2', x(0))
        .attr('y1', m.top)
        .attr('y2', height - m.bottom);
    const [y0, y1] = y.domain() as [number, number];
    if (y0 <= 0 && y1 >= 0)
      axis
        .append('line')
        .attr('class', 'zero-line')
        .attr('x1', m.left)
        .attr('x2', width - m.right)
        .attr('y1', y(0))
        .attr('y2', y(0));
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('x', (m.left + width - m.right) / 2)
      .attr('y', height - 6)
      .attr('text-anchor', 'middle')
      .text(current.xLabel);
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('transform', `translate(12,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
      .attr('text-anchor', 'middle')
      .text(current.yLabel);

    points.forEach((pt, i) => {
      if (!ok[i]) {
        pt.el.setAttribute('visibility', 'hidden');
        return;
      }
      pt.el.removeAttribute('visibility');
      pt.el.setAttribute('cx', x(p.x[i]!).toFixed(1));
      pt.el.setAttribute('cy', y(p.y[i]!).toFixed(1));
      pt.title.textContent = `experts ${p.a[i]} and ${p.b[i]}: ${current.xLabel} ${formatSimilarity(p.x[i]!)}, ${current.yLabel} ${formatSimilarity(p.y[i]!)}`;
    });
    const fl = frame.fitLine;
    fl.setAttribute('visibility', fit.pairs >= 2 ? 'visible' : 'hidden');
    fl.setAttribute('data-slope', String(fit.slope));
    fl.setAttribute('data-intercept', String(fit.intercept));
    fl.setAttribute('x1', String(x(x0)));
    fl.setAttribute('x2', String(x(x1)));
    fl.setAttribute('y1', String(y(fit.slope * x0 + fit.intercept)));
    fl.setAttribute('y2', String(y(fit.slope * x1 + fit.intercept)));
    frame.fitLabel.textContent = `R² = ${r2.toFixed(3)} · OLS y = ${fit.slope.toPrecision(3)}·x ${fit.intercept < 0 ? '−' : '+'} ${Math.abs(fit.intercept).toPrecision(3)} · ${n} pairs`;
    ring?.setAttribute('visibility', 'hidden');
    place = (a, b) => {
      const lo = Math.min(a, b);
      const hi = Math.max(a, b);
      const vx = Number(current.x[lo * E + hi]);
      const vy = Number(current.y[lo * E + hi]);
      return Number.isFinite(vx) && Number.isFinite(vy) ? [x(vx), y(vy)] : null;
    };
  }

  build();
  paint();
  const update = ((next: PairScatterData) => {
    current = next;
    if (!frame || next.numExperts !== frame.E || !svgEl || !container.contains(svgEl)) build();
    paint();
  }) as PairScatterUpdate;
  update.highlight = (pair) => {
    if (!ring) return;
    const at = pair && pair.a !== pair.b && pair.a < current.numExperts && pair.b < current.numExperts ? place(pair.a, pair.b) : null;
    if (!at) {
      ring.setAttribute('visibility', 'hidden');
      return;
    }
    ring.setAttribute('cx', String(at[0]));
    ring.setAttribute('cy', String(at[1]));
    ring.setAttribute('visibility', 'visible');
  };
  update.fit = () => fit;
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
