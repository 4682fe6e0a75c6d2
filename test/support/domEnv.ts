/**
 * A linkedom document for the webview unit tests, with the globals the charts and views touch.
 * Canvas getContext returns null under linkedom, so canvas drawing is skipped and the DOM parts checked.
 */
import { parseHTML } from 'linkedom';
import type { VsCodeApiLike } from '../../webview/common/vscode';

export interface DomEnv {
  window: Window & typeof globalThis;
  document: Document;
  app: HTMLElement;
}

export function setupDom(): DomEnv {
  const { window, document } = parseHTML('<!DOCTYPE html><html><head></head><body class="vscode-dark"><div id="app"></div></body></html>') as unknown as {
    window: Window & typeof globalThis;
    document: Document;
  };
  const g = globalThis as Record<string, unknown>;
  for (const k of ['window', 'document', 'HTMLElement', 'Element', 'Node', 'SVGElement', 'Event', 'CustomEvent', 'KeyboardEvent', 'MouseEvent']) {
    const v = k === 'window' ? window : k === 'document' ? document : (window as unknown as Record<string, unknown>)[k];
    if (v !== undefined) g[k] = v;
  }
  return { window, document, app: document.getElementById('app') as HTMLElement };
}

export interface FakeApi<S> extends VsCodeApiLike<S> {
  posted: unknown[];
  state: S | undefined;
}

export function fakeApi<S>(initial?: S): FakeApi<S> {
  const api: FakeApi<S> = {
    posted: [],
    state: initial,
    postMessage: (m) => void api.posted.push(m),
    getState: () => api.state,
    setState: (s) => (api.state = JSON.parse(JSON.stringify(s)) as S),
  };
  return api;
}

export const XSS_SCRIPT = '<script>alert(1)</script>';
export const XSS_IMG = '<img src=x onerror=alert(1)>';
export const XSS = `${XSS_SCRIPT} and ${XSS_IMG}`;
