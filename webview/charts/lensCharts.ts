/**
 * The expert lens's two charts, both SVG that always fit the panel's width (the viewBox scales; nothing
 * scrolls sideways, so the last token, the scored answer position, is always on screen):
 * - lensGrid: layers (rows) x tokens (columns), one colour per cell from a sequential scale (the chosen
 *   expert's weight, top-1 weight, top-k mass or normalised entropy); cells where the expert is not chosen
 *   stay empty.
 * - layerExpertGrid: layers x experts, the mean gate weight the selected tokens gave each expert.
 * Keyboard: each chart is one tab stop; arrow keys move a cursor cell, Home/End jump to the row's ends,
 * Enter or Space activates the cell; a polite live region reads the cell out.
 */
import { interpolateViridis, scaleSequential } from 'd3';
import { clear, h } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

const SVG_NS = 'http://www.w3.org/2000/svg';

export interface GridChartData {
  rows: number;
  cols: number;
  /** rows * cols values, row-major; NaN draws an empty cell. */
  values: ArrayLike<number>;
  /** Colour scale domain [0, max]. */
  max: number;
  /** Readable name of row r / column c, for tooltips and the live region (e.g. "layer 3", "token 12 'Answer'"). */
  rowName: (r: number) => string;
  colName: (c: number) => string;
  /** What a value is, e.g. "weight of expert 5". */
  valueName: string;
  /** Columns to outline (e.g. the selected tokens, the chosen expert). */
  marked?: readonly number[];
  /** Overrides the options' label and width for this data (an update keeps the element, its focus and cursor). */
  ariaLabel?: string;
  width?: number;
}

export interface GridChartOptions {
  testid: string;
  ariaLabel: string;
  rowHeight?: number;
  /** The visible width the chart is drawn for (CSS px; the SVG scales to the container anyway). */
  width?: number;
  leftLabel?: string;
  onActivate?: (row: number, col: number) => void;
}

export type GridChartUpdate = ChartUpdate<GridChartData> & SvgChart & { cursor(): { row: number; col: number } };

