/**
 * The HTML shell of the webviews. Strict Content-Security-Policy: nothing remote, scripts only with
 * the per-render nonce, styles from the extension's own files or with the nonce (the views inject their
 * CSS as <style nonce>; @vscode-elements/elements uses constructable stylesheets, which CSP does not
 * govern, and sets inline styles only through the CSSOM, so no 'unsafe-inline' is needed).
 *
 * Imports only vscode *types*: no runtime dependency, so buildWebviewHtml is unit-testable in plain node.
 */
import type * as vscode from 'vscode';

export type WebviewKind = 'trace' | 'heatmap' | 'summary' | 'structure' | 'compare';

export interface WebviewHtmlParts {
  /** webview.cspSource */
  cspSource: string;
  /** A fresh random nonce (makeNonce()). */
  nonce: string;
  title: string;
  view: WebviewKind;
  /** webview URI of dist/webview/<view>/main.js */
  mainScriptUri: string;
  /** webview URI of dist/media/vscode-elements.js (an ES module) */
  elementsScriptUri: string;
  /** webview URI of dist/media/codicons/codicon.css */
  codiconsCssUri: string;
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** 32 characters from [A-Za-z0-9], 190 bits from a CSPRNG. */
export function makeNonce(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  let out = '';
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
}

export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src ${cspSource} 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    `img-src ${cspSource} data:`,
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

export function buildWebviewHtml(p: WebviewHtmlParts): string {
  if (!/^[A-Za-z0-9+/=_-]{16,}$/.test(p.nonce)) throw new Error('buildWebviewHtml: nonce must be at least 16 base64 characters');
  const csp = contentSecurityPolicy(p.cspSource, p.nonce);
  const a = escapeHtml;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${a(csp)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${a(p.title)}</title>
<link rel="stylesheet" id="vscode-codicon-stylesheet" href="${a(p.codiconsCssUri)}" nonce="${a(p.nonce)}">
<script type="module" nonce="${a(p.nonce)}" src="${a(p.elementsScriptUri)}"></script>
</head>
<body data-view="${a(p.view)}">
<div id="app"></div>
<script nonce="${a(p.nonce)}" src="${a(p.mainScriptUri)}"></script>
</body>
</html>
`;
}

export function joinUri(base: vscode.Uri, ...segments: string[]): vscode.Uri {
  const path = `${base.path.replace(/\/+$/, '')}/${segments.join('/')}`;
  return base.with({ path });
}

/** The webview's HTML: resources from the extension's dist/ folder, a fresh nonce per call. */
export function renderWebviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, view: WebviewKind, title: string): string {
  const uri = (...segments: string[]) => webview.asWebviewUri(joinUri(extensionUri, ...segments)).toString();
  return buildWebviewHtml({
    cspSource: webview.cspSource,
    nonce: makeNonce(),
    title,
    view,
    mainScriptUri: uri('dist', 'webview', view, 'main.js'),
    elementsScriptUri: uri('dist', 'media', 'vscode-elements.js'),
    codiconsCssUri: uri('dist', 'media', 'codicons', 'codicon.css'),
  });
}

/** localResourceRoots for the webview options: only the extension's dist folder. */
export function webviewResourceRoots(extensionUri: vscode.Uri): vscode.Uri[] {
  return [joinUri(extensionUri, 'dist')];
}
