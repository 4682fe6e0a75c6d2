/**
 * "MoE: Show expert structure": the static analyses of "A Closer Look into Mixture-of-Experts" for the
 * loaded checkpoint (expert weight similarity per layer, neuron-level similarity, router rows vs experts),
 * computed in the inference process layer by layer and cached per checkpoint.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { panelIcon, panelOptions, WebviewChannel } from './webviewChannel';
import { saveExport } from './exports';
import type { ModelManager } from './modelManager';
import type { HostToStructureView, StructureViewToHost } from '../shared/protocol';

export const STRUCTURE_VIEW_TYPE = 'moeScope.structure';

export class StructurePanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private channel: WebviewChannel<HostToStructureView, StructureViewToHost> | null = null;
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
      this.panel = vscode.window.createWebviewPanel(
        STRUCTURE_VIEW_TYPE,
        'MoE Expert structure',
        vscode.ViewColumn.Active,
        panelOptions(this.context.extensionUri),
      );
      this.panel.iconPath = panelIcon(this.context.extensionUri);
      this.channel = new WebviewChannel<HostToStructureView, StructureViewToHost>(
        this.panel.webview,
        this.context.extensionUri,
        'structure',
        'MoE Expert structure',
        {
          saveExport,
          // One message of each kind is enough while the view loads: the newest progress, result or failure.
          keep: (held, next) => held.type !== next.type,
        },
      );
      this.panel.onDidDispose(() => {
        this.channel?.dispose();
        this.panel = null;
        this.channel = null;
        this.abort?.abort();
      });
    } else this.panel.reveal();
    await this.compute();
  }

  private post(m: HostToStructureView): void {
    this.channel?.post(m);
  }

  private async compute(): Promise<void> {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    try {
      const info = await this.models.ensureLoaded(true);
      this.post({ type: 'structure-progress', message: `Analysing the expert weights of ${info.numLayers} layers (cached after the first time)...` });
      const analysis = await this.models.withBusy(() => this.models.client.call('analyzeWeights', {}, abort.signal));
      this.post({
        type: 'structure',
        analysis,
        modelLabel: `${info.family}${info.demo ? (info.demo.trained ? ' (demo: toy trained on MMLU dev/val text, not OLMoE)' : ' (demo, random weights)') : ''} · ${path.basename(info.path)}`,
      });
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
