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
    const offset = pos ? Number(pos[1]) : jsonErrorOffset(text) >= 0 ? jsonErrorOffset(text) : text.length;
    throw new E(file, `not valid JSON (${message})`, text.slice(0, offset).split('\n').length);
  }
}

/**
 * Index of the first character where text stops being JSON (text.length when it ends too early), or
 * -1 when it is valid. JSON.parse messages carry a position only in some Node versions and for some
 * errors, so the position is found here.
 */
export function jsonErrorOffset(text: string): number {
  let i = 0;
  const n = text.length;
  const fail = (): never => {
    throw new JsonStop(i);
  };
  const ws = () => {
    while (i < n && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = () => {
    i++;
    for (;;) {
      if (i >= n) fail();
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c === 0x5c) {
        i++;
        const e = text[i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else fail();
      } else if (c < 0x20) fail();
      else i++;
    }
  };
  const numberRe = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
  const value = (): void => {
    ws();
    const c = text[i];
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === '{') {
          ws();
          if (text[i] !== '"') fail();
          str();
          ws();
          if (text[i] !== ':') fail();
          i++;
        }
        value();
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === close) {
          i++;
          return;
        }
        fail();
      }
    }
    if (c === '"') return str();
    for (const lit of ['true', 'false', 'null']) {
      if (text.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    numberRe.lastIndex = i;
    if (numberRe.exec(text) === null) fail();
    i = numberRe.lastIndex;
  };
  try {
    value();
    ws();
    return i < n ? i : -1;
  } catch (e) {
    if (e instanceof JsonStop) return Math.min(e.at, n);
    return -1;
  }
}

class JsonStop {
  constructor(readonly at: number) {}
}

export function readJson(file: string, options: ReadJsonOptions = {}): unknown {
  const E = options.error ?? InputError;
  const bytes = readRegularFile(file, { maxBytes: Math.min(options.maxBytes ?? 256 << 20, MAX_TEXT_BYTES), within: options.within, error: E });
  return parseJsonText(bytes.toString('utf8'), file, E);
}

export async function readJsonAsync(file: string, options: ReadJsonOptions = {}): Promise<unknown> {
  return parseJsonText(await readTextAsync(file, options), file, options.error ?? InputError);
}

/** The text of a file from outside, after readJson's checks (a regular file, bounded in size): for readers with their own parse step. */
export async function readTextAsync(file: string, options: ReadJsonOptions = {}): Promise<string> {
  const E = options.error ?? InputError;
  const bytes = await readRegularFileAsync(file, { maxBytes: Math.min(options.maxBytes ?? 256 << 20, MAX_TEXT_BYTES), within: options.within, error: E });
  return bytes.toString('utf8');
}
