/**
 * Layers x experts activation counts. Counts map to the opacity of one theme colour (sqrt scale, so
 * rarely used experts stay visible); experts never activated in a layer are hatched and flagged
 * (class "never", data-never="true"). Click or Enter on a cell calls onCellClick(layer, expert).
 * Keyboard: one tab stop (roving tabindex), arrow keys move between cells.
 */
import { max, scaleSqrt, select } from 'd3';
import { clear, h, measureWidth } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

export interface ExpertHeatmapData {
  numLayers: number;
  numExperts: number;
  /** [layer][expert] counts. */
  counts: readonly (readonly number[])[];
  /** The decoder layer of each row (src/analysis/layers.ts); absent: row i is layer i. */
  layerOfRow?: readonly number[];
}

export interface ExpertHeatmapOptions {
  width?: number;
  /** What a count is, for tooltips and the legend (default "activations"). */
  unit?: string;
  onCellClick?: (layer: number, expert: number) => void;
  ariaLabel?: string;
}

export type ExpertHeatmapUpdate = ChartUpdate<ExpertHeatmapData> &
  SvgChart & {
    select(cell: { layer: number; expert: number } | null): void;
  };

let instance = 0;

export function expertHeatmap(container: HTMLElement, data: ExpertHeatmapData, options: ExpertHeatmapOptions = {}): ExpertHeatmapUpdate {
  const doc = container.ownerDocument;
  const uid = `hm${++instance}`;
  const unit = options.unit ?? 'activations';
  let current = data;
  /** Rows are labelled by decoder layer: a model with dense layers has fewer rows than layers. */
  const layerOf = (row: number): number => current.layerOfRow?.[row] ?? row;
  let selected: { layer: number; expert: number } | null = null;
  let focusCell = { layer: 0, expert: 0 };
  let svgEl: SVGSVGElement | null = null;
  let geom = { left: 0, top: 0, cw: 1, ch: 1 };

  function render(): void {
    clear(container);
    const { numLayers: L, numExperts: E } = current;
    const width = options.width ?? Math.max(240, measureWidth(container, 720));
    const m = { top: 20, right: 8, bottom: 34, left: 30 };
    const cw = Math.max(2, (width - m.left - m.right) / Math.max(1, E));
    const ch = Math.max(8, Math.min(16, cw * 1.2));
    const height = m.top + L * ch + m.bottom;
    const maxCount = max(current.counts, (row) => max(row)) ?? 0;
    const op = scaleSqrt()
      .domain([0, Math.max(1, maxCount)])
      .range([0.12, 1])
      .clamp(true);

    const root = h(doc, 'div', { class: 'heatmap-wrap' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart heatmap')
      .attr('data-testid', 'heatmap')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'grid')
      .attr(
        'aria-label',
        options.ariaLabel ?? `Expert ${unit} per layer: ${L} layers by ${E} experts. Hatched cells: never activated. Arrow keys move, Enter selects.`,
      );
    svgEl = svg.node();
    const defs = svg.append('defs');
    const pat = defs
      .append('pattern')
      .attr('id', `${uid}-hatch`)
      .attr('patternUnits', 'userSpaceOnUse')
      .attr('width', 4)
      .attr('height', 4)
      .attr('patternTransform', 'rotate(45)');
    pat.append('rect').attr('class', 'hatch-bg').attr('width', 4).attr('height', 4);
    pat.append('line').attr('class', 'hatch-line').attr('x1', 0).attr('y1', 0).attr('x2', 0).attr('y2', 4);
    const grad = defs.append('linearGradient').attr('id', `${uid}-legend`);
    grad.append('stop').attr('offset', '0%').attr('class', 'legend-stop').attr('stop-opacity', 0.12);
    grad.append('stop').attr('offset', '100%').attr('class', 'legend-stop').attr('stop-opacity', 1);

    // expert ticks (top) and layer labels (left)
    const step = E > 32 ? 8 : E > 8 ? 4 : 1;
    svg
      .append('g')
      .attr('class', 'axis')
      .selectAll('text')
      .data(Array.from({ length: E }, (_, i) => i).filter((i) => i % step === 0))
      .join('text')
      .attr('x', (i) => m.left + i * cw + cw / 2)
      .attr('y', m.top - 6)
      .attr('text-anchor', 'middle')
      .text((i) => String(i));
    svg
      .append('g')
      .attr('class', 'axis')
      .selectAll('text')
      .data(Array.from({ length: L }, (_, i) => i))
      .join('text')
      .attr('x', m.left - 4)
      .attr('y', (l) => m.top + l * ch + ch / 2)
      .attr('dy', '0.32em')
      .attr('text-anchor', 'end')
      .attr('data-testid', 'heatmap-layer-label')
      .text((l) => (ch >= 10 || l % 2 === 0 ? `L${layerOf(l)}` : ''));

    const cells: { layer: number; expert: number; count: number }[] = [];
    for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) cells.push({ layer: l, expert: e, count: Number(current.counts[l]?.[e] ?? 0) });
    const g = svg.append('g').attr('class', 'cells');
    g.selectAll('rect')
      .data(cells)
      .join('rect')
      .attr('class', (d) => (d.count > 0 ? 'cell' : 'cell never'))
      .attr('data-layer', (d) => d.layer)
      .attr('data-expert', (d) => d.expert)
      .attr('data-count', (d) => d.count)
      .attr('data-never', (d) => (d.count > 0 ? null : 'true'))
      .attr('role', 'gridcell')
      .attr('tabindex', (d) => (d.layer === focusCell.layer && d.expert === focusCell.expert ? 0 : -1))
      .attr('x', (d) => m.left + d.expert * cw)
      .attr('y', (d) => m.top + d.layer * ch)
      .attr('width', Math.max(1, cw - (cw > 4 ? 1 : 0)))
      .attr('height', Math.max(1, ch - 1))
      .attr('fill-opacity', (d) => (d.count > 0 ? op(d.count).toFixed(3) : null))
      // inline style (CSSOM, allowed by the CSP): must beat the stylesheet's fill for .cell
      .style('fill', (d) => (d.count > 0 ? null : `url(#${uid}-hatch)`))
      .attr('aria-label', (d) => `layer ${layerOf(d.layer)}, expert ${d.expert}: ${d.count} ${unit}${d.count > 0 ? '' : ' (never activated)'}`)
      .on('click', (_ev, d) => activate(d.layer, d.expert))
      .on('keydown', (ev: KeyboardEvent, d) => onKey(ev, d.layer, d.expert))
      .append('title')
      .text((d) => `layer ${layerOf(d.layer)}, expert ${d.expert}: ${d.count} ${unit}${d.count > 0 ? '' : ' (never activated)'}`);
    svg.append('rect').attr('class', 'selection').attr('visibility', 'hidden').attr('width', Math.max(2, cw)).attr('height', ch).attr('fill', 'none');

    // legend: count ramp, then the never-activated swatch (on a second line when narrow)
    const ly = m.top + L * ch + 12;
    const lg = svg.append('g').attr('class', 'legend').attr('transform', `translate(${m.left},${ly})`);
    const lw = Math.max(60, Math.min(160, (width - m.left - m.right) * 0.35));
    lg.append('text').attr('x', 0).attr('y', 8).attr('dy', '0.32em').text('1');
    lg.append('rect').attr('class', 'legend-ramp').attr('x', 12).attr('y', 2).attr('width', lw).attr('height', 12).attr('fill', `url(#${uid}-legend)`);
    const maxLabel = `${maxCount} ${unit}`;
    lg.append('text')
      .attr('x', 16 + lw)
      .attr('y', 8)
      .attr('dy', '0.32em')
      .text(maxLabel);
    const afterRamp = 16 + lw + maxLabel.length * 6 + 16;
    const wrap = afterRamp + 110 > width - m.left - m.right;
    const nx = wrap ? 0 : afterRamp;
    const ny = wrap ? 20 : 2;
    lg.append('rect')
      .attr('class', 'cell never legend-never')
      .attr('x', nx)
      .attr('y', ny)
      .attr('width', 12)
      .attr('height', 12)
      .style('fill', `url(#${uid}-hatch)`);
    lg.append('text')
      .attr('x', nx + 16)
      .attr('y', ny + 6)
      .attr('dy', '0.32em')
      .text('never activated');
    if (wrap) svg.attr('height', height + 20).attr('viewBox', `0 0 ${width} ${height + 20}`);
    geom = { left: m.left, top: m.top, cw, ch };
    applySelection();
  }

  function applySelection(): void {
    if (!svgEl) return;
    const sel = svgEl.querySelector('rect.selection');
    if (!sel) return;
    if (!selected) {
      sel.setAttribute('visibility', 'hidden');
      return;
    }
    sel.setAttribute('x', String(geom.left + selected.expert * geom.cw - 0.5));
    sel.setAttribute('y', String(geom.top + selected.layer * geom.ch - 0.5));
    sel.setAttribute('visibility', 'visible');
  }

  function cellEl(layer: number, expert: number): SVGRectElement | null {
    return (svgEl?.querySelector(`rect.cell[data-layer="${layer}"][data-expert="${expert}"]`) as SVGRectElement | null) ?? null;
  }

  function activate(layer: number, expert: number): void {
    moveFocus(layer, expert, false);
    selected = { layer, expert };
    applySelection();
    options.onCellClick?.(layer, expert);
  }

  function moveFocus(layer: number, expert: number, focus: boolean): void {
    cellEl(focusCell.layer, focusCell.expert)?.setAttribute('tabindex', '-1');
    focusCell = { layer, expert };
    const el = cellEl(layer, expert);
    el?.setAttribute('tabindex', '0');
    if (focus) (el as unknown as HTMLElement | null)?.focus?.();
  }

  function onKey(ev: KeyboardEvent, layer: number, expert: number): void {
    const { numLayers: L, numExperts: E } = current;
    let l = layer;
    let e = expert;
    switch (ev.key) {
      case 'ArrowLeft':
        e = Math.max(0, e - 1);
        break;
      case 'ArrowRight':
        e = Math.min(E - 1, e + 1);
        break;
      case 'ArrowUp':
        l = Math.max(0, l - 1);
        break;
      case 'ArrowDown':
        l = Math.min(L - 1, l + 1);
        break;
      case 'Home':
        e = 0;
        break;
      case 'End':
        e = E - 1;
        break;
      case 'Enter':
      case ' ':
        ev.preventDefault();
        activate(layer, expert);
        return;
      default:
        return;
    }
    ev.preventDefault();
    moveFocus(l, e, true);
  }

  render();
  const update = ((next: ExpertHeatmapData) => {
    current = next;
    if (focusCell.layer >= next.numLayers || focusCell.expert >= next.numExperts) focusCell = { layer: 0, expert: 0 };
    if (selected && (selected.layer >= next.numLayers || selected.expert >= next.numExperts)) selected = null;
    render();
  }) as ExpertHeatmapUpdate;
  update.select = (cell) => {
    selected = cell;
    applySelection();
  };
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
