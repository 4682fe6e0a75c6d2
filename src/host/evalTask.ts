/**
 * The workspace-wide MMLU evaluation as a VS Code task. The provider discovers MMLU data anywhere in the
 * workspace and offers one task per dataset in "Run Task"; tasks.json may define more (task type
 * "moe-scope-eval"). A run writes to <workspace>/.moe-scope/runs/<name>, a name derived from the options,
 * so running the same task again resumes where the last one stopped. Evaluation uses its own inference
 * process, so traces stay responsive while it runs.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { discoverDatasets } from '../mmlu/load';
import { runEvaluation, progressLine, formatSeconds, type EvalOutcome } from '../eval/runner';
import type { EngineClient } from '../engines/client/engineClient';
import { EvalClientPool } from '../engines/client/evalClients';
import { evalTaskDefinitionProblems } from './evalTaskDefinition';
import { applySelection, engineLabel, selectEngine } from './engineSelection';
import { readSettings } from './settings';
import type { ModelManager } from './modelManager';
import { EngineFailure, type RunSummary, type TokenScope } from '../shared/protocol';
import { checkBaselineWeights, prepareExperiment } from '../eval/experiment';
import { describeIntervention, type ExperimentSpec } from '../analysis/interventions';
import type { EvalOptions } from '../eval/runner';

export const EVAL_TASK_TYPE = 'moe-scope-eval';

export interface EvalTaskDefinition extends vscode.TaskDefinition {
  type: typeof EVAL_TASK_TYPE;
  dataset: string;
  split?: string;
  shots?: number;
  subjects?: string[];
  limit?: number;
  tokenScope?: TokenScope;
  model?: string;
  runDir?: string;
  /**
   * An experiment: evaluate the baseline run's model, data, shots and scope again under the router
   * intervention `spec` derives from its summary (dataset and the other options are then ignored).
   */
  experiment?: { baseline: string; spec: ExperimentSpec };
}

export interface EvalTaskEvents {
  onFinished(outcome: EvalOutcome): void;
}

export class EvalTaskProvider implements vscode.TaskProvider, vscode.Disposable {
  /** One inference process per running task: tasks never share a loaded model or stop each other's. */
  private readonly clients: EvalClientPool;

  constructor(
    context: vscode.ExtensionContext,
    private readonly models: ModelManager,
    private readonly events: EvalTaskEvents,
  ) {
    this.clients = new EvalClientPool((label) => ({
      entry: path.join(context.extensionPath, 'dist', 'inference-process.js'),
      onLog: (level, m) => (level === 'info' ? models.output.info(`[eval ${label}] ${m}`) : models.output.warn(`[eval ${label}] ${m}`)),
    }));
  }

  async provideTasks(): Promise<vscode.Task[]> {
    const tasks: vscode.Task[] = [];
    for (const folder of vscode.workspace.workspaceFolders ?? []) {
      let found: Awaited<ReturnType<typeof discoverDatasets>> = [];
      try {
        found = await discoverDatasets(folder.uri.fsPath, { maxDepth: 4 });
      } catch (e) {
        this.models.output.warn(`dataset discovery in ${folder.uri.fsPath} failed: ${(e as Error).message}`);
      }
      for (const d of found) {
        const rel = path.relative(folder.uri.fsPath, d.path) || '.';
        const def: EvalTaskDefinition = { type: EVAL_TASK_TYPE, dataset: rel };
        tasks.push(this.makeTask(def, folder, `evaluate ${rel} (${d.label})`));
      }
    }
    return tasks;
  }

  resolveTask(task: vscode.Task): vscode.Task | undefined {
    const def = task.definition as EvalTaskDefinition;
    if (def.type !== EVAL_TASK_TYPE) return undefined;
    const folder = typeof task.scope === 'object' ? (task.scope as vscode.WorkspaceFolder) : vscode.workspace.workspaceFolders?.[0];
    if (!folder) return undefined;
    return this.makeTask(def, folder, task.name);
  }

  makeTask(def: EvalTaskDefinition, folder: vscode.WorkspaceFolder, name: string): vscode.Task {
    const task = new vscode.Task(
      def,
      folder,
      name,
      'MoE Scope',
      new vscode.CustomExecution(async (resolved) => {
        const lease = this.clients.acquire(name);
        return new EvalTerminal(resolved as EvalTaskDefinition, folder, this.models, lease.client, this.events, lease.release);
      }),
    );
    task.group = vscode.TaskGroup.Test;
    task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, panel: vscode.TaskPanelKind.Dedicated, clear: false };
    task.detail = 'MMLU evaluation with routing analyses (resumable)';
    return task;
  }

  dispose(): void {
    void this.clients.dispose();
  }
}

