// One VS Code workbench under test, whichever way it runs:
//   - 'code-server' (default): code-server + Debian Chromium driven by Playwright (works offline);
//   - 'electron': desktop VS Code (downloaded by @vscode/test-electron, see electron.ts) driven by
//     Playwright's Electron support. Needs a machine that can download VS Code (and a display or xvfb-run).
// The suite only sees `page` (the workbench window) and the process tree to look into.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { _electron, type Browser, type ElectronApplication, type Page } from 'playwright-core';
import * as h from './harness';

export type Backend = 'code-server' | 'electron';

export interface SessionOptions {
  workspace: string;
  backend?: Backend;
  /** Install this VSIX instead of loading the repo as the development extension. */
  extensionVsix?: string;
  /** The development extension folder (default: the repo). */
  extensionDevelopmentPath?: string;
  settings?: Record<string, unknown>;
  theme?: h.Theme;
}

export interface Session {
  backend: Backend;
  page: Page;
  /** Root of the process tree that holds the extension host and its children. */
  processRoot: number;
  userDataDir: string;
  logTail(lines?: number): string;
  /** Closes the window/browser and kills the whole process tree. Idempotent. */
  stop(): Promise<void>;
}

export function backendFromEnv(): Backend {
  const b = process.env.MOE_E2E_BACKEND ?? 'code-server';
  if (b !== 'code-server' && b !== 'electron') throw new Error(`MOE_E2E_BACKEND must be code-server or electron, not ${b}`);
  return b;
}

export async function startSession(opts: SessionOptions): Promise<Session> {
  return (opts.backend ?? 'code-server') === 'electron' ? startElectron(opts) : startCodeServerSession(opts);
}

async function startCodeServerSession(opts: SessionOptions): Promise<Session> {
  const server = await h.startCodeServer({
    workspace: opts.workspace,
    ...(opts.extensionVsix ? { extensionVsix: opts.extensionVsix } : { extensionDevelopmentPath: opts.extensionDevelopmentPath ?? h.REPO_ROOT }),
    settings: opts.settings,
    theme: opts.theme,
  });
  let browser: Browser | undefined;
  try {
    browser = await h.launchBrowser();
    const { page } = await h.newPage(browser, opts.theme);
    await h.openWorkbench(page, server);
    return {
      backend: 'code-server',
      page,
      processRoot: server.process.pid!,
      userDataDir: server.userDataDir,
      logTail: (n) => server.logTail(n),
      async stop() {
        await browser?.close().catch(() => undefined);
        browser = undefined;
        await server.stop();
      },
    };
  } catch (e) {
    await browser?.close().catch(() => undefined);
    await server.stop();
    throw e;
  }
}

async function startElectron(opts: SessionOptions): Promise<Session> {
  const exe = process.env.MOE_E2E_VSCODE_EXECUTABLE;
  if (!exe) throw new Error('MOE_E2E_VSCODE_EXECUTABLE is not set: run the electron backend through dist-test/e2e/electron.js');
  const tmp = mkdtempSync(join(tmpdir(), 'moe-e2e-electron-'));
  const userDataDir = join(tmp, 'user-data');
  const extensionsDir = join(tmp, 'extensions');
  mkdirSync(join(userDataDir, 'User'), { recursive: true });
  mkdirSync(extensionsDir, { recursive: true });
  writeFileSync(join(userDataDir, 'User', 'settings.json'), JSON.stringify({ ...h.defaultUserSettings(opts.theme), ...opts.settings }, null, 2));
  const env = h.cleanEnv(undefined, tmp);
  if (opts.extensionVsix) {
    const cli = process.env.MOE_E2E_VSCODE_CLI; // set by electron.ts: [cli, ...args] as JSON
    if (!cli) throw new Error('MOE_E2E_VSCODE_CLI is not set (needed to install a VSIX)');
    const [cmd, ...pre] = JSON.parse(cli) as string[];
    const r = spawnSync(
      cmd!,
      [...pre, '--user-data-dir', userDataDir, '--extensions-dir', extensionsDir, '--install-extension', resolve(opts.extensionVsix), '--force'],
      {
        env,
        encoding: 'utf8',
        timeout: 180_000,
      },
    );
    if (r.status !== 0) throw new Error(`installing ${opts.extensionVsix} failed:\n${r.stdout}\n${r.stderr}`);
  }
  const logFile = join(tmp, 'vscode.log');
  const args = [
    resolve(opts.workspace),
    `--user-data-dir=${userDataDir}`,
    `--extensions-dir=${extensionsDir}`,
    ...(opts.extensionVsix ? [] : [`--extensionDevelopmentPath=${resolve(opts.extensionDevelopmentPath ?? h.REPO_ROOT)}`]),
    '--disable-workspace-trust',
    '--skip-welcome',
    '--skip-release-notes',
    '--disable-telemetry',
    '--disable-updates',
    '--disable-crash-reporter',
    '--no-cached-data',
    '--disable-gpu',
    '--new-window',
  ];
  let app: ElectronApplication | undefined = await _electron.launch({
    executablePath: exe,
    args,
    env: env as Record<string, string>,
    timeout: h.TIMEOUTS.workbench,
  });
  const pid = app.process().pid!;
  const log: string[] = [];
  app.process().stdout?.on('data', (d: Buffer) => log.push(d.toString()));
  app.process().stderr?.on('data', (d: Buffer) => log.push(d.toString()));
  let stopped = false;
  const session: Session = {
    backend: 'electron',
    page: undefined as unknown as Page,
    processRoot: pid,
    userDataDir,
    logTail: (n = 40) => log.join('').split('\n').slice(-n).join('\n'),
    async stop() {
      if (stopped) return;
      stopped = true;
      const tree = [pid, ...h.descendants(pid)];
      await Promise.race([app?.close().catch(() => undefined), h.sleep(h.TIMEOUTS.stop)]);
      app = undefined;
      for (const p of tree) h.killTree(p);
      writeFileSync(logFile, log.join(''));
      if (!process.env.MOE_E2E_KEEP_TMP) rmSync(tmp, { recursive: true, force: true, maxRetries: 3 });
    },
  };
  try {
    const page = await app.firstWindow({ timeout: h.TIMEOUTS.workbench });
    await page.setViewportSize({ width: 1600, height: 1000 }).catch(() => undefined);
    page.setDefaultTimeout(h.TIMEOUTS.command);
    await h.waitForWorkbench(page);
    session.page = page;
    return session;
  } catch (e) {
    const tail = session.logTail();
    await session.stop();
    throw new Error(`VS Code (electron) did not open its workbench: ${(e as Error).message}\n${tail}`, { cause: e });
  }
}
