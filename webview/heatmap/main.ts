import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { startView } from '../common/startView';
import heatmapCss from './heatmap.css';
import { createHeatmapView } from './view';

startView(
  [
    ['ms-base', baseCss],
    ['ms-charts', chartsCss],
    ['ms-heatmap', heatmapCss],
  ],
  createHeatmapView,
);
