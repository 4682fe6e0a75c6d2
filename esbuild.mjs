// Bundles every entry point: the extension host, the inference process, the CLI, the webviews,
// the benchmarks and the tests. One build, one output tree (dist/ and dist-test/).
import * as esbuild from 'esbuild';
import { readdirSync, statSync, mkdirSync, rmSync, copyFileSync, existsSync } from 'node:fs';
import { join, relative, dirname } from 'node:path';

const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');

function filesUnder(dir, pattern) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p, pattern));
    else if (pattern.test(name)) out.push(p);
  }
  return out;
}

const nodeCommon = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  sourcemap: !production,
  minify: production,
  // Native addons and the editor API are resolved at run time, never bundled.
  external: ['vscode', 'onnxruntime-node', 'playwright-core', '@vscode/test-electron'],
  logLevel: 'warning',
};

const nodeEntries = Object.fromEntries(
  Object.entries({
    extension: 'src/host/extension.ts',
    'inference-process': 'src/engines/onnxruntime/process.ts',
    cli: 'src/cli/main.ts',
  }).filter(([, f]) => existsSync(f)),
);
const benchEntries = Object.fromEntries(filesUnder('bench', /\.ts$/).map((f) => [join('bench', relative('bench', f).replace(/\.ts$/, '')), f]));

const webviewEntries = Object.fromEntries(filesUnder('webview', /^main\.ts$/).map((f) => [join('webview', relative('webview', dirname(f)), 'main'), f]));

const testEntries = Object.fromEntries(filesUnder('test', /\.test\.ts$/).map((f) => [relative('test', f).replace(/\.ts$/, ''), f]));
const e2eEntries = Object.fromEntries(
  filesUnder('test/e2e', /\.ts$/)
    .filter((f) => !f.endsWith('.test.ts'))
    .map((f) => [join('e2e', relative('test/e2e', f).replace(/\.ts$/, '')), f]),
);

rmSync('dist-test', { recursive: true, force: true });
const builds = [
  { ...nodeCommon, entryPoints: { ...nodeEntries, ...benchEntries }, outdir: 'dist', banner: { js: '#!/usr/bin/env node' } },
  {
    bundle: true,
    platform: 'browser',
    target: 'es2022',
    format: 'iife',
    sourcemap: !production,
    minify: production,
    entryPoints: webviewEntries,
    outdir: 'dist',
    loader: { '.css': 'text' },
    logLevel: 'warning',
  },
  { ...nodeCommon, entryPoints: { ...testEntries, ...e2eEntries }, outdir: 'dist-test', sourcemap: true, external: [...nodeCommon.external] },
];

if (watch) {
  for (const b of builds) (await esbuild.context(b)).watch();
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}

// Codicons ship a font and a stylesheet; the webviews load them from the extension's own files.
const codicons = 'node_modules/@vscode/codicons/dist';
if (existsSync(codicons)) {
  mkdirSync('dist/media/codicons', { recursive: true });
  for (const f of ['codicon.css', 'codicon.ttf']) copyFileSync(join(codicons, f), join('dist/media/codicons', f));
}
const elements = 'node_modules/@vscode-elements/elements/dist/bundled.js';
if (existsSync(elements)) {
  mkdirSync('dist/media', { recursive: true });
  copyFileSync(elements, 'dist/media/vscode-elements.js');
}
