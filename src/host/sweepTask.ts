/**
 * "MoE: Run sweep..." as a VS Code task: the moe-scope CLI's `sweep` runs in a child process (local
 * backend, or Ray at the address from the settings), its output and a per-experiment progress line go to
 * the task terminal. Closing the terminal stops the sweep after the batches in flight; running it again
 * skips finished units. The sweep writes to <workspace>/.moe-scope/sweeps/<SPEC name>/.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { SweepProgress } from '../sweep/progress';

export const SWEEP_TASK_TYPE = 'moe-scope-sweep';

export interface SweepTaskDefinition extends vscode.TaskDefinition {
  type: typeof SWEEP_TASK_TYPE;
  /** The SPEC file (relative to the workspace folder or absolute). */
  spec: string;
  backend?: 'local' | 'ray';
  rayAddress?: string;
  out?: string;
}

export interface SweepSettings {
  backend: 'local' | 'ray';
  rayAddress: string;
  python: string;
}

export function readSweepSettings(): SweepSettings {
  const c = vscode.workspace.getConfiguration('moeScope.sweep');
  const backend = c.get<string>('backend', 'local') === 'ray' ? 'ray' : 'local';
  return { backend, rayAddress: c.get<string>('rayAddress', '').trim(), python: c.get<string>('pythonPath', '').trim() };
}

export function sweepOutDir(folder: vscode.WorkspaceFolder, specFile: string): string {
  return path.join(folder.uri.fsPath, '.moe-scope', 'sweeps', path.basename(specFile).replace(/\.json$/i, ''));
}

export class SweepTaskProvider implements vscode.TaskProvider {
  constructor(
    private readonly extensionPath: string,
    private readonly onFinished: (outDir: string, exitCode: number) => void,
  ) {}

  provideTasks(): vscode.Task[] {
    return [];
  }

  resolveTask(task: vscode.Task): vscode.Task | undefined {
    const def = task.definition as SweepTaskDefinition;
    if (def.type !== SWEEP_TASK_TYPE || typeof def.spec !== 'string') return undefined;
    const folder = typeof task.scope === 'object' ? (task.scope as vscode.WorkspaceFolder) : vscode.workspace.workspaceFolders?.[0];
    if (!folder) return undefined;
    return this.makeTask(def, folder, task.name);
  }

  makeTask(def: SweepTaskDefinition, folder: vscode.WorkspaceFolder, name: string): vscode.Task {
    const task = new vscode.Task(
      def,
      folder,
      name,
      'MoE Scope',
      new vscode.CustomExecution(async () => {
        const settings = readSweepSettings();
        const spec = path.resolve(folder.uri.fsPath, def.spec);
        const out = def.out ? path.resolve(folder.uri.fsPath, def.out) : sweepOutDir(folder, spec);
        const backend = def.backend ?? settings.backend;
        const address = def.rayAddress ?? settings.rayAddress;
        const args = [path.join(this.extensionPath, 'dist', 'cli.js'), 'sweep', spec, '--out', out, '--backend', backend];
        if (backend === 'ray' && address) args.push('--ray-address', address);
        if (backend === 'ray' && settings.python) args.push('--python', settings.python);
        return new SweepTerminal(args, out, (code) => this.onFinished(out, code));
      }),
    );
    task.presentationOptions = { reveal: vscode.TaskRevealKind.Always, panel: vscode.TaskPanelKind.Dedicated, clear: true };
    return task;
  }
}

class SweepTerminal implements vscode.Pseudoterminal {
  private readonly writeEmitter = new vscode.EventEmitter<string>();
  private readonly closeEmitter = new vscode.EventEmitter<number>();
  readonly onDidWrite = this.writeEmitter.event;
  readonly onDidClose = this.closeEmitter.event;
  private child: ChildProcess | null = null;
  private readonly progress = new SweepProgress();

  constructor(
    private readonly args: string[],
    private readonly out: string,
    private readonly finished: (code: number) => void,
  ) {}

  private line(s: string): void {
    this.writeEmitter.fire(s.replace(/\r?\n/g, '\r\n') + '\r\n');
  }

  open(): void {
    this.line(`moe-scope ${this.args.slice(1).join(' ')}`);
    // The extension host's own Node (Electron's, as plain Node) runs the CLI, so nothing else is needed.
    const child = spawn(process.execPath, this.args, { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const onData = (stream: NodeJS.ReadableStream) => {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        for (const l of lines) {
          this.line(l);
          const p = this.progress.consume(l);
          if (p) this.line(`\x1b[1m${p}\x1b[0m`);
        }
      });
    };
    onData(child.stdout!);
    onData(child.stderr!);
    child.on('error', (e) => {
      this.line(`cannot start the sweep: ${e.message}`);
      this.done(1);
    });
    child.on('close', (code) => {
      this.line(code === 0 ? `sweep finished; results in ${this.out}` : `sweep stopped (exit status ${code}); run it again to continue`);
      this.done(code ?? 1);
    });
  }

  private done(code: number): void {
    if (!this.child) return;
    this.child = null;
    this.finished(code);
    this.closeEmitter.fire(code);
  }

  close(): void {
    // SIGTERM: the local backend stops after the batch in flight; the Ray driver's tasks end with it.
    this.child?.kill('SIGTERM');
  }
}
