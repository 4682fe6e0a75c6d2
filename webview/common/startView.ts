/**
 * The start-up every view shares: the page's CSP nonce and stylesheets, the VS Code API, host messages
 * to the view, state written at once when the page goes away, and 'ready' last, so the host sends what
 * it held only once the view listens (src/host/webviewChannel.ts). Call it from a bundle's top-level
 * code: the nonce is read from document.currentScript, which is set only then.
 */
import { captureNonce, injectStyles } from './dom';
import { getVsCodeApi, type VsCodeApiLike } from './vscode';

export interface StartedView<M> {
  handle(message: M): void;
  /** Views that save their state a moment after changes write it at once through this. */
  flushState?(): void;
}

/** Stylesheets as [element id, CSS text], injected in this order. */
export type ViewStyles = readonly (readonly [id: string, css: string])[];

export function startView<S, M>(styles: ViewStyles, create: (mount: HTMLElement, api: VsCodeApiLike<S>) => StartedView<M>): StartedView<M> {
  captureNonce(document);
  for (const [id, css] of styles) injectStyles(document, id, css);
  const api = getVsCodeApi<S>();
  const view = create(document.getElementById('app') ?? document.body, api);
  window.addEventListener('message', (e: MessageEvent<M>) => {
    const msg = e.data;
    if (!msg || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') return;
    view.handle(msg);
  });
  if (view.flushState) {
    const flush = () => view.flushState!();
    window.addEventListener('pagehide', flush);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState === 'hidden') flush();
    });
  }
  api.postMessage({ type: 'ready' });
  return view;
}
