/**
 * Accuracy per MMLU subject as horizontal bars, sortable (by category groups, accuracy, name or size),
 * with the micro average and chance (25%) as reference lines. Grouped mode adds one header row per
 * category with the category's accuracy over its questions.
 */
import { scaleLinear, select } from 'd3';
import type { SubjectSummary } from '../../src/shared/protocol';
import { clear, formatPercent, h, measureWidth } from '../common/dom';
import { verticalGrid } from './gridlines';
import type { ChartUpdate, SvgChart } from './types';

export type SubjectSort = 'category' | 'accuracy' | 'name' | 'questions';

export interface AccuracyBySubjectData {
  subjects: readonly SubjectSummary[];
  /** Micro accuracy (all questions), drawn as a reference line. */
  micro?: number;
}

export interface AccuracyBySubjectOptions {
  sort?: SubjectSort;
  width?: number;
  onSubjectClick?: (subject: string) => void;
}

export type AccuracyBySubjectUpdate = ChartUpdate<AccuracyBySubjectData> & SvgChart & { setSort(sort: SubjectSort): void };

type Row =
  { kind: 'category'; category: string; questions: number; correct: number; accuracy: number; subjects: number } | { kind: 'subject'; s: SubjectSummary };

export function subjectLabel(subject: string): string {
  return subject.replace(/_/g, ' ');
}

export function rowsFor(subjects: readonly SubjectSummary[], sort: SubjectSort): Row[] {
  const byAcc = (a: SubjectSummary, b: SubjectSummary) => b.accuracy - a.accuracy || a.subject.localeCompare(b.subject);
  if (sort !== 'category') {
    const list = subjects.slice();
    if (sort === 'accuracy') list.sort(byAcc);
    else if (sort === 'name') list.sort((a, b) => a.subject.localeCompare(b.subject));
    else list.sort((a, b) => b.questions - a.questions || a.subject.localeCompare(b.subject));
    return list.map((s) => ({ kind: 'subject', s }));
  }
  const groups = new Map<string, SubjectSummary[]>();
  for (const s of subjects) {
    const c = s.category ?? 'other';
    let g = groups.get(c);
    if (!g) groups.set(c, (g = []));
    g.push(s);
  }
  const cats = [...groups.entries()].map(([category, list]) => {
    const questions = list.reduce((a, s) => a + s.questions, 0);
    const correct = list.reduce((a, s) => a + s.correct, 0);
    return { category, list, questions, correct, accuracy: questions ? correct / questions : 0 };
  });
  cats.sort((a, b) => b.accuracy - a.accuracy || a.category.localeCompare(b.category));
  const rows: Row[] = [];
  for (const c of cats) {
    rows.push({ kind: 'category', category: c.category, questions: c.questions, correct: c.correct, accuracy: c.accuracy, subjects: c.list.length });
    for (const s of c.list.slice().sort(byAcc)) rows.push({ kind: 'subject', s });
  }
  return rows;
}

