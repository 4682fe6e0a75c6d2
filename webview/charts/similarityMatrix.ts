/**
 * E x E similarity matrix of one layer (cosine similarities between experts), as SVG rects.
 *
 * Diverging colour: positive values in one theme colour, negative in another, the opacity proportional to
 * |value| / max (so 0 is the background and the scale works on light, dark and high-contrast themes; the
 * SVG export inlines the resolved colours). The scale is either fixed to [-1, 1] or the data range: symmetric
 * around 0 at the largest |off-diagonal| value, because real experts are often nearly orthogonal and a
 * [-1, 1] scale would show an empty square. The diagonal (an expert with itself, 1 by definition) is drawn
 * dimmed in a neutral colour and left out of the data range.
 *
 * Hover (or the arrow keys once the chart has focus) shows the expert pair and the value in a readout line
 * under the chart and outlines the cell; the cell group's native tooltip follows the hovered cell (one
 * <title>, not E² of them: 64 experts are 4096 cells).
 */
import { select } from 'd3';
import { clear, h, measureWidth } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

export interface SimilarityMatrixData {
  numExperts: number;
  /** E x E values, row-major: values[a * E + b]. */
  values: ArrayLike<number>;
  /** What a value is, for the legend, tooltips and the readout (e.g. "cosine similarity of gate_proj"). */
  label: string;
  /** Shown in the readout and the accessible name. */
  layer?: number;
}

export type SimilarityScale = 'data' | 'fixed';

export interface SimilarityMatrixOptions {
  /** Total width in CSS px (the cell area is a square of about width - 52); default: the container width, at most 620. */
  width?: number;
  /** 'data' (default): symmetric around 0 at the largest |off-diagonal| value; 'fixed': [-1, 1]. */
  scale?: SimilarityScale;
  /** Pointer or keyboard cursor over a cell (null when it leaves). */
  onHover?: (cell: { a: number; b: number; value: number } | null) => void;
}

export type SimilarityMatrixUpdate = ChartUpdate<SimilarityMatrixData> &
  SvgChart & {
    setScale(scale: SimilarityScale): void;
    /** Outlines a cell (e.g. a pair hovered elsewhere) and shows it in the readout; null clears. */
    highlight(cell: { a: number; b: number } | null): void;
    /** The colour-scale maximum M: colours run over [-M, M]. */
    scaleMax(): number;
  };

/** Four significant decimals for typical values, exponent notation for tiny ones. */
export function formatSimilarity(v: number): string {
  if (!Number.isFinite(v)) return '–';
  if (v === 0 || Math.abs(v) >= 0.001) return v.toFixed(4);
  return v.toExponential(2);
}

/** Largest |value| off the diagonal (0 for fewer than two experts or an all-zero matrix). */
export function maxAbsOffDiagonal(values: ArrayLike<number>, E: number): number {
  let m = 0;
  for (let a = 0; a < E; a++)
    for (let b = 0; b < E; b++) {
      if (a === b) continue;
      const v = Math.abs(Number(values[a * E + b]));
      if (Number.isFinite(v) && v > m) m = v;
    }
  return m;
}

let instance = 0;
const MAX_OPACITY = 0.92;

