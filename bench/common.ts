/** What every benchmark writes alongside its numbers, and how it ends. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EvalOptions } from '../src/eval/runner';

export const BENCH_ROOT = process.cwd();
export const RESULTS_DIR = path.join(BENCH_ROOT, 'bench', 'results');

export function machineInfo(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, ...extra };
}

/** Writes bench/results/<name>.json (read by bench/report.ts) and echoes it. */
export function writeResult(name: string, result: unknown): void {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  const text = JSON.stringify(result, null, 2);
  fs.writeFileSync(path.join(RESULTS_DIR, `${name}.json`), text + '\n');
  console.log(text);
}

export function runBenchmark(main: () => Promise<void>): void {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}

/** The 5-shot evaluation every CPU benchmark times on the demo model: two demo subjects, answer scope, batch 8. */
export function demoEvalOptions(model: string, work: string, runName: string, limitPerSubject: number): EvalOptions {
  return {
    modelPath: model,
    load: { executionProvider: 'cpu', cacheDir: path.join(work, 'cache') },
    dataPath: path.join(BENCH_ROOT, 'media', 'demo-data', 'mmlu'),
    split: 'test',
    shots: 5,
    subjects: ['high_school_biology', 'marketing'],
    limitPerSubject,
    tokenScope: 'answer',
    batchSize: 8,
    runDir: path.join(work, runName),
  };
}
