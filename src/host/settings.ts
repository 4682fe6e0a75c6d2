/**
 * Typed access to MoE Scope's settings. In an untrusted workspace a workspace-level value of a setting
 * that names files to load (model, dataset, cache) is ignored: only user settings count there.
 * (package.json also lists them under restrictedConfigurations; this is the belt to that pair of braces.)
 */
import * as vscode from 'vscode';
import { PRECISION_SETTINGS, type EngineSetting, type ExecutionProviderSetting, type PrecisionSetting, type TokenScope } from '../shared/protocol';

const SECTION = 'moeScope';
const PATH_SETTINGS = new Set(['modelPath', 'cacheDir', 'evaluation.dataPath', 'pythonPath']);

export interface MoeSettings {
  modelPath: string;
  executionProvider: ExecutionProviderSetting;
  /** Weight precision (auto: the most precise that fits the memory). */
  precision: PrecisionSetting;
  engine: EngineSetting;
  /** The PyTorch engine's interpreter; empty: the Python extension's, else python3. */
  pythonPath: string;
  cacheDir: string | undefined;
  followSelection: boolean;
  evaluation: {
    dataPath: string;
    split: string;
    shots: number;
    tokenScope: TokenScope;
    batchSize: number;
    limitPerSubject: number;
    subjects: string[];
  };
}

function get<T>(key: string, fallback: T): T {
  const config = vscode.workspace.getConfiguration(SECTION);
  if (PATH_SETTINGS.has(key) && !vscode.workspace.isTrusted) {
    const i = config.inspect<T>(key);
    return (i?.globalValue ?? i?.defaultValue ?? fallback) as T;
  }
  return config.get<T>(key, fallback);
}

export function readSettings(): MoeSettings {
  const scope = get<string>('evaluation.tokenScope', 'answer');
  return {
    modelPath: get('modelPath', '').trim(),
    executionProvider: get<ExecutionProviderSetting>('executionProvider', 'auto'),
    precision: ((p) => ((PRECISION_SETTINGS as readonly string[]).includes(p) ? (p as PrecisionSetting) : 'auto'))(get<string>('precision', 'auto')),
    engine: ((e) => (e === 'onnxruntime' || e === 'pytorch' ? e : 'auto'))(get<string>('engine', 'auto')),
    pythonPath: get('pythonPath', '').trim(),
    cacheDir: get('cacheDir', '').trim() || undefined,
    followSelection: get('trace.followSelection', true),
    evaluation: {
      dataPath: get('evaluation.dataPath', '').trim(),
      split: get('evaluation.split', 'test'),
      shots: clampInt(get('evaluation.shots', 5), 0, 5),
      tokenScope: scope === 'all' || scope === 'question' ? scope : 'answer',
      batchSize: clampInt(get('evaluation.batchSize', 8), 1, 64),
      limitPerSubject: clampInt(get('evaluation.limitPerSubject', 0), 0, 1_000_000),
      subjects: get<string[]>('evaluation.subjects', []),
    },
  };
}

export async function setUserModelPath(p: string): Promise<void> {
  await vscode.workspace.getConfiguration(SECTION).update('modelPath', p, vscode.ConfigurationTarget.Global);
}

export function affectsModel(e: vscode.ConfigurationChangeEvent): boolean {
  return ['modelPath', 'executionProvider', 'precision', 'cacheDir', 'engine', 'pythonPath'].some((k) => e.affectsConfiguration(`${SECTION}.${k}`));
}

function clampInt(v: number, lo: number, hi: number): number {
  const n = Math.round(Number(v));
  return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : lo;
}
