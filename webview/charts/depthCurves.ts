/**
 * One or more per-layer series as lines with a dot per layer (x = layer, in depth order), with optional
 * horizontal reference lines (chance levels, 0, "orthogonal"), a legend inside the SVG (so it is exported
 * too), a marker on the selected layer and, optionally, the last layer marked as the outlier it tends to be.
 *
 * Series are told apart by colour AND dash pattern (classes series-0 … series-5 in analysisCharts.css), so
 * the chart still reads in high-contrast themes and in grey-scale prints. Missing values (null / NaN) leave
 * a gap in the line. Each layer has a transparent hit column: its tooltip lists every series' value there,
 * and a click calls onLayerClick.
 */
import { scaleLinear, scalePoint, select } from 'd3';
import { clear, h, measureWidth } from '../common/dom';
import { horizontalGrid } from './gridlines';
import type { ChartUpdate, SvgChart } from './types';

export interface DepthSeries {
  key: string;
  label: string;
  /** One value per entry of `layers` (null, undefined or NaN: no value). */
  values: readonly (number | null | undefined)[];
  /** Colour/dash class; default `series-<index>`. */
  className?: string;
}

export interface DepthReference {
  value: number;
  label: string;
  /** Class of the line and label, e.g. a series class so a chance level shares its series' colour. */
  className?: string;
}

export interface DepthCurvesData {
  /** Layer ids, ascending (the x positions). */
  layers: readonly number[];
  series: readonly DepthSeries[];
  yLabel: string;
  /** Fixed y domain; default: the range of the values and references, padded. */
  yDomain?: readonly [number, number];
  refs?: readonly DepthReference[];
}

export interface DepthCurvesOptions {
  width?: number;
  height?: number;
  /** data-testid of the SVG (default "depth-curves"). */
  testid?: string;
  ariaLabel?: string;
  /** Marks the last layer (ring and label); a string replaces the label "last layer". */
  markLast?: boolean | string;
  selectedLayer?: number | null;
  onLayerClick?: (layer: number) => void;
  format?: (v: number) => string;
  /** Legend inside the SVG; default: when there is more than one series. */
  legend?: boolean;
}

export type DepthCurvesUpdate = ChartUpdate<DepthCurvesData> &
  SvgChart & {
    /** Moves the selected-layer marker (null hides it). */
    select(layer: number | null): void;
  };

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

