/**
 * Export of charts and their data. The webview serialises; the host saves:
 *   { type: 'export', format, name, data }
 * with data = UTF-8 text for 'svg' | 'csv' | 'json', and base64 (no "data:" prefix) of the PNG bytes
 * for 'png'. `name` is a suggested file name without directory (e.g. "routing-map.png").
 *
 * SVG export inlines the computed theme colours (CSS variables resolved), so the file looks the same
 * outside VS Code; PNG rasterises that SVG (or takes a canvas as is).
 */

import type { ExportFormat, ExportMessage } from '../../src/shared/protocol';

export type { ExportFormat, ExportMessage };

const SVG_NS = 'http://www.w3.org/2000/svg';

const INLINE_PROPS = [
  'fill',
  'fill-opacity',
  'stroke',
  'stroke-width',
  'stroke-dasharray',
  'stroke-opacity',
  'opacity',
  'visibility',
  'font-family',
  'font-size',
  'font-weight',
  'font-style',
  'text-anchor',
  'dominant-baseline',
  'stop-color',
  'stop-opacity',
] as const;

function inlineStyles(orig: Element, clone: Element, view: Window): void {
  const cs = view.getComputedStyle(orig);
  const style = (clone as SVGElement).style;
  if (style) {
    for (const p of INLINE_PROPS) {
      const v = cs.getPropertyValue(p);
      if (v) style.setProperty(p, v);
    }
  }
  const a = orig.children;
  const b = clone.children;
  for (let i = 0; i < a.length && i < b.length; i++) inlineStyles(a[i]!, b[i]!, view);
}

/**
 * Serialises an SVG chart with computed styles inlined and a background rectangle in the editor
 * background colour. Detached SVGs (composed for export) are attached briefly to compute styles.
 */
export function serializeSvg(svg: SVGSVGElement, options: { background?: string | null; host?: Element } = {}): string {
  const doc = svg.ownerDocument;
  const view = doc.defaultView;
  let attachedTo: Element | null = null;
  if (!svg.isConnected) {
    attachedTo = options.host ?? doc.body;
    attachedTo.appendChild(svg);
  }
  try {
    const clone = svg.cloneNode(true) as SVGSVGElement;
    clone.setAttribute('xmlns', SVG_NS);
    if (view && typeof view.getComputedStyle === 'function') inlineStyles(svg, clone, view);
    const bg =
      options.background !== undefined
        ? options.background
        : view && typeof view.getComputedStyle === 'function'
          ? view.getComputedStyle(doc.body).getPropertyValue('--vscode-editor-background').trim() || view.getComputedStyle(doc.body).backgroundColor
          : null;
    if (bg) {
      const rect = doc.createElementNS(SVG_NS, 'rect');
      rect.setAttribute('width', '100%');
      rect.setAttribute('height', '100%');
      rect.setAttribute('fill', bg);
      clone.insertBefore(rect, clone.firstChild);
    }
    const XS =
      (view as unknown as { XMLSerializer?: typeof XMLSerializer } | null)?.XMLSerializer ??
      (globalThis as { XMLSerializer?: typeof XMLSerializer }).XMLSerializer;
    const text = XS ? new XS().serializeToString(clone) : clone.outerHTML;
    return `<?xml version="1.0" encoding="UTF-8"?>\n${text}`;
  } finally {
    if (attachedTo) attachedTo.removeChild(svg);
  }
}

/** Base64 of the PNG bytes of a canvas (no "data:" prefix). */
export function canvasToPngBase64(canvas: HTMLCanvasElement): string {
  const url = canvas.toDataURL('image/png');
  const i = url.indexOf(',');
  return i >= 0 ? url.slice(i + 1) : '';
}

/** Rasterises a serialised SVG through a data: URL image (allowed by img-src data:), at `scale`. */
export function svgToPngBase64(svg: SVGSVGElement, scale = 2): Promise<string> {
  const doc = svg.ownerDocument;
  const text = serializeSvg(svg);
  const width = Number(svg.getAttribute('width')) || svg.viewBox?.baseVal?.width || 800;
  const height = Number(svg.getAttribute('height')) || svg.viewBox?.baseVal?.height || 400;
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => {
      const canvas = doc.createElement('canvas');
      canvas.width = Math.round(width * scale);
      canvas.height = Math.round(height * scale);
      const ctx = canvas.getContext('2d');
      if (!ctx) return reject(new Error('no 2d canvas'));
      ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
      resolve(canvasToPngBase64(canvas));
    };
    img.onerror = () => reject(new Error('could not rasterise the SVG'));
    img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(text)}`;
  });
}

export type CsvCell = string | number | boolean | null | undefined;

/** RFC 4180 CSV; text cells that a spreadsheet would run as a formula are prefixed with an apostrophe. */
export function toCsv(header: readonly string[], rows: Iterable<readonly CsvCell[]>): string {
  const cell = (v: CsvCell): string => {
    if (v === null || v === undefined) return '';
    if (typeof v === 'number') return Number.isFinite(v) ? String(v) : '';
    let s = String(v);
    if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const lines = [header.map(cell).join(',')];
  for (const r of rows) lines.push(r.map(cell).join(','));
  return `${lines.join('\r\n')}\r\n`;
}

/** JSON with typed arrays written as plain arrays. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => (ArrayBuffer.isView(v) && !(v instanceof DataView) ? Array.from(v as unknown as ArrayLike<number>) : v), 2);
}

export function exportMessage(format: ExportFormat, name: string, data: string): ExportMessage {
  return { type: 'export', format, name: safeFileName(name), data };
}

/** A file name without path separators or control characters. */
export function safeFileName(name: string): string {
  const n = name
    // eslint-disable-next-line no-control-regex -- control characters are what must not reach a file name
    .replace(/[\\/:*?"<>|\u0000-\u001f]+/g, '-')
    .replace(/\.{2,}/g, '')
    .replace(/-{2,}/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 120);
  return n || 'export';
}
