import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { startView } from '../common/startView';
import summaryCss from '../summary/summary.css';
import compareCss from './compare.css';
import { createCompareView } from './view';

startView(
  [
    ['ms-base', baseCss],
    ['ms-charts', chartsCss],
    ['ms-summary', summaryCss],
    ['ms-compare', compareCss],
  ],
  createCompareView,
);
