import analysisCss from '../charts/analysisCharts.css';
import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { startView } from '../common/startView';
import { onThemeChange } from '../common/theme';
import traceCss from './trace.css';
import { createTraceView } from './view';

const view = startView(
  [
    ['ms-base', baseCss],
    ['ms-charts', chartsCss],
    ['ms-analysis-charts', analysisCss],
    ['ms-trace', traceCss],
  ],
  createTraceView,
);
(globalThis as { __moeTraceView?: unknown }).__moeTraceView = view; // for the render benchmark
onThemeChange(document, () => view.handle({ type: 'theme-changed' }));
