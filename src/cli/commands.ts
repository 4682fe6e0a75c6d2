/** The command line's dataset and evaluation commands (kept apart from the model commands in main.ts). */
import type { CliContext } from './main';

interface Command {
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

const COMMANDS: Record<string, Command> = {};

export function commandTable(): string {
  return Object.values(COMMANDS)
    .map((c) => `  ${c.usage}\n`)
    .join('');
}

export async function runCommand(name: string, args: string[], ctx: CliContext): Promise<number | null> {
  const c = COMMANDS[name];
  return c ? c.run(args, ctx) : null;
}
