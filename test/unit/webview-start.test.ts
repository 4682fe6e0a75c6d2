import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fakeApi, setupDom } from '../support/domEnv';
import { startView } from '../../webview/common/startView';
import type { HostToSummaryView } from '../../src/shared/protocol';

test('startView: styles injected, host messages reach the view, ready posted once the view listens', () => {
  const env = setupDom();
  const api = fakeApi<{ v: 1 }>();
  (globalThis as { acquireVsCodeApi?: unknown }).acquireVsCodeApi = () => api;
  const handled: HostToSummaryView[] = [];
  let flushed = 0;
  let postedAtCreate: unknown[] | null = null;
  const view = startView([['ms-test', '.x { color: red }']], (mount, viewApi) => {
    assert.equal(mount, env.app, 'the view mounts on #app');
    assert.equal(viewApi, api);
    postedAtCreate = [...api.posted];
    return { handle: (m: HostToSummaryView) => handled.push(m), flushState: () => void flushed++ };
  });
  assert.deepEqual(postedAtCreate, [], 'ready comes after the view exists');
  assert.deepEqual(api.posted, [{ type: 'ready' }]);
  assert.equal(env.document.getElementById('ms-test')?.textContent, '.x { color: red }');

  const message = (data: unknown) => {
    const e = new env.window.Event('message') as Event & { data?: unknown };
    Object.defineProperty(e, 'data', { value: data });
    env.window.dispatchEvent(e);
  };
  const summary = { type: 'summary', runDir: '/runs/a' } as unknown as HostToSummaryView;
  message(summary);
  message(null);
  message({ no: 'type' });
  assert.deepEqual(handled, [summary], 'only messages with a string type are handled');

  env.window.dispatchEvent(new env.window.Event('pagehide'));
  assert.equal(flushed, 1, 'state is written when the page goes away');
  assert.equal(typeof view.handle, 'function');
});
