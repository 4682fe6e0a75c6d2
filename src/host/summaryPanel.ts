/** "MoE: Show evaluation summary": a webview panel over a run folder's summary.json, refreshed as it changes. */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { panelIcon, panelOptions, WebviewChannel } from './webviewChannel';
import { saveExport } from './exports';
import { readSummaryAsync, SUMMARY } from '../eval/runFolder';
import type { HostToSummaryView, RunSummary, SummaryViewToHost } from '../shared/protocol';

export const SUMMARY_VIEW_TYPE = 'moeScope.summary';

export class SummaryPanels implements vscode.Disposable {
  private readonly open = new Map<
    string,
    { panel: vscode.WebviewPanel; watcher: vscode.FileSystemWatcher; channel: WebviewChannel<HostToSummaryView, SummaryViewToHost> }
  >();
  private readonly disposables: vscode.Disposable[] = [];

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly onShown: (summary: RunSummary, runDir: string) => void,
    private readonly onNewExperiment: (runDir: string) => void,
  ) {
    this.disposables.push(
      vscode.window.registerWebviewPanelSerializer(SUMMARY_VIEW_TYPE, {
        deserializeWebviewPanel: async (panel, state: unknown) => {
          const runDir = (state as { runDir?: string } | undefined)?.runDir;
          if (runDir) this.wire(panel, runDir);
          else panel.dispose();
        },
      }),
    );
  }

  show(runDir: string): void {
    const existing = this.open.get(runDir);
    if (existing) {
      existing.panel.reveal();
      this.push(runDir);
      return;
    }
    const panel = vscode.window.createWebviewPanel(
      SUMMARY_VIEW_TYPE,
      `MoE Summary: ${path.basename(runDir)}`,
      vscode.ViewColumn.Active,
      panelOptions(this.context.extensionUri),
    );
    this.wire(panel, runDir);
  }

  private wire(panel: vscode.WebviewPanel, runDir: string): void {
    panel.title = `MoE Summary: ${path.basename(runDir)}`;
    panel.iconPath = panelIcon(this.context.extensionUri);
    const channel = new WebviewChannel<HostToSummaryView, SummaryViewToHost>(panel.webview, this.context.extensionUri, 'summary', 'MoE Summary', {
      saveExport,
      onReady: () => this.push(runDir),
      onMessage: (m) => {
        if (m.type === 'new-experiment') this.onNewExperiment(runDir);
      },
    });
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(runDir), SUMMARY));
    this.open.set(runDir, { panel, watcher, channel });
    watcher.onDidChange(() => this.push(runDir));
    watcher.onDidCreate(() => this.push(runDir));
    panel.onDidDispose(() => {
      channel.dispose();
      watcher.dispose();
      this.open.delete(runDir);
    });
  }

  /** The run folder of the summary panel in front, if one is. */
  activeRunDir(): string | undefined {
    for (const [dir, { panel }] of this.open) if (panel.active) return dir;
    return undefined;
  }

  private push(runDir: string): void {
    void this.pushAsync(runDir);
  }

  /** The summary is a workspace file: read without blocking the extension host, and checked. */
  private async pushAsync(runDir: string): Promise<void> {
    const entry = this.open.get(runDir);
    // A view still loading gets the summary when it says ready.
    if (!entry?.channel.isReady) return;
    let summary: RunSummary | null;
    try {
      summary = await readSummaryAsync(runDir);
    } catch (e) {
      void vscode.window.showErrorMessage(`MoE Scope: cannot read ${path.join(runDir, SUMMARY)}: ${(e as Error).message}`);
      return;
    }
    if (!summary) return;
    entry.channel.post({ type: 'summary', summary, runDir });
    this.onShown(summary, runDir);
  }

  dispose(): void {
    for (const { panel } of this.open.values()) panel.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
