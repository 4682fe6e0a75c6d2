/**
 * Chooses the model and engine for traces and shows them in the status bar (the model, the execution
 * provider actually in use and the engine state). The inference process and what it has loaded belong
 * to its EngineClient (`client`); this class asks it rather than keep a copy.
 */
import { readPrecisionCheck } from '../shared/precisionCheck';
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fork } from 'node:child_process';
import { EngineClient } from '../engines/client/engineClient';
import { statusBarName, statusTooltip, tooltipMarkdown } from './statusTooltip';
import { readSettings, setUserModelPath } from './settings';
import { applySelection, engineLabel, selectEngine, type EngineSelection } from './engineSelection';
import { EngineFailure, type ModelInfo } from '../shared/protocol';
import { providerLabel } from './providerLabel';
import { PROBE_DIAGNOSTICS_PREFIX } from '../engines/onnxruntime/webgpuProbeProcess';
import { RUN_ON_CPU, offersRunOnCpu } from './cpuOffer';

type EngineState = 'no-model' | 'loading' | 'ready' | 'busy' | 'error' | 'stopped';

export class ModelManager implements vscode.Disposable {
  readonly client: EngineClient;
  private state: EngineState = 'no-model';
  private busy = 0;
  private lastError = '';
  private readonly status: vscode.StatusBarItem;

  constructor(
    private readonly context: vscode.ExtensionContext,
    readonly output: vscode.LogOutputChannel,
  ) {
    this.client = new EngineClient({
      entry: path.join(context.extensionPath, 'dist', 'inference-process.js'),
      onLog: (level, m) =>
        level === 'error' ? output.error(m) : level === 'warn' ? output.warn(m) : m.startsWith(PROBE_DIAGNOSTICS_PREFIX) ? output.debug(m) : output.info(m),
      onExit: (how) => {
        output.warn(`inference process ${how}`);
        this.setState('stopped');
      },
    });
    this.status = vscode.window.createStatusBarItem('moeScope.status', vscode.StatusBarAlignment.Right, 100);
    this.status.name = 'MoE Scope';
    this.status.command = 'moeScope.selectModel';
    this.render();
    this.status.show();
  }

  get extensionPath(): string {
    return this.context.extensionPath;
  }

  /** The model the trace process has loaded (its client's answer). */
  get model(): ModelInfo | null {
    return this.client.model;
  }

  /** The model folder to use, asking the user on first run when none is configured. */
  async resolveModelPath(interactive: boolean): Promise<string | null> {
    const configured = readSettings().modelPath;
    if (configured) return configured;
    if (!interactive) return null;
    const demo = 'Use the demo model';
    const pick = 'Choose a model folder...';
    const choice = await vscode.window.showInformationMessage(
      'MoE Scope needs a Mixture-of-Experts checkpoint (a Hugging Face folder such as OLMoE-1B-7B). Use the generated demo model (real OLMoE layout, random weights) or choose a folder?',
      demo,
      pick,
    );
    if (choice === demo) return this.useDemoModel('olmoe');
    if (choice === pick) return this.pickFolder();
    return null;
  }

  async pickFolder(): Promise<string | null> {
    const uri = await vscode.window.showOpenDialog({
      canSelectFolders: true,
      canSelectFiles: false,
      openLabel: 'Use this model',
      title: 'Hugging Face MoE checkpoint folder (config.json, *.safetensors, tokenizer.json)',
    });
    if (!uri?.[0]) return null;
    await setUserModelPath(uri[0].fsPath);
    return uri[0].fsPath;
  }

