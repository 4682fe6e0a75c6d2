/**
 * MoE Scope's extension host glue: commands, the status bar, the trace panel, the side-panel heatmap,
 * the evaluation task and the summary view. Inference never runs here: it lives in child processes.
 */
import { runPrecisionCheck } from './precisionCheckCommand';
import { providerLabel } from './providerLabel';
import { readRegularFileAsync } from '../shared/safeFiles';
import * as vscode from 'vscode';
import * as path from 'node:path';
import * as fs from 'node:fs';
import { ModelManager, runCliOutput } from './modelManager';
import { engineLabel, probePython, resolvePython, selectEngine } from './engineSelection';
import { formatEnvironment } from '../engines/client/pythonWorker';
import { checkEnvironment as runEnvironmentCheck } from './environmentCheck';
import { TraceController } from './tracePanel';
import { HeatmapViewProvider, HEATMAP_VIEW_ID } from './heatmapView';
import { EvalTaskProvider, EVAL_TASK_TYPE, type EvalTaskDefinition } from './evalTask';
import { SummaryPanels } from './summaryPanel';
import { StructurePanel } from './structurePanel';
import { ComparePanels } from './comparePanel';
import { newExperiment } from './experimentCommand';
import { affectsModel, readSettings } from './settings';
import { listRuns, newestRunSummary } from '../eval/runFolder';
import { discoverDatasets } from '../mmlu/load';
import { SweepTaskProvider, SWEEP_TASK_TYPE, type SweepTaskDefinition } from './sweepTask';
import { SweepViewProvider, SWEEP_VIEW_ID } from './sweepView';
import { runsOtherThan, sameRun, SAME_RUN_MESSAGE } from '../eval/runPairs';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('MoE Scope', { log: true });
  const models = new ModelManager(context, output);
  const trace = new TraceController(context, models);
  const heatmap = new HeatmapViewProvider(context);
  heatmap.onLensExpert = (layer, expert) => trace.lensExpert(layer, expert);
  const structure = new StructurePanel(context, models);
  const summaries = new SummaryPanels(
    context,
    (summary, runDir) => heatmap.setRun(summary, path.basename(runDir)),
    (runDir) => void vscode.commands.executeCommand('moeScope.newExperiment', runDir),
  );
  const compare = new ComparePanels(context, async (modelPath, text, intervention) => {
    // Flipped questions are traced on the loaded model, which must be the one the runs used.
    const info = await models.ensureLoaded(false);
    if (path.resolve(info.path) !== path.resolve(modelPath)) throw new Error(`the runs used ${modelPath}, but ${info.path} is loaded; select that model first`);
    return models.withBusy(() => models.client.call('trace', { input: { text }, options: { includeProbs: false, includeLastLogits: false, intervention } }));
  });
  const evalTasks = new EvalTaskProvider(context, models, {
    onFinished: (outcome) => {
      heatmap.setRun(outcome.summary, path.basename(outcome.runDir), true);
      const s = outcome.summary;
      const baseline = s.intervention?.baselineRun;
      if (baseline && !outcome.cancelled) {
        // An experiment exists to be compared with its baseline: show that straight away.
        compare.show(baseline, outcome.runDir);
        return;
      }
      void vscode.window
        .showInformationMessage(
          `MoE Scope: evaluation ${outcome.cancelled ? 'cancelled' : 'finished'}: ${s.questions} questions, accuracy ${(100 * s.accuracy.micro).toFixed(1)}%, ${s.neverActivatedTotal} never-activated experts (${s.tokenScope}).`,
          'Open summary',
        )
        .then((a) => a && summaries.show(outcome.runDir));
    },
  });

  const sweepView = new SweepViewProvider();
  const sweepTasks = new SweepTaskProvider(context.extensionPath, (outDir, code) => {
    sweepView.refresh();
    void vscode.window.showInformationMessage(
      `MoE Scope: sweep ${path.basename(outDir)} ${code === 0 ? 'finished' : `stopped (exit status ${code})`}; see the Sweeps view.`,
    );
  });

  context.subscriptions.push(
    output,
    sweepView,
    vscode.window.registerTreeDataProvider(SWEEP_VIEW_ID, sweepView),
    vscode.tasks.registerTaskProvider(SWEEP_TASK_TYPE, sweepTasks),
    vscode.commands.registerCommand('moeScope.refreshSweeps', () => sweepView.refresh()),
    vscode.commands.registerCommand('moeScope.runSweep', async (uri?: vscode.Uri) => {
      const task = await pickSweepTask(sweepTasks, uri);
      if (task) await vscode.tasks.executeTask(task);
      sweepView.refresh();
    }),
    models,
    trace,
    heatmap,
    summaries,
    compare,
    structure,
    evalTasks,
    vscode.window.registerWebviewViewProvider(HEATMAP_VIEW_ID, heatmap, { webviewOptions: { retainContextWhenHidden: true } }),
    vscode.tasks.registerTaskProvider(EVAL_TASK_TYPE, evalTasks),
    trace.onDidTrace((r) => heatmap.setTrace(r, `trace: ${r.tokens.length} tokens`)),
    vscode.workspace.onDidChangeConfiguration((e) => affectsModel(e) && models.invalidate()),
    vscode.workspace.onDidGrantWorkspaceTrust(() => models.invalidate()),
    vscode.commands.registerCommand('moeScope.traceSelection', () => trace.traceSelection()),
    vscode.commands.registerCommand('moeScope.selectModel', () => selectModel(models)),
    vscode.commands.registerCommand('moeScope.restartEngine', () => {
      models.restart();
      void vscode.window.showInformationMessage('MoE Scope: the inference process was stopped; the next trace starts a fresh one.');
    }),
    vscode.commands.registerCommand('moeScope.checkEnvironment', () => checkEnvironment(context, models)),
    vscode.commands.registerCommand('moeScope.precisionCheck', () => runPrecisionCheck(context, models)),
    vscode.commands.registerCommand('moeScope.openHeatmap', () => heatmap.reveal()),
    vscode.commands.registerCommand('moeScope.showStructure', () => structure.show()),
    vscode.commands.registerCommand('moeScope.showSummary', async (runDir?: string) => {
      const dir = typeof runDir === 'string' ? runDir : await pickRun();
      if (dir) summaries.show(dir);
    }),
    vscode.commands.registerCommand('moeScope.newExperiment', async (runDir?: string) => {
      const dir = typeof runDir === 'string' ? runDir : (summaries.activeRunDir() ?? (await pickRun('Choose the baseline run for the experiment', true)));
      const folder = vscode.workspace.workspaceFolders?.[0];
      if (!dir || !folder) return;
      try {
        await newExperiment(dir, evalTasks, folder);
      } catch (e) {
        void vscode.window.showErrorMessage(`MoE Scope: ${(e as Error).message}`);
      }
    }),
    vscode.commands.registerCommand('moeScope.compareRuns', async (runA?: string, runB?: string) => {
      const pair = typeof runA === 'string' && typeof runB === 'string' ? { a: runA, b: runB } : await pickComparison();
      if (!pair) return;
      if (sameRun(pair.a, pair.b)) {
        void vscode.window.showErrorMessage(`MoE Scope: ${SAME_RUN_MESSAGE}.`);
        return;
      }
      compare.show(pair.a, pair.b);
    }),
    vscode.commands.registerCommand('moeScope.runEvaluation', async () => {
      const task = await pickEvaluationTask(evalTasks);
      if (task) await vscode.tasks.executeTask(task);
    }),
  );

  // The heatmap's "run" side starts with the newest run of the workspace, read in the background (never
  // at activation's expense) and only once the workspace is trusted: its files are anyone's input.
  const showLatestRun = () =>
    void newestRunSummary(runsRoots(), (m) => output.warn(`skipped a run summary: ${m}`)).then(
      (latest) => latest && heatmap.setRun(latest.summary, path.basename(latest.dir)),
      (e: unknown) => output.warn(`could not look for evaluation runs: ${(e as Error).message}`),
    );
  if (vscode.workspace.isTrusted) setTimeout(showLatestRun, 0);
  else context.subscriptions.push(vscode.workspace.onDidGrantWorkspaceTrust(showLatestRun));
}

