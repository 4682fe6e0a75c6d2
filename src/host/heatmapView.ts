/**
 * The side-panel expert heatmap (a webview view in MoE Scope's activity-bar container): layers x experts
 * usage for the current trace and for the selected evaluation run, switchable.
 */
import * as vscode from 'vscode';
import { renderWebviewHtml, webviewResourceRoots } from './webviewHtml';
import { saveExport } from './exports';
import { heatmapFromSummary, heatmapFromTrace } from '../analysis/heatmap';
import type { HeatmapData, HeatmapViewToHost, HostToHeatmapView, RunSummary, TraceResult } from '../shared/protocol';

export const HEATMAP_VIEW_ID = 'moeScope.heatmap';

export class HeatmapViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | null = null;
  private ready = false;
  private trace: HeatmapData | null = null;
  private run: HeatmapData | null = null;

  constructor(private readonly context: vscode.ExtensionContext) {}

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.ready = false;
    view.webview.options = { enableScripts: true, localResourceRoots: webviewResourceRoots(this.context.extensionUri) };
    view.webview.html = renderWebviewHtml(view.webview, this.context.extensionUri, 'heatmap', 'Expert heatmap');
    view.webview.onDidReceiveMessage((m: HeatmapViewToHost) => {
      if (m.type === 'ready') {
        this.ready = true;
        this.push();
      } else if (m.type === 'export') void saveExport(m);
    });
    view.onDidDispose(() => {
      this.view = null;
    });
  }

  setTrace(result: TraceResult, label: string): void {
    this.trace = heatmapFromTrace(result.routing, label);
    this.push({ type: 'select-source', source: 'trace' });
  }

  setRun(summary: RunSummary, label: string, select = false): void {
    this.run = heatmapFromSummary(summary, label);
    this.push(select ? { type: 'select-source', source: 'run' } : undefined);
  }

  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${HEATMAP_VIEW_ID}.focus`);
  }

  private push(extra?: HostToHeatmapView): void {
    if (!this.view || !this.ready) return;
    void this.view.webview.postMessage({ type: 'heatmap', trace: this.trace, run: this.run } satisfies HostToHeatmapView);
    if (extra) void this.view.webview.postMessage(extra);
  }

  dispose(): void {
    this.view = null;
  }
}
