/**
 * Precision without an engine: block quantisation round trip and layout, the manifest comparison that
 * refuses resuming or merging across precisions (and accepts runs from before precision was recorded),
 * and the routing agreement statistics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { quantizeRows, dequantizeRows, blockSizeFor, quantizeInto, QuantizedWriter } from '../../src/engines/onnxruntime/precision/quantize';
import { manifestMismatch, recordedPrecision, type RunManifest } from '../../src/eval/runFolder';
import { compareRouting, mergeAgreements } from '../../src/analysis/precisionAgreement';
import type { Routing } from '../../src/shared/protocol';

test('block quantisation: codes, nibble order and scales as QMoE / MatMulNBits read them; error within half a step', () => {
  const K = 32;
  const row = Float32Array.from({ length: K }, (_, i) => (i - 16) / 8); // -2 .. 1.875
  for (const bits of [8, 4] as const) {
    const q = quantizeRows(row, 1, K, bits, 16);
    assert.equal(q.scales.length, 2);
    assert.equal(q.packed.length, (K * bits) / 8);
    const back = dequantizeRows(q, 1, K, bits, 16);
    for (let i = 0; i < K; i++) assert.ok(Math.abs(back[i] - row[i]) <= q.scales[Math.floor(i / 16)] / 2 + 1e-7, `${bits} bits, element ${i}`);
    if (bits === 4) {
      // Block 0 holds -2 .. -0.125: max 2, scale 2/7; element 0 (-2) is code 8-7=1 in the low nibble, element 1 (-1.875) code 8-7=1 in the high.
      assert.ok(Math.abs(q.scales[0] - 2 / 7) < 1e-7);
      assert.equal(q.packed[0] & 0xf, 1);
      assert.equal(q.packed[0] >> 4, 8 + Math.round(-1.875 / (2 / 7)));
    } else {
      assert.equal(q.packed[0], 128 - 127);
    }
  }
  const zeros = quantizeRows(new Float32Array(32), 1, 32, 4, 32);
  assert.deepEqual(Array.from(dequantizeRows(zeros, 1, 32, 4, 32)), new Array(32).fill(0), 'an all-zero block stays exactly zero');
  assert.equal(blockSizeFor(2048, 4), 32);
  assert.equal(blockSizeFor(1024, 8), 128);
  assert.equal(blockSizeFor(48, 8), 16);
  assert.equal(blockSizeFor(40, 8), null);
});

const manifest = (loaded: Record<string, unknown>): RunManifest =>
  ({ format: 'moe-scope.run', version: 2, createdAt: 'x', model: {}, loaded, dataset: {}, shots: 5 }) as unknown as RunManifest;

test('a run is never resumed or merged across precisions; runs from before precision was recorded match their dtype', () => {
  const diffs = manifestMismatch(
    manifest({ dtype: 'float32', precision: 'fp32' }),
    manifest({ dtype: 'float32', precision: 'int8', precisionWhy: 'requested' }),
  );
  assert.equal(diffs.length, 1, diffs.join('; '));
  assert.match(diffs[0], /^weight precision \("fp32" vs "int8"|^weight precision \(fp32 vs int8; a run is never resumed or merged across precisions\)/);
  assert.deepEqual(manifestMismatch(manifest({ dtype: 'float32' }), manifest({ dtype: 'float32', precision: 'fp32', precisionWhy: 'auto: fp32 fits' })), []);
  assert.notDeepEqual(manifestMismatch(manifest({ dtype: 'float32' }), manifest({ dtype: 'float32', precision: 'int4' })), []);
  assert.deepEqual(
    manifestMismatch(
      manifest({ dtype: 'float32', precision: 'int8', precisionWhy: 'auto: a' }),
      manifest({ dtype: 'float32', precision: 'int8', precisionWhy: 'auto: b' }),
    ),
    [],
    'the reason auto gave is not part of the result',
  );
  assert.deepEqual(recordedPrecision(manifest({ precision: 'int4' })), { precision: 'int4' });
  assert.deepEqual(recordedPrecision(manifest({})), {});
});

function routing(top: number[][], probs: number[][]): Routing {
  // one layer, tokens = top.length, 4 experts, top-2
  return {
    numLayers: 1,
    numTokens: top.length,
    numExperts: 4,
    topK: 2,
    topExperts: Uint16Array.from(top.flat()),
    topWeights: new Float32Array(top.length * 2),
    entropy: new Float32Array(top.length),
    probs: Float32Array.from(probs.flat()),
  };
}

test('routing agreement: identical sets ignore order; overlap counts shared experts; max probability difference', () => {
  const p = [0.4, 0.3, 0.2, 0.1];
  const a = routing(
    [
      [0, 1],
      [2, 3],
    ],
    [p, p],
  );
  const b = routing(
    [
      [1, 0],
      [2, 0],
    ],
    [p, [0.4, 0.3, 0.25, 0.05]],
  );
  const r = compareRouting(a, b);
  assert.equal(r.setAgreement, 0.5);
  assert.equal(r.expertOverlap, 0.75);
  assert.ok(Math.abs(r.maxProbDiff - 0.05) < 1e-6);
  assert.deepEqual(r.perLayer, [0.5]);
  const m = mergeAgreements([r, compareRouting(a, a)]);
  assert.equal(m.setAgreement, 0.75);
  assert.equal(m.sets, 4);
  assert.throws(() => compareRouting(a, routing([[0, 1]], [p])), /different shapes/);
});

test('status bar: the precision in the label, its reason and the stored agreement as text, one fixed command link', async () => {
  const { statusTooltip } = await import('../../src/host/statusTooltip');
  const { providerLabel } = await import('../../src/host/providerLabel');
  assert.equal(providerLabel({ executionProvider: 'cpu', dtype: 'float32', precision: 'int8' }), 'CPU int8');
  assert.equal(providerLabel({ engine: 'pytorch', executionProvider: 'cpu', dtype: 'bfloat16', precision: 'bf16' }), 'PyTorch CPU bf16');
  assert.equal(providerLabel({ executionProvider: 'webgpu', dtype: 'float16', precision: 'fp16' }), 'WebGPU fp16', 'not named twice');
  const hostile = '[x](command:workbench.action.terminal.new)';
  const info = {
    path: '/m',
    numLayers: 2,
    numExperts: 8,
    topK: 2,
    executionProvider: 'cpu',
    dtype: 'float32',
    precision: 'int4',
    precisionWhy: `auto: ${hostile}`,
    precisionCheck: {
      format: 'moe-scope.precision-check',
      model: '/m',
      precision: 'int4',
      prompts: 8,
      setAgreement: 0.5,
      expertOverlap: 0.9,
      perLayer: [],
      maxProbDiff: 0.1,
      answerAgreement: 0.75,
      createdAt: '',
    },
  } as unknown as import('../../src/shared/protocol').ModelInfo;
  const pieces = statusTooltip('ready', info, null);
  const markdown = pieces.map((p) => ('markdown' in p ? p.markdown : '')).join('');
  const text = pieces.map((p) => ('text' in p ? p.text : '')).join('\n');
  assert.ok(text.includes(`Precision: int4 (auto: ${hostile})`), text);
  assert.ok(text.includes('8 MMLU prompts: 50.0% of top-k sets identical') && text.includes('answers agree on 75.0%'), text);
  assert.deepEqual(markdown.match(/command:[\w.]+/g), ['command:moeScope.precisionCheck']);
  const fp32 = statusTooltip('ready', { ...info, precision: 'fp32', precisionCheck: undefined }, null);
  assert.ok(!fp32.some((p) => 'markdown' in p && p.markdown.includes('command:')), 'no check offered for fp32 itself');
});

test('block quantisation equals the per-element definition on random matrices (8 and 4 bits, several rows and blocks, from a row offset)', () => {
  // The definition, one element at a time: scale = max|w| / qmax per block, code = clamp(round(w / scale)) + zero point.
  const reference = (values: Float32Array, rowOffset: number, rows: number, K: number, bits: 4 | 8, block: number) => {
    const qmax = bits === 8 ? 127 : 7;
    const codes: number[] = [];
    const scales: number[] = [];
    for (let r = rowOffset; r < rowOffset + rows; r++)
      for (let b = 0; b < K; b += block) {
        let m = 0;
        for (let i = 0; i < block; i++) m = Math.max(m, Math.abs(values[r * K + b + i]));
        const scale = m > 0 ? m / qmax : 1;
        scales.push(scale);
        for (let i = 0; i < block; i++) codes.push(Math.min(qmax, Math.max(-qmax, Math.round(values[r * K + b + i] * (1 / scale)))) + qmax + 1);
      }
    return { codes, scales: Float32Array.from(scales) };
  };
  let seed = 7;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const rows = 5;
  const K = 96;
  const values = Float32Array.from({ length: (rows + 2) * K }, (_, i) => (i % 37 === 0 ? 0 : random() * (1 + (i % 5))));
  values.fill(0, 2 * K, 2 * K + 32); // an all-zero block
  // Exact ties (scale 1 at max 127 or 7): Math.round's halves go up, -2.5 to -2.
  values.set([127, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 126.5, -126.5, 3.4999998, -3.5, 0, 0, 0, 0, 0], 3 * K);
  values.set([7, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5, 6.5, -6.5, 3.4999998, -3.5, 0, 0, 0, 0, 0], 4 * K);
  for (const bits of [8, 4] as const) {
    for (const block of [16, 32]) {
      const packed = new Uint8Array((rows * K * bits) / 8);
      const scales = new Float32Array((rows * K) / block);
      const next = quantizeInto(values, 2, rows, K, bits, block, new QuantizedWriter(packed, bits), scales, 0);
      assert.equal(next, scales.length);
      const want = reference(values, 2, rows, K, bits, block);
      assert.deepEqual(scales, want.scales, `${bits} bits, block ${block}: scales`);
      const codes = bits === 8 ? Array.from(packed) : Array.from(packed).flatMap((byte) => [byte & 0xf, byte >> 4]);
      assert.deepEqual(codes, want.codes, `${bits} bits, block ${block}: codes`);
    }
  }
});
