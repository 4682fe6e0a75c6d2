/**
 * One sparkline per layer of the normalised gate entropy H / ln E over the tokens. The uniform maximum
 * (1.0 = ln E nats: the router spreads probability evenly over all experts) is drawn as a dashed line in
 * every row, and each row's mean is written next to it.
 */
import { clear, h } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

export interface EntropySparklinesData {
  /** Gate entropy / ln E, [layer][token] (src/analysis/trace entropyNormalized). */
  normalized: readonly (readonly number[])[];
  /** Per layer mean over the tokens (src/analysis/trace meanEntropyNormalized). */
  means: readonly number[];
  numExperts: number;
  /** The decoder layer of each routing row (src/analysis/layers.ts); absent: row i is layer i. */
  layerOfRow?: readonly number[];
}

export interface EntropySparklinesOptions {
  /** Row height in CSS px (default 26). */
  rowHeight?: number;
  /** 'full': y from 0 to 1 (default); 'zoom': from the smallest value to 1. */
  scale?: 'full' | 'zoom';
  onHoverToken?: (token: number | null) => void;
}

export type EntropySparklinesUpdate = ChartUpdate<EntropySparklinesData> &
  SvgChart & {
    highlightToken(index: number | null): void;
    setScale(scale: 'full' | 'zoom'): void;
    /** Per layer mean of H / ln E (what the labels show). */
    means(): number[];
  };

const SVG_NS = 'http://www.w3.org/2000/svg';
const VB_H = 100;

const tokenCount = (d: EntropySparklinesData): number => d.normalized[0]?.length ?? 0;

