// Test data for the end-to-end suite: a temp workspace with a few real MMLU subjects (and their licence
// notice), the generated demo model, and small files for the error paths.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './harness';

export const SUBJECTS = ['astronomy', 'high_school_geography', 'college_physics'] as const;
export const SPLITS = ['dev', 'test'] as const;

import { mmluDir } from '../support/mmlu';

export { mmluDir };

export interface Workspace {
  /** The temp dir holding the workspace, the model and the cache. */
  base: string;
  root: string;
  /** Workspace-relative path of one subject's test split. */
  questionsFile: string;
  /** A Markdown note: selecting its text is not a question. */
  notesFile: string;
  /** A CSV with one very long question (a trace that takes seconds: time to kill the process). */
  longFile: string;
  modelDir: string;
  /** moeScope.cacheDir of the workspace (converted graphs), also used by the CLI. */
  cacheDir: string;
  runsDir: string;
}

export interface WorkspaceOptions {
  /** Extra .vscode/settings.json entries. */
  settings?: Record<string, unknown>;
}

/** Generates the OLMoE-shaped demo checkpoint with the project's CLI (dist/cli.js must be built). */
export function makeDemoModel(out: string, family: 'olmoe' | 'mixtral' = 'olmoe'): string {
  const cli = join(REPO_ROOT, 'dist', 'cli.js');
  if (!existsSync(cli)) throw new Error(`${cli} not found: build first (node esbuild.mjs)`);
  execFileSync(process.execPath, [cli, 'make-demo-model', '--out', out, '--family', family], { stdio: 'pipe', timeout: 120_000 });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) {
    if (!existsSync(join(out, f))) throw new Error(`make-demo-model did not write ${f} into ${out}`);
  }
  return out;
}

/** Token ids the model's tokenizer gives `text`, through the CLI's own trace command (graph cache in `cacheDir`). */
export function cliTokenCount(modelDir: string, text: string, cacheDir: string): number {
  const cli = join(REPO_ROOT, 'dist', 'cli.js');
  const args = [cli, 'trace', '--model', modelDir, '--text', text, '--json', '--provider', 'cpu', '--cache', cacheDir];
  const out = execFileSync(process.execPath, args, {
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    timeout: 120_000,
  });
  const r = JSON.parse(out) as { ids?: number[]; tokens?: unknown[] };
  const n = r.ids?.length ?? r.tokens?.length;
  if (typeof n !== 'number') throw new Error('trace --json printed no ids');
  return n;
}

export function createWorkspace(opts: WorkspaceOptions = {}): Workspace {
  const base = mkdtempSync(join(tmpdir(), 'moe-e2e-ws-'));
  const root = join(base, 'workspace');
  const modelDir = join(base, 'model');
  const src = mmluDir();
  for (const split of SPLITS) {
    mkdirSync(join(root, 'mmlu', 'data', split), { recursive: true });
    for (const s of SUBJECTS) copyFileSync(join(src, 'data', split, `${s}_${split}.csv`), join(root, 'mmlu', 'data', split, `${s}_${split}.csv`));
  }
  copyFileSync(join(src, 'LICENSE'), join(root, 'mmlu', 'LICENSE'));
  writeFileSync(
    join(root, 'mmlu', 'NOTICE.md'),
    'These files are a few subjects of MMLU (Hendrycks et al., ICLR 2021), MIT licence: see LICENSE beside this file.\n',
  );
  mkdirSync(join(root, 'notes'), { recursive: true });
  writeFileSync(join(root, 'notes', 'notes.md'), 'These are meeting notes about the project schedule.\nNothing here is a multiple choice question.\n');
  // One record whose question is a few thousand tokens: the trace runs for seconds on the demo model.
  mkdirSync(join(root, 'scratch'), { recursive: true });
  const long = Array.from({ length: 120 }, (_, i) => `Statement ${i} says that the planets of the solar system move on ellipses around the Sun`).join(' and ');
  writeFileSync(join(root, 'scratch', 'long_test.csv'), `Which is true? ${long},Only the first,Only the last,All of them,None of them,C\n`);
  // MOE_E2E_MODEL: a copy of that checkpoint instead of the random demo model (the README's screenshots are
  // taken with the trained demo model: scripts/make-trained-demo-model.sh).
  const given = process.env.MOE_E2E_MODEL;
  if (given) {
    if (!existsSync(join(given, 'config.json'))) throw new Error(`MOE_E2E_MODEL=${given} has no config.json`);
    cpSync(given, modelDir, { recursive: true });
  } else {
    makeDemoModel(modelDir);
  }
  mkdirSync(join(root, '.vscode'), { recursive: true });
  writeFileSync(
    join(root, '.vscode', 'settings.json'),
    JSON.stringify(
      {
        'moeScope.modelPath': modelDir,
        'moeScope.executionProvider': 'cpu',
        'moeScope.cacheDir': join(base, 'cache'),
        'moeScope.trace.followSelection': false,
        'moeScope.evaluation.limitPerSubject': 2,
        'moeScope.evaluation.shots': 1,
        'moeScope.evaluation.split': 'test',
        ...opts.settings,
      },
      null,
      2,
    ),
  );
  return {
    base,
    root,
    questionsFile: `mmlu/data/test/${SUBJECTS[0]}_test.csv`,
    notesFile: 'notes/notes.md',
    longFile: 'scratch/long_test.csv',
    modelDir,
    cacheDir: join(base, 'cache'),
    runsDir: join(root, '.moe-scope', 'runs'),
  };
}

/** 1-based line numbers of the file whose line is one whole CSV record (no quoted line breaks). */
export function singleLineRecords(path: string): number[] {
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: number[] = [];
  let open = false;
  lines.forEach((l, i) => {
    const quotes = (l.match(/"/g) ?? []).length;
    const startsOpen = open;
    if (quotes % 2 === 1) open = !open;
    if (!startsOpen && !open && l.trim()) out.push(i + 1);
  });
  return out;
}

/** Deletes the workspace's temp dir (unless MOE_E2E_KEEP_TMP is set). */
export function removeWorkspace(ws: Workspace | undefined): void {
  if (ws && !process.env.MOE_E2E_KEEP_TMP) rmSync(ws.base, { recursive: true, force: true, maxRetries: 3 });
}
