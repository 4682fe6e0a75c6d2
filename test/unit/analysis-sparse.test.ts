import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeCounts, encodeCounts, encodeNonZeroCounts } from '../../src/analysis/sparse';

test('sparse layout: zeros omitted, a 1 costs one varint, other values two', () => {
  // Index 3 holds 1: gap 3 -> varint 2 x 3 = 6 ("G"). Index 4 holds 2: gap 0 -> 2 x 0 + 1 = 1 ("B"),
  // then 2 - 2 = 0 ("A").
  assert.equal(encodeCounts([0, 0, 0, 1, 2, 0, 0, 0]), 'sGBA');
  assert.deepEqual(decodeCounts('sGBA', 8, 'x'), [0, 0, 0, 1, 2, 0, 0, 0]);
  assert.equal(encodeCounts([0, 0, 0]), 's');
  assert.equal(encodeCounts([]), 's');
  assert.deepEqual(decodeCounts('s', 3, 'x'), [0, 0, 0]);
});

test('dense layout when every element is non-zero', () => {
  // 1, 2, 31 are single characters B, C, f; 32 = 0 + 1*32 -> continuation char 32+0 ("g") then "B".
  assert.equal(encodeCounts([1, 2, 31, 32]), 'dBCfgB');
  assert.deepEqual(decodeCounts('dBCfgB', 4, 'x'), [1, 2, 31, 32]);
});

test('round trip of large, small and zero counts', () => {
  const values = [0, 1, 31, 32, 1023, 1024, 2 ** 31, 2 ** 40 + 7, Number.MAX_SAFE_INTEGER, 0, 0, 5];
  assert.deepEqual(decodeCounts(encodeCounts(values), values.length, 'x'), values);
  const sparse = new Array<number>(5000).fill(0);
  sparse[17] = 3;
  sparse[4999] = 100000;
  const text = encodeCounts(sparse);
  assert.ok(text.length < 12, text);
  assert.deepEqual(decodeCounts(text, sparse.length, 'x'), sparse);
});

test('encoding rejects values that are not counts', () => {
  assert.throws(() => encodeCounts([1, -1]), /index 1/);
  assert.throws(() => encodeCounts([0.5]), /index 0/);
  assert.throws(() => encodeCounts([NaN]), /index 0/);
  assert.throws(() => encodeCounts([2 ** 60]), /index 0/);
});

test('decoding rejects malformed text', () => {
  assert.throws(() => decodeCounts('', 3, 'x'), /expected/);
  assert.throws(() => decodeCounts(42, 3, 'x'), /expected/);
  assert.throws(() => decodeCounts('zBB', 3, 'x'), /layout/);
  assert.throws(() => decodeCounts('sG', 3, 'x'), /beyond length/); // a 1 at index 3 of a length-3 array
  assert.throws(() => decodeCounts('sAg', 3, 'x'), /truncated/);
  assert.throws(() => decodeCounts('sB', 3, 'x'), /truncated/); // odd head: the value is missing
  assert.throws(() => decodeCounts('sA!', 3, 'x'), /invalid character/);
  assert.throws(() => decodeCounts('dBB', 3, 'x'), /truncated/);
  assert.throws(() => decodeCounts('dBBBB', 3, 'x'), /more than/);
  assert.throws(() => decodeCounts('s' + 'B' + 'g'.repeat(12) + 'B', 3, 'x'), /too large/);
});

test('encodeNonZeroCounts gives encodeCounts text from the non-zero entries, in both layouts', () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const layouts = new Set<string>();
  for (const density of [0, 0.01, 0.2, 0.7, 1]) {
    for (const length of [0, 1, 50, 2000]) {
      const values = Array.from({ length }, () => (rand() < density ? 1 + Math.floor(rand() * (rand() < 0.5 ? 3 : 5000)) : 0));
      const nz = values.flatMap((v, i) => (v ? [i] : []));
      const text = encodeNonZeroCounts(
        length,
        nz,
        nz.map((i) => values[i]),
      );
      assert.equal(text, encodeCounts(values), `density ${density}, length ${length}`);
      layouts.add(text[0]);
    }
  }
  assert.deepEqual([...layouts].sort(), ['d', 's'], 'both layouts exercised');
  assert.throws(() => encodeNonZeroCounts(3, [1], [-2]), /count at index 1 is not a non-negative integer/);
});
