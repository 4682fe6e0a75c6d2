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

import { ENGINE_KINDS, ENGINE_SETTINGS, type EngineSetting } from '../shared/protocol';

/** Bad arguments: printed with the command's usage, exit code 2. */
export class UsageError extends Error {}

/** --engine's value, checked against the protocol's ENGINE_SETTINGS. */
export function engineSettingOption(value: string): EngineSetting {
  if (!(ENGINE_SETTINGS as readonly string[]).includes(value)) throw new UsageError(`--engine must be ${ENGINE_KINDS.join(', ')} or auto, not "${value}"`);
  return value as EngineSetting;
}
