/** Number of never-activated experts per layer as bars, out of E (the top of the axis). */
import { scaleBand, scaleLinear, select } from 'd3';
import { clear, h, measureWidth } from '../common/dom';
import { horizontalGrid } from './gridlines';
import type { ChartUpdate, SvgChart } from './types';

export interface NeverActivatedData {
  layers: readonly { layer: number; count: number }[];
  numExperts: number;
}

export interface NeverActivatedOptions {
  width?: number;
  height?: number;
  onLayerClick?: (layer: number) => void;
}

export type NeverActivatedUpdate = ChartUpdate<NeverActivatedData> & SvgChart;

export function neverActivatedByLayer(container: HTMLElement, data: NeverActivatedData, options: NeverActivatedOptions = {}): NeverActivatedUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const layers = current.layers.slice().sort((a, b) => a.layer - b.layer);
    const width = options.width ?? Math.max(220, Math.min(720, measureWidth(container, 480)));
    const height = options.height ?? 150;
    const m = { top: 16, right: 8, bottom: 30, left: 34 };
    const x = scaleBand<number>()
      .domain(layers.map((l) => l.layer))
      .range([m.left, width - m.right])
      .padding(0.2);
    const y = scaleLinear()
      .domain([0, Math.max(1, current.numExperts)])
      .range([height - m.bottom, m.top]);
    const total = layers.reduce((a, l) => a + l.count, 0);
    const root = h(doc, 'div', { class: 'never-chart' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart never-activated')
      .attr('data-testid', 'never-activated-chart')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', `Never-activated experts per layer, ${total} in all`);
    svgEl = svg.node();
    const axis = svg.append('g').attr('class', 'axis');
    horizontalGrid(axis, [0, current.numExperts / 2, current.numExperts], y, m.left, width - m.right, String, 4);
    const bars = svg
      .append('g')
      .selectAll('g')
      .data(layers)
      .join('g')
      .attr('class', 'never-bar')
      .attr('data-testid', 'never-bar')
      .attr('data-layer', (l) => l.layer)
      .attr('data-count', (l) => l.count);
    bars.append('title').text((l) => `Layer ${l.layer}: ${l.count} of ${current.numExperts} experts never activated`);
    bars
      .append('rect')
      .attr('class', 'bar')
      .attr('x', (l) => x(l.layer)!)
      .attr('width', x.bandwidth())
      .attr('y', (l) => y(l.count))
      .attr('height', (l) => Math.max(0, y(0) - y(l.count)));
    if (x.bandwidth() >= 12) {
      bars
        .append('text')
        .attr('class', 'value')
        .attr('x', (l) => x(l.layer)! + x.bandwidth() / 2)
        .attr('y', (l) => y(l.count) - 3)
        .attr('text-anchor', 'middle')
        .text((l) => String(l.count));
    }
    if (options.onLayerClick) bars.on('click', (_ev, l) => options.onLayerClick!(l.layer));
    const every = layers.length > 32 ? 4 : layers.length > 16 || x.bandwidth() < 22 ? 2 : 1;
    axis
      .selectAll('text.xl')
      .data(layers.filter((_l, i) => i % every === 0))
      .join('text')
      .attr('class', 'xl')
      .attr('x', (l) => x(l.layer)! + x.bandwidth() / 2)
      .attr('y', height - m.bottom + 13)
      .attr('text-anchor', 'middle')
      .text((l) => `L${l.layer}`);
    axis
      .append('text')
      .attr('class', 'axis-title')
      .attr('x', (m.left + width - m.right) / 2)
      .attr('y', height - 3)
      .attr('text-anchor', 'middle')
      .text(`never-activated experts per layer (of ${current.numExperts})`);
  }

  render();
  const update = ((next: NeverActivatedData) => {
    current = next;
    render();
  }) as NeverActivatedUpdate;
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
