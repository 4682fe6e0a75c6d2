/**
 * The one way to read a JSON file that came from outside: through safeFiles.ts (a regular file, bounded
 * in size before it is read, optionally inside a folder), parsed with the line and column of a syntax error, and every
 * failure an InputError naming the file.
 */
import { InputError } from './inputError';
import { MAX_TEXT_BYTES, readRegularFile, readRegularFileAsync } from './safeFiles';

export interface ReadJsonOptions {
  /** Refuse larger files unread (default 256 MiB). */
  maxBytes?: number;
  /** The error class to throw (a reader's InputError subclass). */
  error?: new (file: string, problem: string, place?: number | string | null) => InputError;
  /** The file must resolve (symbolic links followed) inside this folder. */
  within?: string;
}

export function parseJsonText(text: string, file: string, E: NonNullable<ReadJsonOptions['error']> = InputError): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const message = (e as Error).message.split('\n')[0].slice(0, 200);
    const pos = /position (\d+)/.exec(message);
    const offset = pos ? Number(pos[1]) : errorOffset(text);
    throw new E(file, `not valid JSON (${message})`, text.slice(0, offset).split('\n').length);
  }
}

/**
 * Where parsing fails, for engines whose message has no position: the shortest prefix that fails for
 * another reason than ending too early (binary search; only ever run on text already known to be bad).
 */
function errorOffset(text: string): number {
  const failsInside = (k: number) => {
    try {
      JSON.parse(text.slice(0, k));
      return false;
    } catch (e) {
      return !/end of (JSON )?input|Unterminated/i.test((e as Error).message);
    }
  };
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (failsInside(mid + 1)) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

export function readJson(file: string, options: ReadJsonOptions = {}): unknown {
  const E = options.error ?? InputError;
  const bytes = readRegularFile(file, { maxBytes: Math.min(options.maxBytes ?? 256 << 20, MAX_TEXT_BYTES), within: options.within, error: E });
  return parseJsonText(bytes.toString('utf8'), file, E);
}

export async function readJsonAsync(file: string, options: ReadJsonOptions = {}): Promise<unknown> {
  const E = options.error ?? InputError;
  const bytes = await readRegularFileAsync(file, { maxBytes: Math.min(options.maxBytes ?? 256 << 20, MAX_TEXT_BYTES), within: options.within, error: E });
  return parseJsonText(bytes.toString('utf8'), file, E);
}
