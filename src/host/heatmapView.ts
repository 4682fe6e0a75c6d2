/**
 * The side-panel expert heatmap (a webview view in MoE Scope's activity-bar container): layers x experts
 * usage for the current trace and for the selected evaluation run, switchable.
 */
import * as vscode from 'vscode';
import { WebviewChannel } from './webviewChannel';
import { saveExport } from './exports';
import { heatmapFromSummary, heatmapFromTrace } from '../analysis/heatmap';
import type { HeatmapData, HeatmapViewToHost, HostToHeatmapView, RunSummary, TraceResult } from '../shared/protocol';

export const HEATMAP_VIEW_ID = 'moeScope.heatmap';

export class HeatmapViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private channel: WebviewChannel<HostToHeatmapView, HeatmapViewToHost> | null = null;
  private trace: HeatmapData | null = null;
  private run: HeatmapData | null = null;
  /** "Show in the trace's expert lens" (wired to the trace panel by extension.ts). */
  onLensExpert: ((layer: number, expert: number) => void) | null = null;

  constructor(private readonly context: vscode.ExtensionContext) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    const channel = new WebviewChannel<HostToHeatmapView, HeatmapViewToHost>(view.webview, this.context.extensionUri, 'heatmap', 'Expert heatmap', {
      saveExport,
      onReady: () => this.push(),
      onMessage: (m) => {
        if (m.type === 'lens-expert') this.onLensExpert?.(m.layer, m.expert);
      },
    });
    this.channel = channel;
    view.onDidDispose(() => {
      channel.dispose();
      if (this.channel === channel) this.channel = null;
    });
  }

  setTrace(result: TraceResult, label: string): void {
    this.trace = heatmapFromTrace(result.routing, label, result.model);
    this.push({ type: 'select-source', source: 'trace' });
  }

  setRun(summary: RunSummary, label: string, select = false): void {
    this.run = heatmapFromSummary(summary, label);
    this.push(select ? { type: 'select-source', source: 'run' } : undefined);
  }

  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${HEATMAP_VIEW_ID}.focus`);
  }

  /** Nothing is held for a view still loading: it gets the current state when it says ready. */
  private push(extra?: HostToHeatmapView): void {
    if (!this.channel?.isReady) return;
    this.channel.post({ type: 'heatmap', trace: this.trace, run: this.run });
    if (extra) this.channel.post(extra);
  }

  dispose(): void {
    this.channel?.dispose();
    this.channel = null;
  }
}