export function entropySparklines(container: HTMLElement, data: EntropySparklinesData, options: EntropySparklinesOptions = {}): EntropySparklinesUpdate {
  const doc = container.ownerDocument;
  const rowH = options.rowHeight ?? 26;
  let current = data;
  /** Rows are labelled by decoder layer: a model with dense layers has fewer rows than layers. */
  const layerOf = (row: number): number => current.layerOfRow?.[row] ?? row;
  const labelsKey = (rows: number): string => `${rows}:${current.layerOfRow?.join(',') ?? ''}`;
  let scale = options.scale ?? 'full';
  let norm: readonly (readonly number[])[] = current.normalized;
  let layerMeans: number[] = [];
  let markers: SVGLineElement[] = [];
  let highlighted: number | null = null;
  let lo = 0;

  function yOf(v: number): number {
    const t = (Math.min(1, Math.max(lo, v)) - lo) / (1 - lo || 1);
    return VB_H - 4 - t * (VB_H - 8);
  }

  interface Row {
    svg: SVGSVGElement;
    title: SVGTitleElement;
    uni: SVGLineElement;
    meanLine: SVGLineElement;
    path: SVGPathElement;
    meanText: HTMLElement;
  }
  let rows: Row[] = [];
  let axisText: HTMLElement | null = null;
  let builtFor = '';

  function svgEl<T extends SVGElement>(tag: string, attrs: Record<string, string>): T {
    const el = doc.createElementNS(SVG_NS, tag) as T;
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    return el;
  }

  function build(L: number): void {
    clear(container);
    markers = [];
    rows = [];
    const root = h(doc, 'div', { class: 'sparklines', 'data-testid': 'entropy-sparklines' });
    root.style.setProperty('--spark-row-h', `${rowH}px`);
    const head = h(doc, 'div', { class: 'spark-row spark-head' });
    axisText = h(doc, 'span', { class: 'spark-axis' });
    head.append(h(doc, 'span', { class: 'spark-label' }, 'layer'), axisText, h(doc, 'span', { class: 'spark-mean' }, 'mean'));
    root.append(head);
    for (let l = 0; l < L; l++) {
      const row = h(doc, 'div', { class: 'spark-row', 'data-layer': l });
      const svg = svgEl<SVGSVGElement>('svg', {
        class: 'sparkline',
        'data-testid': 'entropy-sparkline',
        'data-layer': String(l),
        preserveAspectRatio: 'none',
        role: 'img',
      });
      const title = svgEl<SVGTitleElement>('title', {});
      const uni = svgEl<SVGLineElement>('line', { class: 'uniform-line', 'data-testid': 'uniform-line', x1: '0', 'vector-effect': 'non-scaling-stroke' });
      const meanLine = svgEl<SVGLineElement>('line', { class: 'mean-line', x1: '0', 'vector-effect': 'non-scaling-stroke' });
      const path = svgEl<SVGPathElement>('path', { class: 'spark-path', 'vector-effect': 'non-scaling-stroke' });
      const marker = svgEl<SVGLineElement>('line', {
        class: 'spark-marker',
        y1: '0',
        y2: String(VB_H),
        'vector-effect': 'non-scaling-stroke',
        visibility: 'hidden',
      });
      markers.push(marker);
      svg.append(title, uni, meanLine, path, marker);
      svg.addEventListener('mousemove', (e: MouseEvent) => {
        const rect = svg.getBoundingClientRect();
        const T = tokenCount(current);
        if (!rect.width || T === 0) return;
        const t = Math.min(T - 1, Math.max(0, Math.floor(((e.clientX - rect.left) / rect.width) * T)));
        options.onHoverToken?.(t);
      });
      svg.addEventListener('mouseleave', () => options.onHoverToken?.(null));
      const meanText = h(doc, 'span', { class: 'spark-mean', 'data-testid': 'entropy-mean' });
      row.append(h(doc, 'span', { class: 'spark-label' }, `L${layerOf(l)}`), svg, meanText);
      root.append(row);
      rows.push({ svg, title, uni, meanLine, path, meanText });
    }
    container.append(root);
    builtFor = labelsKey(L);
  }

  function render(): void {
    norm = current.normalized;
    const L = norm.length;
    const T = tokenCount(current);
    lo = 0;
    if (scale === 'zoom' && L * T) {
      let m = 1;
      for (const row of norm) for (const v of row) if (v < m) m = v;
      lo = Math.max(0, Math.floor((m - 0.02) * 50) / 50);
    }
    if (builtFor !== labelsKey(L)) build(L);
    axisText!.textContent = `H / ln ${current.numExperts} over tokens · dashed line = uniform (1.0)${lo > 0 ? ` · y from ${lo.toFixed(2)} to 1` : ' · y from 0 to 1'}`;
    layerMeans = current.means.slice();
    const xMax = String(Math.max(1, T));
    for (let l = 0; l < L; l++) {
      const parts: string[] = new Array(T);
      for (let t = 0; t < T; t++) parts[t] = `${t === 0 ? 'M' : 'L'}${t + 0.5},${yOf(norm[l]![t]!).toFixed(1)}`;
      const mean = layerMeans[l]!;
      const r = rows[l]!;
      r.svg.setAttribute('viewBox', `0 0 ${xMax} ${VB_H}`);
      r.svg.setAttribute('aria-label', `Layer ${layerOf(l)}: mean normalised entropy ${mean.toFixed(3)}`);
      r.title.textContent = `Layer ${layerOf(l)}: mean H/ln E = ${mean.toFixed(3)} over ${T} tokens`;
      for (const [line, y] of [
        [r.uni, yOf(1)],
        [r.meanLine, yOf(Number.isFinite(mean) ? mean : 0)],
      ] as const) {
        line.setAttribute('x2', xMax);
        line.setAttribute('y1', String(y));
        line.setAttribute('y2', String(y));
      }
      r.path.setAttribute('d', parts.join('') || 'M0,0');
      r.meanText.textContent = Number.isFinite(mean) ? mean.toFixed(3) : '–';
    }
    showMarker(highlighted);
  }

  function showMarker(i: number | null): void {
    for (const m of markers) {
      if (i === null) m.setAttribute('visibility', 'hidden');
      else {
        m.setAttribute('x1', String(i + 0.5));
        m.setAttribute('x2', String(i + 0.5));
        m.setAttribute('visibility', 'visible');
      }
    }
  }

  /** A self-contained SVG (labels included) for export. */
  function composeSvg(): SVGSVGElement {
    const L = norm.length;
    const T = tokenCount(current);
    const labelW = 40;
    const meanW = 60;
    const plotW = 600;
    const rh = 30;
    const W = labelW + plotW + meanW;
    const H = L * rh + 24;
    const svg = doc.createElementNS(SVG_NS, 'svg') as SVGSVGElement;
    svg.setAttribute('class', 'chart sparklines-export');
    svg.setAttribute('width', String(W));
    svg.setAttribute('height', String(H));
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const mk = (tag: string, attrs: Record<string, string | number>, text?: string) => {
      const el = doc.createElementNS(SVG_NS, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
      if (text !== undefined) el.textContent = text;
      svg.append(el);
      return el;
    };
    mk('text', { x: labelW, y: 14, class: 'axis-title' }, `H / ln ${current.numExperts} per token; dashed = uniform (1.0)`);
    for (let l = 0; l < L; l++) {
      const y0 = 24 + l * rh;
      const yy = (v: number) => y0 + rh - 3 - ((Math.min(1, Math.max(lo, v)) - lo) / (1 - lo || 1)) * (rh - 6);
      mk('text', { x: labelW - 6, y: y0 + rh / 2, 'text-anchor': 'end', dy: '0.32em', class: 'axis' }, `L${layerOf(l)}`);
      mk('line', { x1: labelW, x2: labelW + plotW, y1: yy(1), y2: yy(1), class: 'uniform-line' });
      let d = '';
      for (let t = 0; t < T; t++) d += `${t === 0 ? 'M' : 'L'}${(labelW + ((t + 0.5) / T) * plotW).toFixed(1)},${yy(norm[l]![t]!).toFixed(1)}`;
      mk('path', { d: d || 'M0,0', class: 'spark-path' });
      mk('text', { x: labelW + plotW + 6, y: y0 + rh / 2, dy: '0.32em', class: 'axis' }, layerMeans[l]!.toFixed(3));
    }
    return svg;
  }

  render();
  const update = ((next: EntropySparklinesData) => {
    current = next;
    if (highlighted !== null && highlighted >= tokenCount(next)) highlighted = null;
    render();
  }) as EntropySparklinesUpdate;
  update.highlightToken = (i) => {
    highlighted = i;
    showMarker(i);
  };
  update.setScale = (s) => {
    scale = s;
    render();
  };
  update.means = () => layerMeans.slice();
  update.svg = () => composeSvg();
  update.destroy = () => {};
  return update;
}