  /** Generates (once) a demo checkpoint in the extension's storage and selects it in user settings. */
  async useDemoModel(family: 'olmoe' | 'mixtral'): Promise<string> {
    const dir = path.join(this.context.globalStorageUri.fsPath, `demo-${family}`);
    if (!fs.existsSync(path.join(dir, 'config.json'))) {
      await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `MoE Scope: generating the ${family} demo model...` }, () =>
        runCli(this.context, ['make-demo-model', '--out', dir, '--family', family]),
      );
    }
    await setUserModelPath(dir);
    return dir;
  }

  /** Loads the configured model unless it is loaded already; never blocks the extension host. */
  async ensureLoaded(interactive: boolean): Promise<ModelInfo> {
    const modelPath = await this.resolveModelPath(interactive);
    if (!modelPath) throw new EngineFailure('not-loaded', 'No model is selected. Run "MoE: Select model..." to choose a checkpoint folder or the demo model.');
    const s = readSettings();
    let selection: EngineSelection;
    try {
      selection = await selectEngine(modelPath);
    } catch (e) {
      this.lastError = (e as Error).message;
      this.setState('error');
      void vscode.window.showErrorMessage(`MoE Scope: ${this.lastError}`, 'Use ONNX Runtime', 'Check inference environment').then((pick) => {
        if (pick === 'Use ONNX Runtime') void vscode.workspace.getConfiguration('moeScope').update('engine', 'onnxruntime', vscode.ConfigurationTarget.Global);
        if (pick === 'Check inference environment') void vscode.commands.executeCommand('moeScope.checkEnvironment');
      });
      throw e;
    }
    applySelection(this.client, selection, this.context.extensionPath);
    const options = { executionProvider: s.executionProvider, precision: s.precision, cacheDir: s.cacheDir };
    const current = this.client.currentLoad(modelPath, options);
    if (current) return current;
    this.setState('loading');
    try {
      const info = await this.client.load(modelPath, options);
      if (info.precision) info.precisionCheck = readPrecisionCheck(s.cacheDir, info.path, info.precision);
      this.output.info(
        `loaded ${info.path} (${info.family}) with ${engineLabel(info.engine)} on ${info.device ?? info.executionProvider} (${info.dtype}) in ${info.loadMs} ms; engine choice: ${selection.why}`,
      );
      if (info.providerNote) {
        this.output.warn(info.providerNote);
        void vscode.window.showWarningMessage(`MoE Scope: ${info.providerNote}`);
      }
      this.setState('ready');
      return info;
    } catch (e) {
      this.lastError = (e as Error).message;
      if (offersRunOnCpu(e)) void this.offerCpu(e.message);
      this.setState('error');
      throw e;
    }
  }

  /** The requested GPU provider cannot hold the model: offer the CPU (a user setting) instead. */
  private async offerCpu(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(`MoE Scope: ${message}`, RUN_ON_CPU);
    if (choice === RUN_ON_CPU) await vscode.workspace.getConfiguration('moeScope').update('executionProvider', 'cpu', vscode.ConfigurationTarget.Global);
  }

  /** Marks the engine busy for the duration of `work` (shown in the status bar). */
  async withBusy<T>(work: () => Promise<T>): Promise<T> {
    this.busy++;
    this.setState('busy');
    try {
      return await work();
    } finally {
      this.busy--;
      if (this.busy === 0 && this.state === 'busy') this.setState(this.client.model ? 'ready' : 'stopped');
    }
  }

  restart(): void {
    this.client.restart();
    this.setState('stopped');
  }

  /** A setting that selects the model or engine changed: the next request starts afresh with the new choice. */
  invalidate(): void {
    this.restart();
  }

  private setState(s: EngineState): void {
    this.state = s;
    this.render();
  }

  private render(): void {
    const m = this.client.model;
    const configured = readSettings().modelPath;
    const name = statusBarName(m, configured);
    const ep = m ? providerLabel(m) : '';
    const icon = {
      'no-model': '$(circle-slash)',
      loading: '$(loading~spin)',
      ready: '$(circuit-board)',
      busy: '$(sync~spin)',
      error: '$(error)',
      stopped: '$(debug-stop)',
    }[this.state];
    this.status.text = `${icon} MoE: ${name}${ep ? ` · ${ep}` : ''}`;
    const md = new vscode.MarkdownString(tooltipMarkdown(statusTooltip(this.state, m, this.lastError || null, configured)));
    // The one command link in the tooltip: measuring what the precision costs (moe-scope precision-check).
    md.isTrusted = { enabledCommands: ['moeScope.precisionCheck'] };
    this.status.tooltip = md;
    this.status.backgroundColor = this.state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    void this.client.dispose();
    this.status.dispose();
  }
}

/** Runs the bundled command line in a child process (never on the extension host's thread). */
export async function runCli(context: vscode.ExtensionContext, args: string[]): Promise<void> {
  await runCliOutput(context, args);
}

/** Runs the bundled command line and returns its standard output (e.g. `env --json`). */
export function runCliOutput(context: vscode.ExtensionContext, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = fork(path.join(context.extensionPath, 'dist', 'cli.js'), args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`moe-scope ${args[0]} failed: ${err.trim() || `exit code ${code}`}`))));
    child.on('error', reject);
  });
}
