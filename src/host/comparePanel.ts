/** "MoE: Compare runs": a webview panel comparing two run folders (accuracy, McNemar, activation change). */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { panelIcon, panelOptions, WebviewChannel } from './webviewChannel';
import { saveExport } from './exports';
import { readManifest, readQuestionResults, readSummary } from '../eval/runFolder';
import { compareRuns } from '../analysis/compare';
import type { CompareViewToHost, HostToCompareView, RouterIntervention, RunComparison, TraceResult } from '../shared/protocol';
import { flippedPrompt, runIntervention } from './flippedTraces';

/** Traces a prompt on the run's model under an intervention (the extension's engine; see extension.ts). */
export type TraceForCompare = (modelPath: string, text: string, intervention: RouterIntervention | undefined) => Promise<TraceResult>;

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

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly traceFor?: TraceForCompare,
  ) {
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
      onMessage: (m) => {
        if (m.type === 'open-flipped') void this.openFlipped(channel, runA, runB, m.id);
      },
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

  /** Traces a flipped question under run A's and run B's interventions and shows both in the view. */
  private async openFlipped(channel: WebviewChannel<HostToCompareView, CompareViewToHost>, runA: string, runB: string, id: string): Promise<void> {
    try {
      if (!this.traceFor) throw new Error('no engine is available to trace with');
      const prompt = await flippedPrompt(runA, id);
      const before = await this.traceFor(prompt.modelPath, prompt.text, runIntervention(runA));
      const after = await this.traceFor(prompt.modelPath, prompt.text, runIntervention(runB));
      channel.post({ type: 'flipped-traces', id, before, after });
    } catch (e) {
      channel.post({ type: 'flipped-failed', id, message: (e as Error).message });
    }
  }

  dispose(): void {
    for (const { panel } of this.open.values()) panel.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
