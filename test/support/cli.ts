/** The built command line (dist/cli.js), run as a user runs it, and the `eval` arguments the tests share. */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import * as path from 'node:path';
import { DEMO_CORPUS, REPO_ROOT } from './models';

export const CLI = path.join(REPO_ROOT, 'dist', 'cli.js');

export function runCli(args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', maxBuffer: 1 << 30, ...options });
}

export interface DemoEval {
  model: string;
  out: string;
  cache: string;
  shots: number;
  /** The CLI's default when left out. */
  batchSize?: number;
  /** Questions per subject; all when left out. */
  limit?: number;
}

/** `eval` on the demo MMLU corpus, CPU, quiet; `extra` after the rest (a later flag wins). */
export function demoEvalArgs(o: DemoEval, extra: string[] = []): string[] {
  return [
    ...['eval', '--model', o.model, '--data', DEMO_CORPUS, '--out', o.out],
    ...(o.limit === undefined ? [] : ['--limit', String(o.limit)]),
    ...['--shots', String(o.shots)],
    ...(o.batchSize === undefined ? [] : ['--batch-size', String(o.batchSize)]),
    ...['--provider', 'cpu', '--cache', o.cache, '--quiet'],
    ...extra,
  ];
}
