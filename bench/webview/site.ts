/**
 * A local stand-in for a VS Code webview, shared by the browser benchmark and the screenshot script:
 * a temp folder served on 127.0.0.1 with the real HTML shell (src/host/webviewHtml.ts, its CSP and
 * nonce), the bundled views, vscode-elements, codicons and the Dark/Light Modern theme variables, and
 * Chromium (playwright-core) with a fake acquireVsCodeApi that records what the view posts.
 */
import { createServer, type Server } from 'node:http';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { buildWebviewHtml, makeNonce, type WebviewKind } from '../../src/host/webviewHtml';
import { DARK_THEME, LIGHT_THEME } from './themes';

export type Theme = 'dark' | 'light';

function findRoot(): string {
  let d = resolve(__dirname);
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'webview'))) return d;
    d = dirname(d);
  }
  return process.cwd();
}
export const ROOT = findRoot();

export function firstExisting(...paths: string[]): string {
  for (const p of paths) if (existsSync(p)) return p;
  throw new Error(`none of these files exist (run "node esbuild.mjs" first): ${paths.join(', ')}`);
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.ttf': 'font/ttf',
  '.map': 'application/json',
};

function serve(dir: string): Promise<{ server: Server; origin: string }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (url.pathname === '/favicon.ico') return void res.writeHead(204).end();
    const p = resolve(dir, `.${decodeURIComponent(url.pathname)}`);
    if (!p.startsWith(dir) || !existsSync(p)) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': TYPES[extname(p)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
    res.end(readFileSync(p));
  });
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      ok({ server, origin: `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}` });
    }),
  );
}

function pageHtml(origin: string, view: WebviewKind, theme: Theme): string {
  const html = buildWebviewHtml({
    cspSource: origin,
    nonce: makeNonce(),
    title: `MoE Scope ${view}`,
    view,
    mainScriptUri: `${origin}/webview/${view}/main.js`,
    elementsScriptUri: `${origin}/media/vscode-elements.js`,
    codiconsCssUri: `${origin}/media/codicons/codicon.css`,
  });
  // What VS Code adds around a webview: the theme variables and the body theme class.
  return html
    .replace('</head>', `<link rel="stylesheet" href="${origin}/theme-${theme}.css">\n</head>`)
    .replace('<body ', `<body class="vscode-${theme}" data-vscode-theme-kind="vscode-${theme}" `);
}

const INIT_SCRIPT = `
  window.__posted = []; window.__csp = []; window.__errors = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__csp.push({ directive: e.violatedDirective, blocked: e.blockedURI, sample: e.sample }));
  window.addEventListener('error', (e) => window.__errors.push(String(e.message)));
  let __state;
  window.acquireVsCodeApi = () => ({ postMessage: (m) => window.__posted.push(m), getState: () => __state, setState: (s) => (__state = s) });
`;

export interface WebviewSite {
  origin: string;
  ctx: BrowserContext;
  close(): Promise<void>;
}

/** Serves the given views (each as <view>-<theme>.html) and starts Chromium. */
export async function startWebviewSite(views: readonly WebviewKind[], deviceScaleFactor: number): Promise<WebviewSite> {
  const dir = mkdtempSync(join(tmpdir(), 'moe-scope-webview-site-'));
  const userDataDir = mkdtempSync(join(tmpdir(), 'moe-scope-chromium-'));
  const copy = (from: string, to: string) => {
    mkdirSync(dirname(join(dir, to)), { recursive: true });
    copyFileSync(from, join(dir, to));
  };
  for (const v of views) copy(firstExisting(join(ROOT, 'dist/webview', v, 'main.js')), `webview/${v}/main.js`);
  copy(
    firstExisting(join(ROOT, 'dist/media/vscode-elements.js'), join(ROOT, 'node_modules/@vscode-elements/elements/dist/bundled.js')),
    'media/vscode-elements.js',
  );
  for (const f of ['codicon.css', 'codicon.ttf'])
    copy(firstExisting(join(ROOT, 'dist/media/codicons', f), join(ROOT, 'node_modules/@vscode/codicons/dist', f)), `media/codicons/${f}`);
  writeFileSync(join(dir, 'theme-dark.css'), DARK_THEME);
  writeFileSync(join(dir, 'theme-light.css'), LIGHT_THEME);
  const { server, origin } = await serve(dir);
  for (const v of views) for (const t of ['dark', 'light'] as const) writeFileSync(join(dir, `${v}-${t}.html`), pageHtml(origin, v, t));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    headless: true,
    deviceScaleFactor,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    origin,
    ctx,
    async close() {
      await ctx.close();
      server.close();
      rmSync(dir, { recursive: true, force: true });
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/** A trace payload whose typed arrays cross into the page as base64 strings and are rebuilt there. */
type Wire = string | Uint16Array | Float32Array;
export interface EncodedPayload {
  result: { routing: { topExperts: Wire; topWeights: Wire; entropy: Wire; probs?: Wire }; expertOutputs?: { norms: Wire; meanAngularSimilarity: Wire } };
}

/** What the served shell adds to the page's window (see the inline script above), for page.evaluate callbacks. */
export type BenchWindow = Window & {
  /** Messages the view posted to the host (export messages carry format, name and data). */
  __posted: { type: string; format: string; name: string; data: string }[];
  __csp: unknown[];
  __errors: unknown[];
  __payload?: object;
  __nextRequestId?: number;
  /** The trace view's test hook (webview/trace). */
  __moeTraceView?: { map(): { lastDrawMs(): number } | null };
};

/** Opens one view; page errors are kept on the page object (__errors) for the caller to report. */
export async function newPage(
  ctx: BrowserContext,
  origin: string,
  view: WebviewKind,
  theme: Theme,
  viewport: { width: number; height: number },
): Promise<Page> {
  const pg = await ctx.newPage();
  await pg.setViewportSize(viewport);
  const errors: string[] = [];
  pg.on('pageerror', (e) => errors.push(String(e)));
  pg.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  (pg as unknown as { __errors: string[] }).__errors = errors;
  await pg.addInitScript(INIT_SCRIPT);
  await pg.goto(`${origin}/${view}-${theme}.html`);
  await pg.waitForFunction(() => (window as unknown as BenchWindow).__posted?.some((m: { type: string }) => m.type === 'ready'));
  await pg.evaluate(() => customElements.whenDefined('vscode-button'));
  return pg;
}
