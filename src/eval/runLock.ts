/**
 * A minimal exclusive lock on a run folder, so two processes never append to the same records.jsonl
 * (a sweep unit retried after its worker was lost while the first attempt's process still runs).
 *
 * The lock is a file created with O_EXCL that names its holder (host and pid). A lock whose holder is a
 * dead process on this host is stale and taken over; a lock held from another host cannot be checked
 * and is reported (remove the file by hand once that process is known to be gone).
 * Taking over a stale lock renames it away first, so of two processes that find the same stale lock
 * only one succeeds in creating the new one.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const LOCK = 'run.lock';

export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  purpose: string;
}

export class RunLockedError extends Error {
  constructor(
    message: string,
    readonly holder: LockHolder | null,
  ) {
    super(message);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | null {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as LockHolder;
    return typeof h.pid === 'number' && typeof h.host === 'string' ? h : null;
  } catch {
    return null;
  }
}

function statMtime(file: string): number {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

export interface RunLock {
  file: string;
  release(): void;
}

/** Takes the lock on `dir` (created if needed) or throws RunLockedError naming the holder. */
export function acquireRunLock(dir: string, purpose: string): RunLock {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK);
  const me: LockHolder = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString(), purpose };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx');
      fs.writeSync(fd, JSON.stringify(me) + '\n');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        process.off('exit', release);
        const h = readHolder(file);
        if (h && h.pid === me.pid && h.host === me.host && h.startedAt === me.startedAt) fs.rmSync(file, { force: true });
      };
      process.on('exit', release);
      return { file, release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = readHolder(file);
    if (holder && holder.host !== me.host) {
      throw new RunLockedError(`${file}: the run folder is locked by pid ${holder.pid} on host ${holder.host} (${holder.purpose}, since ${holder.startedAt}); remove the lock file if that process is gone`, holder);
    }
    if (holder && alive(holder.pid)) {
      throw new RunLockedError(`${file}: the run folder is in use by pid ${holder.pid} (${holder.purpose}, since ${holder.startedAt})`, holder);
    }
    if (!holder && Date.now() - statMtime(file) < 2000) {
      throw new RunLockedError(`${file}: the run folder is being locked by another process right now`, null);
    }
    // Stale (dead holder) or unreadable (a holder killed between create and write): move it aside and retry.
    try {
      fs.renameSync(file, `${file}.stale-${process.pid}-${attempt}`);
      fs.rmSync(`${file}.stale-${process.pid}-${attempt}`, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  throw new RunLockedError(`${file}: could not take the lock (another process keeps taking it)`, readHolder(file));
}
