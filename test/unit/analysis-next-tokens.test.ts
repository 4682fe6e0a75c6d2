import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topNextTokens } from '../../src/analysis/nextTokens';

test('topNextTokens: the k most probable ids with softmax probabilities, ties by id', () => {
  const logits = [0, Math.log(3), Math.log(2), Math.log(3), -Infinity];
  const best = topNextTokens(logits, 3);
  assert.deepEqual(
    best.map((t) => t.id),
    [1, 3, 2],
  );
  const z = 1 + 3 + 2 + 3;
  for (const t of best) assert.ok(Math.abs(t.prob - [1, 3, 2, 3][t.id] / z) < 1e-12);
  assert.throws(() => topNextTokens([0, NaN], 1), /logit 1 is NaN/);
  assert.throws(() => topNextTokens([-Infinity], 1), /undefined/);
});
