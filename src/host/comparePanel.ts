/** "MoE: Compare runs": a webview panel comparing two run folders (accuracy, McNemar, activation change). */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { panelIcon, panelOptions, WebviewChannel } from './webviewChannel';
import { saveExport } from './exports';
import { readManifest, readQuestionResults, readSummary } from '../eval/runFolder';
import { compareRuns } from '../analysis/compare';
import type { CompareViewToHost, HostToCompareView, RunComparison } from '../shared/protocol';

export const COMPARE_VIEW_TYPE = 'moeScope.compare';

/** Reads both runs and compares them (run A is the reference, usually the baseline). */
export function loadComparison(runA: string, runB: string): RunComparison {
  const load = (dir: string) => {
    const summary = readSummary(dir);
    if (!summary) throw new Error(`${path.join(dir, 'summary.json')}: not found; the run has not written a summary yet`);
    return { label: path.basename(dir), runDir: dir, summary, questions: readQuestionResults(dir), engine: readManifest(dir)?.model.engine };
  };
  return compareRuns(load(runA), load(runB));
}

export class ComparePanels implements vscode.Disposable {
  private readonly open = new Map<string, { panel: vscode.WebviewPanel; channel: WebviewChannel<HostToCompareView, CompareViewToHost> }>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly context: vscode.ExtensionContext) {
    this.disposables.push(
      vscode.window.registerWebviewPanelSerializer(COMPARE_VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state: unknown) => {
          const s = state as { comparison?: RunComparison } | undefined;
          if (s?.comparison) this.wire(panel, s.comparison.a.runDir, s.comparison.b.runDir);
          else panel.dispose();
        },
      }),
    );
  }

  show(runA: string, runB: string): void {
    const key = `${runA}\n${runB}`;
    const existing = this.open.get(key);
    if (existing) {
      existing.panel.reveal();
      this.push(existing.channel, runA, runB);
      return;
    }
    const panel = vscode.window.createWebviewPanel(COMPARE_VIEW_TYPE, '', vscode.ViewColumn.Active, panelOptions(this.context.extensionUri));
    this.wire(panel, runA, runB);
  }

  private wire(panel: vscode.WebviewPanel, runA: string, runB: string): void {
    const key = `${runA}\n${runB}`;
    panel.title = `MoE Compare: ${path.basename(runB)} vs ${path.basename(runA)}`;
    panel.iconPath = panelIcon(this.context.extensionUri);
    const channel = new WebviewChannel<HostToCompareView, CompareViewToHost>(panel.webview, this.context.extensionUri, 'compare', 'MoE Compare', {
      saveExport,
      onReady: () => this.push(channel, runA, runB),
    });
    this.open.set(key, { panel, channel });
    panel.onDidDispose(() => {
      channel.dispose();
      this.open.delete(key);
    });
  }

  /** A view still loading gets the comparison when it says ready. */
  private push(channel: WebviewChannel<HostToCompareView, CompareViewToHost>, runA: string, runB: string): void {
    if (!channel.isReady) return;
    let comparison: RunComparison;
    try {
      comparison = loadComparison(runA, runB);
    } catch (e) {
      void vscode.window.showErrorMessage(`MoE Scope: cannot compare ${path.basename(runA)} and ${path.basename(runB)}: ${(e as Error).message}`);
      return;
    }
    channel.post({ type: 'comparison', comparison });
  }

  dispose(): void {
    for (const { panel } of this.open.values()) panel.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
