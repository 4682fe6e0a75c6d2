/**
 * The one error type of every reader of files that come from outside (checkpoints, tokenizers, MMLU
 * data, run folders, workspace summaries): it names the file, the place in it when there is one (a line,
 * a field, a tensor) and the problem, so that every message reads "FILE[:LINE| PLACE]: PROBLEM".
 * Readers keep their own subclasses (CheckpointError, SafetensorsError, ...) for callers that care which
 * reader failed; everyone else catches InputError.
 */
export class InputError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
    /** A 1-based line number, or a description such as 'field "model.numExperts"'. */
    readonly place: number | string | null = null,
    options?: { cause?: unknown },
  ) {
    super(place === null ? `${file}: ${problem}` : typeof place === 'number' ? `${file}:${place}: ${problem}` : `${file}: ${place}: ${problem}`, options);
    this.name = new.target.name;
  }

  /** For readers whose messages were written as "FILE: PROBLEM" strings. */
  static splitMessage(file: string, message: string): string {
    return message.startsWith(`${file}: `) ? message.slice(file.length + 2) : message;
  }
}
