/**
 * "MoE: Measure how the weight precision changes routing": runs `moe-scope precision-check` for the
 * loaded model and precision in a child process (a progress notification, cancellable by closing it is
 * not offered: the check is bounded by its prompt count), then shows the stored result.
 */
import * as vscode from 'vscode';
import { runCli, type ModelManager } from './modelManager';
import { readSettings } from './settings';
import { describePrecisionCheck, readPrecisionCheck } from '../shared/precisionCheck';

const PROMPTS = 8;

export async function runPrecisionCheck(context: vscode.ExtensionContext, models: ModelManager): Promise<void> {
  const m = models.client.model;
  if (!m || !m.precision) {
    void vscode.window.showInformationMessage('MoE Scope: load a model first (trace something); the check compares its precision with fp32.');
    return;
  }
  if (m.precision === 'fp32') {
    void vscode.window.showInformationMessage('MoE Scope: the model runs at fp32, the reference precision: there is nothing to compare.');
    return;
  }
  const s = readSettings();
  const args = ['precision-check', '--model', m.path, '--precision', m.precision, '--prompts', String(PROMPTS), '--engine', m.engine ?? 'onnxruntime'];
  if (s.cacheDir) args.push('--cache', s.cacheDir);
  try {
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `MoE Scope: ${PROMPTS} MMLU prompts at fp32 and at ${m.precision}…` },
      () => runCli(context, args),
    );
  } catch (e) {
    void vscode.window.showErrorMessage(`MoE Scope: ${(e as Error).message}`);
    return;
  }
  const check = readPrecisionCheck(s.cacheDir, m.path, m.precision);
  if (!check) {
    void vscode.window.showErrorMessage('MoE Scope: the precision check finished but stored no readable result.');
    return;
  }
  m.precisionCheck = check;
  void vscode.window.showInformationMessage(`MoE Scope: ${m.precision}: ${describePrecisionCheck(check)}`);
}
