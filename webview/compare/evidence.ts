/**
 * The comparison view's per-question evidence and calibration sections: the questions the cut flipped (right to
 * wrong and back, exported as CSV / JSON), each one's routing traced before (run A's model) and after (run B's
 * intervention) side by side on request, and how alike the two runs would prune (Jensen-Shannon divergence
 * of activations and overlap of each criterion's plan per layer). Text is inserted as text only.
 */
import { ANSWER_LETTERS, type CompareViewToHost, type HostToCompareView, type RunComparison, type TraceResult } from '../../src/shared/protocol';
import { routingMap } from '../charts/routingMap';
import { toCsv } from '../charts/export';
import { append, clear, h, section } from '../common/dom';
import { exportButtons } from '../common/exportButtons';

const letter = (i: number) => ANSWER_LETTERS[i] ?? '?';

export interface EvidenceSections {
  render(root: HTMLElement, c: RunComparison): void;
  handle(msg: HostToCompareView): void;
  destroy(): void;
}

export function createEvidence(doc: Document, post: (m: CompareViewToHost) => void): EvidenceSections {
  let tracesHost: HTMLElement | null = null;
  let charts: { destroy(): void }[] = [];
  /** The last traces shown, so that a re-render (resize) keeps them. */
  let shown: { id: string; before: TraceResult; after: TraceResult } | null = null;

  function drawTraces(): void {
    if (!tracesHost) return;
    for (const ch of charts) ch.destroy();
    charts = [];
    clear(tracesHost);
    if (!shown) return;
    tracesHost.append(h(doc, 'h3', { 'data-testid': 'flipped-trace-title' }, `Question ${shown.id}: routing before (A) and after (B)`));
    const row = h(doc, 'div', { class: 'cv-side-by-side', 'data-testid': 'flipped-traces' });
    for (const [tag, r] of [
      ['A', shown.before],
      ['B', shown.after],
    ] as const) {
      const col = h(doc, 'div', { class: 'cv-trace', 'data-testid': `flipped-trace-${tag.toLowerCase()}` });
      const best = r.answerProbs.indexOf(Math.max(...r.answerProbs));
      col.append(
        h(
          doc,
          'p',
          { class: 'caption' },
          `${tag}: answers ${letter(best)} (${r.answerProbs.map((p, i) => `${letter(i)} ${(100 * p).toFixed(1)}%`).join(', ')})`,
        ),
      );
      const host = h(doc, 'div', { class: 'cv-routing' });
      col.append(host);
      row.append(col);
      charts.push(routingMap(host, { routing: r.routing, tokens: r.tokens.map((t) => t.text) }, { cellWidth: 10, cellHeight: 12, headerHeight: 48 }));
    }
    tracesHost.append(row);
  }

  function render(root: HTMLElement, c: RunComparison): void {
    tracesHost = null;
    if (c.flipped) {
      const flipped = c.flipped;
      const sec = section(root, 'Questions the cut flipped', 'arrow-swap', 'compare-flipped');
      sec.tools.append(
        exportButtons(
          doc,
          {
            name: 'flipped-questions',
            csv: () =>
              toCsv(
                ['id', 'subject', 'direction', 'gold', 'predicted_a', 'predicted_b'],
                flipped.map((f) => [f.id, f.subject, f.direction, letter(f.gold), letter(f.predictedA), letter(f.predictedB)]),
              ),
            json: () => flipped,
          },
          post,
        ),
      );
      const broken = flipped.filter((f) => f.direction === 'right-to-wrong').length;
      sec.body.append(
        h(
          doc,
          'p',
          { class: 'caption', 'data-testid': 'flipped-summary' },
          `${broken} questions went from right (A) to wrong (B) and ${flipped.length - broken} from wrong to right. ` +
            'A cut can keep the aggregate accuracy and still break particular questions: open one to see its routing before and after.',
        ),
      );
      const table = h(doc, 'table', { class: 'plain cv-table', 'data-testid': 'flipped-table' });
      const head = h(doc, 'tr');
      for (const t of ['Question', 'Subject', 'Change', 'Gold', 'A', 'B', '']) head.append(h(doc, 'th', {}, t));
      table.append(head);
      for (const f of flipped) {
        const tr = h(doc, 'tr', { 'data-testid': 'flipped-row', 'data-id': f.id, 'data-direction': f.direction });
        const open = h(doc, 'vscode-button', { secondary: true, 'data-testid': 'flipped-open' }, 'Trace before / after');
        open.addEventListener('click', () => {
          if (tracesHost) {
            clear(tracesHost);
            tracesHost.append(h(doc, 'p', { class: 'muted', 'data-testid': 'flipped-trace-pending' }, `Tracing ${f.id} under both runs…`));
          }
          post({ type: 'open-flipped', id: f.id });
        });
        append(
          tr,
          h(doc, 'td', {}, f.id),
          h(doc, 'td', {}, f.subject),
          h(doc, 'td', {}, f.direction === 'right-to-wrong' ? 'right → wrong' : 'wrong → right'),
          h(doc, 'td', {}, letter(f.gold)),
          h(doc, 'td', {}, letter(f.predictedA)),
          h(doc, 'td', {}, letter(f.predictedB)),
        );
        const cell = h(doc, 'td', {});
        cell.append(open);
        tr.append(cell);
        table.append(tr);
      }
      sec.body.append(table);
      tracesHost = h(doc, 'div', { class: 'cv-flipped-traces' });
      sec.body.append(tracesHost);
      drawTraces();
    }
    if (c.calibration) {
      const cal = c.calibration;
      const sec = section(root, 'Calibration sets compared', 'beaker', 'compare-calibration');
      sec.tools.append(
        exportButtons(
          doc,
          {
            name: 'calibration-comparison',
            csv: () =>
              toCsv(
                ['layer', 'js_divergence', ...cal.criteria.flatMap((k) => [`${k}_jaccard`, `${k}_shared`])],
                cal.layers.map((l) => [l.layer, l.jsDivergence, ...cal.criteria.flatMap((k) => [l.overlap[k]!.jaccard, l.overlap[k]!.shared])]),
              ),
            json: () => cal,
          },
          post,
        ),
      );
      sec.body.append(
        h(
          doc,
          'p',
          { class: 'caption', 'data-testid': 'calibration-caption' },
          `Would A's data and B's data prune the same experts? Per layer: the Jensen-Shannon divergence (bits, 0 = identical, 1 = disjoint) of the two runs' activation-count distributions, ` +
            `and for each criterion the overlap |A ∩ B| / |A ∪ B| of the lowest ${+(cal.ratio * 100).toFixed(2)}% of experts each run would prune. ` +
            `Means: JS ${cal.meanJsDivergence.toFixed(4)}; ${cal.criteria.map((k) => `${k} ${cal.meanJaccard[k]!.toFixed(3)}`).join(', ')}.`,
        ),
      );
      const table = h(doc, 'table', { class: 'plain cv-table', 'data-testid': 'calibration-table' });
      const head = h(doc, 'tr');
      for (const t of ['Layer', 'JS divergence', ...cal.criteria.map((k) => `${k} overlap`)]) head.append(h(doc, 'th', { class: 'num' }, t));
      table.append(head);
      for (const l of cal.layers) {
        const tr = h(doc, 'tr', { 'data-testid': 'calibration-row', 'data-layer': String(l.layer) });
        tr.append(h(doc, 'td', { class: 'num' }, String(l.layer)), h(doc, 'td', { class: 'num', 'data-testid': 'calibration-js' }, l.jsDivergence.toFixed(4)));
        for (const k of cal.criteria)
          tr.append(h(doc, 'td', { class: 'num' }, `${l.overlap[k]!.shared}/${l.overlap[k]!.prunedA} (${l.overlap[k]!.jaccard.toFixed(2)})`));
        table.append(tr);
      }
      sec.body.append(table);
    }
  }

  function handle(msg: HostToCompareView): void {
    if (msg.type === 'flipped-traces') {
      shown = { id: msg.id, before: msg.before, after: msg.after };
      drawTraces();
    } else if (msg.type === 'flipped-failed' && tracesHost) {
      for (const ch of charts) ch.destroy();
      charts = [];
      clear(tracesHost);
      tracesHost.append(h(doc, 'p', { class: 'warning', 'data-testid': 'flipped-trace-failed' }, `Cannot trace ${msg.id}: ${msg.message}`));
    }
  }

  return {
    render,
    handle,
    destroy: () => charts.forEach((ch) => ch.destroy()),
  };
}
