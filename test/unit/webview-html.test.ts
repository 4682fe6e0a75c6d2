import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildWebviewHtml, contentSecurityPolicy, escapeHtml, makeNonce } from '../../src/host/webviewHtml';

const parts = {
  cspSource: 'https://file+.vscode-resource.vscode-cdn.net',
  nonce: 'abcdefghijklmnopqrstuvwxyz012345',
  title: 'Routing <trace> & "more"',
  view: 'trace' as const,
  mainScriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/webview/trace/main.js',
  elementsScriptUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/media/vscode-elements.js',
  codiconsCssUri: 'https://file+.vscode-resource.vscode-cdn.net/ext/dist/media/codicons/codicon.css',
};

test('buildWebviewHtml: strict CSP meta with the nonce', () => {
  const html = buildWebviewHtml(parts);
  const m = html.match(/<meta http-equiv="Content-Security-Policy" content="([^"]+)">/);
  assert.ok(m, 'CSP meta present');
  const csp = m![1]!.replace(/&#39;/g, "'");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, new RegExp(`script-src 'nonce-${parts.nonce}'(;|$)`));
  assert.match(csp, new RegExp(`style-src ${parts.cspSource.replace(/[.+]/g, '\\$&')} 'nonce-${parts.nonce}'`));
  assert.match(csp, /font-src /);
  assert.match(csp, /img-src .* data:/);
  assert.ok(!/unsafe-inline|unsafe-eval|\*/.test(csp), 'no unsafe-inline, unsafe-eval or wildcards');
});

test('buildWebviewHtml: nonce on every script; scripts and styles only from the given URIs', () => {
  const html = buildWebviewHtml(parts);
  const scripts = html.match(/<script\b[^>]*>/g)!;
  assert.equal(scripts.length, 2);
  for (const s of scripts) assert.ok(s.includes(`nonce="${parts.nonce}"`), s);
  assert.ok(html.includes(`src="${parts.mainScriptUri}"`));
  assert.match(html, /<script type="module"[^>]*vscode-elements\.js/);
  assert.match(html, /<link rel="stylesheet" id="vscode-codicon-stylesheet" href="[^"]+codicon\.css"/);
  assert.ok(html.includes('<title>Routing &lt;trace&gt; &amp; &quot;more&quot;</title>'));
  assert.ok(!/<script>/.test(html), 'no inline script');
});

test('buildWebviewHtml: no remote http(s) URLs besides the webview resource origin', () => {
  const html = buildWebviewHtml(parts);
  const urls = html.match(/https?:\/\/[^\s"';]+/g) ?? [];
  for (const u of urls) assert.ok(u.startsWith(parts.cspSource), `unexpected URL ${u}`);
  const local = buildWebviewHtml({
    ...parts,
    cspSource: 'vscode-webview://x',
    mainScriptUri: 'vscode-webview://x/m.js',
    elementsScriptUri: 'vscode-webview://x/e.js',
    codiconsCssUri: 'vscode-webview://x/c.css',
  });
  assert.equal((local.match(/https?:\/\//g) ?? []).length, 0);
});

test('makeNonce: fresh, long, alphanumeric; bad nonces rejected', () => {
  const a = makeNonce();
  const b = makeNonce();
  assert.notEqual(a, b);
  assert.match(a, /^[A-Za-z0-9]{32}$/);
  assert.throws(() => buildWebviewHtml({ ...parts, nonce: "x' 'unsafe-inline" }));
  assert.equal(escapeHtml(`<a href="x">'`), '&lt;a href=&quot;x&quot;&gt;&#39;');
  assert.ok(contentSecurityPolicy('vscode-resource:', 'n').includes("default-src 'none'"));
});

test('renderWebviewHtml: uses asWebviewUri for dist resources and a new nonce each call', async () => {
  const { renderWebviewHtml } = await import('../../src/host/webviewHtml');
  class FakeUri {
    constructor(
      readonly scheme: string,
      readonly path: string,
    ) {}
    with(c: { path?: string }) {
      return new FakeUri(this.scheme, c.path ?? this.path);
    }
    toString() {
      return `${this.scheme}://${this.path}`;
    }
  }
  const webview = {
    cspSource: 'https://res.test',
    asWebviewUri: (u: FakeUri) => ({ toString: () => `https://res.test${u.path}` }),
  };
  const ext = new FakeUri('file', '/ext/');
  const h1 = renderWebviewHtml(webview as never, ext as never, 'summary', 'Summary');
  const h2 = renderWebviewHtml(webview as never, ext as never, 'summary', 'Summary');
  assert.ok(h1.includes('src="https://res.test/ext/dist/webview/summary/main.js"'));
  assert.ok(h1.includes('href="https://res.test/ext/dist/media/codicons/codicon.css"'));
  const n1 = h1.match(/nonce="([^"]+)"/)![1];
  const n2 = h2.match(/nonce="([^"]+)"/)![1];
  assert.notEqual(n1, n2);
});
