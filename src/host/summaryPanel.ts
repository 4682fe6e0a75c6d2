/** "MoE: Show evaluation summary": a webview panel over a run folder's summary.json, refreshed as it changes. */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { renderWebviewHtml, webviewResourceRoots } from './webviewHtml';
import { saveExport } from './exports';
import { readSummaryAsync, SUMMARY } from '../eval/runFolder';
import type { HostToSummaryView, RunSummary, SummaryViewToHost } from '../shared/protocol';

export const SUMMARY_VIEW_TYPE = 'moeScope.summary';

export class SummaryPanels implements vscode.Disposable {
  private readonly open = new Map<string, { panel: vscode.WebviewPanel; watcher: vscode.FileSystemWatcher; ready: boolean }>();
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
    const panel = vscode.window.createWebviewPanel(SUMMARY_VIEW_TYPE, `MoE Summary: ${path.basename(runDir)}`, vscode.ViewColumn.Active, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: webviewResourceRoots(this.context.extensionUri),
    });
    this.wire(panel, runDir);
  }

  private wire(panel: vscode.WebviewPanel, runDir: string): void {
    panel.title = `MoE Summary: ${path.basename(runDir)}`;
    panel.iconPath = vscode.Uri.joinPath(this.context.extensionUri, 'media', 'moe-scope.svg');
    panel.webview.options = { enableScripts: true, localResourceRoots: webviewResourceRoots(this.context.extensionUri) };
    panel.webview.html = renderWebviewHtml(panel.webview, this.context.extensionUri, 'summary', 'MoE Summary');
    const watcher = vscode.workspace.createFileSystemWatcher(new vscode.RelativePattern(vscode.Uri.file(runDir), SUMMARY));
    const entry = { panel, watcher, ready: false };
    this.open.set(runDir, entry);
    watcher.onDidChange(() => this.push(runDir));
    watcher.onDidCreate(() => this.push(runDir));
    panel.webview.onDidReceiveMessage((m: SummaryViewToHost) => {
      if (m.type === 'ready') {
        entry.ready = true;
        this.push(runDir);
      } else if (m.type === 'export') void saveExport(m);
      else if (m.type === 'new-experiment') this.onNewExperiment(runDir);
    });
    panel.onDidDispose(() => {
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
    if (!entry?.ready) return;
    let summary: RunSummary | null;
    try {
      summary = await readSummaryAsync(runDir);
    } catch (e) {
      void vscode.window.showErrorMessage(`MoE Scope: cannot read ${path.join(runDir, SUMMARY)}: ${(e as Error).message}`);
      return;
    }
    if (!summary) return;
    void entry.panel.webview.postMessage({ type: 'summary', summary, runDir } satisfies HostToSummaryView);
    this.onShown(summary, runDir);
  }

  dispose(): void {
    for (const { panel } of this.open.values()) panel.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
