/**
 * "MoE: Trace selection": finds the MMLU question at the selection, runs it through the model in the
 * inference process and shows the routing in a webview panel beside the editor. While the panel is open,
 * moving the selection to another question re-traces it (debounced; the older request is cancelled and
 * its result, should it still arrive, is never drawn over the newer one). Hovering a token in the panel
 * highlights its text in the editor, and the cursor in the editor highlights its token in the panel.
 */
import { readPrecisionCheck } from '../shared/precisionCheck';
import * as vscode from 'vscode';
import { findQuestionAtCursor } from '../mmlu/questionAtCursor';
import { pyStrip } from '../mmlu/prompt';
import { buildTracePrompt, docRangesOfToken, tokenAtDocOffset, type Segment } from './tracePrompt';
import { panelIcon, panelOptions, WebviewChannel } from './webviewChannel';
import type { ModelManager } from './modelManager';
import { readSettings } from './settings';
import { saveExport } from './exports';
import {
  ANSWER_LETTERS,
  EngineFailure,
  type HostToTraceView,
  type TracePayload,
  type TraceResult,
  type TraceViewToHost,
  type ViewToHostCommon,
} from '../shared/protocol';

export const TRACE_VIEW_TYPE = 'moeScope.trace';

interface Current {
  requestId: number;
  uri: string;
  range: [number, number];
  segments: Segment[];
  result: TraceResult | null;
}

