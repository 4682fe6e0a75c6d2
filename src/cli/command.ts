/** The shape of a table-driven command-line command (commands.ts, experiments.ts). */
import type { CliContext } from './main';

export interface Command {
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** Bad arguments: printed with the command's usage, exit code 2. */
export class CommandUsageError extends Error {}
