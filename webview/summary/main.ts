import chartsCss from '../charts/charts.css';
import baseCss from '../common/base.css';
import { startView } from '../common/startView';
import summaryCss from './summary.css';
import { createSummaryView } from './view';

startView(
  [
    ['ms-base', baseCss],
    ['ms-charts', chartsCss],
    ['ms-summary', summaryCss],
  ],
  createSummaryView,
);
