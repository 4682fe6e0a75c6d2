/** "MoE: Compare runs": a webview panel comparing two run folders (accuracy, McNemar, activation change). */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { renderWebviewHtml, webviewResourceRoots } from './webviewHtml';
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
  private readonly open = new Map<string, vscode.WebviewPanel>();
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
      existing.reveal();
      this.push(existing, runA, runB);
      return;
    }
    const panel = vscode.window.createWebviewPanel(COMPARE_VIEW_TYPE, '', vscode.ViewColumn.Active, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: webviewResourceRoots(this.context.extensionUri),
    });
    this.wire(panel, runA, runB);
  }

  private wire(panel: vscode.WebviewPanel, runA: string, runB: string): void {
    const key = `${runA}\n${runB}`;
    this.open.set(key, panel);
    panel.title = `MoE Compare: ${path.basename(runB)} vs ${path.basename(runA)}`;
    panel.iconPath = vscode.Uri.joinPath(this.context.extensionUri, 'media', 'moe-scope.svg');
    panel.webview.options = { enableScripts: true, localResourceRoots: webviewResourceRoots(this.context.extensionUri) };
    panel.webview.html = renderWebviewHtml(panel.webview, this.context.extensionUri, 'compare', 'MoE Compare');
    panel.webview.onDidReceiveMessage((m: CompareViewToHost) => {
      if (m.type === 'ready') this.push(panel, runA, runB);
      else if (m.type === 'export') void saveExport(m);
    });
    panel.onDidDispose(() => this.open.delete(key));
  }

  private push(panel: vscode.WebviewPanel, runA: string, runB: string): void {
    let comparison: RunComparison;
    try {
      comparison = loadComparison(runA, runB);
    } catch (e) {
      void vscode.window.showErrorMessage(`MoE Scope: cannot compare ${path.basename(runA)} and ${path.basename(runB)}: ${(e as Error).message}`);
      return;
    }
    void panel.webview.postMessage({ type: 'comparison', comparison } satisfies HostToCompareView);
  }

  dispose(): void {
    for (const p of this.open.values()) p.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