export function deactivate(): void {}

function runsRoots(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).map((f) => path.join(f.uri.fsPath, '.moe-scope', 'runs'));
}

/** Experiments with their baselines first (the usual comparison), then any two runs. */
async function pickComparison(): Promise<{ a: string; b: string } | undefined> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showInformationMessage('MoE Scope: evaluation runs are files of this workspace; trust the workspace to open them.');
    return undefined;
  }
  const runs = (await Promise.all(runsRoots().map(listRuns))).flat().filter((r) => r.summary);
  if (runs.length < 2) {
    void vscode.window.showInformationMessage('MoE Scope: comparing needs two evaluation runs with summaries in .moe-scope/runs.');
    return undefined;
  }
  const pairs = runs
    .filter((r) => r.summary?.intervention?.baselineRun && runs.some((b) => b.dir === r.summary!.intervention!.baselineRun))
    .map((r) => ({
      label: `${path.basename(r.dir)} vs ${path.basename(r.summary!.intervention!.baselineRun!)}`,
      description: r.summary!.intervention!.description,
      a: r.summary!.intervention!.baselineRun!,
      b: r.dir,
    }));
  const choose = { label: '$(list-selection) Choose two runs...', a: '', b: '' };
  const pick = await vscode.window.showQuickPick([...pairs, choose], { title: 'MoE Scope: compare runs' });
  if (!pick) return undefined;
  if (pick.a) return { a: pick.a, b: pick.b };
  const a = await pickRun('Run A (the reference, e.g. the baseline)');
  if (!a) return undefined;
  const b = await pickRun('Run B (e.g. the experiment)', false, a);
  return b ? { a, b } : undefined;
}

