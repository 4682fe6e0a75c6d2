/**
 * Mean normalised gate entropy (H / ln E) per layer with the p05-p95 and p25-p75 quantile bands, and the
 * uniform maximum 1.0 (= ln E) as a dashed reference line.
 */
import { scaleLinear, select } from 'd3';
import { clear, h, measureWidth } from '../common/dom';
import { horizontalGrid } from './gridlines';
import type { ChartUpdate, SvgChart } from './types';

export interface EntropyByLayerData {
  layers: readonly {
    layer: number;
    mean: number;
    quantiles: { p05: number; p25: number; p50: number; p75: number; p95: number };
  }[];
  numExperts: number;
}

export interface EntropyByLayerOptions {
  width?: number;
  height?: number;
  /** 'full': y from 0 to 1 (default); 'zoom': from just below the smallest p05 to 1. */
  scale?: 'full' | 'zoom';
}

export type EntropyByLayerUpdate = ChartUpdate<EntropyByLayerData> & SvgChart & { setScale(s: 'full' | 'zoom'): void };

export function entropyByLayer(container: HTMLElement, data: EntropyByLayerData, options: EntropyByLayerOptions = {}): EntropyByLayerUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let scale = options.scale ?? 'full';
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const layers = current.layers.slice().sort((a, b) => a.layer - b.layer);
    const width = options.width ?? Math.max(360, Math.min(900, measureWidth(container, 720)));
    const height = options.height ?? 240;
    const m = { top: 16, right: 96, bottom: 34, left: 48 };
    const n = Math.max(1, layers.length);
    const x = scaleLinear()
      .domain([-0.5, n - 0.5])
      .range([m.left, width - m.right]);
    let lo = 0;
    if (scale === 'zoom' && layers.length) {
      const minV = Math.min(...layers.map((l) => Math.min(l.quantiles.p05, l.mean)));
      lo = Math.max(0, Math.floor((minV - 0.02) * 20) / 20);
    }
    const y = scaleLinear()
      .domain([lo, 1.02])
      .range([height - m.bottom, m.top]);
    const root = h(doc, 'div', { class: 'entropy-layer-chart' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart entropy-by-layer')
      .attr('data-testid', 'entropy-by-layer')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', `Mean normalised gate entropy per layer; ${layers.map((l) => `L${l.layer} ${l.mean.toFixed(3)}`).join(', ')}`);
    svgEl = svg.node();
    const axis = svg.append('g').attr('class', 'axis');
    horizontalGrid(axis, y.ticks(5), y, m.left, width - m.right, (t) => t.toFixed(2));
    layers.forEach((l, i) => {
      if (n <= 24 || l.layer % 2 === 0)
        axis
          .append('text')
          .attr('x', x(i))
          .attr('y', height - m.bottom + 14)
          .attr('text-anchor', 'middle')
          .text(`L${l.layer}`);
    });
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
      .attr('transform', `translate(12,${(m.top + height - m.bottom) / 2}) rotate(-90)`)
      .attr('text-anchor', 'middle')
      .text(`H / ln ${current.numExperts}`);
    const bw = Math.max(4, Math.min(28, ((width - m.left - m.right) / n) * 0.6));
    const g = svg.append('g').attr('class', 'layers');
    const item = g
      .selectAll('g')
      .data(layers)
      .join('g')
      .attr('class', 'layer')
      .attr('data-testid', 'entropy-layer')
      .attr('data-layer', (l) => l.layer);
    item
      .append('title')
      .text(
        (l) =>
          `Layer ${l.layer}: mean ${l.mean.toFixed(3)}; p05 ${l.quantiles.p05.toFixed(3)}, p25 ${l.quantiles.p25.toFixed(3)}, median ${l.quantiles.p50.toFixed(3)}, p75 ${l.quantiles.p75.toFixed(3)}, p95 ${l.quantiles.p95.toFixed(3)}`,
      );
    item
      .append('rect')
      .attr('class', 'band-outer')
      .attr('x', (_l, i) => x(i) - bw / 2)
      .attr('width', bw)
      .attr('y', (l) => y(Math.min(1.02, l.quantiles.p95)))
      .attr('height', (l) => Math.max(1, y(Math.max(lo, l.quantiles.p05)) - y(Math.min(1.02, l.quantiles.p95))));
    item
      .append('rect')
      .attr('class', 'band-inner')
      .attr('x', (_l, i) => x(i) - bw / 2)
      .attr('width', bw)
      .attr('y', (l) => y(Math.min(1.02, l.quantiles.p75)))
      .attr('height', (l) => Math.max(1, y(Math.max(lo, l.quantiles.p25)) - y(Math.min(1.02, l.quantiles.p75))));
    item
      .append('line')
      .attr('class', 'median')
      .attr('x1', (_l, i) => x(i) - bw / 2)
      .attr('x2', (_l, i) => x(i) + bw / 2)
      .attr('y1', (l) => y(l.quantiles.p50))
      .attr('y2', (l) => y(l.quantiles.p50));
    const linePath = layers.map((l, i) => `${i === 0 ? 'M' : 'L'}${x(i).toFixed(1)},${y(Math.max(lo, l.mean)).toFixed(1)}`).join('');
    svg
      .append('path')
      .attr('class', 'mean-path')
      .attr('d', linePath || 'M0,0');
    svg
      .append('g')
      .selectAll('circle')
      .data(layers)
      .join('circle')
      .attr('class', 'mean-dot')
      .attr('cx', (_l, i) => x(i))
      .attr('cy', (l) => y(Math.max(lo, l.mean)))
      .attr('r', 3);
    svg
      .append('line')
      .attr('class', 'uniform-line')
      .attr('data-testid', 'uniform-line')
      .attr('x1', m.left)
      .attr('x2', width - m.right)
      .attr('y1', y(1))
      .attr('y2', y(1));
    svg
      .append('text')
      .attr('class', 'uniform-label')
      .attr('x', width - m.right + 4)
      .attr('y', y(1))
      .attr('dy', '0.32em')
      .text(`uniform = ln ${current.numExperts}`);
    root.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        `Line: mean of H / ln ${current.numExperts} over in-scope tokens. Boxes: 25th-75th percentile; light band: 5th-95th percentile; tick: median. ` +
          `Dashed: the uniform maximum (every expert equally likely).${lo > 0 ? ` The y axis starts at ${lo.toFixed(2)}.` : ''}`,
      ),
    );
  }

  render();
  const update = ((next: EntropyByLayerData) => {
    current = next;
    render();
  }) as EntropyByLayerUpdate;
  update.setScale = (s) => {
    scale = s;
    render();
  };
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
