/**
 * `moe-scope`: the headless interface to the same engine the editor uses, for GPU hosts without an
 * editor. Every command prints a clear message and exits non-zero on bad input. The commands and their
 * help live in one table (commands.ts); this file dispatches through it and hands long command lines over.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { spawn } from 'node:child_process';
import { readRegularText } from '../shared/safeFiles';
import { dispatch } from './dispatch';

export type { CliContext } from './command';

export const main = dispatch;

/**
 * ONNX Runtime's native code overflows its stack (a deep recursion inside libonnxruntime, seen with gdb:
 * exit 139) when the process's command line is longer than about 25 KB, e.g. `trace --text` with 30 KB
 * of text; a long environment is harmless. So a long command line never reaches it: the CLI runs itself
 * again with a short one and hands the arguments over in a private temporary file.
 */
const LONG_COMMAND_LINE = 8192;
const ARGV_FILE_ENV = 'MOE_SCOPE_ARGV_FILE';

function argvFromHandOver(): string[] | null {
  const file = process.env[ARGV_FILE_ENV];
  if (!file) return null;
  delete process.env[ARGV_FILE_ENV];
  // Only ever a file this CLI made (rerunWithShortCommandLine): anything else is refused, and only that
  // file and its own empty folder are removed, never a folder the variable happens to point into.
  const dir = path.dirname(path.resolve(file));
  if (path.basename(file) !== 'argv.json' || !path.basename(dir).startsWith('moe-scope-argv-') || path.dirname(dir) !== path.resolve(os.tmpdir()))
    throw new Error(`${ARGV_FILE_ENV}=${file}: not an argument file made by moe-scope (expected ${path.join(os.tmpdir(), 'moe-scope-argv-*', 'argv.json')})`);
  try {
    const argv = JSON.parse(readRegularText(file, { maxBytes: 64 << 20 })) as unknown;
    if (!Array.isArray(argv) || !argv.every((a) => typeof a === 'string')) throw new Error(`${file}: not a list of arguments`);
    return argv as string[];
  } finally {
    fs.rmSync(file, { force: true });
    try {
      fs.rmdirSync(dir);
    } catch {
      /* not empty or gone: left alone */
    }
  }
}

/** Runs this CLI again with a short command line; signals are passed on, its exit status is returned. */
function rerunWithShortCommandLine(argv: string[]): Promise<number> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'moe-scope-argv-'));
  const file = path.join(dir, 'argv.json');
  fs.writeFileSync(file, JSON.stringify(argv), { mode: 0o600 });
  const child = spawn(process.execPath, [__filename], { stdio: 'inherit', env: { ...process.env, [ARGV_FILE_ENV]: file } });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(s, forward);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      fs.rmSync(dir, { recursive: true, force: true });
      resolve(code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0));
    });
  });
}

if (require.main === module) {
  const handed = argvFromHandOver();
  const argv = handed ?? process.argv.slice(2);
  if (!handed && Buffer.byteLength(argv.join(' ')) > LONG_COMMAND_LINE) {
    rerunWithShortCommandLine(argv).then(
      (code) => {
        process.exitCode = code;
      },
      (e) => {
        process.stderr.write(`moe-scope: could not run: ${(e as Error).message}\n`);
        process.exitCode = 1;
      },
    );
  } else {
    main(argv, { out: (s) => process.stdout.write(s + '\n'), err: (s) => process.stderr.write(s + '\n') }).then(
      (code) => {
        process.exitCode = code;
      },
      (e) => {
        process.stderr.write(`${(e as Error).stack}\n`);
        process.exitCode = 1;
      },
    );
  }
}
