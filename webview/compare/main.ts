import type { HostToCompareView } from '../../src/shared/protocol';
import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import summaryCss from '../summary/summary.css';
import { captureNonce, injectStyles } from '../common/dom';
import { getVsCodeApi } from '../common/vscode';
import compareCss from './compare.css';
import { createCompareView, type CompareViewState } from './view';

captureNonce(document);
injectStyles(document, 'ms-base', baseCss);
injectStyles(document, 'ms-charts', chartsCss);
injectStyles(document, 'ms-summary', summaryCss);
injectStyles(document, 'ms-compare', compareCss);

const api = getVsCodeApi<CompareViewState>();
const view = createCompareView(document.getElementById('app') ?? document.body, api);
window.addEventListener('message', (e: MessageEvent<HostToCompareView>) => {
  const msg = e.data;
  if (!msg || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') return;
  view.handle(msg);
});
api.postMessage({ type: 'ready' });
