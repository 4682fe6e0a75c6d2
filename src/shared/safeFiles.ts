/**
 * The one way the product opens a file that came from outside (run folders, sweep folders, specs, biases,
 * configs) and the one check for a path it writes. A file to read must be a regular file (a FIFO would
 * block forever, /dev/zero would fill memory) of bounded size, checked on the open descriptor so nothing
 * can be swapped in between the check and the read; with `within`, it must also resolve to a place inside
 * that folder (a symbolic link in a cloned workspace must not lead the reader elsewhere). A path to write
 * must stay inside its run or sweep folder, and its last component is never a symbolic link (opened with
 * O_NOFOLLOW), so truncating or appending cannot reach a file outside. Every failure is an InputError
 * naming the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { InputError } from './inputError';

export type InputErrorClass = new (file: string, problem: string, place?: number | string | null) => InputError;

export interface SafeReadOptions {
  /** Refuse larger files unread. */
  maxBytes: number;
  /** The file must resolve (symbolic links followed) to a place inside this folder. */
  within?: string;
  /** The error class to throw (a reader's InputError subclass). */
  error?: InputErrorClass;
}

/** A dataset file (CSV, JSONL, Parquet): MMLU is ~10 MB; 1 GiB leaves room for far larger sets without reading a device. */
export const MAX_DATA_FILE_BYTES = 1 << 30;

/** The largest text a JavaScript string can hold (V8's limit is just under 512 MiB): the bound for line files read whole. */
export const MAX_TEXT_BYTES = (1 << 29) - 64;

const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;

function kindOf(st: fs.Stats): string {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a folder';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'a special file';
}

/** Whether `inner` (resolved) is `outer` or below it. */
export function isInside(outer: string, inner: string): boolean {
  const rel = path.relative(outer, inner);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function realFolder(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return path.resolve(dir);
  }
}

function checkWithin(file: string, within: string, E: InputErrorClass): void {
  let real: string;
  try {
    real = fs.realpathSync(file);
  } catch (e) {
    throw new E(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : `cannot read (${(e as Error).message})`);
  }
  const root = realFolder(within);
  if (!isInside(root, real)) throw new E(file, `a symbolic link to ${real}, outside ${within}; refusing to read it`);
}

function openProblem(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'not a regular file (a folder)' : `cannot read (${(e as Error).message})`;
}

/** The file's bytes: a regular file, at most maxBytes, inside `within` when given. */
export function readRegularFile(file: string, options: SafeReadOptions): Buffer {
  const E = options.error ?? InputError;
  if (options.within !== undefined) checkWithin(file, options.within, E);
  let fd: number;
  try {
    // Non-blocking, so that opening a FIFO returns at once and the check below refuses it.
    fd = fs.openSync(file, fs.constants.O_RDONLY | O_NONBLOCK);
  } catch (e) {
    throw new E(file, openProblem(e));
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) throw new E(file, `not a regular file (${kindOf(st)})`);
    if (st.size > options.maxBytes) throw new E(file, `${st.size} bytes, more than the ${options.maxBytes} this file may have`);
    // Never more than the size allows, even if the file grows while it is read.
    const buf = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < st.size) {
      const n = fs.readSync(fd, buf, got, st.size - got, got);
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

/** readRegularFile without blocking the thread (the editor host reads workspace files this way). */
export async function readRegularFileAsync(file: string, options: SafeReadOptions): Promise<Buffer> {
  const E = options.error ?? InputError;
  if (options.within !== undefined) {
    let real: string;
    try {
      real = await fs.promises.realpath(file);
    } catch (e) {
      throw new E(file, openProblem(e));
    }
    if (!isInside(realFolder(options.within), real)) throw new E(file, `a symbolic link to ${real}, outside ${options.within}; refusing to read it`);
  }
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, fs.constants.O_RDONLY | O_NONBLOCK);
  } catch (e) {
    throw new E(file, openProblem(e));
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new E(file, `not a regular file (${kindOf(st)})`);
    if (st.size > options.maxBytes) throw new E(file, `${st.size} bytes, more than the ${options.maxBytes} this file may have`);
    const buf = Buffer.allocUnsafe(st.size);
    let got = 0;
    while (got < st.size) {
      const { bytesRead } = await handle.read(buf, got, st.size - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await handle.close();
  }
}

/** readRegularFile as UTF-8 text. */
export function readRegularText(file: string, options: SafeReadOptions): string {
  return readRegularFile(file, { ...options, maxBytes: Math.min(options.maxBytes, MAX_TEXT_BYTES) }).toString('utf8');
}

/** Whether something (a file, a link, anything) is at `file`; lstat, so a dangling link counts too. */
export function entryExists(file: string): boolean {
  try {
    fs.lstatSync(file);
    return true;
  } catch {
    return false;
  }
}

/**
 * Refuses to write `file` unless it stays inside `root`: the deepest folder of its path that exists must
 * resolve inside root's real path, and `file` itself must not be a symbolic link. Call before every write
 * into a run or sweep folder; the write itself then opens with O_NOFOLLOW (openInside) or renames onto
 * the name (which replaces a link rather than following it).
 */
export function assertWritableInside(root: string, file: string, E: InputErrorClass = InputError): void {
  const abs = path.resolve(file);
  const rootReal = realFolder(root);
  if (!isInside(path.resolve(root), abs) && !isInside(rootReal, abs)) throw new E(abs, `outside ${root}; refusing to write it`);
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(abs);
  } catch {
    /* not there yet */
  }
  if (st?.isSymbolicLink()) throw new E(abs, `a symbolic link (to ${safeReadlink(abs)}); refusing to write through it`);
  if (st && !st.isFile() && !st.isDirectory()) throw new E(abs, `not a regular file (${kindOf(st)}); refusing to write it`);
  let dir = path.dirname(abs);
  while (!entryExists(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const real = realFolder(dir);
  if (!isInside(rootReal, real)) throw new E(abs, `its folder ${dir} leads to ${real}, outside ${root}; refusing to write it`);
}

function safeReadlink(file: string): string {
  try {
    return fs.readlinkSync(file);
  } catch {
    return '?';
  }
}

/** Opens `file` inside `root` for writing ('a' append, 'w' truncate, 'r+' read and write), never through a symbolic link. */
export function openInside(root: string, file: string, mode: 'a' | 'w' | 'r+', E: InputErrorClass = InputError): number {
  assertWritableInside(root, file, E);
  const c = fs.constants;
  const flags = (mode === 'a' ? c.O_WRONLY | c.O_APPEND | c.O_CREAT : mode === 'w' ? c.O_WRONLY | c.O_TRUNC | c.O_CREAT : c.O_RDWR) | O_NOFOLLOW;
  try {
    return fs.openSync(file, flags, 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new E(file, code === 'ELOOP' ? 'a symbolic link; refusing to write through it' : `cannot write (${(e as Error).message})`);
  }
}

/** Writes `file` inside `root` whole: a fresh temporary file (O_EXCL, no link followed) renamed over it. */
export function writeFileInside(root: string, file: string, data: string | Buffer, E: InputErrorClass = InputError): void {
  assertWritableInside(root, file, E);
  const tmp = `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const c = fs.constants;
  const fd = fs.openSync(tmp, c.O_WRONLY | c.O_CREAT | c.O_EXCL | O_NOFOLLOW, 0o644);
  try {
    writeAll(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

/** Writes every byte (writeSync may write fewer than asked). */
export function writeAll(fd: number, bytes: Buffer): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}
