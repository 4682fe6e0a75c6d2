/** A small toolbar of export actions for one chart (vscode-toolbar-button with codicons). */
import { canvasToPngBase64, exportMessage, serializeSvg, svgToPngBase64, toJson, type ExportMessage } from '../charts/export';
import { h } from './dom';

export interface ExportSpec {
  /** Base file name, e.g. "routing-map". */
  name: string;
  svg?: () => SVGSVGElement | null;
  canvas?: () => HTMLCanvasElement | null;
  csv?: () => string;
  json?: () => unknown;
}

export function exportButtons(doc: Document, spec: ExportSpec, post: (m: ExportMessage) => void, onError?: (e: unknown) => void): HTMLElement {
  const bar = h(doc, 'vscode-toolbar-container', { class: 'export-bar', role: 'toolbar', 'aria-label': `Export ${spec.name}` });
  const add = (fmt: string, iconName: string, label: string, run: () => Promise<void> | void) => {
    const b = h(doc, 'vscode-toolbar-button', { icon: iconName, label, title: label, 'data-export': fmt }, fmt.toUpperCase());
    b.addEventListener('click', () => {
      try {
        const r = run();
        if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch((e) => onError?.(e));
      } catch (e) {
        onError?.(e);
      }
    });
    bar.append(b);
  };
  if (spec.svg) {
    add('svg', 'file-code', `Export ${spec.name} as SVG`, () => {
      const svg = spec.svg!();
      if (svg) post(exportMessage('svg', `${spec.name}.svg`, serializeSvg(svg)));
    });
  }
  if (spec.canvas || spec.svg) {
    add('png', 'file-media', `Export ${spec.name} as PNG`, async () => {
      const canvas = spec.canvas?.();
      if (canvas) return post(exportMessage('png', `${spec.name}.png`, canvasToPngBase64(canvas)));
      const svg = spec.svg?.();
      if (svg) post(exportMessage('png', `${spec.name}.png`, await svgToPngBase64(svg)));
    });
  }
  if (spec.csv) add('csv', 'table', `Export ${spec.name} data as CSV`, () => post(exportMessage('csv', `${spec.name}.csv`, spec.csv!())));
  if (spec.json) add('json', 'json', `Export ${spec.name} data as JSON`, () => post(exportMessage('json', `${spec.name}.json`, toJson(spec.json!()))));
  return bar;
}
