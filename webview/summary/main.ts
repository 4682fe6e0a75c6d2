import type { HostToSummaryView } from '../../src/shared/protocol';
import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { captureNonce, injectStyles } from '../common/dom';
import { getVsCodeApi } from '../common/vscode';
import summaryCss from './summary.css';
import { createSummaryView, type SummaryViewState } from './view';

captureNonce(document);
injectStyles(document, 'ms-base', baseCss);
injectStyles(document, 'ms-charts', chartsCss);
injectStyles(document, 'ms-summary', summaryCss);

const api = getVsCodeApi<SummaryViewState>();
const view = createSummaryView(document.getElementById('app') ?? document.body, api);
window.addEventListener('message', (e: MessageEvent<HostToSummaryView>) => {
  const msg = e.data;
  if (!msg || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') return;
  view.handle(msg);
});
api.postMessage({ type: 'ready' });