export function accuracyBySubject(container: HTMLElement, data: AccuracyBySubjectData, options: AccuracyBySubjectOptions = {}): AccuracyBySubjectUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let sort: SubjectSort = options.sort ?? 'category';
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const rows = rowsFor(current.subjects, sort);
    const width = options.width ?? Math.max(420, measureWidth(container, 760));
    const rowH = 18;
    const m = { top: 22, right: 110, bottom: 8, left: Math.min(260, Math.max(140, width * 0.32)) };
    const height = m.top + rows.length * rowH + m.bottom;
    const x = scaleLinear()
      .domain([0, 1])
      .range([m.left, width - m.right]);
    const root = h(doc, 'div', { class: 'subject-chart' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart subjects')
      .attr('data-testid', 'accuracy-by-subject')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'img')
      .attr('aria-label', `Accuracy of ${current.subjects.length} subjects`);
    svgEl = svg.node();
    const axis = svg.append('g').attr('class', 'axis');
    verticalGrid(axis, [0, 0.25, 0.5, 0.75, 1], x, m.top - 4, height - m.bottom, m.top - 8, (t) => `${t * 100}%`);
    const g = svg
      .selectAll('g.row')
      .data(rows)
      .join('g')
      .attr('class', (r) => (r.kind === 'category' ? 'row category' : 'row subject'))
      .attr('transform', (_r, i) => `translate(0,${m.top + i * rowH})`);
    g.filter((r) => r.kind === 'category').each(function (r) {
      if (r.kind !== 'category') return;
      const s = select(this).attr('data-testid', 'category-row').attr('data-category', r.category);
      s.append('rect').attr('class', 'category-bg').attr('x', 0).attr('y', 0).attr('width', width).attr('height', rowH);
      s.append('text')
        .attr('class', 'category-label')
        .attr('x', 4)
        .attr('y', rowH / 2)
        .attr('dy', '0.32em')
        .text(r.category);
      s.append('text')
        .attr('class', 'value')
        .attr('x', width - m.right + 6)
        .attr('y', rowH / 2)
        .attr('dy', '0.32em')
        .text(`${formatPercent(r.accuracy)} · ${r.subjects} subj.`);
      s.append('rect')
        .attr('class', 'category-mark')
        .attr('x', x(r.accuracy) - 1)
        .attr('y', 2)
        .attr('width', 2)
        .attr('height', rowH - 4);
    });
    g.filter((r) => r.kind === 'subject').each(function (r) {
      if (r.kind !== 'subject') return;
      const s = select(this)
        .attr('data-testid', 'subject-bar')
        .attr('data-subject', r.s.subject)
        .attr('tabindex', options.onSubjectClick ? 0 : null);
      s.append('title').text(`${r.s.subject}: ${r.s.correct} of ${r.s.questions} correct (${formatPercent(r.s.accuracy)})`);
      s.append('text')
        .attr('class', 'subject-label')
        .attr('x', m.left - 6)
        .attr('y', rowH / 2)
        .attr('dy', '0.32em')
        .attr('text-anchor', 'end')
        .text(subjectLabel(r.s.subject));
      s.append('rect')
        .attr('class', 'bar')
        .attr('x', x(0))
        .attr('y', 3)
        .attr('height', rowH - 6)
        .attr('width', Math.max(0, x(Math.max(0, Math.min(1, r.s.accuracy))) - x(0)));
      s.append('text')
        .attr('class', 'value')
        .attr('x', width - m.right + 6)
        .attr('y', rowH / 2)
        .attr('dy', '0.32em')
        .text(`${formatPercent(r.s.accuracy)} (n=${r.s.questions})`);
      if (options.onSubjectClick) s.on('click', () => options.onSubjectClick!(r.s.subject));
    });
    const ref = svg.append('g').attr('class', 'refs');
    ref
      .append('line')
      .attr('class', 'chance-line')
      .attr('x1', x(0.25))
      .attr('x2', x(0.25))
      .attr('y1', m.top - 4)
      .attr('y2', height - m.bottom);
    if (current.micro !== undefined) {
      ref
        .append('line')
        .attr('class', 'ref-line')
        .attr('data-testid', 'micro-line')
        .attr('x1', x(current.micro))
        .attr('x2', x(current.micro))
        .attr('y1', m.top - 4)
        .attr('y2', height - m.bottom);
    }
    root.append(
      h(
        doc,
        'p',
        { class: 'caption' },
        `Dotted line: chance (25%).${current.micro !== undefined ? ` Solid line: micro accuracy ${formatPercent(current.micro)}.` : ''}` +
          (sort === 'category' ? ' Category rows show accuracy over all questions of the category (tick on the axis).' : ''),
      ),
    );
  }

  render();
  const update = ((next: AccuracyBySubjectData) => {
    current = next;
    render();
  }) as AccuracyBySubjectUpdate;
  update.setSort = (s) => {
    sort = s;
    render();
  };
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
