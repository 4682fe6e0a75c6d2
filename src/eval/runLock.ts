/**
 * An exclusive lock on a run folder, so that two writers can never append to the same records.jsonl.
 *
 * The lock is a file created with O_EXCL holding its holder (pid, host, start time). A second writer is
 * refused at once with the holder's identity. A lock whose holder is gone (same host, process no longer
 * running, or its pid now belongs to a process started later) is stale and is taken over; the takeover
 * itself is serialised by a second O_EXCL file so two processes finding the same stale lock cannot both
 * win.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { RunFolderError } from './runFolder';
import { readRegularText } from '../shared/safeFiles';

export const LOCK = '.lock';
const TAKEOVER = '.lock.takeover';

/** The folder is held by a live process (or is being locked right now): waiting and retrying may succeed. */
export class RunLockHeldError extends RunFolderError {}

export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  /** Kernel start time of the holder process (Linux /proc), to tell a reused pid from the holder. */
  processStart: string | null;
}

export interface RunLock {
  readonly file: string;
  readonly tookOverFrom: LockHolder | null;
  release(): void;
}

function processStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime) counted after the parenthesised command name, which may contain spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function me(): LockHolder {
  return { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString(), processStart: processStart(process.pid) };
}

function readHolder(file: string): LockHolder | null {
  try {
    const v = JSON.parse(readRegularText(file, { maxBytes: 1 << 16 })) as Partial<LockHolder>;
    if (typeof v.pid !== 'number' || typeof v.host !== 'string' || typeof v.startedAt !== 'string') return null;
    return { pid: v.pid, host: v.host, startedAt: v.startedAt, processStart: typeof v.processStart === 'string' ? v.processStart : null };
  } catch {
    return null;
  }
}

/** Whether the holder is known to be gone. A holder on another host is never presumed dead. */
export function holderIsGone(h: LockHolder): boolean {
  if (h.host !== os.hostname()) return false;
  try {
    process.kill(h.pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ESRCH';
  }
  // The pid is alive: it is still the holder unless it now belongs to a process started at another time.
  const now = processStart(h.pid);
  return h.processStart !== null && now !== null && now !== h.processStart;
}

export function describeHolder(h: LockHolder): string {
  return `process ${h.pid} on ${h.host}, started ${h.startedAt}`;
}

function createExclusive(file: string, holder: LockHolder): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
  try {
    fs.writeSync(fd, JSON.stringify(holder) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Takes the run folder's lock or throws a RunFolderError naming who holds it. */
export function acquireRunLock(runDir: string): RunLock {
  const file = path.join(runDir, LOCK);
  const holder = me();
  let tookOverFrom: LockHolder | null = null;
  for (let attempt = 0; ; attempt++) {
    if (createExclusive(file, holder)) break;
    const other = readHolder(file);
    if (other && !holderIsGone(other)) {
      throw new RunLockHeldError(
        runDir,
        `in use by another evaluation (${describeHolder(other)}); wait for it to finish or stop it. ` + `If that process is certainly gone, delete ${file}.`,
      );
    }
    if (attempt >= 3) throw new RunFolderError(file, `could not take over a stale lock (another process keeps taking it); try again`);
    // A half-written lock (holder killed between create and write) is as stale as a dead holder's, but
    // give a just-created one a moment to be written.
    if (!other && Date.now() - statMtime(file) < 2000) {
      throw new RunLockHeldError(runDir, `being locked by another process right now (${file} is being written); try again`);
    }
    takeOver(runDir, file, other);
    tookOverFrom = other;
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    const current = readHolder(file);
    if (current && current.pid === holder.pid && current.startedAt === holder.startedAt && current.host === holder.host) fs.rmSync(file, { force: true });
  };
  process.on('exit', release);
  return { file, tookOverFrom, release };
}

function statMtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Removes a stale lock, provided it is still the same stale lock once we alone may remove it. */
function takeOver(runDir: string, file: string, stale: LockHolder | null): void {
  const guard = path.join(runDir, TAKEOVER);
  if (!createExclusive(guard, me())) {
    const g = readHolder(guard);
    if (g && !holderIsGone(g)) return; // someone else is taking over; the caller retries
    fs.rmSync(guard, { force: true });
    if (!createExclusive(guard, me())) return;
  }
  try {
    const now = readHolder(file);
    const same = stale === null ? now === null : now !== null && now.pid === stale.pid && now.startedAt === stale.startedAt && now.host === stale.host;
    if (same) fs.rmSync(file, { force: true });
  } finally {
    fs.rmSync(guard, { force: true });
  }
}