function el<K extends keyof SVGElementTagNameMap>(doc: Document, name: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const e = doc.createElementNS(SVG_NS, name) as SVGElementTagNameMap[K];
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

export function formatValue(v: number): string {
  return Number.isNaN(v) ? 'not chosen' : v.toFixed(3);
}

/** A rows x cols colour grid (see the module comment); used for both lens charts. */
export function gridChart(container: HTMLElement, data: GridChartData, options: GridChartOptions): GridChartUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let svgEl: SVGSVGElement | null = null;
  let cursorRect: SVGRectElement | null = null;
  let cellW = 1;
  let cursor = { row: 0, col: Math.max(0, data.cols - 1) };
  const rowH = options.rowHeight ?? 12;
  const labelW = 34;

  clear(container);
  const root = h(doc, 'div', {
    class: 'lens-grid',
    'data-testid': options.testid,
    tabindex: 0,
    role: 'grid',
    'aria-label': `${options.ariaLabel}. Arrow keys move between cells, Enter picks one.`,
  });
  const live = h(doc, 'div', { class: 'visually-hidden', 'aria-live': 'polite', 'data-testid': `${options.testid}-live` });
  container.append(root, live);

  function describe(r: number, c: number): string {
    const d = current;
    return `${d.rowName(r)}, ${d.colName(c)}: ${d.valueName} ${formatValue(Number(d.values[r * d.cols + c]))}`;
  }

  function render(): void {
    clear(root);
    const d = current;
    const W = d.width ?? options.width ?? 600;
    const label = d.ariaLabel ?? options.ariaLabel;
    root.setAttribute('aria-label', `${label}. Arrow keys move between cells, Enter picks one.`);
    cellW = (W - labelW) / Math.max(1, d.cols);
    const H = d.rows * rowH;
    const colour = scaleSequential(interpolateViridis).domain([0, d.max > 0 ? d.max : 1]);
    const svg = el(doc, 'svg', { class: 'chart lens-svg', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', width: '100%', height: H, role: 'img' });
    svg.setAttribute('aria-label', label);
    const marked = new Set(d.marked ?? []);
    for (let r = 0; r < d.rows; r++) {
      const rowLabel = el(doc, 'text', { x: labelW - 4, y: r * rowH + rowH / 2, 'dominant-baseline': 'middle', 'text-anchor': 'end', class: 'lens-row-label' });
      rowLabel.textContent = r % (d.rows > 24 ? 4 : d.rows > 12 ? 2 : 1) === 0 ? String(r) : '';
      svg.append(rowLabel);
      for (let c = 0; c < d.cols; c++) {
        const v = Number(d.values[r * d.cols + c]);
        const rect = el(doc, 'rect', {
          x: labelW + c * cellW,
          y: r * rowH,
          width: Math.max(0.5, cellW - (cellW > 4 ? 1 : 0)),
          height: rowH - 1,
          class: Number.isNaN(v) ? 'lens-cell empty' : 'lens-cell',
          'data-row': r,
          'data-col': c,
        });
        if (!Number.isNaN(v)) rect.setAttribute('fill', colour(v));
        const title = el(doc, 'title', {});
        title.textContent = describe(r, c);
        rect.append(title);
        svg.append(rect);
      }
    }
    for (const c of marked) {
      if (c < 0 || c >= d.cols) continue;
      svg.append(el(doc, 'rect', { x: labelW + c * cellW, y: 0, width: Math.max(1, cellW - 1), height: H, class: 'lens-mark', fill: 'none' }));
    }
    cursor = { row: Math.min(cursor.row, d.rows - 1), col: Math.min(cursor.col, d.cols - 1) };
    cursorRect = el(doc, 'rect', { width: Math.max(1, cellW - 1), height: rowH - 1, class: 'lens-cursor', fill: 'none' });
    placeCursor();
    svg.append(cursorRect);
    root.append(svg);
    svgEl = svg;
  }

  function placeCursor(): void {
    cursorRect?.setAttribute('x', String(labelW + cursor.col * cellW));
    cursorRect?.setAttribute('y', String(cursor.row * rowH));
    root.setAttribute('data-cursor', `${cursor.row},${cursor.col}`);
  }

  function moveCursor(row: number, col: number, announce = true): void {
    const d = current;
    cursor = { row: Math.max(0, Math.min(d.rows - 1, row)), col: Math.max(0, Math.min(d.cols - 1, col)) };
    placeCursor();
    if (announce) live.textContent = describe(cursor.row, cursor.col);
  }

  root.addEventListener('keydown', (ev: Event) => {
    const e = ev as KeyboardEvent;
    const d = current;
    const page = Math.max(1, Math.round(d.cols / 10));
    const moves: Record<string, () => void> = {
      ArrowLeft: () => moveCursor(cursor.row, cursor.col - 1),
      ArrowRight: () => moveCursor(cursor.row, cursor.col + 1),
      ArrowUp: () => moveCursor(cursor.row - 1, cursor.col),
      ArrowDown: () => moveCursor(cursor.row + 1, cursor.col),
      PageUp: () => moveCursor(cursor.row, cursor.col - page),
      PageDown: () => moveCursor(cursor.row, cursor.col + page),
      Home: () => moveCursor(cursor.row, 0),
      End: () => moveCursor(cursor.row, d.cols - 1),
      Enter: () => options.onActivate?.(cursor.row, cursor.col),
      ' ': () => options.onActivate?.(cursor.row, cursor.col),
    };
    const f = moves[e.key];
    if (!f) return;
    e.preventDefault();
    f();
  });
  root.addEventListener('click', (ev: Event) => {
    const t = (ev.target as Element | null)?.closest?.('rect.lens-cell');
    if (!t) return;
    const r = Number(t.getAttribute('data-row'));
    const c = Number(t.getAttribute('data-col'));
    moveCursor(r, c, false);
    options.onActivate?.(r, c);
  });

  render();
  const update = ((next: GridChartData) => {
    current = next;
    render();
  }) as GridChartUpdate;
  update.svg = () => svgEl;
  update.cursor = () => ({ ...cursor });
  update.destroy = () => {};
  return update;
}
