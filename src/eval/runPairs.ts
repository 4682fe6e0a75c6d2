/** Which runs can be compared with which: never a run with itself (no vscode import: the CLI and tests use it). */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** True when two run folders are the same folder (same path after resolving, or the same folder by a link). */
export function sameRun(a: string, b: string): boolean {
  const ra = path.resolve(a);
  const rb = path.resolve(b);
  if (ra === rb) return true;
  try {
    return fs.realpathSync(ra) === fs.realpathSync(rb);
  } catch {
    return false;
  }
}

/** The runs offered as run B once run A is chosen: every run but A. */
export function runsOtherThan<R extends { dir: string }>(runs: readonly R[], a: string): R[] {
  return runs.filter((r) => !sameRun(r.dir, a));
}

export const SAME_RUN_MESSAGE = 'run A and run B are the same run; choose two different runs to compare';
