/**
 * The quantisation workers (precision/quantizePool.ts) give exactly what the calling thread gives, in the
 * order the jobs were submitted, and report a non-finite weight with its part and index instead of codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QuantizePool, owned, type QuantizeJob, type QuantizeOutcome } from '../../src/engines/onnxruntime/precision/quantizePool';
import { quantizeRows, type QuantBits } from '../../src/engines/onnxruntime/precision/quantize';

function random(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return ((s >>> 8) / 16777216 - 0.5) * 0.3;
  });
}

function jobs(seed: number, bits: QuantBits = 8): QuantizeJob[] {
  return [
    { values: random(16 * 64, seed), rows: 16, K: 64, bits, block: 32 },
    { values: random(8 * 128, seed + 1), rows: 8, K: 128, bits, block: 64 },
  ];
}

function results(o: QuantizeOutcome) {
  assert.ok('results' in o, JSON.stringify(o));
  return o.results;
}

for (const bits of [8, 4] as QuantBits[]) {
  test(`int${bits}: two workers give the calling thread's codes and scales, job by job, in submission order`, async () => {
    const pool = new QuantizePool(2);
    try {
      const outcomes = await Promise.all(Array.from({ length: 6 }, (_, j) => pool.quantize(jobs(10 * j + 1, bits))));
      outcomes.forEach((o, j) => {
        const expected = jobs(10 * j + 1, bits).map((p) => quantizeRows(p.values as Float32Array, p.rows, p.K, bits, p.block));
        const got = results(o);
        assert.equal(got.length, expected.length);
        got.forEach((r, i) => {
          assert.deepEqual(Buffer.from(r.packed), Buffer.from(expected[i].packed), `job ${j} part ${i}: codes`);
          assert.deepEqual(Array.from(r.scales), Array.from(expected[i].scales), `job ${j} part ${i}: scales`);
        });
      });
      const inline = new QuantizePool(1);
      const same = results(await inline.quantize(jobs(1, bits)));
      assert.deepEqual(Buffer.from(same[1].packed), Buffer.from(results(outcomes[0])[1].packed), 'one thread and two agree');
      await inline.close();
    } finally {
      await pool.close();
    }
  });
}

for (const threads of [1, 2]) {
  for (const bad of [NaN, Infinity, -Infinity]) {
    test(`${threads} thread(s): a ${bad} weight is reported with its part and index, not quantised`, async () => {
      const pool = new QuantizePool(threads);
      try {
        const parts = jobs(3);
        parts[1].values[77] = bad;
        const o = await pool.quantize(parts);
        assert.ok('nonFinite' in o, 'no codes for a non-finite weight');
        assert.equal(o.nonFinite.part, 1);
        assert.equal(o.nonFinite.index, 77);
        assert.ok(Object.is(o.nonFinite.value, bad));
      } finally {
        await pool.close();
      }
    });
  }
}

/** bfloat16 patterns of a mix of magnitudes (normal, subnormal, zero, both signs) and the float32 values they stand for. */
function bf16Sample(n: number, seed: number): { patterns: Uint16Array; values: Float32Array } {
  const f = random(n, seed);
  const patterns = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const scaled = i % 97 === 0 ? 0 : i % 89 === 0 ? f[i] * 1e-39 : f[i] * (1 + (i % 7) * 10);
    patterns[i] = new Uint32Array(Float32Array.of(scaled).buffer)[0] >>> 16;
  }
  const values = new Float32Array(new Uint32Array(Array.from(patterns, (h) => h << 16)).buffer);
  return { patterns, values };
}

for (const bits of [8, 4] as QuantBits[]) {
  test(`int${bits}: bfloat16 weights decoded block by block on the worker give the codes and scales of their float32 values`, async () => {
    for (const threads of [1, 2]) {
      const pool = new QuantizePool(threads);
      try {
        const { patterns, values } = bf16Sample(32 * 64, 7);
        const zeroBlock = patterns.subarray(0, 32);
        zeroBlock.fill(0x8000); // -0 everywhere: an all-zero block keeps scale 1
        values.subarray(0, 32).fill(-0);
        const [got] = results(await pool.quantize([{ values: patterns, rows: 32, K: 64, bits, block: 32 }]));
        const expected = quantizeRows(values, 32, 64, bits, 32);
        assert.deepEqual(Buffer.from(got.packed), Buffer.from(expected.packed), `${threads} thread(s): codes`);
        assert.deepEqual(Array.from(got.scales), Array.from(expected.scales), `${threads} thread(s): scales`);
        assert.equal(got.scales[0], 1);
      } finally {
        await pool.close();
      }
    }
  });
}

for (const [pattern, value] of [
  [0x7fc0, NaN],
  [0x7f80, Infinity],
  [0xff80, -Infinity],
] as const) {
  test(`a bfloat16 ${value} (0x${pattern.toString(16)}) is reported with its part, index and value`, async () => {
    const pool = new QuantizePool(2);
    try {
      const { patterns } = bf16Sample(16 * 64, 9);
      patterns[700] = pattern;
      const o = await pool.quantize([
        { values: random(16 * 64, 1), rows: 16, K: 64, bits: 4, block: 32 },
        { values: patterns, rows: 16, K: 64, bits: 4, block: 32 },
      ]);
      assert.ok('nonFinite' in o);
      assert.deepEqual({ part: o.nonFinite.part, index: o.nonFinite.index }, { part: 1, index: 700 });
      assert.ok(Object.is(o.nonFinite.value, value));
    } finally {
      await pool.close();
    }
  });
}

test('owned: a view into a larger buffer is copied before its buffer is handed over; a whole array is not', () => {
  const whole = new Float32Array(8);
  assert.equal(owned(whole), whole);
  const view = new Float32Array(16).subarray(4, 8);
  const copy = owned(view);
  assert.notEqual(copy, view);
  assert.equal(copy.buffer.byteLength, 16);
});

test('a closed pool refuses new jobs', async () => {
  const pool = new QuantizePool(2);
  await pool.close();
  await assert.rejects(pool.quantize(jobs(5)), /closed/);
});
