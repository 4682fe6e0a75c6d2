import analysisCss from '../charts/analysisCharts.css';
import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { startView } from '../common/startView';
import structureCss from './structure.css';
import { createStructureView } from './view';

const view = startView(
  [
    ['ms-base', baseCss],
    ['ms-charts', chartsCss],
    ['ms-analysis-charts', analysisCss],
    ['ms-structure', structureCss],
  ],
  createStructureView,
);
(globalThis as { __moeStructureView?: unknown }).__moeStructureView = view; // for screenshots
