import type { HostToHeatmapView } from '../../src/shared/protocol';
import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { captureNonce, injectStyles } from '../common/dom';
import { getVsCodeApi } from '../common/vscode';
import heatmapCss from './heatmap.css';
import { createHeatmapView, type HeatmapViewState } from './view';

captureNonce(document);
injectStyles(document, 'ms-base', baseCss);
injectStyles(document, 'ms-charts', chartsCss);
injectStyles(document, 'ms-heatmap', heatmapCss);

const api = getVsCodeApi<HeatmapViewState>();
const view = createHeatmapView(document.getElementById('app') ?? document.body, api);
window.addEventListener('message', (e: MessageEvent<HostToHeatmapView>) => {
  const msg = e.data;
  if (!msg || typeof msg !== 'object' || typeof (msg as { type?: unknown }).type !== 'string') return;
  view.handle(msg);
});
api.postMessage({ type: 'ready' });