export class TraceController implements vscode.Disposable {
  private panel: vscode.WebviewPanel | null = null;
  private channel: WebviewChannel<HostToTraceView, TraceViewToHost> | null = null;
  private requestSeq = 0;
  private inFlight: AbortController | null = null;
  private current: Current | null = null;
  private lastPayload: TracePayload | null = null;
  private followTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly decoration = vscode.window.createTextEditorDecorationType({
    backgroundColor: new vscode.ThemeColor('editor.findMatchHighlightBackground'),
    border: '1px solid',
    borderColor: new vscode.ThemeColor('editor.findMatchHighlightBorder'),
  });
  private readonly disposables: vscode.Disposable[] = [];
  private readonly traced = new vscode.EventEmitter<TraceResult>();
  readonly onDidTrace = this.traced.event;

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly models: ModelManager,
  ) {
    this.disposables.push(
      vscode.window.onDidChangeTextEditorSelection((e) => this.onSelection(e)),
      vscode.window.registerWebviewPanelSerializer(TRACE_VIEW_TYPE, {
        deserializeWebviewPanel: async (panel) => this.adopt(panel),
      }),
    );
  }

  get lastResult(): TraceResult | null {
    return this.current?.result ?? null;
  }

  /** The command: trace the question at the active editor's selection. */
  async traceSelection(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      void vscode.window.showErrorMessage('MoE Scope: open an MMLU file (CSV, JSONL or text) and select a question to trace.');
      return;
    }
    await this.traceAt(editor, true);
  }

  private async traceAt(editor: vscode.TextEditor, explicit: boolean): Promise<void> {
    const doc = editor.document;
    const text = doc.getText();
    const found = findQuestionAtCursor({
      text,
      fileName: doc.fileName,
      selectionStart: doc.offsetAt(editor.selection.start),
      selectionEnd: doc.offsetAt(editor.selection.end),
    });
    if (!found.ok) {
      if (explicit) {
        void vscode.window.showErrorMessage(`MoE Scope: ${found.message}`);
        this.show();
        this.post({ type: 'trace-failed', requestId: ++this.requestSeq, message: found.message });
      }
      return;
    }
    const prompt = buildTracePrompt(found.question, text, found.range);
    const requestId = ++this.requestSeq;
    this.inFlight?.abort();
    const controller = new AbortController();
    this.inFlight = controller;
    this.current = { requestId, uri: doc.uri.toString(), range: found.range, segments: prompt.segments, result: null };
    this.show();
    const label = `${found.question.subject ? `${found.question.subject.replace(/_/g, ' ')}: ` : ''}${pyStrip(found.question.question).slice(0, 80)}`;
    this.post({ type: 'trace-started', requestId, label });
    try {
      await this.models.ensureLoaded(explicit);
      const result = await this.models.withBusy(() =>
        this.models.client.call('trace', { input: { text: prompt.text }, options: { includeProbs: true, includeLastLogits: false } }, controller.signal),
      );
      if (requestId !== this.requestSeq) return; // a newer trace owns the panel now
      if (result.model.precision) result.model.precisionCheck = readPrecisionCheck(readSettings().cacheDir, result.model.path, result.model.precision);
      this.current.result = result;
      const gold = found.question.answer === null ? undefined : ANSWER_LETTERS[found.question.answer];
      this.lastPayload = { requestId, sourceUri: doc.uri.toString(), question: { subject: found.question.subject, text: prompt.text, gold }, result };
      this.post({ type: 'trace', payload: this.lastPayload });
      this.traced.fire(result);
    } catch (e) {
      if (e instanceof EngineFailure && e.code === 'cancelled') return;
      if (requestId !== this.requestSeq) return;
      const message = (e as Error).message;
      this.models.output.error(`trace failed: ${message}`);
      this.post({ type: 'trace-failed', requestId, message });
      if (explicit) {
        const action = e instanceof EngineFailure && e.code === 'not-loaded' ? 'Select model...' : 'Show log';
        void vscode.window.showErrorMessage(`MoE Scope: ${message}`, action).then((a) => {
          if (a === 'Select model...') void vscode.commands.executeCommand('moeScope.selectModel');
          else if (a === 'Show log') this.models.output.show();
        });
      }
    } finally {
      if (this.inFlight === controller) this.inFlight = null;
    }
  }

  /** Re-runs the shown trace in the all-experts analysis mode (every expert on every token). */
  private async analyzeExperts(): Promise<void> {
    const last = this.lastPayload;
    const requestId = ++this.requestSeq;
    if (!last?.question) {
      this.post({ type: 'trace-failed', requestId, message: 'Trace a question first: the all-experts analysis re-runs the question shown in this panel.' });
      return;
    }
    this.inFlight?.abort();
    const controller = new AbortController();
    this.inFlight = controller;
    this.post({ type: 'trace-started', requestId, label: 'running every expert on every token...' });
    try {
      const result = await this.models.withBusy(() =>
        this.models.client.call(
          'trace',
          { input: { text: last.question!.text }, options: { includeProbs: true, includeLastLogits: false, allExperts: true } },
          controller.signal,
        ),
      );
      if (requestId !== this.requestSeq) return;
      if (this.current) this.current.result = result;
      this.lastPayload = { ...last, requestId, result };
      this.post({ type: 'trace', payload: this.lastPayload });
    } catch (e) {
      if ((e instanceof EngineFailure && e.code === 'cancelled') || requestId !== this.requestSeq) return;
      this.post({ type: 'trace-failed', requestId, message: (e as Error).message });
    } finally {
      if (this.inFlight === controller) this.inFlight = null;
    }
  }

  private onSelection(e: vscode.TextEditorSelectionChangeEvent): void {
    if (!this.panel || !this.current) return;
    const doc = e.textEditor.document;
    const offset = doc.offsetAt(e.selections[0].active);
    if (doc.uri.toString() === this.current.uri && offset >= this.current.range[0] && offset <= this.current.range[1]) {
      this.post({ type: 'highlight-token', index: this.tokenAtDocOffset(offset) });
      return;
    }
    if (!readSettings().followSelection || e.kind === vscode.TextEditorSelectionChangeKind.Command) return;
    if (this.followTimer) clearTimeout(this.followTimer);
    this.followTimer = setTimeout(() => {
      this.followTimer = null;
      void this.traceAt(e.textEditor, false);
    }, 350);
  }

  private tokenAtDocOffset(offset: number): number | null {
    const c = this.current;
    return c?.result ? tokenAtDocOffset(c.segments, c.result.tokens, offset) : null;
  }

  private highlightToken(index: number | null): void {
    const c = this.current;
    const editor = vscode.window.visibleTextEditors.find((ed) => ed.document.uri.toString() === c?.uri);
    if (!editor) return;
    if (index === null || !c?.result) {
      editor.setDecorations(this.decoration, []);
      return;
    }
    const ranges = docRangesOfToken(c.segments, c.result.tokens[index]).map(
      ([a, b]) => new vscode.Range(editor.document.positionAt(a), editor.document.positionAt(b)),
    );
    editor.setDecorations(this.decoration, ranges);
    if (ranges[0]) editor.revealRange(ranges[0], vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  private show(): void {
    if (this.panel) {
      if (!this.panel.visible) this.panel.reveal(vscode.ViewColumn.Beside, true);
      return;
    }
    const panel = vscode.window.createWebviewPanel(
      TRACE_VIEW_TYPE,
      'MoE Trace',
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      panelOptions(this.context.extensionUri),
    );
    this.adopt(panel);
  }

  /** Wires a panel, new or restored after a window reload. */
  private adopt(panel: vscode.WebviewPanel): void {
    this.panel?.dispose();
    this.panel = panel;
    panel.iconPath = panelIcon(this.context.extensionUri);
    const channel = new WebviewChannel<HostToTraceView, TraceViewToHost>(panel.webview, this.context.extensionUri, 'trace', 'MoE Trace', {
      saveExport,
      onMessage: (m) => this.onMessage(m),
      // A restored panel kept a slimmed state; the last trace in full (gate probabilities too) comes back.
      onReady: (flushed) => {
        if (flushed === 0 && this.lastPayload) channel.post({ type: 'trace', payload: this.lastPayload });
      },
      // Only the newest state matters while the view is still loading.
      keep: (held) => held.type === 'highlight-token',
    });
    this.channel = channel;
    panel.onDidDispose(
      () => {
        channel.dispose();
        if (this.panel !== panel) return;
        this.panel = null;
        this.channel = null;
        this.inFlight?.abort();
        this.highlightToken(null);
      },
      null,
      this.disposables,
    );
  }

  private onMessage(m: Exclude<TraceViewToHost, ViewToHostCommon>): void {
    switch (m.type) {
      case 'hover-token':
        this.highlightToken(m.index);
        break;
      case 'reveal-token':
        this.highlightToken(m.index);
        break;
      case 'retry':
        void this.traceSelection();
        break;
      case 'analyze-experts':
        void this.analyzeExperts();
        break;
    }
  }

  /** Points the trace panel's expert lens at an expert (from the heatmap); says so when there is no trace to show it on. */
  lensExpert(layer: number | null, expert: number): void {
    if (!this.panel || !this.lastPayload) {
      void vscode.window.showInformationMessage('MoE Scope: trace a question first; the expert lens shows where an expert is chosen in the traced question.');
      return;
    }
    if (!this.panel.visible) this.panel.reveal(undefined, true);
    this.post({ type: 'lens-expert', layer, expert });
  }

  private post(m: HostToTraceView): void {
    this.channel?.post(m);
  }

  dispose(): void {
    this.inFlight?.abort();
    this.panel?.dispose();
    this.decoration.dispose();
    this.traced.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
