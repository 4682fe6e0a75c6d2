import type { HostToStructureView } from '../../src/shared/protocol';
import analysisCss from '../charts/analysisCharts.css';
import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { captureNonce, injectStyles } from '../common/dom';
import { getVsCodeApi } from '../common/vscode';
import structureCss from './structure.css';
import { createStructureView, type StructureViewState } from './view';

captureNonce(document);
injectStyles(document, 'ms-base', baseCss);
injectStyles(document, 'ms-charts', chartsCss);
injectStyles(document, 'ms-analysis-charts', analysisCss);
injectStyles(document, 'ms-structure', structureCss);

const api = getVsCodeApi<StructureViewState>();
const view = createStructureView(document.getElementById('app') ?? document.body, api);
(globalThis as { __moeStructureView?: unknown }).__moeStructureView = view; // for screenshots
window.addEventListener('message', (e: MessageEvent<HostToStructureView>) => {
  const msg = e.data;
  if (!msg || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') return;
  view.handle(msg);
});
// State is saved a moment after changes; write it at once when the panel goes away or is hidden.
window.addEventListener('pagehide', () => view.flushState());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') view.flushState();
});
api.postMessage({ type: 'ready' });
