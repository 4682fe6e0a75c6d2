/** Grid lines with their tick labels, as every line and strip chart draws them. */
import type { Selection } from 'd3';

type Axis = Selection<SVGGElement, unknown, null, undefined>;

/** One horizontal line per tick from x1 to x2 at y(t), labelled right-aligned `gap` px left of x1. */
export function horizontalGrid(axis: Axis, ticks: number[], y: (t: number) => number, x1: number, x2: number, label: (t: number) => string, gap = 6): void {
  for (const t of ticks) {
    axis.append('line').attr('class', 'grid').attr('x1', x1).attr('x2', x2).attr('y1', y(t)).attr('y2', y(t));
    axis
      .append('text')
      .attr('x', x1 - gap)
      .attr('y', y(t))
      .attr('dy', '0.32em')
      .attr('text-anchor', 'end')
      .text(label(t));
  }
}

/** One vertical line per tick from y1 to y2 at x(t), labelled centred at labelY. */
export function verticalGrid(
  axis: Axis,
  ticks: number[],
  x: (t: number) => number,
  y1: number,
  y2: number,
  labelY: number,
  label: (t: number) => string,
): void {
  for (const t of ticks) {
    axis.append('line').attr('class', 'grid').attr('x1', x(t)).attr('x2', x(t)).attr('y1', y1).attr('y2', y2);
    axis.append('text').attr('x', x(t)).attr('y', labelY).attr('text-anchor', 'middle').text(label(t));
  }
}
