/** The part of the VS Code webview API the views use; tests and the benchmark pass a fake. */
export interface VsCodeApiLike<S = unknown> {
  postMessage(message: unknown): void;
  getState(): S | undefined;
  setState(state: S): unknown;
}

let cached: VsCodeApiLike | undefined;

/** acquireVsCodeApi() may only be called once per page; this caches it. Falls back to a console stub. */
export function getVsCodeApi<S>(): VsCodeApiLike<S> {
  if (cached) return cached as VsCodeApiLike<S>;
  if (typeof acquireVsCodeApi === 'function') {
    cached = acquireVsCodeApi<unknown>();
  } else {
    let state: unknown;
    cached = {
      postMessage: (m) => console.debug('[moe-scope webview] postMessage', m),
      getState: () => state,
      setState: (s) => (state = s),
    };
  }
  return cached as VsCodeApiLike<S>;
}
