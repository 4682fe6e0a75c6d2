// Ambient declarations for the webview bundles.

/** esbuild loads .css imports as text (loader: { '.css': 'text' }); the views inject them with the CSP nonce. */
declare module '*.css' {
  const text: string;
  export default text;
}

/** Provided by VS Code inside a webview; called at most once per page. */
declare function acquireVsCodeApi<S = unknown>(): {
  postMessage(message: unknown): void;
  getState(): S | undefined;
  setState(state: S): S;
};
