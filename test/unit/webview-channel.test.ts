import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as vscode from 'vscode';
import { ReadyQueue, WebviewChannel, type ChannelWebview } from '../../src/host/webviewChannel';
import type { ExportMessage, HostToStructureView, HostToTraceView, SummaryViewToHost } from '../../src/shared/protocol';

/** A vscode.Uri stand-in: the channel only reads .path and calls .with({ path }). */
function fakeUri(path: string): vscode.Uri {
  const uri = { path, with: (c: { path: string }) => fakeUri(c.path), toString: () => `vscode-resource:${path}` };
  return uri as unknown as vscode.Uri;
}

/** Records what the host posts and lets the test play the view's side. */
function fakeWebview() {
  const posted: unknown[] = [];
  let listener: ((m: unknown) => void) | null = null;
  let disposed = false;
  const webview = {
    options: {},
    html: '',
    cspSource: 'vscode-resource:',
    asWebviewUri: (u: vscode.Uri) => u,
    postMessage: async (m: unknown) => {
      posted.push(m);
      return true;
    },
    onDidReceiveMessage: (l: (m: unknown) => void) => {
      listener = l;
      return {
        dispose: () => {
          disposed = true;
        },
      };
    },
  };
  return {
    webview: webview as unknown as ChannelWebview,
    posted,
    fromView: (m: unknown) => listener!(m),
    get disposed() {
      return disposed;
    },
  };
}

const started = (requestId: number): HostToTraceView => ({ type: 'trace-started', requestId, label: `q${requestId}` });

test('ReadyQueue: messages posted before ready arrive after it, in order; later ones at once', () => {
  const sent: HostToTraceView[] = [];
  const q = new ReadyQueue<HostToTraceView>((m) => sent.push(m));
  const before = [started(1), { type: 'highlight-token', index: 3 } as const, started(2)];
  for (const m of before) q.post(m);
  assert.deepEqual(sent, [], 'nothing is sent before ready');
  assert.equal(q.isReady, false);
  assert.equal(q.markReady(), before.length);
  assert.deepEqual(sent, before);
  q.post(started(3));
  assert.deepEqual(sent, [...before, started(3)]);
  assert.equal(q.markReady(), 0, 'a second ready (webview reload) has nothing left to send');
});

test('ReadyQueue: keep decides which held messages survive a newer one', () => {
  const sent: HostToStructureView[] = [];
  const q = new ReadyQueue<HostToStructureView>(
    (m) => sent.push(m),
    (held, next) => held.type !== next.type,
  );
  q.post({ type: 'structure-progress', message: 'a' });
  q.post({ type: 'structure-failed', message: 'x' });
  q.post({ type: 'structure-progress', message: 'b' });
  q.markReady();
  assert.deepEqual(sent, [
    { type: 'structure-failed', message: 'x' },
    { type: 'structure-progress', message: 'b' },
  ]);
});

test('WebviewChannel: sets options and the CSP shell, holds messages until the view says ready', () => {
  const fake = fakeWebview();
  const readies: number[] = [];
  const channel = new WebviewChannel<HostToTraceView, SummaryViewToHost>(fake.webview, fakeUri('/ext'), 'trace', 'MoE Trace', {
    saveExport: async () => {},
    onReady: (flushed) => readies.push(flushed),
  });
  const options = fake.webview.options as vscode.WebviewOptions;
  assert.equal(options.enableScripts, true);
  assert.deepEqual(
    options.localResourceRoots?.map((u) => u.path),
    ['/ext/dist'],
  );
  assert.match(fake.webview.html, /Content-Security-Policy/);
  assert.match(fake.webview.html, /\/ext\/dist\/webview\/trace\/main\.js/);

  channel.post(started(1));
  channel.post(started(2));
  assert.deepEqual(fake.posted, []);
  assert.equal(channel.isReady, false);
  fake.fromView({ type: 'ready' });
  assert.equal(channel.isReady, true);
  assert.deepEqual(fake.posted, [started(1), started(2)]);
  assert.deepEqual(readies, [2], 'onReady runs after the held messages went out and counts them');
  channel.post(started(3));
  assert.deepEqual(fake.posted, [started(1), started(2), started(3)]);
  channel.dispose();
  assert.equal(fake.disposed, true);
});

test('WebviewChannel: export goes to the saver, the view own messages to onMessage', () => {
  const fake = fakeWebview();
  const saved: ExportMessage[] = [];
  const own: SummaryViewToHost[] = [];
  new WebviewChannel<HostToTraceView, SummaryViewToHost>(fake.webview, fakeUri('/ext'), 'summary', 'MoE Summary', {
    saveExport: async (m) => {
      saved.push(m);
    },
    onMessage: (m) => own.push(m),
  });
  const exported: ExportMessage = { type: 'export', format: 'csv', name: 'accuracy.csv', data: 'a,b\n1,2\n' };
  fake.fromView(exported);
  fake.fromView({ type: 'new-experiment' });
  fake.fromView({ type: 'ready' });
  assert.deepEqual(saved, [exported]);
  assert.deepEqual(own, [{ type: 'new-experiment' }]);
});
