/** The shape of a command-line command: every command is one entry of the table in commands.ts. */

export interface CliContext {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface Command {
  /** The command's line(s) in the help text, starting with its name. */
  usage: string;
  run(args: string[], ctx: CliContext): Promise<number>;
}

/** Bad arguments: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}