/** Folder name of an experiment: next to its baseline, named after the rule, so running it again resumes. */
export function experimentFolderName(baselineDir: string, spec: ExperimentSpec): string {
  const rule =
    spec.kind === 'prune-never-activated'
      ? 'prune-never-activated'
      : spec.kind === 'prune-below-count'
        ? `prune-below-${spec.count}`
        : spec.kind === 'prune'
          ? `prune-${spec.experts.length}-chosen-${hashOf(JSON.stringify(spec.experts))}`
          : spec.kind === 'prune-by'
            ? `prune-by-${spec.plan.criterion}-${spec.plan.mode}-${spec.plan.mode === 'threshold' ? `below${spec.plan.threshold}` : `${+(spec.plan.ratio! * 100).toFixed(2)}pct`}`
            : `steer-top${+(spec.fraction * 100).toFixed(2)}pct-bias${spec.bias}`;
  return `${path.basename(baselineDir)}--${rule}`.replace(/[^\w.-]+/g, '_');
}

function hashOf(s: string): string {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return (h >>> 0).toString(16).padStart(8, '0');
}

/** Folder name of a run: the same options give the same folder, which is what makes "run again" resume. */
export function runFolderName(def: EvalTaskDefinition, shots: number, scope: TokenScope, split: string, limit: number, modelPath: string): string {
  const parts = [path.basename(path.resolve(def.dataset)) || 'mmlu', path.basename(modelPath), split, `${shots}shot`, scope];
  if (limit) parts.push(`limit${limit}`);
  if (def.subjects?.length) parts.push(def.subjects.length === 1 ? def.subjects[0] : `${def.subjects.length}subjects`);
  return parts.join('-').replace(/[^\w.-]+/g, '_');
}

class EvalTerminal implements vscode.Pseudoterminal {
  private readonly write = new vscode.EventEmitter<string>();
  private readonly closed = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.write.event;
  readonly onDidClose = this.closed.event;
  private readonly abort = new AbortController();

  constructor(
    private readonly def: EvalTaskDefinition,
    private readonly folder: vscode.WorkspaceFolder,
    private readonly models: ModelManager,
    private readonly client: EngineClient,
    private readonly events: EvalTaskEvents,
    private readonly release: () => Promise<void>,
  ) {}

  open(): void {
    void this.run()
      .then(
        (code) => this.closed.fire(code),
        (e) => {
          this.line(`\x1b[31m${(e as Error).message}\x1b[0m`);
          this.closed.fire(1);
        },
      )
      // This task's own inference process holds a whole model: free it once the run is over.
      .finally(() => this.release());
  }

  /** Terminating the task (or closing its terminal) cancels after the batch in flight. */
  close(): void {
    this.abort.abort();
  }

  private line(s: string): void {
    this.write.fire(`${s.replace(/\n/g, '\r\n')}\r\n`);
  }

  private async run(): Promise<number> {
    const problems = evalTaskDefinitionProblems(this.def as unknown as Record<string, unknown>);
    if (problems.length) throw new Error(`tasks.json: task of type "${EVAL_TASK_TYPE}": ${problems.join('; ')}`);
    const s = readSettings();
    let options: EvalOptions;
    if (this.def.experiment) {
      const { baseline, spec } = this.def.experiment;
      const baselineDir = path.resolve(this.folder.uri.fsPath, baseline);
      const runDir = this.def.runDir
        ? path.resolve(this.folder.uri.fsPath, this.def.runDir)
        : path.join(path.dirname(baselineDir), experimentFolderName(baselineDir, spec));
      const exp = prepareExperiment(baselineDir, spec, runDir, {
        load: { executionProvider: s.executionProvider, precision: s.precision, cacheDir: s.cacheDir },
        batchSize: s.evaluation.batchSize,
      });
      await checkBaselineWeights(exp.baseline);
      options = exp.options;
      this.line(`\x1b[1mMoE Scope experiment\x1b[0m  ${describeIntervention(exp.intervention, exp.baseline.summary.model.numLayers)}`);
      this.line(`baseline: ${baselineDir}`);
    } else {
      options = await this.plainOptions(s);
    }
    this.line(`run folder: ${options.runDir}`);
    return this.evaluate(options);
  }

