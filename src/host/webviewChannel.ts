/**
 * The one way a panel or view talks to its webview: webview options, the CSP/nonce HTML shell, a queue
 * that holds messages until the view says 'ready' (a message posted before the view's script runs is
 * lost otherwise), and 'export' saved through the injected saver (src/host/exports.ts in the extension).
 * Each view's own messages go to onMessage.
 *
 * Imports only vscode *types*, so the queue and the routing are unit-testable in plain node.
 */
import type * as vscode from 'vscode';
import type { ExportMessage, ViewToHostCommon } from '../shared/protocol';
import { joinUri, renderWebviewHtml, webviewResourceRoots, type WebviewKind } from './webviewHtml';

/**
 * Holds messages until ready, then sends them in order and every later one at once. While held, `keep`
 * decides which earlier messages survive a newer one (default: all), so a slow view starts from the
 * newest state rather than replaying every step.
 */
export class ReadyQueue<T> {
  private ready = false;
  private held: T[] = [];

  constructor(
    private readonly send: (m: T) => void,
    private readonly keep: (held: T, next: T) => boolean = () => true,
  ) {}

  get isReady(): boolean {
    return this.ready;
  }

  post(m: T): void {
    if (this.ready) this.send(m);
    else this.held = [...this.held.filter((h) => this.keep(h, m)), m];
  }

  /** Sends what was held; returns how many messages that was. */
  markReady(): number {
    this.ready = true;
    const held = this.held.splice(0);
    for (const m of held) this.send(m);
    return held.length;
  }
}

/** The webview API the channel uses (vscode.Webview has it; tests pass a fake). */
export type ChannelWebview = Pick<vscode.Webview, 'options' | 'html' | 'cspSource' | 'asWebviewUri' | 'postMessage' | 'onDidReceiveMessage'>;

export interface WebviewChannelHandlers<ToView, FromView extends { type: string }> {
  saveExport: (m: ExportMessage) => Thenable<void> | Promise<void>;
  /** The view's own messages (everything but ready and export). */
  onMessage?: (m: Exclude<FromView, ViewToHostCommon>) => void;
  /** After each 'ready' (the first and after a webview reload), once the held messages went out; `flushed` counts them. */
  onReady?: (flushed: number) => void;
  /** See ReadyQueue. */
  keep?: (held: ToView, next: ToView) => boolean;
}

export class WebviewChannel<ToView, FromView extends { type: string }> implements vscode.Disposable {
  private readonly queue: ReadyQueue<ToView>;
  private readonly subscription: vscode.Disposable;

  /** Loads dist/webview/<view>/main.js into the webview, titled `title`. */
  constructor(
    webview: ChannelWebview,
    extensionUri: vscode.Uri,
    view: WebviewKind,
    title: string,
    private readonly handlers: WebviewChannelHandlers<ToView, FromView>,
  ) {
    this.queue = new ReadyQueue((m) => void webview.postMessage(m), handlers.keep);
    webview.options = webviewOptions(extensionUri);
    webview.html = renderWebviewHtml(webview as vscode.Webview, extensionUri, view, title);
    this.subscription = webview.onDidReceiveMessage((m: FromView | ViewToHostCommon) => this.receive(m));
  }

  get isReady(): boolean {
    return this.queue.isReady;
  }

  /** Sends now if the view is ready, else holds it until then. */
  post(m: ToView): void {
    this.queue.post(m);
  }

  private receive(m: FromView | ViewToHostCommon): void {
    if (m.type === 'ready') this.handlers.onReady?.(this.queue.markReady());
    else if (m.type === 'export') void this.handlers.saveExport(m as ExportMessage);
    else this.handlers.onMessage?.(m as Exclude<FromView, ViewToHostCommon>);
  }

  dispose(): void {
    this.subscription.dispose();
  }
}

/** Webview options: scripts on, resources only from the extension's dist folder. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return { enableScripts: true, localResourceRoots: webviewResourceRoots(extensionUri) };
}

/** Options for createWebviewPanel: the panels keep their state while hidden. */
export function panelOptions(extensionUri: vscode.Uri): vscode.WebviewPanelOptions & vscode.WebviewOptions {
  return { ...webviewOptions(extensionUri), retainContextWhenHidden: true };
}

/** The MoE Scope icon on a panel's tab. */
export function panelIcon(extensionUri: vscode.Uri): vscode.Uri {
  return joinUri(extensionUri, 'media', 'moe-scope.svg');
}