export function similarityMatrix(container: HTMLElement, data: SimilarityMatrixData, options: SimilarityMatrixOptions = {}): SimilarityMatrixUpdate {
  const doc = container.ownerDocument;
  const uid = `sm${++instance}`;
  let current = data;
  let scale: SimilarityScale = options.scale ?? 'data';
  let svgEl: SVGSVGElement | null = null;
  let readout: HTMLElement | null = null;
  let mark: SVGRectElement | null = null;
  let tip: Element | null = null;
  let cursor: { a: number; b: number } | null = null;
  let geom = { left: 0, top: 0, cw: 1 };
  let M = 1;
  /** The drawn cells in row-major order, and what they were drawn for (in-place updates reuse them). */
  let cellEls: Element[] = [];
  let drawn = { E: -1, width: -1 };
  let legendEls: { min: Element; max: Element; caption: Element } | null = null;

  const value = (a: number, b: number) => Number(current.values[a * current.numExperts + b]);

  function describe(a: number, b: number): string {
    const v = value(a, b);
    const layer = current.layer !== undefined ? `layer ${current.layer}, ` : '';
    const self = a === b ? ' (diagonal: an expert with itself, 1 by definition)' : '';
    return `${layer}expert ${a} × expert ${b}: ${formatSimilarity(v)} ${current.label}${self}`;
  }

  function render(): void {
    clear(container);
    const E = Math.max(0, Math.floor(current.numExperts));
    const width = Math.max(260, Math.min(620, options.width ?? measureWidth(container, 560)));
    const m = { top: 30, right: 12, bottom: 58, left: 40 };
    const side = Math.max(40, Math.min(560, width - m.left - m.right));
    const cw = E ? side / E : side;
    const gap = cw >= 6 ? 1 : 0;
    const height = m.top + side + m.bottom;
    geom = { left: m.left, top: m.top, cw };

    const root = h(doc, 'div', { class: 'similarity-matrix' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart similarity')
      .attr('data-testid', 'similarity-heatmap')
      .attr('data-experts', E)
      .attr('width', m.left + side + m.right)
      .attr('height', height)
      .attr('viewBox', `0 0 ${m.left + side + m.right} ${height}`)
      .attr('tabindex', 0)
      .attr('role', 'img');
    svgEl = svg.node();
    const defs = svg.append('defs');
    const grad = defs.append('linearGradient').attr('id', `${uid}-legend`);
    grad.append('stop').attr('offset', '0%').attr('class', 'stop-neg').attr('stop-opacity', MAX_OPACITY);
    grad.append('stop').attr('offset', '50%').attr('class', 'stop-neg').attr('stop-opacity', 0);
    grad.append('stop').attr('offset', '50%').attr('class', 'stop-pos').attr('stop-opacity', 0);
    grad.append('stop').attr('offset', '100%').attr('class', 'stop-pos').attr('stop-opacity', MAX_OPACITY);

    // axes: expert ids along the top and the left
    const step = E > 32 ? 8 : E > 16 ? 4 : E > 8 ? 2 : 1;
    const ticks = Array.from({ length: E }, (_, i) => i).filter((i) => i % step === 0);
    const axis = svg.append('g').attr('class', 'axis');
    axis
      .selectAll('text.xt')
      .data(ticks)
      .join('text')
      .attr('class', 'xt')
      .attr('x', (i) => m.left + i * cw + cw / 2)
      .attr('y', m.top - 6)
      .attr('text-anchor', 'middle')
      .text((i) => String(i));
    axis
      .selectAll('text.yt')
      .data(ticks)
      .join('text')
      .attr('class', 'yt')
      .attr('x', m.left - 5)
      .attr('y', (i) => m.top + i * cw + cw / 2)
      .attr('dy', '0.32em')
      .attr('text-anchor', 'end')
      .text((i) => String(i));
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('x', m.left + side / 2)
      .attr('y', 10)
      .attr('text-anchor', 'middle')
      .text('expert b');
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('transform', `translate(10,${m.top + side / 2}) rotate(-90)`)
      .attr('text-anchor', 'middle')
      .text('expert a');

    svg.append('rect').attr('class', 'matrix-bg').attr('x', m.left).attr('y', m.top).attr('width', side).attr('height', side);
    const cells: { a: number; b: number }[] = [];
    for (let a = 0; a < E; a++) for (let b = 0; b < E; b++) cells.push({ a, b });
    const g = svg.append('g').attr('class', 'cells');
    cellEls = g
      .selectAll('rect')
      .data(cells)
      .join('rect')
      .attr('data-a', (d) => d.a)
      .attr('data-b', (d) => d.b)
      .attr('x', (d) => m.left + d.b * cw)
      .attr('y', (d) => m.top + d.a * cw)
      .attr('width', Math.max(0.5, cw - gap))
      .attr('height', Math.max(0.5, cw - gap))
      .nodes() as Element[];
    tip = g.append('title').text(`${current.label}: hover a cell`).node();
    if (cw >= 30) {
      g.selectAll('text')
        .data(cells)
        .join('text')
        .attr('class', (d) => (d.a === d.b ? 'cell-value diag' : 'cell-value'))
        .attr('x', (d) => m.left + d.b * cw + (cw - gap) / 2)
        .attr('y', (d) => m.top + d.a * cw + (cw - gap) / 2)
        .attr('dy', '0.32em')
        .attr('text-anchor', 'middle');
    }
    mark = svg
      .append('rect')
      .attr('class', 'hover-mark')
      .attr('visibility', 'hidden')
      .attr('width', Math.max(2, cw))
      .attr('height', Math.max(2, cw))
      .attr('fill', 'none')
      .node();

    // legend: the diverging ramp, its ends and the dimmed diagonal
    const ly = m.top + side + 14;
    const lw = Math.max(120, Math.min(220, side * 0.45));
    const lg = svg.append('g').attr('class', 'legend').attr('data-testid', 'similarity-legend').attr('transform', `translate(${m.left},${ly})`);
    lg.append('rect').attr('class', 'legend-ramp').attr('x', 0).attr('y', 0).attr('width', lw).attr('height', 10).attr('fill', `url(#${uid}-legend)`);
    lg.append('line')
      .attr('class', 'legend-zero')
      .attr('x1', lw / 2)
      .attr('x2', lw / 2)
      .attr('y1', -2)
      .attr('y2', 12);
    const lmin = lg.append('text').attr('class', 'legend-min').attr('x', 0).attr('y', 24).attr('text-anchor', 'start').node()!;
    lg.append('text')
      .attr('x', lw / 2)
      .attr('y', 24)
      .attr('text-anchor', 'middle')
      .text('0');
    const lmax = lg.append('text').attr('class', 'legend-max').attr('x', lw).attr('y', 24).attr('text-anchor', 'end').node()!;
    const lcap = lg.append('text').attr('x', 0).attr('y', 38).node()!;
    legendEls = { min: lmin, max: lmax, caption: lcap };
    const dx = lw + 18;
    if (dx + 150 <= side) {
      lg.append('rect').attr('class', 'legend-diag').attr('x', dx).attr('y', 0).attr('width', 10).attr('height', 10);
      lg.append('text')
        .attr('x', dx + 15)
        .attr('y', 5)
        .attr('dy', '0.32em')
        .text('diagonal: self, 1 by definition');
    }

    readout = h(
      doc,
      'p',
      { class: 'caption similarity-readout', 'data-testid': 'similarity-hover', 'aria-live': 'polite' },
      'Hover a cell (or focus the matrix and use the arrow keys) to see the expert pair and its value.',
    );
    root.append(readout);

    g.on('mousemove', (ev: MouseEvent) => {
      const t = ev.target as Element | null;
      const a = Number(t?.getAttribute?.('data-a'));
      const b = Number(t?.getAttribute?.('data-b'));
      if (Number.isInteger(a) && Number.isInteger(b) && (a !== cursor?.a || b !== cursor?.b)) show({ a, b }, true);
    });
    g.on('mouseleave', () => show(null, true));
    svg.on('keydown', (ev: KeyboardEvent) => {
      const c = cursor ?? { a: 0, b: 0 };
      let { a, b } = c;
      switch (ev.key) {
        case 'ArrowLeft':
          b = Math.max(0, b - 1);
          break;
        case 'ArrowRight':
          b = Math.min(E - 1, b + 1);
          break;
        case 'ArrowUp':
          a = Math.max(0, a - 1);
          break;
        case 'ArrowDown':
          a = Math.min(E - 1, a + 1);
          break;
        case 'Home':
          b = 0;
          break;
        case 'End':
          b = E - 1;
          break;
        case 'Escape':
          show(null, true);
          return;
        default:
          return;
      }
      ev.preventDefault();
      show({ a, b }, true);
    });
    drawn = { E, width };
    paint();
  }

  /** Colours, values and labels of the drawn cells; no new elements (a layer or matrix switch lands here). */
  function paint(): void {
    const E = drawn.E;
    M = scale === 'fixed' ? 1 : maxAbsOffDiagonal(current.values, E) || 1;
    svgEl?.setAttribute('data-scale', scale);
    svgEl?.setAttribute('data-scale-max', String(M));
    if (current.layer !== undefined) svgEl?.setAttribute('data-layer', String(current.layer));
    else svgEl?.removeAttribute('data-layer');
    svgEl?.setAttribute(
      'aria-label',
      `${current.label}${current.layer !== undefined ? `, layer ${current.layer}` : ''}: ${E} by ${E} experts. Arrow keys move a cursor over the cells.`,
    );
    const texts = svgEl ? Array.from(svgEl.querySelectorAll('g.cells text.cell-value')) : [];
    for (let i = 0; i < cellEls.length; i++) {
      const a = Math.floor(i / E);
      const b = i % E;
      const v = value(a, b);
      const el = cellEls[i]!;
      const cls = a === b ? 'cell diag' : !Number.isFinite(v) ? 'cell missing' : v < 0 ? 'cell neg' : 'cell pos';
      if (el.getAttribute('class') !== cls) el.setAttribute('class', cls);
      el.setAttribute('data-value', String(v));
      if (a === b || !Number.isFinite(v)) el.removeAttribute('fill-opacity');
      else el.setAttribute('fill-opacity', (Math.min(1, Math.abs(v) / M) * MAX_OPACITY).toFixed(3));
      if (texts[i]) texts[i]!.textContent = Number.isFinite(v) ? v.toFixed(2) : '–';
    }
    if (legendEls) {
      legendEls.min.textContent = `−${formatSimilarity(M)}`;
      legendEls.max.textContent = `+${formatSimilarity(M)}`;
      legendEls.caption.textContent = scale === 'fixed' ? `${current.label}, fixed scale −1 … 1` : `${current.label}, scale: largest |off-diagonal| value`;
    }
    if (cursor && cursor.a < E && cursor.b < E) show(cursor, false);
    else cursor = null;
  }

  function show(cell: { a: number; b: number } | null, notify: boolean): void {
    cursor = cell;
    if (!mark || !readout) return;
    if (!cell) {
      mark.setAttribute('visibility', 'hidden');
      readout.textContent = 'Hover a cell (or focus the matrix and use the arrow keys) to see the expert pair and its value.';
      if (notify) options.onHover?.(null);
      return;
    }
    mark.setAttribute('x', String(geom.left + cell.b * geom.cw));
    mark.setAttribute('y', String(geom.top + cell.a * geom.cw));
    mark.setAttribute('visibility', 'visible');
    readout.textContent = describe(cell.a, cell.b);
    if (tip) tip.textContent = readout.textContent;
    if (notify) options.onHover?.({ a: cell.a, b: cell.b, value: value(cell.a, cell.b) });
  }

  render();
  const update = ((next: SimilarityMatrixData) => {
    current = next;
    const width = Math.max(260, Math.min(620, options.width ?? drawn.width));
    if (next.numExperts === drawn.E && width === drawn.width && svgEl && container.contains(svgEl)) paint();
    else render();
  }) as SimilarityMatrixUpdate;
  update.setScale = (s) => {
    scale = s;
    paint();
  };
  update.highlight = (cell) => show(cell && cell.a < current.numExperts && cell.b < current.numExperts ? cell : null, false);
  update.scaleMax = () => M;
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
