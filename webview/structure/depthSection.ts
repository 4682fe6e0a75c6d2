/** "Similarity by depth": per layer, the mean off-diagonal similarity of each matrix; a click selects the layer. */
import { depthCurves, type DepthCurvesUpdate } from '../charts/depthCurves';
import { toCsv } from '../charts/export';
import { formatSimilarity } from '../charts/similarityMatrix';
import { h, measureWidth, section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';
import { DEPTH_KEYS, DEPTH_LABELS } from './model';
import type { SectionContext, StructureSection } from './section';

export interface DepthSection extends StructureSection {
  draw(): void;
  select(layer: number): void;
}

export function depthSection(content: HTMLElement, ctx: SectionContext): DepthSection {
  const { doc, model: m } = ctx;
  const E = m.numExperts;
  let byDepth: DepthCurvesUpdate | null = null;
  const dp = section(content, 'Similarity by depth', 'graph-line', 'structure-depth-section');
  const depthHost = h(doc, 'div', {});
  dp.tools.append(
    exportButtons(
      doc,
      {
        name: 'similarity-by-depth',
        svg: () => byDepth?.svg() ?? null,
        csv: () =>
          toCsv(
            ['layer', ...DEPTH_KEYS.map((k) => `mean_offdiag_${k}`), 'router_vs_expert_r2'],
            m.layers.map((l) => [l.layer, ...DEPTH_KEYS.map((k) => l.meanOff[k]), l.r2]),
          ),
        json: () => ({ layers: m.layers.map((l) => ({ layer: l.layer, meanOffDiagonal: l.meanOff, routerVsExpertR2: l.r2 })) }),
      },
      ctx.post,
    ),
  );
  dp.body.append(
    h(
      doc,
      'p',
      { class: 'caption' },
      `Per layer, the mean similarity over the ${E * (E - 1)} ordered pairs of different experts (the diagonal left out). ` +
        'Near 0: the experts point in unrelated directions; clearly above 0: they share structure. Click a layer to show it above.',
    ),
    depthHost,
  );
  const depthChart = () =>
    depthCurves(
      depthHost,
      {
        layers: m.layers.map((l) => l.layer),
        series: DEPTH_KEYS.map((k) => ({ key: k, label: DEPTH_LABELS[k], values: m.layers.map((l) => l.meanOff[k]) })),
        yLabel: 'mean off-diagonal cosine',
        refs: [{ value: 0, label: '0', className: 'neutral' }],
      },
      {
        testid: 'similarity-by-depth',
        selectedLayer: ctx.selection.layerId,
        onLayerClick: ctx.selectLayer,
        format: formatSimilarity,
        height: 240,
        width: Math.min(900, ctx.widths.depth),
      },
    );

  return {
    measure: () => {
      ctx.widths.depth = measureWidth(depthHost, ctx.widths.depth);
    },
    draw: () => {
      byDepth = depthChart();
    },
    select: (layer) => byDepth?.select(layer),
    destroy: () => {
      byDepth?.destroy();
      byDepth = null;
    },
  };
}
