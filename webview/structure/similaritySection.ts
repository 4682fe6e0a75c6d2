/**
 * "Expert similarity": one layer's E x E similarity matrix, chosen by layer, matrix and colour scale, with its
 * definition and summary statistics beside it.
 */
import { toCsv } from '../charts/export';
import { meanOffDiagonal } from '../../src/analysis/pairStats';
import { formatSimilarity, similarityMatrix, type SimilarityMatrixUpdate } from '../charts/similarityMatrix';
import { append, clear, h, labeledSelect, measureWidth, section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';
import { MATRICES, matrixSpec, type MatrixKey, type MatrixSpec } from './model';
import type { ExpertPair, SectionContext, StructureSection } from './section';

export interface SimilaritySection extends StructureSection {
  /** Draws the selected layer's selected matrix (in place when the chart exists). */
  render(): void;
  /** Shows `layer` as chosen in the layer menu. */
  setLayer(layer: number): void;
  highlight(pair: ExpertPair | null): void;
}

export function similaritySection(
  content: HTMLElement,
  ctx: SectionContext,
  available: readonly MatrixSpec[],
  onHover: (pair: ExpertPair | null) => void,
): SimilaritySection {
  const { doc, model: m } = ctx;
  const E = m.numExperts;
  let matrix: SimilarityMatrixUpdate | null = null;
  const sm = section(content, 'Expert similarity', 'symbol-structure', 'structure-matrix-section');
  const ls = labeledSelect(
    doc,
    'structure-layer',
    'Layer',
    m.layers.map((l) => [String(l.layer), `L${l.layer}`]),
    String(ctx.selection.layerId),
    (v) => ctx.selectLayer(Number(v)),
  );
  const ms = labeledSelect(
    doc,
    'structure-matrix',
    'Matrix',
    available.map((s) => [s.key, s.option]),
    ctx.selection.matrixKey,
    (v) => {
      if (!MATRICES.some((s) => s.key === v)) return;
      ctx.selection.matrixKey = v as MatrixKey;
      renderMatrix();
      ctx.save();
    },
  );
  const ss = labeledSelect(
    doc,
    'structure-scale',
    'Colour scale',
    [
      ['data', 'data range'],
      ['fixed', '−1 … 1'],
    ],
    ctx.selection.scale,
    (v) => {
      ctx.selection.scale = v === 'fixed' ? 'fixed' : 'data';
      matrix?.setScale(ctx.selection.scale);
      ctx.save();
    },
  );
  sm.tools.append(
    ls.wrap,
    ms.wrap,
    ss.wrap,
    exportButtons(
      doc,
      {
        name: 'similarity',
        svg: () => matrix?.svg() ?? null,
        csv: () => {
          const l = ctx.currentLayer();
          const mat = l?.matrices[ctx.selection.matrixKey];
          const rows: (number | string)[][] = [];
          if (l && mat) for (let a = 0; a < E; a++) for (let b = 0; b < E; b++) rows.push([l.layer, ctx.selection.matrixKey, a, b, mat[a * E + b]!]);
          return toCsv(['layer', 'matrix', 'expert_a', 'expert_b', 'similarity'], rows);
        },
        json: () => {
          const l = ctx.currentLayer();
          return {
            modelPath: m.modelPath,
            numExperts: E,
            layer: l?.layer,
            matrix: ctx.selection.matrixKey,
            definition: matrixSpec(ctx.selection.matrixKey).definition,
            values: l?.matrices[ctx.selection.matrixKey] ?? null,
          };
        },
      },
      (msg) => ctx.post({ ...msg, name: `${ctx.base()}-${ctx.selection.matrixKey}-${msg.name}` }),
    ),
  );
  const mGrid = h(doc, 'div', { class: 'st-matrix-grid' });
  const matrixHost = h(doc, 'div', { class: 'st-matrix' });
  const side = h(doc, 'aside', { class: 'st-matrix-side card' });
  const matrixTitle = h(doc, 'h3', { 'data-testid': 'matrix-title' });
  const matrixDef = h(doc, 'p', { class: 'caption', 'data-testid': 'matrix-definition' });
  const statsEl = h(doc, 'dl', { class: 'defs st-stats', 'data-testid': 'matrix-stats' });
  side.append(
    matrixTitle,
    matrixDef,
    statsEl,
    h(
      doc,
      'p',
      { class: 'caption' },
      'Reading the matrix: row a, column b is the similarity of experts a and b (symmetric). Red: the two experts point the same way; blue: opposite ways; ' +
        'background colour: unrelated (orthogonal). Red blocks along the diagonal are groups of related experts. Hover a cell to find the pair in the scatter below.',
    ),
  );
  mGrid.append(matrixHost, side);
  sm.body.append(mGrid);

  function renderMatrix(): void {
    const l = ctx.currentLayer();
    const s = matrixSpec(ctx.selection.matrixKey);
    matrixDef.textContent = s.definition;
    matrixTitle.textContent = `Layer ${l?.layer ?? '?'} · ${s.option}`;
    clear(statsEl);
    const mat = l?.matrices[ctx.selection.matrixKey];
    if (!l || !mat) {
      matrix?.destroy();
      matrix = null;
      clear(matrixHost);
      matrixHost.append(
        h(doc, 'p', { class: 'note', 'data-testid': 'matrix-missing' }, `This analysis has no ${s.option} matrix for layer ${l?.layer ?? '?'}.`),
      );
      return;
    }
    let best = { a: -1, b: -1, v: -Infinity };
    let worst = { a: -1, b: -1, v: Infinity };
    for (let a = 0; a < E; a++)
      for (let b = a + 1; b < E; b++) {
        const v = mat[a * E + b]!;
        if (v > best.v) best = { a, b, v };
        if (v < worst.v) worst = { a, b, v };
      }
    append(
      statsEl,
      h(doc, 'dt', {}, 'Mean off-diagonal'),
      h(doc, 'dd', { 'data-testid': 'stat-mean' }, formatSimilarity(meanOffDiagonal(mat, E))),
      h(doc, 'dt', {}, 'Most similar pair'),
      h(doc, 'dd', { 'data-testid': 'stat-max' }, best.a >= 0 ? `experts ${best.a} & ${best.b}: ${formatSimilarity(best.v)}` : '–'),
      h(doc, 'dt', {}, 'Least similar pair'),
      h(doc, 'dd', { 'data-testid': 'stat-min' }, worst.a >= 0 ? `experts ${worst.a} & ${worst.b}: ${formatSimilarity(worst.v)}` : '–'),
      h(doc, 'dt', {}, 'Router vs experts'),
      h(doc, 'dd', {}, `R² ${Number.isFinite(l.r2) ? l.r2.toFixed(3) : '–'} in this layer`),
    );
    const data = { numExperts: E, values: mat, label: s.label, layer: l.layer };
    if (matrix) {
      matrix(data); // same cells, new values: updated in place
      return;
    }
    clear(matrixHost);
    matrix = similarityMatrix(matrixHost, data, {
      scale: ctx.selection.scale,
      width: ctx.widths.matrix,
      onHover: (c) => {
        ctx.selection.hoverPair = c ? { a: c.a, b: c.b } : null;
        onHover(ctx.selection.hoverPair);
      },
    });
    if (ctx.selection.hoverPair) matrix.highlight(ctx.selection.hoverPair);
  }

  return {
    measure: () => {
      ctx.widths.matrix = measureWidth(matrixHost, ctx.widths.matrix);
    },
    render: renderMatrix,
    setLayer: (layer) => ls.set(String(layer)),
    highlight: (pair) => matrix?.highlight(pair),
    destroy: () => {
      matrix?.destroy();
      matrix = null;
    },
  };
}
