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
import type { CliContext } from './command';
import { commandTable, runCommand } from './commands';

export type { CliContext } from './command';

const USAGE = `moe-scope <command> [options]

Commands:
${commandTable()}
Options common to model commands: --provider auto|cuda|webgpu|cpu (default auto: cuda, then webgpu, then cpu), --cache DIR;
--engine onnxruntime|pytorch|auto (default onnxruntime; pytorch runs python -m moe_scope_worker with --python PATH, else $MOE_SCOPE_PYTHON, else python3) on trace and eval;
--precision auto|fp32|fp16|bf16|int8|int4 on trace and eval (default auto: the most precise the engine runs that fits the memory).`;

export async function main(argv: string[], ctx: CliContext): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    ctx.out(USAGE);
    return command === undefined ? 2 : 0;
  }
  try {
    const code = await runCommand(command, rest, ctx);
    if (code !== null) return code;
    ctx.err(`moe-scope: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  } catch (e) {
    ctx.err(`moe-scope ${command}: ${(e as Error).message}`);
    return 1;
  }
}

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