export function depthCurves(container: HTMLElement, data: DepthCurvesData, options: DepthCurvesOptions = {}): DepthCurvesUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let selected = options.selectedLayer ?? null;
  let svgEl: SVGSVGElement | null = null;
  let xOf: (layer: number) => number | undefined = () => undefined;
  let bandW = 4;
  const fmt = options.format ?? ((v: number) => v.toFixed(3));

  function render(): void {
    clear(container);
    const layers = current.layers.slice();
    const series = current.series;
    const width = options.width ?? Math.max(300, Math.min(900, measureWidth(container, 640)));
    const showLegend = options.legend ?? series.length > 1;
    const refs = current.refs ?? [];
    const rightLabels = refs.length ? Math.min(110, 12 + Math.max(...refs.map((r) => r.label.length)) * 5.6) : 12;

    // legend rows (estimated text widths; the SVG has no layout to ask in tests or before attachment)
    const items = showLegend ? series.map((s, i) => ({ s, i, w: 34 + s.label.length * 6.2 })) : [];
    const legendRows: (typeof items)[] = [];
    let rowW = 0;
    for (const it of items) {
      if (!legendRows.length || rowW + it.w > width - 56) {
        legendRows.push([]);
        rowW = 0;
      }
      legendRows[legendRows.length - 1]!.push(it);
      rowW += it.w;
    }
    const legendH = legendRows.length * 16;
    const markLabel = options.markLast ? (typeof options.markLast === 'string' ? options.markLast : 'last layer') : '';
    const m = { top: 12 + legendH + (markLabel ? 14 : 0), right: rightLabels, bottom: 34, left: 48 };
    const height = (options.height ?? 220) + legendH;

    const all: number[] = [];
    for (const s of series) for (const v of s.values) if (finite(v)) all.push(v);
    for (const r of refs) if (finite(r.value)) all.push(r.value);
    let [lo, hi] = current.yDomain ?? [Math.min(...all, Infinity), Math.max(...all, -Infinity)];
    if (!current.yDomain) {
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
      const pad = (hi - lo) * 0.08 || Math.max(0.01, Math.abs(hi) * 0.1);
      lo -= pad;
      hi += pad;
    }
    const x = scalePoint<number>()
      .domain(layers)
      .range([m.left, width - m.right])
      .padding(0.5);
    const y = scaleLinear()
      .domain([lo, hi])
      .range([height - m.bottom, m.top]);
    if (!current.yDomain) y.nice(5);
    xOf = (l) => x(l);
    bandW = Math.max(4, layers.length > 1 ? x.step() * 0.8 : 12);

    const root = h(doc, 'div', { class: 'depth-chart' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart depth')
      .attr('data-testid', options.testid ?? 'depth-curves')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr(
        'aria-label',
        options.ariaLabel ??
          `${current.yLabel} per layer: ${series.map((s) => `${s.label} ${s.values.map((v, i) => `L${layers[i]} ${finite(v) ? fmt(v) : 'none'}`).join(', ')}`).join('; ')}`,
      );
    svgEl = svg.node();

    const axis = svg.append('g').attr('class', 'axis');
    horizontalGrid(axis, y.ticks(5), y, m.left, width - m.right, (t) => String(Number(t.toPrecision(6))));
    const every = layers.length > 48 ? 4 : layers.length > 24 ? 2 : 1;
    axis
      .selectAll('text.xl')
      .data(layers.filter((_l, i) => i % every === 0 || i === layers.length - 1))
      .join('text')
      .attr('class', 'xl')
      .attr('x', (l) => x(l)!)
      .attr('y', height - m.bottom + 14)
      .attr('text-anchor', 'middle')
      .text((l) => `L${l}`);
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('x', (m.left + width - m.right) / 2)
      .attr('y', height - 4)
      .attr('text-anchor', 'middle')
      .text('layer');
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('transform', `translate(11,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
      .attr('text-anchor', 'middle')
      .text(current.yLabel);

    // the selected layer: a neutral band behind the lines (a coloured line would look like a series)
    svg
      .append('rect')
      .attr('class', 'layer-marker')
      .attr('data-testid', 'layer-marker')
      .attr('visibility', 'hidden')
      .attr('y', m.top)
      .attr('height', Math.max(0, height - m.bottom - m.top))
      .attr('width', Math.max(4, layers.length > 1 ? x.step() * 0.8 : 12));

    // reference lines, labelled in the right margin
    const rg = svg.append('g').attr('class', 'refs');
    for (const r of refs) {
      if (!finite(r.value) || r.value < y.domain()[0]! || r.value > y.domain()[1]!) continue;
      const g = rg
        .append('g')
        .attr('class', `ref ${r.className ?? ''}`.trim())
        .attr('data-testid', 'depth-ref')
        .attr('data-value', r.value);
      g.append('line')
        .attr('class', 'ref-line-dashed')
        .attr('x1', m.left)
        .attr('x2', width - m.right)
        .attr('y1', y(r.value))
        .attr('y2', y(r.value));
      g.append('text')
        .attr('class', 'ref-label')
        .attr('x', width - m.right + 4)
        .attr('y', y(r.value))
        .attr('dy', '0.32em')
        .text(r.label);
    }

    // series: the line (gaps at missing values), then the dots
    series.forEach((s, si) => {
      const cls = s.className ?? `series-${si}`;
      const g = svg.append('g').attr('class', `series ${cls}`).attr('data-series', s.key);
      let d = '';
      let pen = false;
      layers.forEach((l, i) => {
        const v = s.values[i];
        if (!finite(v)) {
          pen = false;
          return;
        }
        d += `${pen ? 'L' : 'M'}${x(l)!.toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      });
      g.append('path')
        .attr('class', 'depth-line')
        .attr('d', d || 'M0,0')
        .attr('visibility', d ? null : 'hidden');
      const pts = layers
        .map((l, i) => ({ l, v: s.values[i], last: i === layers.length - 1 }))
        .filter((p): p is { l: number; v: number; last: boolean } => finite(p.v));
      g.selectAll('circle')
        .data(pts)
        .join('circle')
        .attr('class', (p) => (p.last && options.markLast ? 'depth-point last' : 'depth-point'))
        .attr('data-testid', 'depth-point')
        .attr('data-series', s.key)
        .attr('data-layer', (p) => p.l)
        .attr('data-value', (p) => p.v)
        .attr('data-last', (p) => (p.last && options.markLast ? 'true' : null))
        .attr('cx', (p) => x(p.l)!)
        .attr('cy', (p) => y(p.v))
        .attr('r', 3.2);
    });

    if (markLabel && layers.length) {
      const l = layers[layers.length - 1]!;
      const g = svg.append('g').attr('class', 'last-mark').attr('data-testid', 'last-layer-mark').attr('data-layer', l);
      g.append('line')
        .attr('class', 'last-band')
        .attr('x1', x(l)!)
        .attr('x2', x(l)!)
        .attr('y1', m.top - 4)
        .attr('y2', height - m.bottom);
      for (const s of series) {
        const v = s.values[layers.length - 1];
        if (finite(v)) g.append('circle').attr('class', 'last-ring').attr('cx', x(l)!).attr('cy', y(v)).attr('r', 7);
      }
      g.append('text')
        .attr('class', 'last-label')
        .attr('x', x(l)!)
        .attr('y', m.top - 8)
        .attr('text-anchor', 'end')
        .text(markLabel);
    }

    // legend (one row or more, above the plot)
    if (showLegend) {
      const lg = svg.append('g').attr('class', 'legend').attr('data-testid', 'depth-legend');
      legendRows.forEach((row, ri) => {
        let lx = m.left;
        for (const it of row) {
          const g = lg
            .append('g')
            .attr('class', `legend-item series ${it.s.className ?? `series-${it.i}`}`)
            .attr('data-series', it.s.key)
            .attr('transform', `translate(${lx},${8 + ri * 16})`);
          g.append('line').attr('class', 'depth-line').attr('x1', 0).attr('x2', 22).attr('y1', 0).attr('y2', 0);
          g.append('circle').attr('class', 'depth-point').attr('cx', 11).attr('cy', 0).attr('r', 2.6);
          g.append('text').attr('x', 28).attr('y', 0).attr('dy', '0.32em').text(it.s.label);
          lx += it.w;
        }
      });
    }

    // hit columns: tooltip with every series' value at that layer; click selects the layer
    const bw = layers.length > 1 ? x.step() : width - m.left - m.right;
    svg
      .append('g')
      .attr('class', 'hits')
      .selectAll('rect')
      .data(layers.map((l, i) => ({ l, i })))
      .join('rect')
      .attr('class', options.onLayerClick ? 'layer-hit clickable' : 'layer-hit')
      .attr('data-layer', (d) => d.l)
      .attr('x', (d) => x(d.l)! - bw / 2)
      .attr('width', bw)
      .attr('y', m.top)
      .attr('height', height - m.bottom - m.top)
      .on('click', (_ev, d) => options.onLayerClick?.(d.l))
      .append('title')
      .text(
        (d) =>
          `Layer ${d.l}${d.i === layers.length - 1 && markLabel ? ` (${markLabel})` : ''}: ${series.map((s) => `${s.label} ${finite(s.values[d.i]) ? fmt(s.values[d.i] as number) : '–'}`).join(', ')}`,
      );
    applySelection();
  }

  function applySelection(): void {
    const band = svgEl?.querySelector('rect.layer-marker');
    if (!band) return;
    const xv = selected === null ? undefined : xOf(selected);
    if (xv === undefined) {
      band.setAttribute('visibility', 'hidden');
      band.removeAttribute('data-layer');
      return;
    }
    band.setAttribute('x', String(xv - bandW / 2));
    band.setAttribute('data-layer', String(selected));
    band.setAttribute('visibility', 'visible');
  }

  render();
  const update = ((next: DepthCurvesData) => {
    current = next;
    render();
  }) as DepthCurvesUpdate;
  update.select = (layer) => {
    selected = layer;
    applySelection();
  };
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
