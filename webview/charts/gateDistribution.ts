/**
 * One token's full gate distribution in one layer: all E experts as bars (softmax probability), the k
 * chosen experts coloured by expert id and marked, the uniform level 1/E drawn as a dashed line.
 */
import { max, scaleBand, scaleLinear, select } from 'd3';
import { clear, h, measureWidth, observeWidth } from '../common/dom';
import { expertColor } from './palette';
import type { ChartUpdate, SvgChart } from './types';

export interface GateDistributionData {
  layer: number;
  token: number;
  /** Token text as shown (whitespace already made visible by the caller, or raw). */
  tokenText: string;
  numExperts: number;
  /** Softmax over all experts for this (layer, token); null when the trace has no routing.probs. */
  probs: ArrayLike<number> | null;
  /** The chosen experts in descending weight order, and their applied weights. */
  chosen: readonly number[];
  weights: readonly number[];
  /** Why probs is null, when the caller knows better than "not in this trace". */
  missingReason?: string;
}

export interface GateDistributionOptions {
  width?: number;
  height?: number;
  /** 'expert': bars in expert-id order; 'rank': sorted by probability (default 'expert'). */
  order?: 'expert' | 'rank';
  onExpertClick?: (expert: number) => void;
}

export type GateDistributionUpdate = ChartUpdate<GateDistributionData> & SvgChart & { setOrder(order: 'expert' | 'rank'): void };

export function gateDistribution(container: HTMLElement, data: GateDistributionData, options: GateDistributionOptions = {}): GateDistributionUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let order = options.order ?? 'expert';
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    svgEl = null;
    const d = current;
    const root = h(doc, 'div', { class: 'gate-dist', 'data-testid': 'gate-distribution', 'data-layer': d.layer, 'data-token': d.token });
    container.append(root);
    if (!d.probs) {
      root.append(
        h(
          doc,
          'p',
          { class: 'note', 'data-testid': 'gate-probs-missing' },
          d.missingReason ??
            'This trace does not include the full gate distribution (routing.probs), only the top-k choice. ' +
              'Trace again with full probabilities to see all experts.',
        ),
      );
      const list = h(doc, 'ol', { class: 'gate-topk' });
      d.chosen.forEach((e, i) => list.append(h(doc, 'li', {}, `expert ${e}: weight ${(d.weights[i] ?? 0).toFixed(4)}`)));
      root.append(list);
      return;
    }
    const E = d.numExperts;
    const probs = Array.from({ length: E }, (_, i) => Number(d.probs![i] ?? 0));
    const chosen = new Set(d.chosen);
    const ids = Array.from({ length: E }, (_, i) => i);
    if (order === 'rank') ids.sort((a, b) => probs[b]! - probs[a]! || a - b);
    const width = options.width ?? Math.max(320, measureWidth(container, 640));
    const height = options.height ?? 180;
    const m = { top: 12, right: 12, bottom: 30, left: 44 };
    const x = scaleBand<number>()
      .domain(ids)
      .range([m.left, width - m.right])
      .paddingInner(0.15);
    const uniform = 1 / E;
    const yMax = Math.max(uniform * 1.5, max(probs) ?? 0) * 1.08;
    const y = scaleLinear()
      .domain([0, yMax])
      .nice()
      .range([height - m.bottom, m.top]);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', `Gate distribution of token ${d.token} in layer ${d.layer}: ${E} experts, chosen ${[...d.chosen].join(', ')}`);
    svgEl = svg.node();
    // y axis: a few ticks
    const ticks = y.ticks(4);
    const ga = svg.append('g').attr('class', 'axis');
    ga.selectAll('line')
      .data(ticks)
      .join('line')
      .attr('class', 'grid')
      .attr('x1', m.left)
      .attr('x2', width - m.right)
      .attr('y1', (t) => y(t))
      .attr('y2', (t) => y(t));
    ga.selectAll('text')
      .data(ticks)
      .join('text')
      .attr('x', m.left - 6)
      .attr('y', (t) => y(t))
      .attr('dy', '0.32em')
      .attr('text-anchor', 'end')
      .text((t) => t.toFixed(3));
    svg
      .append('g')
      .attr('class', 'bars')
      .selectAll('rect')
      .data(ids)
      .join('rect')
      .attr('class', (e) => (chosen.has(e) ? 'bar chosen' : 'bar'))
      .attr('data-expert', (e) => e)
      .attr('data-chosen', (e) => (chosen.has(e) ? 'true' : null))
      .attr('x', (e) => x(e)!)
      .attr('width', x.bandwidth())
      .attr('y', (e) => y(probs[e]!))
      .attr('height', (e) => Math.max(0, y(0) - y(probs[e]!)))
      .each(function (e) {
        if (chosen.has(e)) (this as SVGRectElement).style.fill = expertColor(e, E);
      })
      .on('click', (_ev, e) => options.onExpertClick?.(e))
      .append('title')
      .text((e) => `expert ${e}: p = ${probs[e]!.toFixed(4)}${chosen.has(e) ? ` (chosen, weight ${(d.weights[d.chosen.indexOf(e)] ?? 0).toFixed(4)})` : ''}`);
    // chosen markers above bars
    svg
      .append('g')
      .attr('class', 'chosen-marks')
      .selectAll('text')
      .data(ids.filter((e) => chosen.has(e)))
      .join('text')
      .attr('x', (e) => x(e)! + x.bandwidth() / 2)
      .attr('y', (e) => y(probs[e]!) - 3)
      .attr('text-anchor', 'middle')
      .attr('class', 'chosen-mark')
      .text('▾');
    svg
      .append('line')
      .attr('class', 'uniform-line')
      .attr('x1', m.left)
      .attr('x2', width - m.right)
      .attr('y1', y(uniform))
      .attr('y2', y(uniform));
    svg
      .append('text')
      .attr('class', 'uniform-label')
      .attr('x', width - m.right)
      .attr('y', y(uniform) - 4)
      .attr('text-anchor', 'end')
      .text(`uniform 1/${E}`);
    // x labels: every 8th expert in id order, or rank ordinal
    const step = E > 16 ? 8 : 1;
    svg
      .append('g')
      .attr('class', 'axis')
      .selectAll('text')
      .data(ids.filter((_e, i) => i % step === 0))
      .join('text')
      .attr('x', (e) => x(e)! + x.bandwidth() / 2)
      .attr('y', height - m.bottom + 14)
      .attr('text-anchor', 'middle')
      .text((e) => (order === 'rank' ? `#${ids.indexOf(e) + 1}` : String(e)));
    svg
      .append('text')
      .attr('class', 'axis-title')
      .attr('x', (m.left + width - m.right) / 2)
      .attr('y', height - 4)
      .attr('text-anchor', 'middle')
      .text(order === 'rank' ? 'experts by gate probability (rank)' : 'expert id');
  }

  render();
  const update = ((next: GateDistributionData) => {
    current = next;
    render();
  }) as GateDistributionUpdate;
  update.setOrder = (o) => {
    order = o;
    render();
  };
  update.svg = () => svgEl;
  // Drawn for the container's width at the time: drawn again when the panel is resized (unless a width was given).
  const unobserve = options.width === undefined ? observeWidth(container, () => render()) : () => {};
  update.destroy = () => unobserve();
  return update;
}
