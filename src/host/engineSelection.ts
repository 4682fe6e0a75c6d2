/**
 * Which engine runs the model in the editor: moeScope.engine (auto | onnxruntime | pytorch) and the
 * Python for the PyTorch engine (moeScope.pythonPath, else the Python extension's interpreter, else
 * MOE_SCOPE_PYTHON, else a .venv of the workspace or the checkout, else python3). 'auto' takes PyTorch
 * when that Python has torch, transformers and a GPU. A missing or broken Python never breaks the ONNX Runtime engine: 'auto' falls back to it, and an explicit 'pytorch' fails
 * with a message that says what to install or set.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { nodeChannel, type ChannelFactory, type EngineClient } from '../engines/client/engineClient';
import { checkPython, chooseEngine, pythonChannel, workerDir } from '../engines/client/pythonWorker';
import { checkoutRoot, choosePython } from '../engines/client/pythonDiscovery';
import { readSettings } from './settings';
import { onnxEngineRefusal } from '../engines/onnxruntime/support';
import { EngineFailure, type EngineKind, type PythonEnvironment } from '../shared/protocol';

export interface EngineSelection {
  kind: EngineKind;
  python: string;
  pythonSource: string;
  why: string;
  environment: PythonEnvironment | null;
}

const probes = new Map<string, Promise<PythonEnvironment>>();

/** The probe of one interpreter, once per session unless refreshed ("MoE: Check inference environment"). */
export function probePython(python: string, refresh = false): Promise<PythonEnvironment> {
  if (refresh || !probes.has(python)) probes.set(python, checkPython(python));
  return probes.get(python)!;
}

export async function resolvePython(): Promise<{ python: string; source: string }> {
  const workspaceFolder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const base = workspaceFolder ?? process.cwd();
  const configured = readSettings().pythonPath;
  if (configured) return choosePython({ explicit: configured, explicitSource: 'moeScope.pythonPath', base, roots: [] });
  // An untrusted workspace may have chosen the Python extension's interpreter: do not run it.
  if (vscode.workspace.isTrusted) {
    const fromExtension = await pythonExtensionInterpreter();
    if (fromExtension) return { python: fromExtension, source: 'the Python extension' };
  }
  // A workspace's own .venv is only run in a trusted workspace; the checkout's (npm test builds it) always.
  const roots = [...(vscode.workspace.isTrusted && workspaceFolder ? [workspaceFolder] : []), checkoutRoot(workerDir())];
  return choosePython({ env: process.env.MOE_SCOPE_PYTHON, base, roots });
}

async function pythonExtensionInterpreter(): Promise<string | null> {
  try {
    const ext = vscode.extensions.getExtension('ms-python.python');
    if (!ext) return null;
    const api = (ext.isActive ? ext.exports : await ext.activate()) as {
      environments?: {
        getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
        resolveEnvironment(p: { path: string }): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
      };
    };
    const envs = api?.environments;
    if (!envs) return null;
    const active = envs.getActiveEnvironmentPath(vscode.workspace.workspaceFolders?.[0]?.uri);
    const resolved = await envs.resolveEnvironment(active);
    return resolved?.executable?.uri?.fsPath ?? active?.path ?? null;
  } catch {
    return null;
  }
}

/** `modelPath`: the checkpoint about to be loaded; with engine auto, one the ONNX Runtime engine refuses goes to PyTorch. */
export async function selectEngine(modelPath?: string): Promise<EngineSelection> {
  const setting = readSettings().engine;
  const { python, source } = await resolvePython();
  if (setting === 'onnxruntime') return { kind: 'onnxruntime', python, pythonSource: source, why: 'moeScope.engine is onnxruntime', environment: null };
  const env = await probePython(python);
  if (setting === 'pytorch') {
    if (!env.usable) {
      throw new EngineFailure(
        'bad-input',
        `moeScope.engine is "pytorch", but ${python} (${source}) cannot run it: ${env.problems.join('; ')}. ` +
          `Install torch and transformers there (pip install torch transformers safetensors tokenizers), point moeScope.pythonPath at a Python that has them, or set moeScope.engine to "onnxruntime" or "auto".`,
      );
    }
    return { kind: 'pytorch', python, pythonSource: source, why: 'moeScope.engine is pytorch', environment: env };
  }
  const choice = chooseEngine(env, modelPath ? await onnxEngineRefusal(modelPath) : null);
  return { kind: choice.engine, python, pythonSource: source, why: `auto: ${choice.why}`, environment: env };
}

/** Points a client at the selected engine's process (a no-op when it already is). */
export function applySelection(client: EngineClient, selection: EngineSelection, extensionPath: string): void {
  const channel: ChannelFactory =
    selection.kind === 'pytorch' ? pythonChannel(selection.python) : nodeChannel(path.join(extensionPath, 'dist', 'inference-process.js'));
  client.setChannel(channel, selection.kind === 'pytorch' ? `pytorch:${selection.python}` : 'onnxruntime');
}

export function engineLabel(kind: EngineKind | undefined): string {
  return kind === 'pytorch' ? 'PyTorch' : 'ONNX Runtime';
}
