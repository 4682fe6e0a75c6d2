/** `moe-scope compare`'s accuracy table: the A, B and B-A headings stand over their numbers (issue 24, item 14). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeComparison } from '../../src/cli/experiments';
import type { RunComparison } from '../../src/shared/protocol';

const delta = (a: number | null, b: number | null) => ({ a, b, delta: a === null || b === null ? null : b - a, questionsA: 10, questionsB: 10 });

test('compare: every accuracy row puts A, B and B-A under their headings, missing values included', () => {
  const c = {
    a: { label: 'base', questions: 20, complete: true },
    b: { label: 'pruned', questions: 20, complete: true },
    warnings: [],
    accuracy: {
      micro: delta(0.5, 0.25),
      macro: delta(0.123, 1),
      perCategory: [{ category: 'STEM', ...delta(null, 0.5) }],
      perSubject: [{ subject: 'astronomy', category: 'STEM', ...delta(0.9, null) }],
    },
    mcnemar: { paired: 20, bothCorrect: 5, bothWrong: 5, b01: 5, b10: 5, pValue: 1, unpaired: 0 },
    activation: { numLayers: 1, tokenScope: 'answer', shareA: [[1]], shareB: [[1]], deltaShare: [[0]] },
  } as unknown as RunComparison;
  const lines = describeComparison(c).split('\n');
  const header = lines.find((l) => l.trimStart().startsWith('accuracy'))!;
  assert.ok(header, 'has a header');
  // The right edge of each heading is the right edge of the numbers below it.
  const rightEdge = (line: string, token: string, from = 0) => line.indexOf(token, from) + token.length;
  const aEnd = rightEdge(header, ' A ') - 1;
  const bEnd = rightEdge(header, ' B ', aEnd) - 1;
  const dEnd = rightEdge(header, 'B-A');
  const rows = lines.filter((l) => /^ {2}(micro|macro|STEM|astronomy) /.test(l));
  assert.equal(rows.length, 4);
  for (const row of rows) {
    const cells = row.slice(2 + 40).match(/ +\S+/g)!;
    let end = 2 + 40;
    const ends: number[] = [];
    for (const cell of cells.slice(0, 3)) {
      end += cell.length;
      ends.push(end);
    }
    assert.deepEqual(ends, [aEnd, bEnd, dEnd], `${row}\n${header}`);
  }
});