/** `exclude`: a run not to offer (run A, when picking run B). */
async function pickRun(placeHolder = 'Choose a run to show', completeOnly = false, exclude?: string): Promise<string | undefined> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showInformationMessage('MoE Scope: evaluation runs are files of this workspace; trust the workspace to open them.');
    return undefined;
  }
  const all = (await Promise.all(runsRoots().map(listRuns)))
    .flat()
    .filter((r) => !completeOnly || r.summary?.complete)
    .sort((a, b) => b.mtime - a.mtime);
  const runs = exclude === undefined ? all : runsOtherThan(all, exclude);
  if (runs.length === 0 && exclude !== undefined) {
    void vscode.window.showInformationMessage(`MoE Scope: there is no other run to compare ${path.basename(exclude)} with.`);
    return undefined;
  }
  if (runs.length === 0) {
    const run = 'Run MMLU evaluation';
    const a = await vscode.window.showInformationMessage('MoE Scope: no evaluation runs in this workspace yet (they live in .moe-scope/runs).', run);
    if (a === run) void vscode.commands.executeCommand('moeScope.runEvaluation');
    return undefined;
  }
  if (runs.length === 1 && !completeOnly) return runs[0].dir;
  const pick = await vscode.window.showQuickPick(
    runs.map((r) => ({
      label: path.basename(r.dir),
      description: r.summary
        ? `${r.summary.questions} questions, ${(100 * r.summary.accuracy.micro).toFixed(1)}%${r.summary.complete ? '' : ' (incomplete)'}`
        : 'no summary yet',
      detail: r.manifest ? `${r.manifest.model.path} · ${r.manifest.dataset.path} · ${r.manifest.shots}-shot · scope ${r.manifest.tokenScope}` : undefined,
      dir: r.dir,
    })),
    { title: 'MoE Scope: evaluation runs', placeHolder },
  );
  return pick?.dir;
}

async function pickEvaluationTask(provider: EvalTaskProvider): Promise<vscode.Task | undefined> {
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    void vscode.window.showErrorMessage('MoE Scope: open a folder with MMLU data (original CSV tree, or cais/mmlu JSONL or Parquet) to run an evaluation.');
    return undefined;
  }
  const configured = readSettings().evaluation.dataPath;
  const items: { label: string; description?: string; dataset: string }[] = [];
  if (configured && fs.existsSync(path.resolve(folder.uri.fsPath, configured)))
    items.push({ label: configured, description: 'from settings', dataset: configured });
  for (const d of await discoverDatasets(folder.uri.fsPath, { maxDepth: 4 }).catch(() => [])) {
    const rel = path.relative(folder.uri.fsPath, d.path) || '.';
    if (!items.some((i) => i.dataset === rel)) items.push({ label: rel, description: d.label, dataset: rel });
  }
  items.push({ label: '$(folder-opened) Choose data...', dataset: '' });
  const pick = items.length === 2 && items[0].dataset ? items[0] : await vscode.window.showQuickPick(items, { title: 'MoE Scope: MMLU data to evaluate' });
  if (!pick) return undefined;
  let dataset = pick.dataset;
  if (!dataset) {
    const uri = await vscode.window.showOpenDialog({
      canSelectFiles: true,
      canSelectFolders: true,
      openLabel: 'Evaluate',
      filters: { 'MMLU data': ['csv', 'jsonl', 'json', 'parquet'] },
    });
    if (!uri?.[0]) return undefined;
    dataset = uri[0].fsPath;
  }
  const def: EvalTaskDefinition = { type: EVAL_TASK_TYPE, dataset };
  return provider.makeTask(def, folder, `evaluate ${dataset}`);
}

