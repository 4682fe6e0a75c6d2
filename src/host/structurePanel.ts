/**
 * "MoE: Show expert structure": the static analyses of "A Closer Look into Mixture-of-Experts" for the
 * loaded checkpoint (expert weight similarity per layer, neuron-level similarity, router rows vs experts),
 * computed in the inference process layer by layer and cached per checkpoint.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { renderWebviewHtml, webviewResourceRoots } from './webviewHtml';
import { saveExport } from './exports';
import type { ModelManager } from './modelManager';
import type { HostToStructureView, StructureViewToHost } from '../shared/protocol';

export const STRUCTURE_VIEW_TYPE = 'moeScope.structure';

export class StructurePanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private ready = false;
  private pending: HostToStructureView[] = [];
  private abort: AbortController | null = null;

  private readonly serializer: vscode.Disposable;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly models: ModelManager,
  ) {
    // After a window reload the view is rebuilt from the cached analysis rather than from saved state.
    this.serializer = vscode.window.registerWebviewPanelSerializer(STRUCTURE_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel) => {
        panel.dispose();
        await this.show();
      },
    });
  }

  async show(): Promise<void> {
    if (!this.panel) {
      this.panel = vscode.window.createWebviewPanel(STRUCTURE_VIEW_TYPE, 'MoE Expert structure', vscode.ViewColumn.Active, {
        enableScripts: true,
        retainContextWhenHidden: true,
        localResourceRoots: webviewResourceRoots(this.context.extensionUri),
      });
      this.panel.iconPath = vscode.Uri.joinPath(this.context.extensionUri, 'media', 'moe-scope.svg');
      this.ready = false;
      this.panel.webview.html = renderWebviewHtml(this.panel.webview, this.context.extensionUri, 'structure', 'MoE Expert structure');
      this.panel.webview.onDidReceiveMessage((m: StructureViewToHost) => {
        if (m.type === 'ready') {
          this.ready = true;
          for (const p of this.pending.splice(0)) void this.panel?.webview.postMessage(p);
        } else if (m.type === 'export') void saveExport(m);
      });
      this.panel.onDidDispose(() => {
        this.panel = null;
        this.abort?.abort();
      });
    } else this.panel.reveal();
    await this.compute();
  }

  private post(m: HostToStructureView): void {
    if (this.ready) void this.panel?.webview.postMessage(m);
    else this.pending = [...this.pending.filter((p) => p.type !== m.type), m];
  }

  private async compute(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    try {
      const info = await this.models.ensureLoaded(true);
      this.post({ type: 'structure-progress', message: `Analysing the expert weights of ${info.numLayers} layers (cached after the first time)...` });
      const analysis = await this.models.withBusy(() => this.models.client.call('analyzeWeights', {}, abort.signal));
      this.post({ type: 'structure', analysis, modelLabel: `${info.family}${info.demo ? ' (demo, random weights)' : ''} · ${path.basename(info.path)}` });
    } catch (e) {
      if (abort.signal.aborted) return;
      this.post({ type: 'structure-failed', message: (e as Error).message });
    }
  }

  dispose(): void {
    this.abort?.abort();
    this.panel?.dispose();
    this.serializer.dispose();
  }
}