  private async plainOptions(s: ReturnType<typeof readSettings>): Promise<EvalOptions> {
    const trusted = vscode.workspace.isTrusted;
    const modelPath = (trusted && this.def.model) || (await this.models.resolveModelPath(true));
    if (!modelPath) throw new Error('No model selected: run "MoE: Select model..." first.');
    const dataPath = path.resolve(this.folder.uri.fsPath, this.def.dataset);
    const split = this.def.split ?? s.evaluation.split;
    const shots = this.def.shots ?? s.evaluation.shots;
    const scope = this.def.tokenScope ?? s.evaluation.tokenScope;
    const limit = this.def.limit ?? s.evaluation.limitPerSubject;
    const subjects = this.def.subjects ?? (s.evaluation.subjects.length ? s.evaluation.subjects : undefined);
    const runDir = this.def.runDir
      ? path.resolve(this.folder.uri.fsPath, this.def.runDir)
      : path.join(this.folder.uri.fsPath, '.moe-scope', 'runs', runFolderName({ ...this.def, subjects }, shots, scope, split, limit, modelPath));
    this.line(
      `\x1b[1mMoE Scope evaluation\x1b[0m  ${vscode.workspace.asRelativePath(dataPath)}  split ${split}, ${shots}-shot, token scope: ${scope}${limit ? `, ${limit} per subject` : ''}`,
    );
    return {
      modelPath,
      load: { executionProvider: s.executionProvider, precision: s.precision, cacheDir: s.cacheDir },
      dataPath,
      split,
      shots,
      subjects,
      limitPerSubject: limit,
      tokenScope: scope,
      batchSize: s.evaluation.batchSize,
      runDir,
    };
  }

  private async evaluate(options: EvalOptions): Promise<number> {
    let lastProgress = '';
    const outcome = await Promise.resolve(
      vscode.window.withProgress(
        {
          location: vscode.ProgressLocation.Notification,
          title: options.intervention ? 'MoE Scope: experiment' : 'MoE Scope: MMLU evaluation',
          cancellable: true,
        },
        async (progress, token) => {
          token.onCancellationRequested(() => this.abort.abort());
          let reported = 0;
          const selection = await selectEngine(options.modelPath);
          applySelection(this.client, selection, this.models.extensionPath);
          this.line(`engine: ${engineLabel(selection.kind)} (${selection.why})`);
          return runEvaluation(this.client, options, {
            signal: this.abort.signal,
            onLog: (m) => this.line(m),
            onProgress: (p) => {
              lastProgress = progressLine(p);
              this.write.fire(`\r\x1b[K${lastProgress}`);
              const pct = (100 * p.done) / Math.max(1, p.total);
              progress.report({
                increment: pct - reported,
                message: `${p.done}/${p.total}, ETA ${p.etaSeconds === null ? '?' : formatSeconds(p.etaSeconds)}, accuracy ${((100 * p.correct) / Math.max(1, p.done)).toFixed(1)}%`,
              });
              reported = pct;
            },
          });
        },
      ),
    ).catch((e: unknown) => {
      if (e instanceof EngineFailure && e.code === 'cancelled') return null;
      throw e;
    });
    this.write.fire('\r\n');
    if (!outcome) {
      this.line('cancelled before the first batch; run the task again to resume.');
      return 130;
    }
    const sum: RunSummary = outcome.summary;
    this.line(
      `${outcome.cancelled ? 'Cancelled' : 'Finished'}: ${sum.questions} questions recorded${outcome.resumedQuestions ? ` (${outcome.resumedQuestions} from an earlier session)` : ''}; ` +
        `accuracy micro ${(100 * sum.accuracy.micro).toFixed(1)}%, macro ${(100 * sum.accuracy.macro).toFixed(1)}%; ` +
        `never-activated experts (${sum.tokenScope}): ${sum.neverActivatedTotal} of ${sum.model.numLayers * sum.model.numExperts}.`,
    );
    if (outcome.cancelled) this.line('Run the task again to resume from here.');
    this.events.onFinished(outcome);
    return outcome.cancelled ? 130 : 0;
  }
}
