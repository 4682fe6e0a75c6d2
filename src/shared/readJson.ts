/**
 * The one way to read a JSON file that came from outside: a regular file (a FIFO would block forever),
 * bounded in size before it is read, parsed with the line and column of a syntax error, and every
 * failure an InputError naming the file.
 */
import * as fs from 'node:fs';
import { InputError } from './inputError';

export interface ReadJsonOptions {
  /** Refuse larger files unread (default 256 MiB). */
  maxBytes?: number;
  /** The error class to throw (a reader's InputError subclass). */
  error?: new (file: string, problem: string, place?: number | string | null) => InputError;
}

function check(file: string, st: fs.Stats, max: number, E: NonNullable<ReadJsonOptions['error']>): void {
  if (!st.isFile()) throw new E(file, `not a regular file (${st.isFIFO() ? 'a FIFO' : st.isDirectory() ? 'a folder' : 'a special file'})`);
  if (st.size > max) throw new E(file, `${st.size} bytes, more than the ${max} this file may have`);
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
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (e) {
    throw new E(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read (${(e as Error).message})`);
  }
  check(file, st, options.maxBytes ?? 256 << 20, E);
  return parseJsonText(fs.readFileSync(file, 'utf8'), file, E);
}

export async function readJsonAsync(file: string, options: ReadJsonOptions = {}): Promise<unknown> {
  const E = options.error ?? InputError;
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch (e) {
    throw new E(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read (${(e as Error).message})`);
  }
  check(file, st, options.maxBytes ?? 256 << 20, E);
  return parseJsonText(await fs.promises.readFile(file, 'utf8'), file, E);
}
