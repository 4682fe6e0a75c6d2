/** The detail card of one (layer, expert): activation count, per-expert accuracy with its count and definition, top subjects. */
import { TOKEN_SCOPE_LABELS, type TokenScope } from '../../src/shared/protocol';
import { expertColor } from '../charts/palette';
import { append, formatPercent, h } from './dom';

export interface ExpertDetailInput {
  layer: number;
  expert: number;
  numExperts: number;
  topK: number | null;
  count: number;
  source: 'trace' | 'run';
  tokenScope?: TokenScope;
  accuracy?: number | null;
  accuracyCount?: number;
  topSubjects?: readonly { subject: string; share: number }[];
  /** Definition text from the run summary, when the caller has it. */
  accuracyDefinition?: string;
}

export function expertAccuracyDefinition(topK: number | null): string {
  const k = topK ?? 'k';
  return (
    `Per-expert accuracy: among the questions whose top-${k} experts at the answer position (the last prompt token, ` +
    `where the answer letter is scored) include this expert in this layer, the fraction answered correctly. ` +
    `It rests on that number of questions, so small counts are noisy; it does not depend on the token scope of the activation counts.`
  );
}

export function expertDetail(doc: Document, d: ExpertDetailInput): HTMLElement {
  const el = h(doc, 'section', {
    class: 'card expert-detail',
    'data-testid': 'expert-detail',
    'data-layer': d.layer,
    'data-expert': d.expert,
    'aria-live': 'polite',
  });
  const title = h(doc, 'h3', {});
  const sw = h(doc, 'span', { class: 'swatch' });
  sw.style.backgroundColor = expertColor(d.expert, d.numExperts);
  append(title, sw, ` Layer ${d.layer} · expert ${d.expert}`);
  el.append(title);
  const scope = d.tokenScope ? TOKEN_SCOPE_LABELS[d.tokenScope] : d.source === 'trace' ? 'every token of this trace' : "the run's token scope";
  const facts = h(doc, 'dl', { class: 'defs' });
  append(
    facts,
    h(doc, 'dt', {}, 'Activations'),
    h(
      doc,
      'dd',
      { 'data-testid': 'expert-count' },
      `${d.count} (token, slot) assignment${d.count === 1 ? '' : 's'}, counting ${scope}${d.count === 0 ? ' — never activated' : ''}`,
    ),
  );
  if (d.source === 'run') {
    const acc = d.accuracy;
    append(
      facts,
      h(doc, 'dt', {}, 'Per-expert accuracy'),
      h(
        doc,
        'dd',
        { 'data-testid': 'expert-accuracy' },
        acc === null || acc === undefined
          ? "none: no question's answer position used this expert"
          : `${formatPercent(acc)} over ${d.accuracyCount ?? 0} question${d.accuracyCount === 1 ? '' : 's'}`,
      ),
      h(doc, 'dt', {}, 'Rests on'),
      h(doc, 'dd', { 'data-testid': 'expert-accuracy-count' }, `${d.accuracyCount ?? 0} questions`),
    );
  } else {
    append(facts, h(doc, 'dt', {}, 'Per-expert accuracy'), h(doc, 'dd', { class: 'muted' }, 'only for evaluation runs (switch the source to "run")'));
  }
  el.append(facts);
  if (d.topSubjects && d.topSubjects.length) {
    el.append(h(doc, 'h3', { class: 'sub' }, 'Top subjects'));
    const ol = h(doc, 'ol', { class: 'top-subjects', 'data-testid': 'expert-top-subjects' });
    for (const s of d.topSubjects) {
      const li = h(doc, 'li', {});
      append(li, h(doc, 'span', { class: 'subject' }, s.subject.replace(/_/g, ' ')), h(doc, 'span', { class: 'muted' }, ` ${s.share.toFixed(3)}`));
      ol.append(li);
    }
    el.append(
      ol,
      h(
        doc,
        'p',
        { class: 'caption' },
        `Share: the expert's share of the subject's (token, slot) assignments in this layer times k (uniform routing gives k/E${d.topK ? ` = ${(d.topK / d.numExperts).toFixed(3)}` : ''}).`,
      ),
    );
  }
  el.append(
    h(doc, 'p', { class: 'caption definition', 'data-testid': 'expert-accuracy-definition' }, d.accuracyDefinition ?? expertAccuracyDefinition(d.topK)),
  );
  return el;
}
