import type { HostToTraceView } from '../../src/shared/protocol';
import analysisCss from '../charts/analysisCharts.css';
import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { captureNonce, injectStyles } from '../common/dom';
import { onThemeChange } from '../common/theme';
import { getVsCodeApi } from '../common/vscode';
import traceCss from './trace.css';
import { createTraceView, type TraceViewState } from './view';

captureNonce(document);
injectStyles(document, 'ms-base', baseCss);
injectStyles(document, 'ms-charts', chartsCss);
injectStyles(document, 'ms-analysis-charts', analysisCss);
injectStyles(document, 'ms-trace', traceCss);

const api = getVsCodeApi<TraceViewState>();
const mount = document.getElementById('app') ?? document.body;
const view = createTraceView(mount, api);
(globalThis as { __moeTraceView?: unknown }).__moeTraceView = view; // for the render benchmark

window.addEventListener('message', (e: MessageEvent<HostToTraceView>) => {
  const msg = e.data;
  if (!msg || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') return;
  view.handle(msg);
});
onThemeChange(document, () => view.handle({ type: 'theme-changed' }));
// State is saved a moment after changes; write it at once when the panel goes away or is hidden.
window.addEventListener('pagehide', () => view.flushState());
document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'hidden') view.flushState();
});
api.postMessage({ type: 'ready' });
