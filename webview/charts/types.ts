/** Conventions shared by the chart functions. */

/** Every chart is `(container, data, options) => update`; calling update(newData) redraws in place. */
export interface ChartUpdate<D> {
  (data: D): void;
  /** Removes listeners and observers (the container's contents are left to the caller). */
  destroy(): void;
}

/** Charts that are SVG expose their root element so export.ts can serialise it. */
export interface SvgChart {
  svg(): SVGSVGElement | null;
}
