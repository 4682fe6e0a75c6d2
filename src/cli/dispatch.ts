/**
 * The command line's top level: help (`--help`, `-h`, `help [COMMAND]`, `COMMAND --help`), `--version`,
 * and one exit-code convention for every command: 0 success, 1 a failure while running, 2 bad usage
 * (printed with the usage of the command concerned). main.ts runs it; tests import it (main.ts would run
 * the CLI when bundled into a test).
 */
import { version } from '../../package.json';
import type { CliContext } from './command';
import { commandTable, commandUsage, runCommand } from './commands';

export const USAGE = `moe-scope <command> [options]

Commands:
${commandTable()}
Options common to model commands: --provider auto|cuda|webgpu|cpu (default auto: cuda, then webgpu, then cpu), --cache DIR;
--engine onnxruntime|pytorch|auto (default onnxruntime; pytorch runs python -m moe_scope_worker with --python PATH, else $MOE_SCOPE_PYTHON,
else the checkout's .venv/bin/python when present, else python3; a relative path is taken from the current folder) on trace and eval;
--precision auto|fp32|fp16|bf16|int8|int4 on trace, eval, sweep, doctor and analyze-weights (default auto: the most precise the engine runs that fits
the memory) and on experiment (default: its baseline's precision; another one is refused).
Help on one command: moe-scope help COMMAND, or moe-scope COMMAND --help. Version: moe-scope --version.`;

export const VERSION = version;

export async function dispatch(argv: string[], ctx: CliContext): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined) {
    ctx.err(USAGE);
    return 2;
  }
  if (command === '--help' || command === '-h') {
    ctx.out(USAGE);
    return 0;
  }
  if (command === '--version' || command === '-V' || command === 'version') {
    ctx.out(`moe-scope ${VERSION}`);
    return 0;
  }
  if (command === 'help') {
    if (rest.length === 0) {
      ctx.out(USAGE);
      return 0;
    }
    const usage = commandUsage(rest[0]);
    if (usage === null) {
      ctx.err(`moe-scope help: unknown command "${rest[0]}"\n\n${USAGE}`);
      return 2;
    }
    ctx.out(`moe-scope ${usage}`);
    return 0;
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
