// The same end-to-end suite against desktop VS Code (Electron) instead of code-server, for machines that
// can download VS Code (this project's own machines cannot: there, use scripts/e2e.sh / code-server).
//
//   node esbuild.mjs && node dist-test/e2e/electron.js            (npm run test:e2e:electron)
//   MOE_E2E_VSCODE_VERSION=1.95.0 ...                               pin the VS Code version (default: stable)
//   MOE_E2E_VSCODE_EXECUTABLE=/path/to/code ...                     use an installed VS Code, no download
//   MOE_E2E_VSIX=moe-scope-linux-x64.vsix ...                       test a packaged VSIX instead of the repo
// On Linux without a display run it under `xvfb-run -a`.
//
// @vscode/test-electron downloads and unpacks VS Code into .vscode-test/; Playwright's Electron driver then
// launches it with the repo as the development extension, isolated user-data and extensions dirs, and
// the suite (dist-test/e2e/suite.js) runs with MOE_E2E_BACKEND=electron.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { downloadAndUnzipVSCode, resolveCliArgsFromVSCodeExecutablePath } from '@vscode/test-electron';
import { REPO_ROOT } from './harness';

async function main(): Promise<number> {
  let exe = process.env.MOE_E2E_VSCODE_EXECUTABLE;
  if (!exe) {
    const version = process.env.MOE_E2E_VSCODE_VERSION ?? 'stable';
    try {
      exe = await downloadAndUnzipVSCode({ version, cachePath: join(REPO_ROOT, '.vscode-test'), timeout: 60_000 });
    } catch (e) {
      console.error(
        `Could not download VS Code ${version} (${(e as Error).message}).\n` +
          'This path needs the VS Code download servers; without them run the code-server suite: bash scripts/e2e.sh',
      );
      return 2;
    }
  }
  const cli = resolveCliArgsFromVSCodeExecutablePath(exe);
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', join(__dirname, 'suite.js')], {
    stdio: 'inherit',
    env: { ...process.env, MOE_E2E_BACKEND: 'electron', MOE_E2E_VSCODE_EXECUTABLE: exe, MOE_E2E_VSCODE_CLI: JSON.stringify(cli) },
  });
  return r.status ?? 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
