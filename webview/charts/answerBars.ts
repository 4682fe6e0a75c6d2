/**
 * Answer probabilities for A-D (softmax restricted to the four letter tokens) as horizontal bars, the gold
 * answer marked (data-gold="true", a check mark and outline) and the predicted answer (argmax) marked
 * (data-predicted="true").
 */
import { scaleLinear, select } from 'd3';
import { ANSWER_LETTERS, type AnswerLetter, type AnswerScoringMethod } from '../../src/shared/protocol';
import { clear, formatPercent, h } from '../common/dom';
import type { ChartUpdate, SvgChart } from './types';

export interface AnswerBarsData {
  /** P(letter | one of the four letters), in A-D order. */
  probs: readonly [number, number, number, number] | readonly number[];
  gold?: AnswerLetter | null;
  /** Full-vocabulary log-probabilities of " A".." D" (shown in the tooltip). */
  logProbs?: readonly number[];
  /** How the letters were scored; the caption says so. Default 'single-token'. */
  scoring?: AnswerScoringMethod;
}

const SCORING_CAPTIONS: Record<AnswerScoringMethod, string> = {
  'single-token': 'Softmax over the four letter tokens " A".." D" at the answer position.',
  continuation:
    'Letters are several tokens in this tokenizer: softmax over the log-likelihoods of the four full continuations " A".." D" (summed over each letter\'s tokens, as lm-evaluation-harness does).',
};

export interface AnswerBarsOptions {
  /** Total width in CSS px (default 520; fixed so that drawing never forces a layout). */
  width?: number;
}

export type AnswerBarsUpdate = ChartUpdate<AnswerBarsData> & SvgChart;

export function answerBars(container: HTMLElement, data: AnswerBarsData, options: AnswerBarsOptions = {}): AnswerBarsUpdate {
  const doc = container.ownerDocument;
  let current = data;
  let svgEl: SVGSVGElement | null = null;

  function render(): void {
    clear(container);
    const probs = ANSWER_LETTERS.map((_, i) => Math.max(0, Number(current.probs[i] ?? 0)));
    let predicted = 0;
    probs.forEach((p, i) => {
      if (p > probs[predicted]!) predicted = i;
    });
    const goldIdx = current.gold ? ANSWER_LETTERS.indexOf(current.gold) : -1;
    const width = options.width ?? 520;
    const rowH = 26;
    const m = { top: 4, right: 150, left: 28 };
    const height = m.top + rowH * 4 + 4;
    const x = scaleLinear()
      .domain([0, 1])
      .range([0, width - m.left - m.right]);
    const root = h(doc, 'div', { class: 'answer-bars', 'data-testid': 'answer-bars' });
    container.append(root);
    const svg = select(root)
      .append('svg')
      .attr('class', 'chart')
      .attr('width', width)
      .attr('height', height)
      .attr('viewBox', `0 0 ${width} ${height}`)
      .attr('role', 'list')
      .attr('aria-label', 'Answer probabilities');
    svgEl = svg.node();
    const rows = svg
      .selectAll('g.answer')
      .data(ANSWER_LETTERS)
      .join('g')
      .attr('class', (_l, i) => `answer${i === goldIdx ? ' gold' : ''}${i === predicted ? ' predicted' : ''}`)
      .attr('data-testid', 'answer-prob')
      .attr('data-letter', (l) => l)
      .attr('data-prob', (_l, i) => probs[i]!.toFixed(6))
      .attr('data-gold', (_l, i) => (i === goldIdx ? 'true' : null))
      .attr('data-predicted', (_l, i) => (i === predicted ? 'true' : null))
      .attr('role', 'listitem')
      .attr('transform', (_l, i) => `translate(0,${m.top + i * rowH})`);
    rows.append('title').text((l, i) => {
      const lp = current.logProbs?.[i];
      return (
        `${l}: ${formatPercent(probs[i]!)} among A-D${lp !== undefined ? `; full-vocabulary log-prob ${lp.toFixed(3)}` : ''}` +
        `${i === goldIdx ? ' (gold answer)' : ''}${i === predicted ? ' (predicted)' : ''}`
      );
    });
    rows
      .append('text')
      .attr('class', 'letter')
      .attr('x', 8)
      .attr('y', rowH / 2)
      .attr('dy', '0.32em')
      .text((l) => l);
    rows
      .append('rect')
      .attr('class', 'track')
      .attr('x', m.left)
      .attr('y', 4)
      .attr('height', rowH - 8)
      .attr('width', x(1))
      .attr('rx', 2);
    rows
      .append('rect')
      .attr('class', 'bar')
      .attr('x', m.left)
      .attr('y', 4)
      .attr('height', rowH - 8)
      .attr('width', (_l, i) => Math.max(0, x(probs[i]!)))
      .attr('rx', 2);
    rows
      .append('text')
      .attr('class', 'prob-label')
      .attr('x', m.left + x(1) + 8)
      .attr('y', rowH / 2)
      .attr('dy', '0.32em')
      .text((_l, i) => formatPercent(probs[i]!));
    rows
      .append('text')
      .attr('class', 'answer-tags')
      .attr('x', m.left + x(1) + 62)
      .attr('y', rowH / 2)
      .attr('dy', '0.32em')
      .text((_l, i) => [i === goldIdx ? '✓ gold' : '', i === predicted ? '◀ predicted' : ''].filter(Boolean).join('  '));
    const scoring = current.scoring ?? 'single-token';
    const caption = h(
      doc,
      'p',
      { class: 'caption', 'data-scoring': scoring },
      goldIdx < 0
        ? `Predicted ${ANSWER_LETTERS[predicted]}. ${SCORING_CAPTIONS[scoring]}`
        : `Predicted ${ANSWER_LETTERS[predicted]}, gold ${ANSWER_LETTERS[goldIdx]}: ${predicted === goldIdx ? 'correct' : 'wrong'}. ` +
            SCORING_CAPTIONS[scoring],
    );
    caption.setAttribute('data-testid', 'answer-caption');
    root.append(caption);
  }

  render();
  const update = ((next: AnswerBarsData) => {
    current = next;
    render();
  }) as AnswerBarsUpdate;
  update.svg = () => svgEl;
  update.destroy = () => {};
  return update;
}
