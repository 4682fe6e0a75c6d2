/**
 * The summary view's "Pruning scores per expert" section: for one layer at a time, every expert's activation
 * count, gate-weighted count, MAN and MSAN (src/analysis/expertScores.ts), each column defined on the page
 * with its source; the whole grid exports as CSV and JSON. Text is always inserted as text.
 */
import type { ExportMessage, RunSummary } from '../../src/shared/protocol';
import { toCsv } from '../charts/export';
import { append, clear, h, labeledSelect, section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';

const fmt = (x: number | null | undefined, digits = 4) => (x === null || x === undefined ? '–' : x.toPrecision(digits));

export function expertScoresSection(root: HTMLElement, s: RunSummary, post: (m: ExportMessage) => void, layer: number, onLayer: (l: number) => void): void {
  const doc = root.ownerDocument;
  const sec = section(root, 'Pruning scores per expert', 'list-ordered', 'summary-expert-scores');
  if (!s.layers.every((l) => l.expertScores)) {
    sec.body.append(
      h(
        doc,
        'p',
        { class: 'caption', 'data-testid': 'expert-scores-missing' },
        'This run was made before MoE Scope folded pruning scores; run it again to get them.',
      ),
    );
    return;
  }
  const E = s.model.numExperts;
  sec.tools.append(
    exportButtons(
      doc,
      {
        name: 'expert-scores',
        csv: () => {
          const rows: (string | number | null)[][] = [];
          for (const l of s.layers) {
            const x = l.expertScores!;
            for (let e = 0; e < E; e++)
              rows.push([
                l.layer,
                e,
                l.activationCounts[e] ?? 0,
                x.gateWeighted[e] ?? 0,
                x.meanOutputNorm[e] ?? null,
                x.meanSquaredOutputNorm[e] ?? null,
                x.outputNormCount[e] ?? 0,
                x.weightsCriterion?.[e] ?? null,
              ]);
          }
          return toCsv(['layer', 'expert', 'activation_count', 'gate_weighted_count', 'man', 'msan', 'norm_assignments', 'weights_abs_mean_over_rms'], rows);
        },
        json: () => ({
          tokenScope: s.tokenScope,
          definitions: pick(s.definitions, ['activationCounts', 'gateWeighted', 'meanOutputNorm', 'meanSquaredOutputNorm', 'outputNormCount']),
          layers: s.layers.map((l) => ({ layer: l.layer, activationCounts: l.activationCounts, ...l.expertScores })),
        }),
      },
      post,
    ),
  );
  const defs = h(doc, 'dl', { class: 'defs', 'data-testid': 'expert-score-definitions' });
  for (const [key, title] of [
    ['activationCounts', 'Activation count'],
    ['gateWeighted', 'Gate-weighted count'],
    ['meanOutputNorm', 'MAN'],
    ['meanSquaredOutputNorm', 'MSAN'],
    ['weightsCriterion', 'Weights |mean|/RMS (not from this run)'],
  ] as const) {
    const text = s.definitions[key];
    if (text) append(defs, h(doc, 'dt', {}, title), h(doc, 'dd', { 'data-key': key }, text));
  }
  const select = labeledSelect(
    doc,
    'expert-scores-layer',
    'Layer',
    s.layers.map((l) => [String(l.layer), `layer ${l.layer}`]),
    String(layer),
    (v) => {
      onLayer(Number(v));
      fill(Number(v));
    },
  );
  const table = h(doc, 'table', { class: 'plain', 'data-testid': 'expert-scores-table' });
  sec.body.append(select.wrap, table, defs);

  function fill(l: number): void {
    clear(table);
    const ls = s.layers[l] ?? s.layers[0]!;
    const x = ls.expertScores!;
    const head = h(doc, 'tr');
    for (const t of ['Expert', 'Count', 'Gate-weighted', 'MAN', 'MSAN', 'Norms measured', ...(x.weightsCriterion ? ['Weights |mean|/RMS'] : [])])
      head.append(h(doc, 'th', { class: t === 'Expert' ? '' : 'num' }, t));
    table.append(head);
    for (let e = 0; e < E; e++) {
      const tr = h(doc, 'tr', { 'data-testid': 'expert-score-row', 'data-expert': String(e) });
      append(
        tr,
        h(doc, 'td', {}, String(e)),
        h(doc, 'td', { class: 'num' }, String(ls.activationCounts[e] ?? 0)),
        h(doc, 'td', { class: 'num' }, fmt(x.gateWeighted[e])),
        h(doc, 'td', { class: 'num', 'data-testid': 'expert-score-man' }, fmt(x.meanOutputNorm[e])),
        h(doc, 'td', { class: 'num' }, fmt(x.meanSquaredOutputNorm[e])),
        h(doc, 'td', { class: 'num' }, String(x.outputNormCount[e] ?? 0)),
      );
      if (x.weightsCriterion) tr.append(h(doc, 'td', { class: 'num', 'data-testid': 'expert-score-weights' }, fmt(x.weightsCriterion[e])));
      table.append(tr);
    }
  }
  fill(layer);
}

function pick(defs: Record<string, string>, keys: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of keys) if (Object.hasOwn(defs, k)) out[k] = defs[k]!;
  return out;
}