/** The SPEC to run: the file given (explorer menu), the active JSON editor, or a pick among the workspace's sweep SPECs. */
async function pickSweepTask(provider: SweepTaskProvider, uri?: vscode.Uri): Promise<vscode.Task | undefined> {
  if (!vscode.workspace.isTrusted) {
    void vscode.window.showErrorMessage('MoE Scope: sweeps run processes on the paths a SPEC names; trust this workspace to run one.');
    return undefined;
  }
  const folder = vscode.workspace.workspaceFolders?.[0];
  if (!folder) {
    void vscode.window.showErrorMessage('MoE Scope: open a folder that holds a sweep SPEC (JSON) to run a sweep.');
    return undefined;
  }
  let spec = uri instanceof vscode.Uri ? uri.fsPath : undefined;
  const active = vscode.window.activeTextEditor?.document;
  if (!spec && active?.languageId === 'json' && active.uri.scheme === 'file' && /"models"\s*:/.test(active.getText())) spec = active.uri.fsPath;
  if (!spec) {
    const files = await vscode.workspace.findFiles('**/*.json', '{**/node_modules/**,**/.moe-scope/**}', 500);
    const specs: string[] = [];
    for (const f of files) {
      // Bounded and regular files only: a FIFO or a huge file named *.json must not hang the picker.
      const text = await readRegularFileAsync(f.fsPath, { maxBytes: 4 << 20 }).then(
        (b) => b.toString('utf8'),
        () => '',
      );
      if (/"models"\s*:/.test(text) && /"data"\s*:/.test(text)) specs.push(f.fsPath);
    }
    const items = [
      ...specs.map((f) => ({ label: path.relative(folder.uri.fsPath, f), file: f })),
      { label: '$(folder-opened) Choose a SPEC file...', file: '' },
    ];
    const pick = await vscode.window.showQuickPick(items, { title: 'MoE Scope: sweep SPEC to run' });
    if (!pick) return undefined;
    spec = pick.file;
    if (!spec) {
      const chosen = await vscode.window.showOpenDialog({ canSelectFiles: true, openLabel: 'Run sweep', filters: { 'Sweep SPEC': ['json'] } });
      if (!chosen?.[0]) return undefined;
      spec = chosen[0].fsPath;
    }
  }
  const def: SweepTaskDefinition = { type: SWEEP_TASK_TYPE, spec };
  return provider.makeTask(def, folder, `sweep ${path.basename(spec)}`);
}

async function selectModel(models: ModelManager): Promise<void> {
  const current = readSettings().modelPath;
  const items: (vscode.QuickPickItem & { action: () => Promise<unknown> })[] = [
    {
      label: '$(folder-opened) Choose a checkpoint folder...',
      description: 'Hugging Face folder: config.json, *.safetensors, tokenizer.json',
      action: () => models.pickFolder(),
    },
    {
      label: '$(beaker) OLMoE-shaped demo model',
      description: '16 layers x 64 experts, top-8; tiny widths, random weights',
      action: () => models.useDemoModel('olmoe'),
    },
    {
      label: '$(beaker) Mixtral-shaped demo model',
      description: '32 layers x 8 experts, top-2; tiny widths, random weights',
      action: () => models.useDemoModel('mixtral'),
    },
  ];
  if (current)
    items.unshift({
      label: `$(check) ${path.basename(current)}`,
      description: current,
      detail: 'Current model: reload it',
      action: async () => models.invalidate(),
    });
  const pick = await vscode.window.showQuickPick(items, { title: 'MoE Scope: model', placeHolder: current ? `Current: ${current}` : 'No model selected' });
  if (!pick) return;
  try {
    await pick.action();
    const info = await models.ensureLoaded(false);
    void vscode.window.showInformationMessage(
      `MoE Scope: ${info.family} model ready on ${providerLabel(info)} (${info.numLayers} layers x ${info.numExperts} experts).`,
    );
  } catch (e) {
    void vscode.window.showErrorMessage(`MoE Scope: ${(e as Error).message}`);
  }
}

/** "MoE: Check inference environment": what was found (Python, torch, devices, ONNX Runtime providers) and why the engine choice is what it is. */
async function checkEnvironment(context: vscode.ExtensionContext, models: ModelManager): Promise<void> {
  await runEnvironmentCheck({
    resolvePython,
    environmentReport: async (python) => JSON.parse(await runCliOutput(context, ['env', '--json', '--python', python])) as Record<string, unknown>,
    reprobe: (python) => void probePython(python, true),
    engineChoice: async () => {
      const sel = await selectEngine();
      return `${engineLabel(sel.kind)} (${sel.why})`;
    },
    configuredEngine: () => readSettings().engine,
    formatEnvironment,
    withProgress: (title, task) => vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title }, task),
    showError: (message) => void vscode.window.showErrorMessage(message),
    showResult: async (summary) => (await vscode.window.showInformationMessage(summary, 'Show details')) !== undefined,
    log: (text) => models.output.info(text),
    showLog: () => models.output.show(true),
  });
}
